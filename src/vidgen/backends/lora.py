"""LoRA (Hu et al. 2021) for the native latent-diffusion models: adapters, files, merging.

A ``LoRALinear`` wraps an ``nn.Linear`` ``W`` (out, in) and adds a low-rank
update: ``y = W x + b + s (alpha / r) U D x`` with ``D`` (r, in) initialised
like a Linear (Kaiming uniform) and ``U`` (out, r) initialised to zero, so a
fresh adapter changes nothing, and ``s`` is the user's scale (0 = the base model
exactly). ``inject_lora`` wraps the named target Linears of a
``TextConditionedDenoiser`` (attention q/k/v/out and the MLP of every block by
default); only the adapters' parameters are trained.

A LoRA file is one safetensors file: ``<module>.down`` and ``<module>.up`` per
adapted module (names relative to the ``TextConditionedDenoiser``), and in the
metadata the rank, alpha, target patterns and the base model it was trained on
(the SHA-256 prefix of the base weights file, which the backend also reports as
its ``model_version``, and its architecture and preset). ``apply_lora`` refuses a
file made for another base model with a ``ConfigurationError``.

``merge_lora`` folds ``s (alpha / r) U D`` into ``W`` (zero cost at inference);
``unmerge_lora`` subtracts it again (equal to the original up to rounding).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs
import torch
import torch.nn as nn

from vidgen.errors import ConfigurationError

LORA_KIND = "vidgen.lora.v1"

_DIT_BLOCK = "denoiser.blocks.*."
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "dit": tuple(_DIT_BLOCK + name for name in (
        "attn.qkv", "attn.proj", "temporal_attn.qkv", "temporal_attn.proj",
        "cross.q", "cross.kv", "cross.proj", "mlp.0", "mlp.2")),
    "stunet": tuple("denoiser.*." + name for name in (
        "spatial.qkv", "spatial.proj", "temporal.qkv", "temporal.proj",
        "cross.q", "cross.kv", "cross.proj")),
}
"""Per architecture, ``fnmatch`` patterns (``*`` also matches dots) of the Linears to adapt:
self-attention (and factorised temporal attention) q/k/v and output, cross-attention q,
k/v and output, and the DiT blocks' MLP."""


def _positive_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"LoRA {attribute.name} must be an integer >= 1, got {value!r}")


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"LoRA {attribute.name} must be > 0, got {value!r}")


def _patterns(value: Iterable[str]) -> tuple[str, ...]:
    patterns = tuple(value)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigurationError(f"LoRA targets must be non-empty names, got {value!r}")
    return patterns


@attrs.frozen
class LoRAConfig:
    """Rank ``r``, ``alpha`` (the update is scaled by ``alpha / r``) and target patterns."""

    rank: int = attrs.field(validator=_positive_int)
    alpha: float = attrs.field(converter=float, validator=_positive)
    targets: tuple[str, ...] = attrs.field(converter=_patterns)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


@attrs.frozen
class BaseModel:
    """The weights a LoRA was trained on: ``digest`` decides; the rest is for messages."""

    digest: str  # first 16 hex digits of the SHA-256 of the base weights file
    architecture: str
    preset: str
    name: str = ""  # the base file's name


@attrs.frozen
class LoRAFile:
    """A LoRA's tensors and what they belong to (read by ``read_lora``)."""

    config: LoRAConfig
    base: BaseModel
    state: Mapping[str, torch.Tensor]  # "<module>.down" (r, in), "<module>.up" (out, r)
    metadata: Mapping[str, str] = attrs.field(factory=dict)  # everything in the file's header
    digest: str = ""  # of the LoRA file itself, once written or read

    def modules(self) -> list[str]:
        """The adapted module names, in file order."""
        return sorted({key.rsplit(".", 1)[0] for key in self.state})


