"""One request as one diffusers pipeline call: arguments in, progress out, frames back.

Pipelines name the same thing differently (``num_frames`` / ``video_length``,
``guidance_scale`` / ``max_guidance_scale``, ``frame_rate`` / ``fps`` /
``target_fps``), so the call is built from the pipeline's own signature.
Extra arguments (the backend's ``call_kwargs``, a request's options) may tune
the model but never carry text, media or latents: those would reach the model
without passing the prompt policy, the likeness scan or the seed.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from vidgen.backends.base import ProgressCallback
from vidgen.backends.latent_tasks import Settings
from vidgen.errors import BackendError, ConfigurationError, UnsupportedTask
from vidgen.types import Frames, GenerationRequest, Task

if TYPE_CHECKING:
    from PIL import Image

# Arguments the adapter sets itself, or that would bypass the seed.
_MANAGED = frozenset({
    "num_frames", "video_length", "height", "width", "num_inference_steps", "guidance_scale",
    "max_guidance_scale", "strength", "generator", "output_type", "return_dict",
    "callback_on_step_end", "callback_on_step_end_tensor_inputs", "callback", "callback_steps",
    "frame_rate", "fps", "target_fps", "num_videos_per_prompt", "num_images_per_prompt",
    "timesteps", "sigmas"})
# Text, media, embeddings and latents: they must come through the checked request.
_INPUTS = re.compile(r"(^|_)(prompt|image|video|mask|latents|embeds)(_|$)")
_FPS_ARGUMENTS = ("frame_rate", "fps", "target_fps")


def parameters(pipe: Any) -> Mapping[str, inspect.Parameter]:
    """The keyword arguments ``pipe.__call__`` accepts."""
    return inspect.signature(type(pipe).__call__).parameters


def check_extras(extras: Mapping[str, Any], params: Mapping[str, inspect.Parameter],
                 where: str, *, allowed_inputs: frozenset[str] = frozenset()) -> None:
    """Refuse extra arguments the pipeline does not take, that the adapter sets, or that
    carry text/media/latents (``allowed_inputs`` names the deployer-only exceptions)."""
    for name in extras:
        if name not in params:
            tunable = sorted(p for p in params if p not in _MANAGED and not _INPUTS.search(p)
                             and p not in ("self", "kwargs"))
            raise ConfigurationError(f"{where} {name!r} is not an argument of this pipeline; "
                                     f"it takes {', '.join(tunable) or 'none'}")
        if name in _MANAGED:
            raise ConfigurationError(f"{where} {name!r} is set by vidgen from the request")
        if _INPUTS.search(name) and name not in allowed_inputs:
            raise ConfigurationError(
                f"{where} {name!r} would pass text, media or latents around the safety checks; "
                "give them through the request (prompt, image, video)")


def build(pipe: Any, request: GenerationRequest, s: Settings,
          extras: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``pipe(...)`` (without generator and progress hooks)."""
    from PIL import Image

    params = parameters(pipe)
    kwargs: dict[str, Any] = {"output_type": "np", "return_dict": True}
    if "prompt" in params:
        kwargs["prompt"] = request.prompt
    if request.negative_prompt:
        if "negative_prompt" not in params:
            raise UnsupportedTask(f"{type(pipe).__name__} takes no negative prompt")
        kwargs["negative_prompt"] = request.negative_prompt
    if request.task == Task.EDIT:
        kwargs["video"] = _video(request, s, params)
        if request.strength is not None:
            kwargs["strength"] = request.strength
    else:
        if request.strength is not None:
            raise ConfigurationError(f"strength applies to edit, not {request.task.value}")
        kwargs["num_frames" if "num_frames" in params else "video_length"] = s.frames
    if request.task == Task.IMAGE_TO_VIDEO:
        if request.inputs.image is None:
            raise BackendError("image_to_video needs an input image")
        kwargs["image"] = Image.fromarray(request.inputs.image)
    if "height" in params:
        kwargs["height"], kwargs["width"] = s.height, s.width
    kwargs["num_inference_steps"] = s.steps
    kwargs["guidance_scale" if "guidance_scale" in params else "max_guidance_scale"] = s.guidance
    fps_argument = next((a for a in _FPS_ARGUMENTS if a in params), None)
    if fps_argument is not None:  # micro-conditioning on the frame rate
        kwargs[fps_argument] = max(1, round(s.fps))
    return {**extras, **kwargs}


def _video(request: GenerationRequest, s: Settings,
           params: Mapping[str, inspect.Parameter]) -> list[Image.Image]:
    source = request.inputs.video
    if source is None:
        raise BackendError("edit needs an input video")
    if "height" not in params and (source.height, source.width) != (s.height, s.width):
        raise UnsupportedTask(f"this pipeline keeps the input's size ({source.width}x"
                              f"{source.height}); {s.width}x{s.height} requested")
    from PIL import Image

    return [Image.fromarray(frame) for frame in source.frames]


@contextlib.contextmanager
def progress_hooks(pipe: Any, progress: ProgressCallback | None,
                   expected_steps: int) -> Iterator[dict[str, Any]]:
    """Call arguments that report each denoising step as ``progress(done, total)``.

    ``callback_on_step_end`` where the pipeline has it, else the legacy
    ``callback``/``callback_steps``, else (I2VGen-XL has neither) a wrapper around
    the scheduler's ``step`` for the duration of the call. An exception raised by
    ``progress`` leaves the pipeline mid-loop: that is how a caller cancels.
    """
    if progress is None:
        yield {}
        return
    report = progress

    def total() -> int:
        n = getattr(pipe, "_num_timesteps", None)
        return n if isinstance(n, int) and n > 0 else expected_steps

    def done(step: int) -> None:
        n = total()
        report(min(step, n), n)

    params = parameters(pipe)
    if "callback_on_step_end" in params:
        def on_step_end(_pipe: Any, i: int, _t: Any, values: dict[str, Any]) -> dict[str, Any]:
            done(i + 1)
            return values

        yield {"callback_on_step_end": on_step_end}
    elif "callback" in params:
        def legacy(i: int, _t: Any, _latents: Any) -> None:
            done(i + 1)

        yield {"callback": legacy, "callback_steps": 1}
    else:
        scheduler = pipe.scheduler
        original = scheduler.step
        own = "step" in vars(scheduler)  # already an instance attribute: put it back after
        count = 0

        def step(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            out = original(*args, **kwargs)
            count += 1
            done(count)
            return out

        scheduler.step = step
        try:
            yield {}
        finally:
            if own:
                scheduler.step = original
            else:
                del scheduler.step  # the class's method shows through again


def frames_of(output: Any) -> Frames:
    """uint8 (T, H, W, 3) frames of the first video of a pipeline output (output_type="np")."""
    frames = output.frames if hasattr(output, "frames") else output[0]
    arr = np.asarray(frames[0], dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise BackendError(f"the pipeline returned frames of shape {arr.shape}, "
                           "not (T, H, W, 3)")
    if not np.isfinite(arr).all():
        raise BackendError("the pipeline produced NaN or infinite values (a half-precision "
                           "overflow?): try dtype='bf16' or dtype='fp32'")
    return np.asarray((np.clip(arr, 0.0, 1.0) * 255.0).round(), dtype=np.uint8)
