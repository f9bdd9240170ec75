"""Samplers: DDPM (ancestral), DDIM, DPM-Solver++(2M) and Euler, for any schedule.

Each sampler integrates from ``t = start_t`` (default 1) to ``t = 0`` on the grid
``sampling_times(steps, shift, start_t=start_t)``, calling the model once per
step. ``start_t < 1`` starts from a given ``x_T`` that is data noised to that
level (``add_noise``), which is SDEdit (Meng et al. 2022): video-to-video
editing and stylisation keep the structure the noised source still carries. Internally
every parametrisation is converted to ``(x0_hat, eps_hat)`` and every schedule
to ``(alpha_t, sigma_t)``, so the update rules below are written once:

- DDIM (Song et al. 2021), ``s -> t``: ``x_t = alpha_t x0_hat + sqrt(sigma_t^2 - c^2)
  eps_hat + c z`` with ``c = eta sigma_t sqrt(1 - e^{-2h})`` and ``h = lambda_t -
  lambda_s``, ``lambda = log(alpha / sigma)``. ``eta = 0`` is the deterministic
  probability-flow solver (first-order exponential integrator); ``eta = 1`` draws
  from the exact Gaussian posterior ``q(x_t | x_s, x0 = x0_hat)``, i.e. DDPM.
- DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep exponential
  integrator in data prediction, reusing the previous step's ``x0_hat``.
- Euler: the plain Euler step of the probability-flow ODE
  ``dx/dt = alpha'(t) x0_hat + sigma'(t) eps_hat``; under rectified flow this is
  ``x + dt * v`` with the predicted velocity ``v = eps_hat - x0_hat``.

Randomness comes only from the caller's ``torch.Generator``, so a seed fixes the
output. ``known = (x0_known, mask)`` imposes a known latent on the masked region
(mask 1 = known) after every step, noised to the current level (RePaint-style
replacement): image-to-video, inpainting and extension. ``resample = U`` repeats
each step ``U`` times, noising back up to the step's start in between (RePaint's
resampling, Lugmayr et al. 2022), which lets the unknown region harmonise with
the known one at ``U`` times the model calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor

from vidgen.diffusion.noise import Device, iid_noise
from vidgen.diffusion.schedules import Schedule, shift_timesteps
from vidgen.diffusion.targets import Prediction, check_prediction, to_x0_eps
from vidgen.errors import BackendError, ConfigurationError

Model = Callable[[Tensor, Tensor], Tensor]
"""``model(x_t (B, ...), t (B,) float32 in [0, 1]) -> prediction (B, ...)``."""
Callback = Callable[[int, int], bool | None]
"""``callback(done, total)`` after each step; returning False cancels (raises ``Cancelled``)."""
Known = tuple[Tensor, Tensor]
"""``(x0_known, mask)``, both broadcastable to the sample shape; mask 1 where known."""
SamplerName = Literal["ddpm", "ddim", "dpmpp_2m", "euler"]
SAMPLERS: tuple[SamplerName, ...] = get_args(SamplerName)


class Cancelled(BackendError):
    """The progress callback asked to stop sampling."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


def sampling_times(steps: int, shift: float = 1.0, *, start_t: float = 1.0) -> list[float]:
    """``steps + 1`` decreasing times from ``start_t`` to 0: uniform, then ``shift_timesteps``.

    ``start_t < 1`` compresses the same grid into ``[0, start_t]`` (``start_t * grid``),
    so every step still lands in the interval that is integrated; ``start_t = 1``
    is the full grid.
    """
    if steps < 1:
        raise ConfigurationError(f"steps must be >= 1, got {steps}")
    if not 0.0 < start_t <= 1.0:
        raise ConfigurationError(f"start_t must be in (0, 1], got {start_t}")
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    if shift != 1.0:
        grid = shift_timesteps(grid, shift)
    if start_t != 1.0:
        grid = grid * start_t
    times: list[float] = grid.tolist()
    return times