class LoRALinear(nn.Module):
    """``base(x) + scale * (alpha / r) * up(down(x))``; a no-op while ``up`` is zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.in_features, rank, bias=False)  # weight (r, in)
        self.up = nn.Linear(rank, base.out_features, bias=False)  # weight (out, r)
        self.down.to(base.weight)
        self.up.to(base.weight)
        self.scaling = alpha / rank
        self.scale = 1.0  # the user's multiplier; 0 is the base model exactly
        self.merged_scale: float | None = None  # the scale folded into base.weight, if any
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.down.weight, a=5**0.5)  # nn.Linear's default
        nn.init.zeros_(self.up.weight)

    def delta_weight(self) -> torch.Tensor:
        """``(alpha / r) U D`` (out, in), at scale 1."""
        return self.scaling * (self.up.weight @ self.down.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.base(x)  # (..., out)
        if self.merged_scale is not None or self.scale == 0.0:
            return y
        update: torch.Tensor = self.up(self.down(x))  # (..., r) -> (..., out)
        return y + (self.scale * self.scaling) * update

    @torch.no_grad()
    def merge(self, scale: float) -> None:
        """Fold the update at ``scale`` into the base weight (then forward costs nothing extra)."""
        if self.merged_scale is not None:
            raise ConfigurationError("this LoRA is already merged; unmerge it first")
        if scale != 0.0:
            self.base.weight.add_(self.delta_weight(), alpha=scale)
        self.merged_scale = scale

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the merged update again (the original weight up to float rounding)."""
        if self.merged_scale is None:
            return
        if self.merged_scale != 0.0:
            self.base.weight.sub_(self.delta_weight(), alpha=self.merged_scale)
        self.merged_scale = None


# --- injection ------------------------------------------------------------------------------


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's adapters by module name (relative to ``model``)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _wrap(model: nn.Module, names: list[str], config: LoRAConfig) -> dict[str, LoRALinear]:
    """Wrap the Linears called ``names`` (all checked before any is replaced)."""
    bases: dict[str, nn.Linear] = {}
    for name in names:
        try:
            base = model.get_submodule(name)
        except AttributeError:
            base = None
        if not isinstance(base, nn.Linear):
            raise ConfigurationError(f"the model has no plain Linear layer {name!r} to adapt")
        bases[name] = base
    adapters: dict[str, LoRALinear] = {}
    for name, base in bases.items():
        adapters[name] = LoRALinear(base, config.rank, config.alpha)
        _replace(model, name, adapters[name])
    return adapters


def inject_lora(model: nn.Module, config: LoRAConfig) -> dict[str, LoRALinear]:
    """Wrap every ``nn.Linear`` whose name matches a target pattern; returns the adapters.

    The adapters' ``down`` weights draw from torch's global generator (seed it for
    a reproducible run). ``ConfigurationError`` if nothing matches or the model
    already has adapters.
    """
    if lora_modules(model):
        raise ConfigurationError("the model already has LoRA adapters")
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)
             and any(fnmatch.fnmatchcase(name, pattern) for pattern in config.targets)]
    if not names:
        raise ConfigurationError(f"no Linear layer matches the LoRA targets "
                                 f"{', '.join(config.targets)}")
    return _wrap(model, names, config)


def lora_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The adapters' trainable parameters (``down`` and ``up`` of every adapter)."""
    return [p for m in lora_modules(model).values()
            for p in (m.down.weight, m.up.weight)]


def freeze_all_but_lora(model: nn.Module) -> list[torch.Tensor]:
    """Only the adapters train: everything else gets ``requires_grad = False``."""
    model.requires_grad_(False)
    params = lora_parameters(model)
    for p in params:
        p.requires_grad_(True)
    return params


def lora_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{"<module>.down": (r, in), "<module>.up": (out, r)}`` of the model's adapters."""
    state: dict[str, torch.Tensor] = {}
    for name, m in lora_modules(model).items():
        state[f"{name}.down"] = m.down.weight.detach()
        state[f"{name}.up"] = m.up.weight.detach()
    return state


@torch.no_grad()
def load_lora_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into the model's adapters; a missing, extra or misshapen tensor is a
    ``ConfigurationError``."""
    adapters = lora_modules(model)
    want = {f"{n}.{part}": getattr(m, part).weight for n, m in adapters.items()
            for part in ("down", "up")}
    if set(state) != set(want):
        missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
        raise ConfigurationError(f"the LoRA tensors do not fit the model's adapters "
                                 f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for key, target in want.items():
        value = state[key]
        if tuple(value.shape) != tuple(target.shape):
            raise ConfigurationError(f"LoRA tensor {key!r} has shape {tuple(value.shape)}; "
                                     f"the model needs {tuple(target.shape)}")
        target.copy_(value.to(target))


def merge_lora(model: nn.Module, scale: float = 1.0) -> None:
    """Fold every adapter's update at ``scale`` into its base weight."""
    for m in lora_modules(model).values():
        m.merge(scale)


