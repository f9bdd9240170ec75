"""Noise schedules in one continuous-time view: ``x_t = alpha_t * x0 + sigma_t * eps``.

Every schedule maps a time ``t`` in [0, 1] (0 = clean data, 1 = the noisiest
level) to the pair ``(alpha_t, sigma_t)``. Losses, parametrisations and
samplers only ever see that pair, so one sampler serves DDPM-style
variance-preserving schedules and rectified flow alike, and a sampler may use
any number of steps regardless of how the model was trained.

Coefficients are computed in float64 (where the device has it) and returned in
``t``'s dtype: near ``t = 0`` the gap ``1 - alpha_t**2`` is too small for
float32 arithmetic.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Protocol, runtime_checkable

import attrs
import torch
from torch import Tensor

from vidgen.errors import ConfigurationError


@runtime_checkable
class Schedule(Protocol):
    """Anything that gives the signal and noise scales of ``x_t`` at times ``t``."""

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(alpha_t, sigma_t)``, each shaped like ``t`` (usually ``(B,)``)."""
        ...


def _check_positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"{attribute.name} must be > 0, got {value}")


def _wide(t: Tensor) -> Tensor:
    """``t`` in float64, or float32 on Apple's MPS, which has no float64."""
    return t.to(torch.float32 if t.device.type == "mps" else torch.float64)


@functools.lru_cache(maxsize=8)
def _linear_log_alpha_bar(beta_start: float, beta_end: float, steps: int) -> Tensor:
    """``log alpha_bar`` at the knots ``t = i / steps`` for i = 0..steps; float64 ``(steps+1,)``.

    Knot ``i`` is the level after ``i`` discrete noising steps, so knot 0 is clean
    data (log 1 = 0) and knot ``steps`` is DDPM's last step.
    """
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    log_ab = torch.cumsum(torch.log1p(-betas), dim=0)
    return torch.cat([torch.zeros(1, dtype=torch.float64), log_ab])


@attrs.frozen
class LinearSchedule:
    """DDPM's linear betas (Ho et al. 2020), continuous in t.

    The discrete ``alpha_bar_i = prod_{j<=i} (1 - beta_j)`` is reached exactly at
    ``t = (i + 1) / steps``; between knots ``log alpha_bar`` is interpolated
    linearly, which is what a continuous-beta limit of the chain would do over a
    step whose beta is constant.
    """

    beta_start: float = attrs.field(default=1e-4, validator=_check_positive)
    beta_end: float = attrs.field(default=0.02, validator=_check_positive)
    steps: int = attrs.field(default=1000, validator=_check_positive)

    def __attrs_post_init__(self) -> None:
        if not self.beta_start <= self.beta_end < 1:
            raise ConfigurationError(
                f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        u = _wide(t).clamp(0.0, 1.0) * self.steps  # knot coordinate
        table = _linear_log_alpha_bar(self.beta_start, self.beta_end, self.steps).to(u)
        i = u.floor().clamp(max=self.steps - 1).long()
        log_ab = torch.lerp(table[i], table[i + 1], u - i)
        alpha = torch.exp(0.5 * log_ab)
        sigma = torch.sqrt(-torch.expm1(log_ab))  # sqrt(1 - alpha_bar) without cancellation
        return alpha.to(t.dtype), sigma.to(t.dtype)


@attrs.frozen
class CosineSchedule:
    """Nichol & Dhariwal's cosine schedule, ``alpha_bar = f(t) / f(0)``, ``f = cos^2``.

    ``f(t) = cos^2(theta(t))`` with ``theta(t) = (t + s) / (1 + s) * pi / 2``. The
    plain formula reaches ``alpha = 0`` at ``t = 1``, where an eps-prediction
    cannot be turned back into ``x0``; the paper clips betas for that reason.
    Here the angle is instead rescaled to end where ``alpha_bar(1) =
    min_alpha_bar``, which keeps the schedule smooth with a non-zero slope at
    ``t = 1`` (Euler needs it) and changes interior values by about
    ``sqrt(min_alpha_bar)``.
    """

    s: float = attrs.field(default=0.008, validator=_check_positive)
    min_alpha_bar: float = attrs.field(default=1e-8, validator=_check_positive)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        theta0 = self.s / (1 + self.s) * math.pi / 2
        theta1 = math.acos(math.sqrt(self.min_alpha_bar) * math.cos(theta0))
        theta = theta0 + _wide(t).clamp(0.0, 1.0) * (theta1 - theta0)
        cos0 = math.cos(theta0)
        alpha = torch.cos(theta) / cos0
        # 1 - cos^2(theta)/cos^2(theta0) = sin(theta - theta0) sin(theta + theta0) / cos^2(theta0)
        sigma = torch.sqrt(torch.sin(theta - theta0) * torch.sin(theta + theta0)) / cos0
        return alpha.to(t.dtype), sigma.to(t.dtype)


@attrs.frozen
class RectifiedFlow:
    """The straight path of rectified flow / flow matching: ``alpha = 1 - t``, ``sigma = t``.

    Not variance preserving (``alpha + sigma = 1``); ``d x_t / dt = eps - x0`` is
    the velocity a flow model predicts.
    """

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        t = t.clamp(0.0, 1.0)
        return 1.0 - t, t.clone()


def shift_timesteps(t: Tensor, shift: float) -> Tensor:
    """Resolution-dependent shift ``t' = shift t / (1 + (shift - 1) t)`` (SD3, Esser et al.).

    Larger images and longer videos keep more signal at a given noise level
    (more pixels average the noise away), so flow models sample with
    ``shift > 1`` to spend more steps at high noise. Fixes 0 and 1; ``shift = 1``
    is the identity.
    """
    if not shift > 0:
        raise ConfigurationError(f"shift must be > 0, got {shift}")
    return shift * t / (1 + (shift - 1) * t)


SCHEDULES = ("linear", "cosine", "flow")


def get_schedule(name: str) -> Schedule:
    """The schedule of that name with default parameters: linear, cosine or flow."""
    if name == "linear":
        return LinearSchedule()
    if name == "cosine":
        return CosineSchedule()
    if name == "flow":
        return RectifiedFlow()
    raise ConfigurationError(f"unknown schedule {name!r} (choose from {', '.join(SCHEDULES)})")


__all__ = [
    "SCHEDULES",
    "CosineSchedule",
    "LinearSchedule",
    "RectifiedFlow",
    "Schedule",
    "get_schedule",
    "shift_timesteps",
]
