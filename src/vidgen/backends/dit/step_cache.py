"""Step caching for the DiT sampler: skip the block stack where its input barely moved.

TeaCache (Liu et al. 2024) and first-block caching observe that a diffusion
transformer's output changes slowly between neighbouring sampling steps, and
that the timestep-modulated input of the first block predicts how much: where
it changed little, the residual that the block stack added last time (output
minus input of all blocks) is added again instead of running the blocks.

Here, on every model call the first block's modulated input ``m = norm1(x) *
(1 + scale1(c)) + shift1(c)`` (tokens (B, N, D), cheap: one LayerNorm and the
block's adaLN projection) is compared with ``m_ref``, its value at the last
fully computed step, by the relative L1 distance ``mean|m - m_ref| /
mean|m_ref|``. The step is skipped (tokens + cached residual) when that is below
``threshold``, at most ``max_skips`` steps in a row, and never at a time in
``always_compute`` (the backend passes the first and the last step's times).
``threshold = 0`` never skips, and the sampler then computes exactly what it
computes without the cache.

A classifier-free-guidance batch (cond and uncond in one call) is one decision:
the distance is over the whole batch, and the residual cached for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import attrs
import torch

from vidgen.backends.dit.model import DiT, DiTBlock, modulate
from vidgen.errors import ConfigurationError


def _non_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0):
        raise ConfigurationError(f"step cache {attribute.name} must be a finite number >= 0, "
                                 f"got {value!r}")


def _count(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"step cache {attribute.name} must be an integer >= 0, "
                                 f"got {value!r}")


@attrs.frozen
class StepCachePolicy:
    """When to skip: relative change below ``threshold``, at most ``max_skips`` in a row."""

    threshold: float = attrs.field(default=0.0, validator=_non_negative)  # 0 = off
    max_skips: int = attrs.field(default=2, validator=_count)

    @property
    def enabled(self) -> bool:
        return self.threshold > 0 and self.max_skips > 0


@attrs.frozen
class StepCacheStats:
    """What a sampling run did: model calls with the blocks computed, and skipped."""

    computed: int = 0
    skipped: int = 0
    skipped_calls: tuple[int, ...] = ()  # indices (0 = first call) of the skipped calls
    longest_skip_run: int = 0

    @property
    def calls(self) -> int:
        return self.computed + self.skipped

    @property
    def fraction_skipped(self) -> float:
        return self.skipped / self.calls if self.calls else 0.0

    def __add__(self, other: StepCacheStats) -> StepCacheStats:
        """Two runs one after the other (call indices of ``other`` shifted)."""
        return StepCacheStats(
            computed=self.computed + other.computed, skipped=self.skipped + other.skipped,
            skipped_calls=self.skipped_calls + tuple(i + self.calls for i in other.skipped_calls),
            longest_skip_run=max(self.longest_skip_run, other.longest_skip_run))


def first_block_input(dit: DiT, tokens: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The first block's timestep-modulated self-attention input (B, N, D)."""
    block = dit.blocks[0]
    assert isinstance(block, DiTBlock)
    shift, scale = block.adaLN(c).chunk(6, dim=1)[:2]  # each (B, D)
    return modulate(block.norm1(tokens), shift, scale)  # (B, N, D)


def relative_l1(a: torch.Tensor, reference: torch.Tensor) -> float:
    """``mean|a - reference| / mean|reference|`` (inf where the reference is all zero)."""
    scale = float(reference.abs().mean())
    if scale == 0.0:
        return math.inf
    return float((a - reference).abs().mean()) / scale


class StepCacheRun:
    """One sampling run's cache; ``DiT.forward`` calls it in place of ``run_blocks``."""

    def __init__(self, policy: StepCachePolicy, always_compute: Iterable[float] = ()) -> None:
        self.policy = policy
        self.always_compute = tuple(float(t) for t in always_compute)
        self.reference: torch.Tensor | None = None  # first-block input at the last computed call
        self.residual: torch.Tensor | None = None  # blocks' output - input there (B, N, D)
        self.streak = 0  # skips since the last computed call
        self.distances: list[float] = []  # per call, to the last computed call (diagnostics)
        self._computed = 0
        self._skipped: list[int] = []
        self._longest = 0

    def _forced(self, t: torch.Tensor) -> bool:
        now = float(t.reshape(-1)[0])
        return any(abs(now - forced) < 1e-6 for forced in self.always_compute)

    def __call__(self, dit: DiT, tokens: torch.Tensor, c: torch.Tensor, t: torch.Tensor,
                 text: torch.Tensor, text_mask: torch.Tensor,
                 grid: tuple[int, int, int]) -> torch.Tensor:
        probe = first_block_input(dit, tokens, c)  # (B, N, D)
        same_shape = self.reference is not None and self.reference.shape == probe.shape
        distance = (relative_l1(probe, self.reference)
                    if same_shape and self.reference is not None else math.inf)
        self.distances.append(distance)
        skip = (self.policy.enabled and self.residual is not None and same_shape
                and distance < self.policy.threshold and self.streak < self.policy.max_skips
                and not self._forced(t))
        if skip and self.residual is not None:
            self._skipped.append(len(self.distances) - 1)
            self.streak += 1
            self._longest = max(self._longest, self.streak)
            return tokens + self.residual  # (B, N, D)
        out = dit.run_blocks(tokens, c, text, text_mask, grid)  # (B, N, D)
        if self.policy.enabled:
            self.reference, self.residual = probe, out - tokens
        self.streak = 0
        self._computed += 1
        return out

    def stats(self) -> StepCacheStats:
        return StepCacheStats(computed=self._computed, skipped=len(self._skipped),
                              skipped_calls=tuple(self._skipped), longest_skip_run=self._longest)


@contextmanager
def cached_steps(dit: DiT, policy: StepCachePolicy,
                 always_compute: Iterable[float] = ()) -> Iterator[StepCacheRun]:
    """Within the block, ``dit``'s forward passes go through a fresh ``StepCacheRun``."""
    previous = dit.block_hook
    run = StepCacheRun(policy, always_compute)
    dit.block_hook = run
    try:
        yield run
    finally:
        dit.block_hook = previous


__all__ = ["StepCachePolicy", "StepCacheRun", "StepCacheStats", "cached_steps",
           "first_block_input", "relative_l1"]
