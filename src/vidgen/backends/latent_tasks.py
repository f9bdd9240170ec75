"""The editing tasks of the native latent backends: edit, stylize, inpaint, cinemagraph, loop,
and the storyboard (with the extension windows it shares with extend).

Every task here reuses the backend's one sampler over latent video; they differ
only in where sampling starts and which latents are known:

- **edit / stylize** (SDEdit, Meng et al. 2022): the source clip's latents are
  noised to ``t = strength`` with the schedule (``add_noise``) and integrated
  back to ``t = 0`` under the new prompt. What survives is what the noised
  latents still carry: layout, object positions and motion at low strength,
  less as strength grows. There is no inversion and no cross-frame attention
  injection; structure is kept through the noised source latents only.
  Stylize is the same mechanism at a lower default strength (0.45), meant for
  appearance words (colours, background); it keeps the source's motion.
- **inpaint** (latent replacement, RePaint): the mask is brought to the
  latent grid (a latent cell or latent frame that touches the mask is
  regenerated), the source latents are imposed everywhere else at every step,
  noised to the current time (the samplers' ``known=``), each step is
  resampled 4 times (``options["resample"]``) so the new content fits the kept
  surroundings, and after decoding the output is composited in pixel space so
  that outside the mask it equals the input exactly. ``strength < 1`` starts
  from the source's noised latents instead of noise (the new content then
  follows the old layout inside the mask).
- **cinemagraph**: the same with the repeated still image as the source and a
  spatial mask; the first latent frame is the image's (as in image-to-video),
  and after decoding every frame equals the image outside the mask.
- **loop**: a clip longer than asked is generated and folded onto itself: its
  first latent frames are crossfaded with the ones one period later, so the
  last frame is followed (on the wrap) by the frame the model drew after it;
  SDEdit then redraws the crossfaded frames to repair the dissolve.
- **storyboard** (as in Phenaki, Villegas et al. 2022): segment 0 is
  text-to-video of the first prompt; each next segment is made by extension
  windows (``extend_frames``, the extend task's own code) sampled with the
  next prompt, whose first latent frames are the last frames so far, known.
  The subject's look crosses the cut through those shared context frames; what
  happens after them follows the segment's own caption.

Masks are True where content is regenerated (inpaint) or may move (cinemagraph).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from vidgen.backends.base import Capabilities, ProgressCallback
from vidgen.errors import BackendError, ConfigurationError
from vidgen.training.autoencoder import AutoencoderConfig
from vidgen.types import Frames, GenerationRequest, Task, Video

if TYPE_CHECKING:
    from vidgen.backends.latent_backend import LatentDiffusionBackend

BoolArray = npt.NDArray[np.bool_]

DEFAULT_STRENGTH: dict[Task, float] = {Task.EDIT: 0.6, Task.STYLIZE: 0.45, Task.INPAINT: 1.0,
                                       Task.CINEMAGRAPH: 1.0, Task.LOOP: 0.6}
"""``request.strength`` when not given: the time SDEdit starts from (1 = from pure noise);
for a loop, how strongly the crossfaded frames are redrawn."""


@attrs.frozen
class Settings:
    """A request's sizes and sampling settings once defaults and the inputs are applied."""

    frames: int
    height: int
    width: int
    fps: float
    steps: int
    guidance: float


# --- inputs ----------------------------------------------------------------------------------


def strength_of(request: GenerationRequest) -> float:
    """``request.strength`` (or the task's default), checked to be in (0, 1]."""
    default = DEFAULT_STRENGTH.get(request.task)
    if default is None:
        if request.strength is not None:
            raise ConfigurationError(
                f"strength does not apply to task {request.task.value!r} (it does to "
                f"{', '.join(sorted(t.value for t in DEFAULT_STRENGTH))})")
        return 1.0
    strength = default if request.strength is None else float(request.strength)
    if not 0.0 < strength <= 1.0:  # also refuses nan
        raise ConfigurationError(f"strength must be in (0, 1], got {request.strength}")
    return strength