class _Run:
    """What every sampler shares: the grid, its levels, model calls, known region, progress."""

    def __init__(
        self,
        model: Model,
        shape: tuple[int, ...],
        schedule: Schedule,
        prediction: Prediction,
        steps: int,
        generator: torch.Generator,
        x_T: Tensor | None,
        known: Known | None,
        callback: Callback | None,
        shift: float,
        device: Device,
        dtype: torch.dtype | None,
        start_t: float = 1.0,
        resample: int = 1,
    ) -> None:
        if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
            raise ConfigurationError(f"resample must be an integer >= 1, got {resample!r}")
        if resample > 1 and known is None:
            raise ConfigurationError("resample > 1 needs a known region (known=)")
        self.resample = resample
        self.model, self.schedule, self.generator = model, schedule, generator
        self.prediction = check_prediction(prediction)
        self.known, self.callback, self.steps = known, callback, steps
        self.times = sampling_times(steps, shift, start_t=start_t)
        alpha, sigma = schedule.alpha_sigma(torch.tensor(self.times, dtype=torch.float64))
        self.alphas: list[float] = alpha.tolist()
        self.sigmas: list[float] = sigma.tolist()
        if self.prediction == "eps" and self.alphas[0] == 0.0:
            raise ConfigurationError(
                "eps-prediction cannot be sampled from alpha = 0 (flow at t = 1): "
                "x0 is not recoverable there; use 'flow', 'v' or 'x0'"
            )
        if x_T is None and start_t < 1.0:
            raise ConfigurationError(
                f"start_t={start_t} < 1 needs x_T: the data noised to start_t "
                "(vidgen.diffusion.add_noise), e.g. SDEdit's noised source latents")
        if x_T is None:
            x_T = iid_noise(tuple(shape), generator, device=device, dtype=dtype or torch.float32)
        elif tuple(x_T.shape) != tuple(shape):
            raise ConfigurationError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
        self.x_T = self.impose_known(x_T, 0)

    def denoise(self, x: Tensor, i: int) -> tuple[Tensor, Tensor]:
        """``(x0_hat, eps_hat)`` from one model call at grid time ``times[i]``."""
        wide = torch.promote_types(x.dtype, torch.float32)  # float64 stays float64
        t = torch.full((x.shape[0],), self.times[i], device=x.device, dtype=wide)
        out = self.model(x, t.float())
        if out.shape != x.shape:
            raise BackendError(
                f"model returned shape {tuple(out.shape)}, expected {tuple(x.shape)}"
            )
        return to_x0_eps(self.prediction, out, x, t, self.schedule)

    def impose_known(self, x: Tensor, i: int) -> Tensor:
        """Replace the known region of ``x`` by the known latent noised to ``times[i]``."""
        if self.known is None:
            return x
        x0_known, mask = self.known
        noisy = self.alphas[i] * x0_known.to(x)
        if self.sigmas[i] > 0:
            noisy = noisy + self.sigmas[i] * iid_noise(
                tuple(x.shape), self.generator, device=x.device, dtype=x.dtype
            )
        return torch.lerp(x, noisy.expand_as(x), mask.to(x).expand_as(x))  # exact where mask = 1

    def repeats(self, i: int) -> list[bool]:
        """How often step ``i`` runs, as ``last`` flags: ``resample`` times with a known region
        (RePaint's resampling; never the final step), once otherwise."""
        n = self.resample if self.known is not None and i < self.steps - 1 else 1
        return [False] * (n - 1) + [True]

    def finish_step(self, x: Tensor, i: int, *, last: bool = True) -> Tensor:
        """After step ``i`` (now at ``times[i + 1]``): impose the known region; then report
        progress, or (``last`` False) noise ``x`` back to ``times[i]`` to run the step again."""
        x = self.impose_known(x, i + 1)
        if not last:
            return self.renoise(x, i)
        if self.callback is not None and self.callback(i + 1, self.steps) is False:
            raise Cancelled()
        return x

    def renoise(self, x: Tensor, i: int) -> Tensor:
        """A draw of ``q(x_{t_i} | x_{t_{i+1}})``: the forward process from ``times[i + 1]``
        back up to ``times[i]``, ``(alpha_i / alpha_{i+1}) x + sqrt(sigma_i^2 - (alpha_i /
        alpha_{i+1})^2 sigma_{i+1}^2) z``."""
        a, s = self.alphas, self.sigmas
        ratio = a[i] / a[i + 1]
        scale = math.sqrt(max(0.0, s[i] ** 2 - (ratio * s[i + 1]) ** 2))
        return ratio * x + scale * self.noise(x)

    def noise(self, x: Tensor) -> Tensor:
        return iid_noise(tuple(x.shape), self.generator, device=x.device, dtype=x.dtype)


