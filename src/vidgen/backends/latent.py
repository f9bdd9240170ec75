"""What the native latent-diffusion backends share: text encoder + denoiser, and checkpoints.

A ``TextConditionedDenoiser`` pairs the caption encoder with a denoiser network
(the DiT, the STUNet, or another architecture with the same call signature). Its
checkpoint is one safetensors file: the weights, and in the metadata the
architecture, presets, diffusion parametrisation and the autoencoder it works
with, so a backend can rebuild everything from the file alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import torch
import torch.nn as nn

from vidgen.backends.text_encoder import CaptionEncoder, CaptionEncoderConfig
from vidgen.errors import ConfigurationError

CHECKPOINT_KIND = "vidgen.latent-diffusion.v1"
CONDITIONINGS = ("none", "frames")


class Denoiser(Protocol):
    def __call__(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                 text_mask: torch.Tensor, text_pooled: torch.Tensor) -> torch.Tensor: ...


@attrs.frozen
class ModelSpec:
    """Everything needed to rebuild a trained model (stored in checkpoint metadata)."""

    architecture: str  # "dit", "stunet", ...
    preset: str
    schedule: str = "flow"
    prediction: str = "flow"
    latent_channels: int = 4
    text: CaptionEncoderConfig = attrs.field(factory=CaptionEncoderConfig)
    autoencoder: str = ""  # file name of the autoencoder weights it was trained with
    overrides: dict[str, Any] = attrs.field(factory=dict)  # preset fields changed
    # "frames": the denoiser also reads (known latents, mask) channels (masked frame
    # conditioning, for keyframe interpolation); frame_stride: trained on every k-th
    # latent frame (2 = a keyframe model at half the latent frame rate).
    conditioning: str = "none"
    frame_stride: int = 1

    def __attrs_post_init__(self) -> None:
        if self.conditioning not in CONDITIONINGS:
            raise ConfigurationError(f"conditioning must be one of {', '.join(CONDITIONINGS)}, "
                                     f"got {self.conditioning!r}")
        if self.frame_stride < 1:
            raise ConfigurationError(f"frame_stride must be >= 1, got {self.frame_stride}")

    @property
    def cond_channels(self) -> int:
        """Extra input channels: the known latents and a mask channel, or none."""
        return self.latent_channels + 1 if self.conditioning == "frames" else 0

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        data = json.loads(text)
        data["text"] = CaptionEncoderConfig(**data.get("text", {}))
        return cls(**data)


def with_frame_condition(x: torch.Tensor, known: torch.Tensor, mask: torch.Tensor
                         ) -> torch.Tensor:
    """Masked frame conditioning: ``x`` (B, C, T, H, W) with the known latents and the mask
    as extra channels -> (B, 2C + 1, T, H, W). ``mask`` (B or 1, 1, T, 1, 1), 1 = known."""
    b, _c, t, h, w = x.shape
    m = mask.to(x.dtype).expand(b, 1, t, h, w)  # (B, 1, T, H, W)
    return torch.cat([x, known.expand_as(x) * m, m], dim=1)  # (B, 2C+1, T, H, W)


DENOISER_FACTORIES: dict[str, Callable[[ModelSpec], nn.Module]] = {}


def register_architecture(name: str, factory: Callable[[ModelSpec], nn.Module]) -> None:
    """Make an architecture buildable from checkpoints (native backends register here)."""
    DENOISER_FACTORIES[name] = factory


def _preset_config(presets: dict[str, Any], label: str, spec: ModelSpec) -> Any:
    """The spec's preset with its latent, conditioning and text sizes and overrides applied."""
    if spec.preset not in presets:
        raise ConfigurationError(f"unknown {label} preset {spec.preset!r}; "
                                 f"choose from {', '.join(presets)}")
    return attrs.evolve(presets[spec.preset], in_channels=spec.latent_channels,
                        cond_channels=spec.cond_channels, text_dim=spec.text.width,
                        **_tuple_fields(spec.overrides))


def _dit_factory(spec: ModelSpec) -> nn.Module:
    from vidgen.backends.dit.model import DIT_PRESETS, DiT

    return DiT(_preset_config(DIT_PRESETS, "DiT", spec))


def _stunet_factory(spec: ModelSpec) -> nn.Module:
    from vidgen.backends.stunet.model import STUNET_PRESETS, STUNet

    return STUNet(_preset_config(STUNET_PRESETS, "STUNet", spec))


def _tuple_fields(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


register_architecture("dit", _dit_factory)
register_architecture("stunet", _stunet_factory)


class TextConditionedDenoiser(nn.Module):
    """Caption encoder + denoiser: ``(x_t, t, captions) -> prediction``."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.architecture not in DENOISER_FACTORIES:
            raise ConfigurationError(f"unknown architecture {spec.architecture!r}; known: "
                                     f"{', '.join(sorted(DENOISER_FACTORIES))}")
        self.spec = spec
        self.text_encoder = CaptionEncoder(spec.text)
        self.denoiser = DENOISER_FACTORIES[spec.architecture](spec)

    def encode_text(self, captions: Sequence[str]) -> tuple[torch.Tensor, ...]:
        enc = self.text_encoder(captions)
        return enc.tokens, enc.mask, enc.pooled

    def forward(self, x: torch.Tensor, t: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        tokens, mask, pooled = self.encode_text(captions)  # (B, L, D), (B, L), (B, D)
        out: torch.Tensor = self.denoiser(x, t, tokens, mask, pooled)  # (B, C, T, H, W)
        return out


def save_checkpoint(model: TextConditionedDenoiser, path: str | Path, *,
                    extra: dict[str, str] | None = None, half: bool = False) -> Path:
    """Write the weights and the spec to one safetensors file (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    metadata = {"kind": CHECKPOINT_KIND, "spec": model.spec.to_json(), **(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu"
                    ) -> tuple[TextConditionedDenoiser, dict[str, str]]:
    """Rebuild the model a checkpoint describes; (model in eval mode, metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        state = load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ConfigurationError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if metadata.get("kind") != CHECKPOINT_KIND:
        raise ConfigurationError(f"{path} is not a vidgen latent-diffusion checkpoint")
    model = TextConditionedDenoiser(ModelSpec.from_json(metadata["spec"]))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device).eval(), metadata


__all__ = [
    "CHECKPOINT_KIND",
    "Denoiser",
    "ModelSpec",
    "TextConditionedDenoiser",
    "load_checkpoint",
    "register_architecture",
    "save_checkpoint",
]
