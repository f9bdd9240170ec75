"""The ``keyframe`` backend: a keyframe model, then a temporal interpolation model.

The cascade of Make-A-Video and Imagen Video, in the native latent space:

1. the keyframe model (trained with ``--frame-stride 2``: every other latent
   frame, so half the frame rate) samples the clip's keyframes, latent frames
   0, 2, 4, ... — for image-to-video with the first one given;
2. the interpolation model (masked frame conditioning, ``--conditioning
   frames``: it reads the known latent frames and their mask as extra input
   channels) fills the frames between, with the keyframes both shown as input
   and imposed at every step.

Both are ``dit`` checkpoints with the spec fields that say their role. The
editing tasks (edit, inpaint, extend, ...) run on the interpolation model,
which was also trained on first-frame, prefix and no-frame conditioning.

No weights ship yet. Make them from the shipped DiT:

    vidgen train --backend dit --preset small --override 'patch=[1,4,4]' \
        --autoencoder vae-tiny-2.safetensors --init dit-small.safetensors \
        --conditioning frames --frame-stride 2 --out runs/kf --export keyframe-small.safetensors
    vidgen train ... --conditioning frames --frame-stride 1 --out runs/interp \
        --export interp-small.safetensors
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import torch

from vidgen.backends.base import Capabilities, ProgressCallback
from vidgen.backends.latent import TextConditionedDenoiser, load_checkpoint
from vidgen.backends.latent_backend import LatentDiffusionBackend
from vidgen.backends.latent_tasks import Settings
from vidgen.errors import ConfigurationError
from vidgen.paths import weights_dir
from vidgen.types import GenerationRequest, Task, Video

DEFAULT_WEIGHTS = "interp-small.safetensors"
DEFAULT_KEYFRAME_WEIGHTS = "keyframe-small.safetensors"


class KeyframeBackend(LatentDiffusionBackend):
    """Keyframes at half the latent frame rate, then masked-frame interpolation between them."""

    name = "keyframe"
    architecture = "dit"
    label = "keyframe-interpolation"
    default_weights = DEFAULT_WEIGHTS
    default_preset = "small"

    def __init__(self, *, weights: str | Path | None = None,
                 keyframe_weights: str | Path | None = None, device: str = "cpu",
                 steps: int = 20, guidance: float = 3.0, sampler: str = "euler",
                 threads: int | None = None) -> None:
        super().__init__(weights=weights, device=device, steps=steps, guidance=guidance,
                         sampler=sampler, threads=threads)
        interp = self.model.spec
        if interp.conditioning != "frames" or interp.frame_stride != 1:
            raise ConfigurationError(
                "the interpolation model must be trained with --conditioning frames and "
                f"--frame-stride 1 (this one: {interp.conditioning!r}, {interp.frame_stride})")
        path = (Path(keyframe_weights) if keyframe_weights is not None
                else weights_dir() / DEFAULT_KEYFRAME_WEIGHTS)
        if not path.is_file():
            raise ConfigurationError(
                f"no keyframe model at {path}; train one with --frame-stride 2 (see "
                "vidgen.backends.keyframe.backend)")
        self.keyframe_model: TextConditionedDenoiser
        self.keyframe_model, _ = load_checkpoint(path, device=self.device)
        keyframes = self.keyframe_model.spec
        if keyframes.frame_stride != 2 or keyframes.autoencoder != interp.autoencoder \
                or keyframes.latent_channels != interp.latent_channels:
            raise ConfigurationError(
                f"{path} is not a keyframe model for this interpolation model: it needs "
                f"--frame-stride 2 and the autoencoder {interp.autoencoder!r} (it has stride "
                f"{keyframes.frame_stride} and {keyframes.autoencoder!r})")

    def _missing_weights(self, path: Path, *, shipped: bool) -> str:
        return (f"no interpolation model at {path}" + (": none ships yet" if shipped else "")
                + "; train the keyframe and interpolation models as vidgen.backends.keyframe."
                "backend's docstring shows, then pass weights= and keyframe_weights=")

    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities(), model_id=f"vidgen/keyframe-{self.preset}")

    def _text_or_image_to_video(self, request: GenerationRequest, s: Settings,
                                progress: ProgressCallback | None) -> Video:
        """The cascade; every other task runs on the interpolation model (the base class)."""
        latent = (1, *self.vae.config.latent_shape(s.frames, s.height, s.width))  # (1,C,T',H',W')
        first: torch.Tensor | None = None
        if request.task == Task.IMAGE_TO_VIDEO:
            _image, first = self._first_frame(request, s.height, s.width)  # (1, C, 1, H', W')
        # 1. keyframes: latent frames 0, 2, 4, ... at half the frame rate
        count = math.ceil(latent[2] / 2)
        key_shape = (1, latent[1], count, latent[3], latent[4])
        key_known = None
        if first is not None:
            values = torch.zeros(key_shape, device=self.device)
            values[:, :, :1] = first
            mask = torch.zeros(1, 1, count, 1, 1, device=self.device)
            mask[:, :, 0] = 1.0
            key_known = (values, mask)
        keyframes = self._sample_latents(request.prompt, key_shape, request.seed, key_known,
                                         None, s.steps, s.guidance, network=self.keyframe_model)
        # 2. interpolation: every other latent frame known, the rest drawn between them
        values = torch.zeros(latent, device=self.device)
        values[:, :, 0::2] = keyframes
        mask = torch.zeros(1, 1, latent[2], 1, 1, device=self.device)
        mask[:, :, 0::2] = 1.0
        z = self._sample_latents(request.prompt, latent, request.seed + 1, (values, mask),
                                 progress, s.steps, s.guidance)
        out = self._decode(z, s.frames)
        if request.task == Task.IMAGE_TO_VIDEO:
            assert request.inputs.image is not None
            out[0] = request.inputs.image  # the given first frame, exactly
        return Video(out, fps=s.fps)


__all__ = ["DEFAULT_KEYFRAME_WEIGHTS", "DEFAULT_WEIGHTS", "KeyframeBackend"]
