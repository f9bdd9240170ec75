"""What the native latent-diffusion backends share: sampling, image-to-video and extension.

A ``LatentDiffusionBackend`` serves any ``TextConditionedDenoiser`` checkpoint
of its architecture (the DiT, the STUNet): a subclass names itself, the
architecture it accepts and its default weights file, and says which latent
sizes its network needs.

Sampling: caption -> caption encoder (and the empty caption for classifier-free
guidance, both in one batch) -> an ODE/SDE sampler over the latent video ->
the causal video autoencoder decodes frames. Image-to-video fixes the first
latent frame (the causal autoencoder encodes a single frame on its own) and
lets the sampler fill the rest; extension does the same with the last frames
of the input clip, window by window. Edit, stylize, inpaint, cinemagraph and
loop (``vidgen.backends.latent_tasks``) start the same sampler from the
source's noised latents (SDEdit) or impose known source latents outside a mask;
storyboard chains text-to-video of its first prompt with extension windows, one
caption per segment.

Options every native backend takes: ``lora=`` a LoRA file trained on its weights
(``vidgen.backends.lora``, merged at ``lora_scale``; its digest joins
``model_version``), and for DiT denoisers ``step_cache=`` a step-caching
threshold (``vidgen.backends.dit.step_cache``; 0 = off), whose effect on the
last ``sample()`` is in ``step_cache_stats``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from vidgen.backends.base import Capabilities, ProgressCallback
from vidgen.backends.latent import (
    TextConditionedDenoiser,
    load_checkpoint,
    with_frame_condition,
)
from vidgen.backends.latent_tasks import (
    EXTEND_CONTEXT,
    TASKS,
    Settings,
    extend_frames,
    resample_of,
    settings_for,
    strength_of,
)
from vidgen.backends.lora import BaseModel, apply_lora, file_digest, read_lora
from vidgen.backends.scene.grammar import parse_caption
from vidgen.backends.text_encoder import CaptionEncoder
from vidgen.diffusion import add_noise, get_schedule, iid_noise
from vidgen.diffusion.guidance import batched_cfg
from vidgen.diffusion.samplers import SAMPLERS, sample, sampling_times
from vidgen.diffusion.targets import check_prediction
from vidgen.errors import BackendError, ConfigurationError
from vidgen.paths import weights_dir
from vidgen.training.autoencoder import VideoAutoencoder, load_autoencoder
from vidgen.types import GenerationRequest, Task, Video

if TYPE_CHECKING:  # the dit package imports this module (its backend subclasses it)
    from vidgen.backends.dit.step_cache import StepCacheRun, StepCacheStats


class LatentDiffusionBackend:
    """Latent diffusion text-to-video, image-to-video, extension and the editing tasks."""

    name: str  # the backend's registry name, also the model id's prefix
    architecture: ClassVar[str]  # the ``ModelSpec.architecture`` its checkpoints must have
    label: ClassVar[str]  # the network's name in messages ("DiT")
    default_weights: ClassVar[str]  # file name in vidgen/weights
    default_preset: ClassVar[str]  # the preset of the default weights (for the training hint)

    def __init__(self, *, weights: str | Path | None = None, device: str = "cpu",
                 steps: int = 20, guidance: float = 3.0, sampler: str = "euler",
                 threads: int | None = None, lora: str | Path | None = None,
                 lora_scale: float = 1.0, step_cache: float = 0.0,
                 step_cache_max_skips: int = 2) -> None:
        """``lora``: a LoRA file trained on these weights (``vidgen train --lora``), merged
        into them at ``lora_scale``; its digest joins the reported ``model_version``.
        ``step_cache``: the step-caching threshold (``vidgen.backends.dit.step_cache``; 0 =
        off, every step computed), with at most ``step_cache_max_skips`` skips in a row."""
        default = weights_dir() / self.default_weights
        path = Path(weights) if weights is not None else default
        if not path.is_file():
            raise ConfigurationError(self._missing_weights(path, shipped=weights is None))
        if sampler not in SAMPLERS:
            raise ConfigurationError(f"unknown sampler {sampler!r}; choose from "
                                     f"{', '.join(SAMPLERS)}")
        if steps < 1 or guidance < 0:
            raise ConfigurationError("steps must be >= 1 and guidance >= 0")
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model: TextConditionedDenoiser
        self.model, self.metadata = load_checkpoint(path, device=self.device)
        spec = self.model.spec
        if spec.architecture != self.architecture:
            raise ConfigurationError(
                f"{path} holds a {spec.architecture!r} model; the {self.name!r} backend needs "
                f"a {self.architecture!r} checkpoint (load it with the backend for "
                f"{spec.architecture!r})")
        vae_path = path.parent / spec.autoencoder
        if not vae_path.is_file():
            vae_path = weights_dir() / spec.autoencoder
        if not vae_path.is_file():
            raise ConfigurationError(f"the autoencoder {spec.autoencoder!r} that {path.name} was "
                                     f"trained with is not beside it nor in {weights_dir()}")
        self.vae: VideoAutoencoder = load_autoencoder(vae_path).to(self.device)
        self.schedule = get_schedule(spec.schedule)
        self.prediction = check_prediction(spec.prediction)
        self.steps, self.guidance, self.sampler = steps, guidance, sampler
        self.version = file_digest(path)
        self.preset = spec.preset
        from vidgen.backends.dit.model import DiT
        from vidgen.backends.dit.step_cache import StepCachePolicy, StepCacheStats

        self.step_cache = StepCachePolicy(threshold=step_cache, max_skips=step_cache_max_skips)
        if self.step_cache.enabled and not isinstance(self.model.denoiser, DiT):
            raise ConfigurationError(f"step caching needs a DiT denoiser; {path.name} holds a "
                                     f"{spec.architecture!r} model")
        self.step_cache_stats: StepCacheStats = StepCacheStats()  # of the last sample() call
        self.lora_digest: str | None = None
        if lora is not None:
            self._load_lora(Path(lora), path, lora_scale)

    def _load_lora(self, path: Path, weights: Path, scale: float) -> None:
        """Merge the LoRA file into the weights (refused unless it was trained on them)."""
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise ConfigurationError(f"lora_scale must be a number, got {scale!r}")
        adapter = read_lora(path)
        spec = self.model.spec
        apply_lora(self.model, adapter, BaseModel(digest=self.version,
                                                  architecture=spec.architecture,
                                                  preset=spec.preset, name=weights.name),
                   scale=float(scale))
        self.lora_digest = adapter.digest
        self.version += f"+lora.{adapter.digest}" + (f"@{scale:g}" if scale != 1.0 else "")

    def _missing_weights(self, path: Path, *, shipped: bool) -> str:
        train = (f"`vidgen train --backend {self.architecture} --preset {self.default_preset} "
                 f"--out RUN --export {self.default_weights}`")
        if shipped:
            return (f"no {self.label} weights at {path}: none ship yet; make them with {train} "
                    f"and pass weights= that file (or put it in {path.parent})")
        return (f"no {self.label} weights at {path}; pass weights= a checkpoint from {train}")

    def _latent_size_multiple(self) -> int:
        """What the network needs latent H and W to be divisible by (1: any size)."""
        return 1

    def capabilities(self) -> Capabilities:
        return Capabilities(
            tasks=frozenset({Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO, Task.EXTEND, Task.EDIT,
                             Task.STYLIZE, Task.INPAINT, Task.CINEMAGRAPH, Task.LOOP,
                             Task.STORYBOARD}),
            min_frames=1, max_frames=64, max_height=256, max_width=256,
            default_frames=16, default_height=64, default_width=64, default_fps=8.0,
            size_multiple=self._size_multiple(), device=str(self.device),
            model_id=f"vidgen/{self.name}-{self.preset}", model_version=self.version,
            deterministic=self.device.type == "cpu",
        )

    def _size_multiple(self) -> int:
        return int(self.vae.config.spatial_down * self._latent_size_multiple())

    # --- sampling ---------------------------------------------------------------------------

    @torch.no_grad()
    def _sample_latents(self, prompt: str, shape: tuple[int, ...], seed: int,
                        known: tuple[torch.Tensor, torch.Tensor] | None,
                        progress: ProgressCallback | None, steps: int, guidance: float,
                        *, x0: torch.Tensor | None = None, start_t: float = 1.0,
                        resample: int = 1, network: TextConditionedDenoiser | None = None,
                        ) -> torch.Tensor:
        """Latents of ``shape`` for ``prompt``; ``known`` = (latents, mask 1 = known).

        With ``x0`` (SDEdit) sampling starts at ``t = start_t`` from ``x0`` noised
        there with the schedule (``add_noise``); the noise is the generator's first
        draw, as text-to-video's is, so ``start_t = 1`` under rectified flow is
        exactly text-to-video with the same seed. ``resample`` is RePaint's: each step
        with a known region runs that many times (``vidgen.diffusion.sample``).
        A model trained with masked frame conditioning (``spec.conditioning ==
        "frames"``) is also shown ``known`` as input channels (none known without it).
        ``network`` samples with another model of this backend (the keyframe stage).
        """
        net = network if network is not None else self.model
        tokens, mask, pooled = net.encode_text([prompt, ""])  # cond, uncond
        cond = (tokens[:1], mask[:1], pooled[:1])
        uncond = (tokens[1:], mask[1:], pooled[1:])
        conditioned = net.spec.conditioning == "frames"

        def denoiser(x: torch.Tensor, t: torch.Tensor, c: Any) -> torch.Tensor:
            if conditioned:
                if known is None:
                    values, shown = torch.zeros_like(x), torch.zeros_like(x[:1, :1])
                else:  # a spatial mask counts where any channel is known
                    values, shown = known[0], known[1].amax(dim=1, keepdim=True)
                x = with_frame_condition(x, values, shown)  # (B, 2C+1, T, H, W)
            out: torch.Tensor = net.denoiser(x, t, *c)
            return out

        def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return batched_cfg(denoiser, x, t, cond, uncond, guidance)

        def callback(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total)

        generator = torch.Generator().manual_seed(seed)
        x_T = None
        if x0 is not None:
            eps = iid_noise(tuple(shape), generator, device=self.device, dtype=torch.float32)
            t = torch.full((shape[0],), start_t, device=self.device)
            x_T = add_noise(x0.to(self.device), eps, t, self.schedule)
        with self._cached_steps(net, steps, start_t) as cache:
            z = sample(self.sampler, model, shape, self.schedule,
                       self.prediction, steps, generator, x_T=x_T, start_t=start_t, known=known,
                       resample=resample if known is not None else 1, callback=callback,
                       device=self.device)
        if cache is not None:
            self.step_cache_stats = self.step_cache_stats + cache.stats()
        return z

    def _cached_steps(self, net: TextConditionedDenoiser, steps: int, start_t: float
                      ) -> AbstractContextManager[StepCacheRun | None]:
        """Step caching over one sampling run (the first and last steps always computed)."""
        from vidgen.backends.dit.model import DiT
        from vidgen.backends.dit.step_cache import cached_steps

        if not self.step_cache.enabled or not isinstance(net.denoiser, DiT):
            return nullcontext()
        times = sampling_times(steps, start_t=start_t)  # the sampler's grid; calls at [:-1]
        return cached_steps(net.denoiser, self.step_cache, (times[0], times[-2]))

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> scaled latents (1, C, T', H', W')."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
        return self.vae.encode_latents((x / 127.5 - 1.0)[None].to(self.device))

    def _decode(self, z: torch.Tensor, num_frames: int) -> np.ndarray:
        x = self.vae.decode(z, num_frames=num_frames)[0]  # (3, T, H, W) about [-1, 1]
        frames = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return frames.permute(1, 2, 3, 0).cpu().numpy()  # (T, H, W, 3)

    def _first_frame(self, request: GenerationRequest, height: int, width: int
                     ) -> tuple[np.ndarray, torch.Tensor]:
        """Image-to-video's given image, checked, and its latent (1, C, 1, H', W')."""
        image = request.inputs.image
        if image is None:
            raise BackendError("image_to_video needs an input image")
        if image.shape[:2] != (height, width):
            raise BackendError(f"the input image is {image.shape[1]}x{image.shape[0]}; "
                               f"this request generates {width}x{height}")
        return image, self._encode(image[None])

    def _check_captions(self, request: GenerationRequest) -> None:
        if isinstance(self.model.text_encoder, CaptionEncoder):
            # Trained on the caption language only: a word outside it would be an <unk>
            # token and the clip a guess, so refuse it the way the scene backend does.
            for text in (request.prompt, *request.storyboard):
                parse_caption(text)

    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None
               ) -> Video:
        from vidgen.backends.dit.step_cache import StepCacheStats

        self.step_cache_stats = StepCacheStats()
        caps = self.capabilities()
        caps.check(request, self.name)
        self._check_captions(request)
        if request.storyboard and request.task != Task.STORYBOARD:
            raise ConfigurationError(f"storyboard prompts apply to the storyboard task only, "
                                     f"not {request.task.value!r}")
        strength_of(request)  # a strength where it does not apply, or out of (0, 1], is refused
        if request.task in TASKS:
            settings = settings_for(request, caps, self.name, default_steps=self.steps,
                                    default_guidance=self.guidance)
            return TASKS[request.task](self, request, settings, progress)
        s = Settings(
            frames=request.num_frames or caps.default_frames,
            height=request.height or caps.default_height,
            width=request.width or caps.default_width, fps=request.fps or caps.default_fps,
            steps=request.num_steps or self.steps,
            guidance=request.guidance if request.guidance is not None else self.guidance)
        if request.task in (Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO):
            return self._text_or_image_to_video(request, s, progress)
        return self._extend(request, s.frames, s.height, s.width, s.fps, s.steps, s.guidance,
                            progress)

    def _text_or_image_to_video(self, request: GenerationRequest, s: Settings,
                                progress: ProgressCallback | None) -> Video:
        """One pass over the whole latent clip; image-to-video fixes its first latent frame."""
        latent = (1, *self.vae.config.latent_shape(s.frames, s.height, s.width))  # (1,C,T',H',W')
        if request.task == Task.TEXT_TO_VIDEO:
            z = self._sample_latents(request.prompt, latent, request.seed, None, progress,
                                     s.steps, s.guidance)
            return Video(self._decode(z, s.frames), fps=s.fps)
        image, first = self._first_frame(request, s.height, s.width)
        known = torch.zeros(latent, device=self.device)
        known[:, :, :1] = first
        mask = torch.zeros(1, 1, latent[2], 1, 1, device=self.device)
        mask[:, :, 0] = 1.0
        z = self._sample_latents(request.prompt, latent, request.seed, (known, mask),
                                 progress, s.steps, s.guidance, resample=resample_of(request, 1))
        out = self._decode(z, s.frames)
        out[0] = image  # the given first frame, exactly
        return Video(out, fps=s.fps)

    def _extend(self, request: GenerationRequest, frames: int, height: int, width: int,
                fps: float, steps: int, guidance: float,
                progress: ProgressCallback | None) -> Video:
        """New frames after the input clip: windows whose first frames are known context.

        Each window is 16 frames; its first 7 (= 4 latent frames of the causal
        autoencoder: 1 + 2 + 2 + 2) are the last 7 frames so far, and the 9 after
        them are new. Windows repeat until ``frames`` new frames exist
        (``vidgen.backends.latent_tasks.extend_frames``, which storyboard shares).
        """
        source = request.inputs.video
        if source is None:
            raise BackendError("extend needs an input video")
        if source.frames.shape[1:3] != (height, width):
            raise BackendError(f"the input video is {source.width}x{source.height}; this request "
                               f"generates {width}x{height}")
        if source.num_frames < EXTEND_CONTEXT:
            raise BackendError(f"extend needs at least {EXTEND_CONTEXT} input frames")
        new = extend_frames(self, request.prompt, source.frames, frames, request.seed,
                            steps, guidance, resample_of(request, 1), progress)
        return Video(new, fps=fps)


__all__ = ["LatentDiffusionBackend"]