def settings_for(request: GenerationRequest, caps: Capabilities, backend_name: str, *,
                 default_steps: int, default_guidance: float) -> Settings:
    """Sizes from the request, else from the input (video, then image), else the defaults.

    A size the request gives must match the input's; the resolved sizes are
    checked against the capabilities again (an input may be larger than allowed).
    """
    video, image = request.inputs.video, request.inputs.image
    task = request.task.value
    frames = request.num_frames
    height, width = request.height, request.width
    fps = request.fps
    if video is not None and request.task != Task.EXTEND:
        if request.task in (Task.EDIT, Task.STYLIZE, Task.INPAINT):
            if frames is not None and frames != video.num_frames:
                raise BackendError(f"{task} keeps the input's {video.num_frames} frames; "
                                   f"{frames} were requested (leave num_frames unset)")
            frames = video.num_frames
        fps = video.fps if fps is None else fps
    source_hw = (video.height, video.width) if video is not None else (
        (int(image.shape[0]), int(image.shape[1])) if image is not None else None)
    if source_hw is not None:
        kind = "video" if video is not None else "image"
        given = (height or source_hw[0], width or source_hw[1])
        if given != source_hw:
            raise BackendError(f"the input {kind} is {source_hw[1]}x{source_hw[0]}; this request "
                               f"generates {given[1]}x{given[0]} (sizes must match)")
        height, width = source_hw
    resolved = attrs.evolve(request, num_frames=frames, height=height, width=width)
    caps.check(resolved, backend_name)
    steps = request.num_steps or default_steps
    guidance = request.guidance if request.guidance is not None else default_guidance
    return Settings(frames=frames or caps.default_frames, height=height or caps.default_height,
                    width=width or caps.default_width, fps=fps or caps.default_fps,
                    steps=steps, guidance=guidance)


def need_video(request: GenerationRequest) -> Video:
    video = request.inputs.video
    if video is None:
        raise BackendError(f"{request.task.value} needs an input video (inputs.video)")
    return video


def need_image(request: GenerationRequest) -> Frames:
    image = request.inputs.image
    if image is None:
        raise BackendError(f"{request.task.value} needs an input image (inputs.image)")
    return image


def check_mask(mask: npt.NDArray[np.generic] | None, task: Task, *, frames: int, height: int,
               width: int, allow_time: bool) -> BoolArray:
    """The mask as boolean (T, H, W); (H, W) (and (1, H, W)) apply to every frame.

    Accepts bool, or integers that are all 0 or 1. Refuses a missing mask, other
    shapes and an all-False mask (nothing would change); all True is allowed.
    """
    meaning = "True = may move" if task == Task.CINEMAGRAPH else "True = regenerate"
    if mask is None:
        raise BackendError(f"{task.value} needs a mask (inputs.mask, {meaning})")
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all()):
            raise ConfigurationError(f"the {task.value} mask must be boolean ({meaning}) or "
                                     f"0/1 integers, got {arr.dtype}")
        arr = arr.astype(bool)
    shapes = [f"(H, W) = ({height}, {width})"]
    if allow_time:
        shapes.append(f"(T, H, W) = ({frames}, {height}, {width})")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2 and arr.shape == (height, width):
        arr = np.broadcast_to(arr, (frames, height, width))
    elif not (allow_time and arr.shape == (frames, height, width)):
        raise ConfigurationError(f"the {task.value} mask has shape {arr.shape}; expected "
                                 f"{' or '.join(shapes)}")
    if not arr.any():
        raise ConfigurationError(f"the {task.value} mask is all False: nothing would "
                                 f"{'move' if task == Task.CINEMAGRAPH else 'change'} "
                                 f"({meaning})")
    return np.ascontiguousarray(arr)


# --- masks on the latent grid ----------------------------------------------------------------