def ddim_sample(
    model: Model,
    shape: tuple[int, ...],
    schedule: Schedule,
    prediction: Prediction,
    steps: int,
    generator: torch.Generator,
    *,
    eta: float = 0.0,
    x_T: Tensor | None = None,
    start_t: float = 1.0,
    known: Known | None = None,
    resample: int = 1,
    callback: Callback | None = None,
    shift: float = 1.0,
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """DDIM; ``eta = 0`` deterministic, ``eta = 1`` ancestral (DDPM). Returns x_0 (shape)."""
    if eta < 0:
        raise ConfigurationError(f"eta must be >= 0, got {eta}")
    run = _Run(model, shape, schedule, prediction, steps, generator, x_T, known, callback, shift,
               device, dtype, start_t, resample)
    x, a, s = run.x_T, run.alphas, run.sigmas
    for i in range(steps):
        for last in run.repeats(i):
            x0, eps = run.denoise(x, i)
            if s[i + 1] == 0.0:
                x = x0
            else:
                decay = a[i] * s[i + 1] / (a[i + 1] * s[i])  # e^{-h}, in [0, 1]
                c = eta * s[i + 1] * math.sqrt(max(0.0, 1.0 - decay**2))
                x = a[i + 1] * x0 + math.sqrt(max(0.0, s[i + 1] ** 2 - c**2)) * eps
                if c > 0:
                    x = x + c * run.noise(x)
            x = run.finish_step(x, i, last=last)
    return x


def ddpm_sample(
    model: Model,
    shape: tuple[int, ...],
    schedule: Schedule,
    prediction: Prediction,
    steps: int,
    generator: torch.Generator,
    *,
    x_T: Tensor | None = None,
    start_t: float = 1.0,
    known: Known | None = None,
    resample: int = 1,
    callback: Callback | None = None,
    shift: float = 1.0,
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Ancestral sampling (Ho et al. 2020): each step draws from ``q(x_t | x_s, x0_hat)``.

    Stochastic; it needs more steps than the ODE solvers (hundreds) because each
    step's fresh noise must average out the error of using ``x0_hat`` for ``x0``.
    """
    return ddim_sample(model, shape, schedule, prediction, steps, generator, eta=1.0, x_T=x_T,
                       start_t=start_t, known=known, resample=resample, callback=callback,
                       shift=shift, device=device, dtype=dtype)


def _half_log_snr(alpha: float, sigma: float) -> float:
    """``lambda = log(alpha / sigma)``, +-inf at the ends where alpha or sigma is 0."""
    if alpha == 0.0:
        return -math.inf
    if sigma == 0.0:
        return math.inf
    return math.log(alpha) - math.log(sigma)


def dpmpp_2m_sample(
    model: Model,
    shape: tuple[int, ...],
    schedule: Schedule,
    prediction: Prediction,
    steps: int,
    generator: torch.Generator,
    *,
    x_T: Tensor | None = None,
    start_t: float = 1.0,
    known: Known | None = None,
    resample: int = 1,
    callback: Callback | None = None,
    shift: float = 1.0,
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """DPM-Solver++(2M): ``x_t = (sigma_t/sigma_s) x_s + alpha_t (1 - e^{-h}) D``.

    ``D = x0_i + (x0_i - x0_{i-1}) / (2 r)``, ``r = h_{i-1} / h_i``, is a linear
    extrapolation of the data prediction in lambda, which makes the step
    second order. The first step (no history) and the last (to sigma = 0,
    where h is infinite) are first order, as in the paper's "lower order final".
    """
    run = _Run(model, shape, schedule, prediction, steps, generator, x_T, known, callback, shift,
               device, dtype, start_t, resample)
    x, a, s = run.x_T, run.alphas, run.sigmas
    lam = [_half_log_snr(ai, si) for ai, si in zip(a, s, strict=True)]
    x0_prev: Tensor | None = None
    h_prev = math.inf
    for i in range(steps):
        h = lam[i + 1] - lam[i]
        for r, last in enumerate(run.repeats(i)):
            x0, _ = run.denoise(x, i)
            if s[i + 1] == 0.0:
                x = x0
            else:
                d = x0  # first order again on a resampled step: x left the history's path
                if r == 0 and x0_prev is not None and 0.0 < h_prev < math.inf:
                    d = x0 + (0.5 * h / h_prev) * (x0 - x0_prev)
                decay = a[i] * s[i + 1] / (a[i + 1] * s[i])  # e^{-h}, finite at lambda_s = -inf
                x = (s[i + 1] / s[i]) * x + a[i + 1] * (1.0 - decay) * d
            x = run.finish_step(x, i, last=last)
        x0_prev, h_prev = x0, h
    return x


def _rates(schedule: Schedule, times: list[float], dt: float = 1e-5) -> tuple[list[float], ...]:
    """``(alpha'(t), sigma'(t))`` by central differences (one-sided at 0 and 1), in float64.

    Any ``Schedule`` only has to provide ``alpha_sigma``; a difference step of
    1e-5 in float64 is accurate to ~1e-9 for smooth schedules.
    """
    t = torch.tensor(times, dtype=torch.float64)
    lo, hi = (t - dt).clamp(0.0, 1.0), (t + dt).clamp(0.0, 1.0)
    a_lo, s_lo = schedule.alpha_sigma(lo)
    a_hi, s_hi = schedule.alpha_sigma(hi)
    da: list[float] = ((a_hi - a_lo) / (hi - lo)).tolist()
    ds: list[float] = ((s_hi - s_lo) / (hi - lo)).tolist()
    return da, ds


def euler_sample(
    model: Model,
    shape: tuple[int, ...],
    schedule: Schedule,
    prediction: Prediction,
    steps: int,
    generator: torch.Generator,
    *,
    x_T: Tensor | None = None,
    start_t: float = 1.0,
    known: Known | None = None,
    resample: int = 1,
    callback: Callback | None = None,
    shift: float = 1.0,
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Euler on the probability-flow ODE in t: ``x += (t - s)(alpha' x0_hat + sigma' eps_hat)``.

    Meant for flow models, where it is the usual ``x + dt * v`` (and coincides
    with DDIM). For variance-preserving schedules DDIM or DPM-Solver++ are more
    accurate first- and second-order choices.
    """
    run = _Run(model, shape, schedule, prediction, steps, generator, x_T, known, callback, shift,
               device, dtype, start_t, resample)
    x, times = run.x_T, run.times
    da, ds = _rates(schedule, times[:-1])
    for i in range(steps):
        for last in run.repeats(i):
            x0, eps = run.denoise(x, i)
            x = x + (times[i + 1] - times[i]) * (da[i] * x0 + ds[i] * eps)
            x = run.finish_step(x, i, last=last)
    return x


def sample(
    name: SamplerName,
    model: Model,
    shape: tuple[int, ...],
    schedule: Schedule,
    prediction: Prediction,
    steps: int,
    generator: torch.Generator,
    *,
    eta: float | None = None,
    x_T: Tensor | None = None,
    start_t: float = 1.0,
    known: Known | None = None,
    resample: int = 1,
    callback: Callback | None = None,
    shift: float = 1.0,
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Run the sampler called ``name`` (ddpm, ddim, dpmpp_2m, euler); ``eta`` is DDIM's only.

    ``x_T`` is the starting point at ``t = start_t`` (default: i.i.d. noise, which
    needs ``start_t = 1``); ``known`` is imposed on it and after every step,
    noised to the current time; ``resample > 1`` runs every step but the last that
    many times, noising the result back up in between (RePaint), so the generated
    region can adjust to the known one.
    """
    if eta is not None and name != "ddim":
        raise ConfigurationError(f"eta applies to the ddim sampler only, not {name!r}")
    if name == "ddim":
        return ddim_sample(model, shape, schedule, prediction, steps, generator,
                           eta=0.0 if eta is None else eta, x_T=x_T, start_t=start_t,
                           known=known, resample=resample, callback=callback, shift=shift,
                           device=device, dtype=dtype)
    samplers = {"ddpm": ddpm_sample, "dpmpp_2m": dpmpp_2m_sample, "euler": euler_sample}
    if name not in samplers:
        raise ConfigurationError(f"unknown sampler {name!r} (choose from {', '.join(SAMPLERS)})")
    return samplers[name](model, shape, schedule, prediction, steps, generator, x_T=x_T,
                          start_t=start_t, known=known, resample=resample, callback=callback,
                          shift=shift, device=device, dtype=dtype)


__all__ = [
    "SAMPLERS",
    "Callback",
    "Cancelled",
    "Known",
    "Model",
    "SamplerName",
    "ddim_sample",
    "ddpm_sample",
    "dpmpp_2m_sample",
    "euler_sample",
    "sample",
    "sampling_times",
]
