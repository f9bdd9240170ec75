"""``DiffusersOptions``: how a diffusers pipeline is loaded and run, checked before any loading.

Every value is validated when the backend is made, so a typo fails at once with
the list of choices rather than minutes later after the weights were read.
Defaults that depend on the model (steps, guidance, dtype) come from the family
table when left as None / "auto".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from vidgen.errors import ConfigurationError

DTYPE_CHOICES = ("auto", "bf16", "fp16", "fp32")
OFFLOAD_CHOICES = ("none", "model", "sequential", "group")
TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _choice(choices: tuple[str, ...]) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ConfigurationError(
                f"{attribute.name}={value!r} is not one of {', '.join(choices)}")
    return check


def _device(_instance: object, _attribute: object, value: str) -> None:
    if value == "auto":
        return
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ConfigurationError(
            f"device={value!r} is not a torch device; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(f"device={value!r}: CUDA is not available to torch here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigurationError(f"device={value!r}: MPS is not available to torch here")


def _positive_or_none(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, int | float) and value >= 0
                                  and (attribute.name != "steps" or value >= 1)):
        raise ConfigurationError(f"{attribute.name} must be a number >= "
                                 f"{1 if attribute.name == 'steps' else 0}, got {value!r}")


def _lora(_instance: object, _attribute: object, value: str | None) -> None:
    if value is None:
        return
    path = Path(value).expanduser()
    if path.suffix != ".safetensors":
        raise ConfigurationError(f"lora={value!r}: give a local .safetensors file")
    if not path.is_file():
        raise ConfigurationError(f"lora file {path} does not exist")


def _attention(_instance: object, _attribute: object, value: str | None) -> None:
    if value is None:
        return
    from vidgen.backends.diffusers.loading import attention_backends

    choices = attention_backends()
    if value not in choices:
        hub = " (hub kernels are refused: vidgen never downloads at run time)" if (
            value.endswith("_hub")) else ""
        raise ConfigurationError(
            f"attention={value!r} is not an attention backend of this diffusers{hub}; "
            f"choose from {', '.join(choices)}")


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


@attrs.frozen
class DiffusersOptions:
    """Loading and run settings of a diffusers pipeline (see docs/diffusers.md for the table)."""

    dtype: str = attrs.field(default="auto", validator=_choice(DTYPE_CHOICES))
    device: str = attrs.field(default="auto", validator=_device)
    offload: str = attrs.field(default="none", validator=_choice(OFFLOAD_CHOICES))
    vae_tiling: bool = False
    vae_slicing: bool = False
    attention: str | None = attrs.field(default=None, validator=_attention)
    compile: bool = False  # torch.compile the transformer / UNet
    steps: int | None = attrs.field(default=None, validator=_positive_or_none)
    guidance: float | None = attrs.field(default=None, validator=_positive_or_none)
    lora: str | None = attrs.field(default=None, converter=_str_or_none, validator=_lora)
    lora_scale: float = 1.0
    motion_adapter: str | None = attrs.field(default=None, converter=_str_or_none)
    # extra pipeline arguments passed on every call (e.g. max_sequence_length)
    call_kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)

    def __attrs_post_init__(self) -> None:
        if self.offload != "none" and self.resolved_device().type == "cpu":
            raise ConfigurationError(
                f"offload={self.offload!r} moves weights between the CPU and an accelerator; "
                "it needs a CUDA device (device is cpu)")

    def resolved_device(self) -> torch.device:
        """``device``, with "auto" as the first CUDA GPU, else MPS, else the CPU."""
        if self.device != "auto":
            return torch.device(self.device)
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    def resolved_dtype(self, family_dtype: str) -> str:
        """``dtype``, with "auto" as the family's published precision on an accelerator and
        float32 on the CPU (half precision on the CPU is slow and often unsupported)."""
        if self.dtype != "auto":
            return self.dtype
        return "fp32" if self.resolved_device().type == "cpu" else family_dtype


def parse_options(options: Mapping[str, Any]) -> DiffusersOptions:
    """``DiffusersOptions`` from keyword options; unknown names are a ConfigurationError."""
    names = [f.name for f in attrs.fields(DiffusersOptions)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ConfigurationError(
            f"unknown diffusers option(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    return DiffusersOptions(**options)