def latent_frames_touching(frame_mask: BoolArray, temporal_down: int, latent_frames: int
                           ) -> BoolArray:
    """(T',) True for latent frames that encode any frame marked in ``frame_mask`` (T,).

    The causal autoencoder puts frame 0 alone in latent frame 0 and frames
    ``(k-1) d + 1 .. k d`` in latent frame ``k``.
    """
    out = np.zeros(latent_frames, dtype=bool)
    for f in np.flatnonzero(frame_mask):
        out[0 if f == 0 else (int(f) - 1) // temporal_down + 1] = True
    return out


def frames_of_latents(latent_mask: BoolArray, temporal_down: int, num_frames: int) -> BoolArray:
    """(T,) True for the frames that latent frames marked in ``latent_mask`` (T',) decode to."""
    out = np.zeros(num_frames, dtype=bool)
    for k in np.flatnonzero(latent_mask):
        if k == 0:
            out[0] = True
        else:
            out[(int(k) - 1) * temporal_down + 1:int(k) * temporal_down + 1] = True
    return out


def latent_mask(mask: BoolArray, config: AutoencoderConfig, *, dilation: int = 0
                ) -> torch.Tensor:
    """A pixel mask (T, H, W) on the latent grid: (1, 1, T', H', W') bool, True = regenerate.

    Conservative: a latent cell is regenerated if any pixel of any frame it
    encodes is in the mask (max pooling over its ``spatial_down`` block and its
    frames); ``dilation`` grows the result by that many latent cells in H and W.
    """
    t, h, w = mask.shape
    s, d = config.spatial_down, config.temporal_down
    lt = config.latent_frames(t)
    spatial = F.max_pool2d(torch.from_numpy(np.array(mask, dtype=bool)).float()[:, None], s,
                           stride=s)[:, 0] > 0  # (T, H', W')
    out = torch.zeros(lt, h // s, w // s, dtype=torch.bool)
    for f in range(t):
        k = 0 if f == 0 else (f - 1) // d + 1
        out[k] |= spatial[f]
    if dilation > 0:
        size = 2 * dilation + 1
        out = F.max_pool2d(out.float()[:, None], size, stride=1, padding=dilation)[:, 0] > 0
    return out[None, None]


def composite(generated: Frames, source: Frames, mask: BoolArray) -> Frames:
    """``generated`` where ``mask`` (T, H, W) is True, ``source`` (bytes, exactly) elsewhere."""
    return np.where(mask[..., None], generated, source).astype(np.uint8)


# --- the tasks -------------------------------------------------------------------------------


DEFAULT_RESAMPLE: dict[Task, int] = {Task.INPAINT: 4, Task.CINEMAGRAPH: 4}
"""``options["resample"]`` when not given: RePaint's repeats of each step with a known region."""


def resample_of(request: GenerationRequest, default: int | None = None) -> int:
    """``request.options["resample"]`` (else the task's default, else 1): each sampling step
    with a known region runs that many times, noised back up in between (RePaint), so the
    generated region harmonises with the known one at that many times the cost."""
    fallback = DEFAULT_RESAMPLE.get(request.task, 1) if default is None else default
    value = request.options.get("resample", fallback)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 50:
        raise ConfigurationError(f"resample must be an integer in 1..50, got {value!r}")
    return value


def _mask_dilation(request: GenerationRequest) -> int:
    value = request.options.get("mask_dilation", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"mask_dilation must be a whole number of latent cells >= 0, "
                                 f"got {value!r}")
    return value


def _steps_for(steps: int, start_t: float) -> int:
    """SDEdit runs the fraction ``start_t`` of the steps (at least one)."""
    return max(1, math.ceil(steps * start_t - 1e-9))


def edit(backend: LatentDiffusionBackend, request: GenerationRequest, s: Settings,
         progress: ProgressCallback | None) -> Video:
    """Edit and stylize: SDEdit from the source's latents noised to ``t = strength``."""
    source = need_video(request)
    strength = strength_of(request)
    z0 = backend._encode(source.frames)
    z = backend._sample_latents(request.prompt, tuple(z0.shape), request.seed, None, progress,
                               _steps_for(s.steps, strength), s.guidance, x0=z0,
                               start_t=strength)
    return Video(backend._decode(z, s.frames), fps=s.fps)


def inpaint(backend: LatentDiffusionBackend, request: GenerationRequest, s: Settings,
            progress: ProgressCallback | None) -> Video:
    """Regenerate the masked region; outside it the output is the input, byte for byte."""
    source = need_video(request)
    mask = check_mask(request.inputs.mask, Task.INPAINT, frames=s.frames, height=s.height,
                      width=s.width, allow_time=True)
    strength = strength_of(request)
    z0 = backend._encode(source.frames)
    regen = latent_mask(mask, backend.vae.config, dilation=_mask_dilation(request))
    known = None if bool(regen.all()) else (z0, (~regen).to(z0.dtype).to(z0.device))
    z = backend._sample_latents(request.prompt, tuple(z0.shape), request.seed, known, progress,
                                _steps_for(s.steps, strength), s.guidance,
                                x0=z0 if strength < 1.0 else None, start_t=strength,
                                resample=resample_of(request))
    return Video(composite(backend._decode(z, s.frames), source.frames, mask), fps=s.fps)


def cinemagraph(backend: LatentDiffusionBackend, request: GenerationRequest, s: Settings,
                progress: ProgressCallback | None) -> Video:
    """Motion inside the mask only: every frame equals the image outside it, frame 0 entirely."""
    image = need_image(request)
    mask = check_mask(request.inputs.mask, Task.CINEMAGRAPH, frames=s.frames, height=s.height,
                      width=s.width, allow_time=False)
    strength = strength_of(request)
    still = np.repeat(image[None], s.frames, axis=0)
    z0 = backend._encode(still)
    regen = latent_mask(mask, backend.vae.config, dilation=_mask_dilation(request))
    regen[:, :, 0] = False  # the first latent frame is the image's, as in image-to-video
    known = (z0, (~regen).to(z0.dtype).to(z0.device))
    z = backend._sample_latents(request.prompt, tuple(z0.shape), request.seed, known, progress,
                                _steps_for(s.steps, strength), s.guidance,
                                x0=z0 if strength < 1.0 else None, start_t=strength,
                                resample=resample_of(request))
    out = composite(backend._decode(z, s.frames), still, mask)
    out[0] = image
    return Video(out, fps=s.fps)


def _stage(progress: ProgressCallback | None, stage: int, stages: int
           ) -> ProgressCallback | None:
    """Progress of one of ``stages`` equal passes, reported on one scale."""
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress(stage * total + done, stages * total)

    return report


def loop_plan(num_frames: int, crossfade: int | None, config: AutoencoderConfig
              ) -> tuple[int, int]:
    """``(P, R)`` for a loop of ``num_frames`` frames: the latent frames in one period
    (after latent frame 0, which holds frame 0 alone) and how many of them are crossfaded.

    ``crossfade`` counts frames (default: half the clip); it is rounded up to whole
    latent frames. The clip's length must be a multiple of the autoencoder's time
    step, so that one period is a whole number of latent frames.
    """
    d = config.temporal_down
    if num_frames < 2 * d or num_frames % d:
        raise ConfigurationError(f"a loop needs a frame count that is a multiple of {d} and at "
                                 f"least {2 * d}, got {num_frames}")
    period = num_frames // d
    frames = num_frames // 2 if crossfade is None else crossfade
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames < num_frames:
        raise ConfigurationError(f"loop_frames must be an integer in 1..{num_frames - 1}, "
                                 f"got {frames!r}")
    return period, min(period - 1, -(-frames // d))


def crossfade_latents(z: torch.Tensor, period: int, fade: int) -> torch.Tensor:
    """Latent frames 1..``period`` of a periodic clip from latents ``z`` of a longer one.

    ``z`` (1, C, >= 1 + period + fade, H', W'). Frames after the fade are the long
    clip's own; fade frame ``k`` (1..``fade``) is ``z_{k+period}`` blended into ``z_k``
    with weight ``k / (fade + 1)`` on ``z_k``. So the period's last latent frame
    (``z_period``) is followed, on the wrap, by mostly ``z_{period+1}``, its
    successor in the long clip, and the fade ends on mostly ``z_fade``, followed
    by ``z_{fade+1}``: both joins are steps the model drew. Returns (1, C, period, H', W').
    """
    out = z[:, :, 1:period + 1].clone()
    for k in range(1, fade + 1):
        out[:, :, k - 1] = torch.lerp(z[:, :, k + period], z[:, :, k], k / (fade + 1))
    return out


def loop(backend: LatentDiffusionBackend, request: GenerationRequest, s: Settings,
         progress: ProgressCallback | None) -> Video:
    """A seamless loop: a longer clip folded onto itself by a latent crossfade, then refined.

    1. Text-to-video of ``T + d R + 1`` frames (seed): latents ``z_0 .. z_{P+R}``,
       ``P = T / d`` latent frames per period (``d`` the autoencoder's time step).
    2. The period's latent frames 1..P are ``z_1 .. z_P`` with the first ``R``
       crossfaded from ``z_{P+1} .. z_{P+R}`` (``crossfade_latents``); latent
       frame 0 (frame 0 alone) is the encoding of the long clip's frame ``T``,
       the frame that follows the period's last one.
    3. SDEdit (seed + 1) redraws the crossfaded latent frames from ``t =
       strength`` (default 0.6) with the others known, to repair the ghosting
       a crossfade leaves; then the period is decoded to ``T`` frames.

    The wrap (last frame -> first) is a step the model drew; what a loop of a
    moving object costs is a dissolve over the first ``R`` latent frames.
    """
    if request.inputs.video is not None:
        raise BackendError("loop makes a clip from text; a given video cannot be looped "
                           "(it has no frames past its end to fold back)")
    strength = strength_of(request)
    config = backend.vae.config
    period, fade = loop_plan(s.frames, request.options.get("loop_frames"), config)
    long_frames = s.frames + config.temporal_down * fade + 1
    shape = (1, *config.latent_shape(long_frames, s.height, s.width))
    z = backend._sample_latents(request.prompt, shape, request.seed, None,
                                _stage(progress, 0, 2), s.steps, s.guidance)
    after = backend._decode(z[:, :, :period + 1], s.frames + 1)[s.frames]  # frame T
    folded = torch.cat([backend._encode(after[None]), crossfade_latents(z, period, fade)], dim=2)
    known_mask = torch.ones(1, 1, period + 1, 1, 1, dtype=z.dtype, device=z.device)
    known_mask[:, :, 1:fade + 1] = 0.0
    z = backend._sample_latents(request.prompt, tuple(folded.shape), request.seed + 1,
                                (folded, known_mask), _stage(progress, 1, 2),
                                _steps_for(s.steps, strength), s.guidance, x0=folded,
                                start_t=strength, resample=resample_of(request))
    return Video(backend._decode(z, s.frames), fps=s.fps)


EXTEND_CONTEXT, EXTEND_WINDOW = 7, 16
"""An extension window is 16 frames; its first 7 (4 latent frames of the causal autoencoder
with a time step of 2: 1 + 2 + 2 + 2) are the last 7 frames so far, known."""

STORYBOARD_SEED_STRIDE = 1000
"""Storyboard segment ``k`` samples its windows from seeds ``seed + k * 1000 + window``."""


def extend_frames(backend: LatentDiffusionBackend, prompt: str, history: Frames, count: int,
                  seed: int, steps: int, guidance: float, resample: int,
                  progress: ProgressCallback | None) -> Frames:
    """``count`` new frames after ``history`` (T >= 7, H, W, 3), window by window.

    Each window's first ``EXTEND_CONTEXT`` frames are the last ones so far, encoded
    and imposed as known latents; the sampler fills the rest under ``prompt``
    (window ``i`` uses seed ``seed + i``). ``progress`` gets (frames made, count).
    """
    config = backend.vae.config
    height, width = int(history.shape[1]), int(history.shape[2])
    known_latents = 1 + (EXTEND_CONTEXT - 1) // config.temporal_down
    new: list[Frames] = []
    made, index = 0, 0
    while made < count:
        latent = (1, *config.latent_shape(EXTEND_WINDOW, height, width))
        known = torch.zeros(latent, device=backend.device)
        known[:, :, :known_latents] = backend._encode(history[-EXTEND_CONTEXT:])
        mask = torch.zeros(1, 1, latent[2], 1, 1, device=backend.device)
        mask[:, :, :known_latents] = 1.0
        z = backend._sample_latents(prompt, latent, seed + index, (known, mask), None, steps,
                                    guidance, resample=resample)
        fresh = backend._decode(z, EXTEND_WINDOW)[EXTEND_CONTEXT:]
        new.append(fresh)
        history = np.concatenate([history[-EXTEND_CONTEXT:], fresh])
        made += len(fresh)
        index += 1
        if progress is not None:
            progress(min(made, count), count)
    return np.concatenate(new)[:count]


def _segment(progress: ProgressCallback | None, segment: int, segments: int, frames: int
             ) -> ProgressCallback | None:
    """Progress of one storyboard segment, reported in frames of the whole clip."""
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress(segment * frames + (frames * done) // max(total, 1), segments * frames)

    return report


def storyboard(backend: LatentDiffusionBackend, request: GenerationRequest, s: Settings,
               progress: ProgressCallback | None) -> Video:
    """One clip of ``len(request.storyboard) * s.frames`` frames, a segment per prompt.

    Segment 0 is text-to-video of prompt 0 (seed): the same frames as a
    text-to-video request of that prompt and seed. Segment ``k`` continues the
    clip so far with extension windows under prompt ``k`` (seeds from
    ``seed + 1000 k``): the last 7 frames are the known context of its first
    window, so the subject crosses the cut in the shared latents. ``num_frames``
    is the length of one segment (at least 7 when there is more than one).
    """
    prompts = request.storyboard
    if not prompts:
        raise ConfigurationError("a storyboard needs at least one prompt "
                                 "(request.storyboard is empty)")
    if request.prompt != prompts[0]:
        raise ConfigurationError("a storyboard request's prompt must be its first segment's "
                                 "prompt (request.storyboard[0])")
    if request.inputs.video is not None or request.inputs.image is not None:
        raise BackendError("storyboard makes a clip from text only; extend a given video "
                           "with extend, segment by segment")
    if len(prompts) > 1 and s.frames < EXTEND_CONTEXT:
        raise ConfigurationError(f"a storyboard segment needs at least {EXTEND_CONTEXT} frames "
                                 f"(the next segment's context), got {s.frames}")
    n = len(prompts)
    shape = (1, *backend.vae.config.latent_shape(s.frames, s.height, s.width))
    z = backend._sample_latents(prompts[0], shape, request.seed, None,
                                _segment(progress, 0, n, s.frames), s.steps, s.guidance)
    clip = backend._decode(z, s.frames)
    resample = resample_of(request, 1)
    for k, prompt in enumerate(prompts[1:], start=1):
        fresh = extend_frames(backend, prompt, clip, s.frames,
                              request.seed + k * STORYBOARD_SEED_STRIDE, s.steps, s.guidance,
                              resample, _segment(progress, k, n, s.frames))
        clip = np.concatenate([clip, fresh])
    return Video(clip, fps=s.fps)


TASKS: dict[Task, Callable[[LatentDiffusionBackend, GenerationRequest, Settings,
                            ProgressCallback | None], Video]] = {
    Task.EDIT: edit, Task.STYLIZE: edit, Task.INPAINT: inpaint,
    Task.CINEMAGRAPH: cinemagraph, Task.LOOP: loop, Task.STORYBOARD: storyboard,
}


__all__ = [
    "DEFAULT_RESAMPLE",
    "DEFAULT_STRENGTH",
    "EXTEND_CONTEXT",
    "EXTEND_WINDOW",
    "STORYBOARD_SEED_STRIDE",
    "TASKS",
    "Settings",
    "check_mask",
    "cinemagraph",
    "composite",
    "crossfade_latents",
    "edit",
    "extend_frames",
    "frames_of_latents",
    "inpaint",
    "latent_frames_touching",
    "latent_mask",
    "loop",
    "loop_plan",
    "resample_of",
    "settings_for",
    "storyboard",
    "strength_of",
]
