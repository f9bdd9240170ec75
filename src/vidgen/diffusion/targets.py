"""What a denoiser predicts, the training loss, and training-time sampling of ``t``.

A model can be trained to output eps, v, x0 or a flow velocity; all four are
linear in ``(x0, eps)`` given ``x_t``, so any of them converts to the pair
``(x0_hat, eps_hat)`` that the samplers work with. Conversions hold for any
``(alpha, sigma)`` schedule, not only variance-preserving ones.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from vidgen.diffusion.schedules import Schedule
from vidgen.errors import ConfigurationError

Prediction = Literal["eps", "v", "x0", "flow"]
PREDICTIONS: tuple[Prediction, ...] = get_args(Prediction)
TimeSampling = Literal["uniform", "logit_normal"]


def check_prediction(prediction: str) -> Prediction:
    """``prediction`` if it names a parametrisation, else ``ConfigurationError``."""
    for p in PREDICTIONS:
        if prediction == p:
            return p
    raise ConfigurationError(
        f"unknown prediction {prediction!r} (choose from {', '.join(PREDICTIONS)})"
    )


def _coefficients(schedule: Schedule, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """``alpha_t, sigma_t`` shaped ``(B, 1, ..., 1)`` to broadcast over ``like`` (B, ...)."""
    alpha, sigma = schedule.alpha_sigma(t)
    view = (-1,) + (1,) * (like.ndim - 1)
    return alpha.to(like.dtype).view(view), sigma.to(like.dtype).view(view)


def add_noise(x0: Tensor, eps: Tensor, t: Tensor, schedule: Schedule) -> Tensor:
    """Sample of ``q(x_t | x0)``: ``alpha_t x0 + sigma_t eps``; x0, eps (B, ...), t (B,)."""
    alpha, sigma = _coefficients(schedule, t, x0)
    return alpha * x0 + sigma * eps


def target(
    prediction: Prediction, x0: Tensor, eps: Tensor, t: Tensor, schedule: Schedule
) -> Tensor:
    """The regression target of a parametrisation.

    eps: ``eps``; x0: ``x0``; v: ``alpha eps - sigma x0`` (Salimans & Ho 2022);
    flow: ``eps - x0``, which is ``d x_t / dt`` under ``RectifiedFlow`` and a
    well-conditioned (``alpha + sigma >= 1``) parametrisation under the others.
    """
    prediction = check_prediction(prediction)
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "flow":
        return eps - x0
    alpha, sigma = _coefficients(schedule, t, x0)
    return alpha * eps - sigma * x0


def to_x0_eps(
    prediction: Prediction, model_out: Tensor, x_t: Tensor, t: Tensor, schedule: Schedule
) -> tuple[Tensor, Tensor]:
    """``(x0_hat, eps_hat)`` from a model output, solving ``x_t = alpha x0 + sigma eps``.

    eps is singular where ``alpha = 0`` (flow at t = 1) and x0 where ``sigma = 0``
    (t = 0); v and flow are invertible everywhere.
    """
    prediction = check_prediction(prediction)
    alpha, sigma = _coefficients(schedule, t, x_t)
    if prediction == "eps":
        return (x_t - sigma * model_out) / alpha, model_out
    if prediction == "x0":
        return model_out, (x_t - alpha * model_out) / sigma
    if prediction == "v":  # [alpha sigma; -sigma alpha] [x0; eps] = [x_t; v]
        norm = alpha**2 + sigma**2  # 1 for variance-preserving schedules
        return (alpha * x_t - sigma * model_out) / norm, (sigma * x_t + alpha * model_out) / norm
    # flow: u = eps - x0, so x_t = (alpha + sigma) x0 + sigma u
    total = alpha + sigma
    return (x_t - sigma * model_out) / total, (x_t + alpha * model_out) / total


def diffusion_loss(model_out: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """The simplified loss (Ho et al.): per-sample MSE, optionally weighted, averaged over B.

    ``model_out`` and ``target`` are (B, ...); ``weight`` is (B,) (e.g. min-SNR
    weights). Computed in float32 so bf16 training does not lose the small
    residuals of low-noise samples.
    """
    if model_out.shape != target.shape:
        raise ConfigurationError(
            f"shapes differ: {tuple(model_out.shape)} vs {tuple(target.shape)}"
        )
    per_sample = (model_out.float() - target.float()).square().flatten(1).mean(dim=1)  # (B,)
    if weight is not None:
        per_sample = per_sample * weight.float()
    return per_sample.mean()


def sample_training_t(
    batch: int,
    generator: torch.Generator,
    *,
    kind: TimeSampling = "uniform",
    loc: float = 0.0,
    scale: float = 1.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """Training times ``t`` (B,) float32 in (0, 1].

    uniform: ``t ~ U(0, 1]`` (t = 0 carries no noise to learn from).
    logit_normal: ``t = sigmoid(loc + scale * n)``, ``n ~ N(0, 1)`` (Esser et al.
    2024), which spends more of the training on the middle noise levels where
    a flow model's velocity is hardest to predict.
    Drawn on the generator's device then moved, so a seed gives the same ``t``
    on every device.
    """
    if kind == "uniform":
        t = 1.0 - torch.rand(batch, generator=generator, device=generator.device)
    elif kind == "logit_normal":
        n = torch.randn(batch, generator=generator, device=generator.device)
        t = torch.sigmoid(loc + scale * n)
    else:
        raise ConfigurationError(f"unknown time sampling {kind!r} (uniform or logit_normal)")
    return t.to(device) if device is not None else t


__all__ = [
    "PREDICTIONS",
    "Prediction",
    "TimeSampling",
    "add_noise",
    "check_prediction",
    "diffusion_loss",
    "sample_training_t",
    "target",
    "to_x0_eps",
]