def unmerge_lora(model: nn.Module) -> None:
    """Take merged updates out of the base weights again (adapters stay, unmerged)."""
    for m in lora_modules(model).values():
        m.unmerge()


def set_lora_scale(model: nn.Module, scale: float) -> None:
    """The scale of unmerged adapters (0: the base model exactly)."""
    for m in lora_modules(model).values():
        m.scale = float(scale)


# --- files ----------------------------------------------------------------------------------


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of a file's SHA-256 (what backends report as ``model_version``)."""
    import hashlib

    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def lora_file(model: nn.Module, config: LoRAConfig, base: BaseModel,
              extra: Mapping[str, str] | None = None) -> LoRAFile:
    """The model's adapters as a ``LoRAFile`` (tensors copied to CPU float32)."""
    state = {k: v.float().cpu().clone() for k, v in lora_state(model).items()}
    if not state:
        raise ConfigurationError("the model has no LoRA adapters to save")
    return LoRAFile(config=config, base=base, state=state, metadata=dict(extra or {}))


def write_lora(lora: LoRAFile, path: str | Path) -> Path:
    """Write ``lora`` as one safetensors file (atomically: temp file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {**lora.metadata, "kind": LORA_KIND, "rank": str(lora.config.rank),
                "alpha": repr(lora.config.alpha), "targets": json.dumps(list(lora.config.targets)),
                "base": json.dumps(attrs.asdict(lora.base), sort_keys=True)}
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in lora.state.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def read_lora(path: str | Path) -> LoRAFile:
    """Read a LoRA file; anything that is not one is a ``ConfigurationError``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"no LoRA file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ConfigurationError(f"{path} is not a readable safetensors file: {exc}") from exc
    if metadata.get("kind") != LORA_KIND:
        raise ConfigurationError(f"{path} is not a vidgen LoRA file (kind "
                                 f"{metadata.get('kind')!r}, expected {LORA_KIND!r})")
    try:
        config = LoRAConfig(rank=int(metadata["rank"]), alpha=float(metadata["alpha"]),
                            targets=tuple(json.loads(metadata["targets"])))
        base = BaseModel(**json.loads(metadata["base"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"{path} has a damaged LoRA header: {exc!r}") from exc
    bad = [k for k in state if not k.endswith((".down", ".up"))]
    if bad or not state:
        raise ConfigurationError(f"{path} holds no LoRA tensors or unexpected ones {bad[:3]}")
    return LoRAFile(config=config, base=base, state={k: v.float() for k, v in state.items()},
                    metadata=metadata, digest=file_digest(path))


def check_base(lora: LoRAFile, base: BaseModel, *, source: str = "the LoRA") -> None:
    """``ConfigurationError`` unless ``lora`` was trained on exactly the weights ``base``."""
    if lora.base.digest != base.digest:
        raise ConfigurationError(
            f"{source} was trained on another base model ({lora.base.architecture}/"
            f"{lora.base.preset} {lora.base.name or '?'}, weights digest {lora.base.digest}); "
            f"these weights are {base.architecture}/{base.preset} {base.name or '?'}, digest "
            f"{base.digest}. Load the LoRA with the weights it was trained on.")


def apply_lora(model: nn.Module, lora: LoRAFile, base: BaseModel, *, scale: float = 1.0,
               merge: bool = True) -> dict[str, LoRALinear]:
    """Check ``lora`` belongs to ``base`` (the model's weights), inject its adapters into
    ``model``, load them, and merge at ``scale`` (or leave them unmerged at that scale)."""
    check_base(lora, base)
    adapters = _wrap(model, lora.modules(), lora.config)
    load_lora_state(model, lora.state)
    if merge:
        merge_lora(model, scale)
    else:
        set_lora_scale(model, scale)
    return adapters


__all__ = [
    "DEFAULT_TARGETS",
    "LORA_KIND",
    "BaseModel",
    "LoRAConfig",
    "LoRAFile",
    "LoRALinear",
    "apply_lora",
    "check_base",
    "file_digest",
    "freeze_all_but_lora",
    "inject_lora",
    "load_lora_state",
    "lora_file",
    "lora_modules",
    "lora_parameters",
    "lora_state",
    "merge_lora",
    "read_lora",
    "set_lora_scale",
    "unmerge_lora",
    "write_lora",
]
