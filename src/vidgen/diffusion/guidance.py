"""Classifier-free guidance (Ho & Salimans 2022).

The guided prediction extrapolates from the unconditional output towards the
conditional one, ``uncond + scale * (cond - uncond)``: scale 1 is the plain
conditional model, larger scales trade diversity for prompt adherence. It is
linear in the output, so it applies to any parametrisation (eps, v, x0, flow).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Model = Callable[[Tensor, Tensor], Tensor]
Cond = Tensor | tuple[Tensor, ...]
"""Conditioning batched along dim 0: an embedding, or several tensors (e.g. tokens, mask)."""
CondModel = Callable[[Tensor, Tensor, Cond], Tensor]


def cfg(cond_out: Tensor, uncond_out: Tensor, scale: float) -> Tensor:
    """``uncond + scale (cond - uncond)``; exactly ``cond`` at scale 1, ``uncond`` at 0."""
    return torch.lerp(uncond_out, cond_out, scale)  # lerp is exact at both ends


def guided_model(model_cond: Model, model_uncond: Model, scale: float) -> Model:
    """A sampler model that runs both models and guides; skips the uncond run at scale 1."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        cond_out = model_cond(x, t)
        if scale == 1.0:
            return cond_out
        return cfg(cond_out, model_uncond(x, t), scale)

    return model


def _cat(a: Cond, b: Cond) -> Cond:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return torch.cat([a, b])
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return tuple(torch.cat([x, y]) for x, y in zip(a, b, strict=True))
    raise TypeError("cond and uncond must have the same structure")


def batched_cfg(
    model: CondModel, x: Tensor, t: Tensor, cond: Cond, uncond: Cond, scale: float
) -> Tensor:
    """Guided output from one model call on a batch of 2B (cond first, then uncond).

    One forward pass of twice the batch uses the CPU's cores better than two
    passes, and keeps per-call overheads (embedding, attention setup) single.
    ``x`` is (B, ...), ``t`` (B,), ``cond``/``uncond`` batched along dim 0.
    """
    if scale == 1.0:
        return model(x, t, cond)
    out = model(torch.cat([x, x]), torch.cat([t, t]), _cat(cond, uncond))  # (2B, ...)
    cond_out, uncond_out = out.chunk(2)
    return cfg(cond_out, uncond_out, scale)


__all__ = ["Cond", "CondModel", "Model", "batched_cfg", "cfg", "guided_model"]
