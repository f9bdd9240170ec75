"""Diffusion maths against closed forms: schedules, targets, samplers, guidance, video noise.

The samplers are checked on Gaussian data ``x0 ~ N(MU, S^2)`` (i.i.d. per
element), where everything is known exactly: ``x_t ~ N(alpha MU, alpha^2 S^2 +
sigma^2)``, the optimal denoiser is

    E[x0 | x_t]  = (alpha S^2 x_t + sigma^2 MU) / (alpha^2 S^2 + sigma^2)
    E[eps | x_t] = sigma (x_t - alpha MU) / (alpha^2 S^2 + sigma^2)

and the probability-flow ODE maps ``x_1`` to ``MU + S (x_1 - alpha_1 MU) /
sqrt(alpha_1^2 S^2 + sigma_1^2)`` (it keeps the standardised value fixed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from vidgen.diffusion import (
    PREDICTIONS,
    SAMPLERS,
    Cancelled,
    CosineSchedule,
    LinearSchedule,
    Model,
    Prediction,
    RectifiedFlow,
    SamplerName,
    Schedule,
    add_noise,
    batched_cfg,
    cfg,
    correlated_noise,
    ddim_sample,
    ddpm_sample,
    diffusion_loss,
    dpmpp_2m_sample,
    euler_sample,
    get_schedule,
    guided_model,
    iid_noise,
    progressive_noise,
    sample,
    sample_training_t,
    sampling_times,
    shift_timesteps,
    target,
    to_x0_eps,
)
from vidgen.errors import BackendError, ConfigurationError

torch.set_num_threads(1)

MU, S = 0.5, 0.8
VIDEO = (16, 4, 4, 16, 16)  # (B, C, T, H, W): 65536 i.i.d. elements
SCHEDULE_NAMES = ("linear", "cosine", "flow")
NATIVE: dict[str, Prediction] = {"linear": "eps", "cosine": "v", "flow": "flow"}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def levels(schedule: Schedule, t: float) -> tuple[float, float]:
    alpha, sigma = schedule.alpha_sigma(torch.tensor([t], dtype=torch.float64))
    return alpha.item(), sigma.item()


def gaussian_model(schedule: Schedule, prediction: Prediction) -> Model:
    """The exact denoiser of N(MU, S^2) data, in the requested parametrisation."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        t64 = t.double()
        alpha, sigma = (c.view(-1, *[1] * (x.ndim - 1)) for c in schedule.alpha_sigma(t64))
        var = alpha**2 * S**2 + sigma**2
        x0 = (alpha * S**2 * x.double() + sigma**2 * MU) / var
        eps = sigma * (x.double() - alpha * MU) / var
        return target(prediction, x0, eps, t64, schedule).to(x.dtype)

    return model


def ode_solution(schedule: Schedule, x_1: Tensor) -> Tensor:
    alpha, sigma = levels(schedule, 1.0)
    return MU + S * (x_1 - alpha * MU) / math.sqrt(alpha**2 * S**2 + sigma**2)


def rms(a: Tensor, b: Tensor) -> float:
    return (a.double() - b.double()).square().mean().sqrt().item()


# --- schedules --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_q_xt_given_x0_moments(name: str) -> None:
    schedule = get_schedule(name)
    t = torch.tensor([0.1, 0.5, 0.9])
    x0 = torch.tensor([0.7, -1.2, 2.0])[:, None].expand(3, 40_000)  # (B, N), one x0 per row
    eps = torch.randn(3, 40_000, generator=gen())
    x_t = add_noise(x0, eps, t, schedule)
    alpha, sigma = schedule.alpha_sigma(t)
    torch.testing.assert_close(x_t.mean(dim=1), alpha * x0[:, 0], atol=0.02, rtol=0)
    torch.testing.assert_close(x_t.var(dim=1), sigma**2, atol=0.0, rtol=0.03)


@pytest.mark.parametrize("schedule", [LinearSchedule(), CosineSchedule()])
def test_vp_schedules_preserve_variance(schedule: Schedule) -> None:
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_schedules_go_from_data_to_noise(name: str) -> None:
    alpha, sigma = get_schedule(name).alpha_sigma(torch.linspace(0, 1, 1001, dtype=torch.float64))
    assert alpha[0] == 1 and sigma[0] == 0
    assert alpha[-1] < 0.01 and sigma[-1] > 0.99
    log_snr = torch.log(alpha[1:-1] / sigma[1:-1])
    assert bool((log_snr.diff() < 0).all())  # strictly noisier as t grows


def test_linear_schedule_hits_ddpm_alpha_bar_at_the_discrete_steps() -> None:
    schedule = LinearSchedule()
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
    knots = torch.arange(1, 1001, dtype=torch.float64) / 1000  # step i (0-based) is t = (i+1)/N
    alpha, _ = schedule.alpha_sigma(knots)
    torch.testing.assert_close(alpha**2, alpha_bar, atol=1e-5, rtol=0)
    alpha32, _ = schedule.alpha_sigma(knots.float())  # float32 times land on the knots too
    torch.testing.assert_close(alpha32.double() ** 2, alpha_bar, atol=1e-5, rtol=0)


def test_cosine_schedule_matches_nichol_dhariwal_and_is_clipped() -> None:
    schedule = CosineSchedule()
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t)

    def f(u: Tensor) -> Tensor:
        return torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    # the clip rescales the angle by ~sqrt(min_alpha_bar) = 1e-4
    torch.testing.assert_close(alpha**2, f(t) / f(torch.zeros(1, dtype=torch.float64)),
                               atol=1e-4, rtol=0)
    assert alpha[0] == 1 and sigma[0] == 0
    assert alpha[-1].item() ** 2 == pytest.approx(1e-8, rel=1e-6)  # clipped, not 0
    assert sigma[-1].item() == pytest.approx(1.0, abs=1e-8)


def test_rectified_flow_is_the_straight_path() -> None:
    t = torch.rand(100, generator=gen(), dtype=torch.float64)
    alpha, sigma = RectifiedFlow().alpha_sigma(t)
    torch.testing.assert_close(alpha + sigma, torch.ones_like(t), atol=0, rtol=0)
    torch.testing.assert_close(sigma, t, atol=0, rtol=0)


def test_shift_timesteps() -> None:
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(shift_timesteps(t, 1.0), t)
    shifted = shift_timesteps(t, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1
    assert shifted[5].item() == pytest.approx(0.75)  # 3 * 0.5 / (1 + 2 * 0.5)
    assert bool((shifted >= t).all()) and bool((shifted.diff() > 0).all())
    times = sampling_times(4, shift=3.0)
    assert times[0] == 1.0 and times[-1] == 0.0 and times[2] == pytest.approx(0.75)
    with pytest.raises(ConfigurationError):
        shift_timesteps(t, 0.0)


def test_get_schedule_rejects_unknown_names() -> None:
    assert isinstance(get_schedule("cosine"), CosineSchedule)
    with pytest.raises(ConfigurationError):
        get_schedule("sigmoid")
    with pytest.raises(ConfigurationError):
        LinearSchedule(beta_start=0.1, beta_end=0.01)


# --- targets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_target_round_trips_to_x0_and_eps(name: str, prediction: Prediction) -> None:
    schedule = get_schedule(name)
    t = torch.tensor([0.02, 0.3, 0.7, 0.98], dtype=torch.float64)
    x0 = torch.randn(4, 3, 2, 5, 5, generator=gen(1), dtype=torch.float64)
    eps = torch.randn(4, 3, 2, 5, 5, generator=gen(2), dtype=torch.float64)
    x_t = add_noise(x0, eps, t, schedule)
    x0_hat, eps_hat = to_x0_eps(prediction, target(prediction, x0, eps, t, schedule), x_t, t,
                                schedule)
    torch.testing.assert_close(x0_hat, x0, atol=1e-9, rtol=0)
    torch.testing.assert_close(eps_hat, eps, atol=1e-9, rtol=0)


def test_v_and_flow_targets_have_their_closed_forms() -> None:
    t = torch.tensor([0.25, 0.6], dtype=torch.float64)
    x0 = torch.randn(2, 8, generator=gen(1), dtype=torch.float64)
    eps = torch.randn(2, 8, generator=gen(2), dtype=torch.float64)
    cosine = CosineSchedule()
    alpha, sigma = (c[:, None] for c in cosine.alpha_sigma(t))
    v = target("v", x0, eps, t, cosine)
    torch.testing.assert_close(v, alpha * eps - sigma * x0)
    torch.testing.assert_close(alpha * add_noise(x0, eps, t, cosine) - sigma * v, x0)  # VP identity
    flow, dt = RectifiedFlow(), 1e-6  # flow target = d x_t / dt along the straight path
    velocity = (add_noise(x0, eps, t + dt, flow) - add_noise(x0, eps, t - dt, flow)) / (2 * dt)
    torch.testing.assert_close(target("flow", x0, eps, t, flow), velocity, atol=1e-8, rtol=0)


def test_diffusion_loss_is_per_sample_mse_averaged_over_the_batch() -> None:
    out = torch.zeros(2, 3, 4, 5)
    tgt = torch.cat([torch.ones(1, 3, 4, 5), torch.full((1, 3, 4, 5), 3.0)])
    assert diffusion_loss(out, tgt).item() == pytest.approx((1 + 9) / 2)
    assert diffusion_loss(out, tgt, torch.tensor([2.0, 0.0])).item() == pytest.approx(1.0)
    assert diffusion_loss(out, tgt).ndim == 0
    with pytest.raises(ConfigurationError):
        diffusion_loss(out, tgt[:, :2])


def test_sample_training_t() -> None:
    t = sample_training_t(50_000, gen(), kind="uniform")
    assert t.shape == (50_000,) and t.dtype == torch.float32
    assert t.min().item() > 0 and t.max().item() <= 1
    assert t.mean().item() == pytest.approx(0.5, abs=0.01)
    torch.testing.assert_close(sample_training_t(8, gen(3)), sample_training_t(8, gen(3)))
    logit = torch.logit(sample_training_t(50_000, gen(), kind="logit_normal").double())
    assert logit.mean().item() == pytest.approx(0.0, abs=0.02)
    assert logit.std().item() == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ConfigurationError):
        sample_training_t(4, gen(), kind="beta")  # type: ignore[arg-type]


# --- samplers ---------------------------------------------------------------------------------

SAMPLER_STEPS = {"ddim": 50, "dpmpp_2m": 20, "euler": 50, "ddpm": 250}


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_reproduce_gaussian_data(name: str, sampler: SamplerName) -> None:
    schedule, prediction = get_schedule(name), NATIVE[name]
    x = sample(sampler, gaussian_model(schedule, prediction), VIDEO, schedule, prediction,
               SAMPLER_STEPS[sampler], gen())
    assert x.shape == VIDEO and x.dtype == torch.float32
    assert x.mean().item() == pytest.approx(MU, abs=0.05 * S)
    assert x.std().item() == pytest.approx(S, rel=0.05)


def test_every_parametrisation_gives_the_same_trajectory() -> None:
    schedule = CosineSchedule()
    outs = [ddim_sample(gaussian_model(schedule, p), (4096,), schedule, p, 10, gen())
            for p in PREDICTIONS]
    for out in outs[1:]:  # float32 rounding, amplified by eps's 1 / alpha(1) = 1e4
        torch.testing.assert_close(out, outs[0], atol=5e-4, rtol=0)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_dpmpp_2m_beats_ddim_at_equal_steps(name: str) -> None:
    schedule, prediction = get_schedule(name), NATIVE[name]
    model = gaussian_model(schedule, prediction)
    x_1 = torch.randn(4096, generator=gen(1), dtype=torch.float64)
    reference = dpmpp_2m_sample(model, x_1.shape, schedule, prediction, 500, gen(), x_T=x_1)
    assert rms(reference, ode_solution(schedule, x_1)) < 1e-3
    err_ddim = rms(ddim_sample(model, x_1.shape, schedule, prediction, 10, gen(), x_T=x_1),
                   reference)
    err_dpm = rms(dpmpp_2m_sample(model, x_1.shape, schedule, prediction, 10, gen(), x_T=x_1),
                  reference)
    assert err_dpm < 0.5 * err_ddim


def test_orders_of_accuracy_on_rectified_flow() -> None:
    """Doubling the steps halves DDIM's error (order 1) and quarters DPM-Solver++'s (order 2)."""
    schedule = RectifiedFlow()
    model = gaussian_model(schedule, "flow")
    x_1 = torch.randn(16_384, generator=gen(1), dtype=torch.float64)
    exact = ode_solution(schedule, x_1)

    def error(solver: Callable[..., Tensor], steps: int) -> float:
        return rms(solver(model, x_1.shape, schedule, "flow", steps, gen(), x_T=x_1), exact)

    assert 1.8 < error(ddim_sample, 40) / error(ddim_sample, 80) < 2.2
    assert error(dpmpp_2m_sample, 40) / error(dpmpp_2m_sample, 80) > 3.0


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_are_deterministic_in_the_generator(sampler: SamplerName) -> None:
    schedule = get_schedule("flow")
    model = gaussian_model(schedule, "flow")

    def run(seed: int) -> Tensor:
        return sample(sampler, model, (2, 1, 3, 4, 4), schedule, "flow", 8, gen(seed))

    assert torch.equal(run(7), run(7))
    assert not torch.allclose(run(7), run(8))


def test_ddpm_noise_comes_from_the_generator_given_x_T() -> None:
    schedule = get_schedule("cosine")
    model = gaussian_model(schedule, "v")
    x_T = torch.randn(2, 1, 3, 4, 4, generator=gen(5))
    ddim = [ddim_sample(model, x_T.shape, schedule, "v", 8, gen(s), x_T=x_T) for s in (1, 2)]
    ddpm = [ddpm_sample(model, x_T.shape, schedule, "v", 8, gen(s), x_T=x_T) for s in (1, 2)]
    assert torch.equal(ddim[0], ddim[1])  # eta = 0: the generator only drew x_T
    assert not torch.allclose(ddpm[0], ddpm[1])


def test_callback_reports_progress_and_cancels() -> None:
    schedule = get_schedule("flow")
    calls: list[int] = []

    def model(x: Tensor, t: Tensor) -> Tensor:
        calls.append(1)
        return torch.zeros_like(x)

    seen: list[tuple[int, int]] = []
    dpmpp_2m_sample(model, (1, 4), schedule, "flow", 5, gen(),
                    callback=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    calls.clear()
    with pytest.raises(Cancelled) as info:
        sample("euler", model, (1, 4), schedule, "flow", 10, gen(),
               callback=lambda done, total: done < 3)
    assert isinstance(info.value, BackendError) and len(calls) == 3


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_known_region_ends_equal_to_the_known_latent(sampler: SamplerName) -> None:
    schedule = get_schedule("cosine")
    model = gaussian_model(schedule, "v")
    known = torch.randn(2, 4, 5, 8, 8, generator=gen(3))
    mask = torch.zeros(1, 1, 5, 1, 1, dtype=torch.bool)
    mask[:, :, 0] = True  # first frame known, as in image-to-video
    x = sample(sampler, model, tuple(known.shape), schedule, "v", 6, gen(), known=(known, mask))
    assert torch.equal(x[:, :, 0], known[:, :, 0])
    assert not torch.allclose(x[:, :, 1:], known[:, :, 1:], atol=0.1)
    assert bool(torch.isfinite(x).all())


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_start_t_1_is_the_full_integration(sampler: SamplerName) -> None:
    """``start_t=1`` (the default) is the old behaviour, bit for bit, with and without x_T."""
    schedule = get_schedule("cosine")
    model = gaussian_model(schedule, "v")
    x_T = torch.randn(2, 1, 3, 4, 4, generator=gen(5))
    for given in (None, x_T):
        old = sample(sampler, model, (2, 1, 3, 4, 4), schedule, "v", 6, gen(1), x_T=given)
        new = sample(sampler, model, (2, 1, 3, 4, 4), schedule, "v", 6, gen(1), x_T=given,
                     start_t=1.0)
        assert torch.equal(old, new)
    assert sampling_times(6, 3.0) == sampling_times(6, 3.0, start_t=1.0)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_start_t_integrates_from_noised_data(name: str, sampler: SamplerName) -> None:
    """SDEdit: data noised to ``start_t`` (add_noise) and integrated back is data again."""
    schedule, prediction = get_schedule(name), NATIVE[name]
    start = 0.5
    x0 = MU + S * torch.randn(VIDEO, generator=gen(2))
    t = torch.full((VIDEO[0],), start)
    x_t = add_noise(x0, torch.randn(VIDEO, generator=gen(3)), t, schedule)
    steps = {"ddpm": 100}.get(sampler, 25)
    x = sample(sampler, gaussian_model(schedule, prediction), VIDEO, schedule, prediction,
               steps, gen(), x_T=x_t, start_t=start)
    assert x.mean().item() == pytest.approx(MU, abs=0.05 * S)
    assert x.std().item() == pytest.approx(S, rel=0.05)
    times = sampling_times(steps, start_t=start)
    assert times[0] == start and times[-1] == 0.0 and len(times) == steps + 1


def test_start_t_ode_maps_x_t_to_its_standardised_value() -> None:
    """The probability-flow ODE from ``start_t`` keeps ``(x_t - alpha MU) / sd_t`` fixed."""
    schedule = get_schedule("flow")
    model = gaussian_model(schedule, "flow")
    start = 0.4
    x_t = torch.randn(4096, generator=gen(1), dtype=torch.float64)
    alpha, sigma = levels(schedule, start)
    exact = MU + S * (x_t - alpha * MU) / math.sqrt(alpha**2 * S**2 + sigma**2)
    out = dpmpp_2m_sample(model, x_t.shape, schedule, "flow", 200, gen(), x_T=x_t,
                          start_t=start)
    assert rms(out, exact) < 1e-3


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_known_region_with_start_t(sampler: SamplerName) -> None:
    schedule = get_schedule("flow")
    model = gaussian_model(schedule, "flow")
    known = torch.randn(2, 4, 5, 8, 8, generator=gen(3))
    mask = torch.zeros(1, 1, 5, 1, 1, dtype=torch.bool)
    mask[:, :, 0] = True
    x_t = add_noise(known, torch.randn(known.shape, generator=gen(4)), torch.full((2,), 0.6),
                    schedule)
    x = sample(sampler, model, tuple(known.shape), schedule, "flow", 4, gen(), x_T=x_t,
               start_t=0.6, known=(known, mask))
    assert torch.equal(x[:, :, 0], known[:, :, 0])


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_resampling_keeps_the_known_region_and_the_data_distribution(
        sampler: SamplerName) -> None:
    """RePaint's resampling: each step but the last runs U times (model calls), progress is
    per step, the known region ends exact and the unknown region is still N(MU, S^2)."""
    schedule = get_schedule("flow")
    exact = gaussian_model(schedule, "flow")
    calls: list[int] = []

    def model(x: Tensor, t: Tensor) -> Tensor:
        calls.append(1)
        return exact(x, t)

    known = MU + S * torch.randn(VIDEO, generator=gen(3))
    mask = torch.zeros(1, 1, VIDEO[2], 1, 1, dtype=torch.bool)
    mask[:, :, :2] = True
    seen: list[int] = []
    steps = 50
    x = sample(sampler, model, VIDEO, schedule, "flow", steps, gen(), known=(known, mask),
               resample=3, callback=lambda done, total: seen.append(done))
    assert len(calls) == steps + 2 * (steps - 1) and seen == list(range(1, steps + 1))
    assert torch.equal(x[:, :, :2], known[:, :, :2])
    plain = sample(sampler, exact, VIDEO, schedule, "flow", steps, gen(), known=(known, mask))
    assert torch.equal(plain, sample(sampler, exact, VIDEO, schedule, "flow", steps, gen(),
                                     known=(known, mask), resample=1))
    # the same distribution as without resampling, up to discretisation (whose error at 50
    # steps still shrinks the spread a little; DPM-Solver++ resamples at first order)
    free, reference = x[:, :, 2:], plain[:, :, 2:]
    assert free.mean().item() == pytest.approx(MU, abs=0.05 * S)
    assert free.std().item() == pytest.approx(reference.std().item(), rel=0.03)


def test_start_t_argument_checks() -> None:
    flow = RectifiedFlow()
    model = gaussian_model(flow, "flow")
    with pytest.raises(ConfigurationError, match="needs x_T"):
        euler_sample(model, (4,), flow, "flow", 4, gen(), start_t=0.5)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigurationError, match="start_t"):
            ddim_sample(model, (4,), flow, "flow", 4, gen(), x_T=torch.zeros(4), start_t=bad)
    with pytest.raises(ConfigurationError, match="needs a known region"):
        euler_sample(model, (4,), flow, "flow", 4, gen(), resample=2)
    known = (torch.zeros(4), torch.ones(4))
    for bad_resample in (0, -1, True):
        with pytest.raises(ConfigurationError, match="resample"):
            euler_sample(model, (4,), flow, "flow", 4, gen(), known=known, resample=bad_resample)


def test_sampler_argument_checks() -> None:
    flow = RectifiedFlow()
    model = gaussian_model(flow, "eps")
    with pytest.raises(ConfigurationError):  # x0 is unrecoverable from eps where alpha = 0
        ddim_sample(model, (4,), flow, "eps", 4, gen())
    with pytest.raises(ConfigurationError):
        sample("heun", model, (4,), flow, "flow", 4, gen())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        sample("euler", model, (4,), flow, "flow", 4, gen(), eta=0.5)
    with pytest.raises(ConfigurationError):
        ddim_sample(model, (4,), flow, "flow", 4, gen(), x_T=torch.zeros(5))
    with pytest.raises(ConfigurationError):
        ddim_sample(model, (4,), flow, "flow", 0, gen())
    with pytest.raises(BackendError):
        ddim_sample(lambda x, t: x[:2], (4, 3), flow, "flow", 4, gen())


# --- noise ------------------------------------------------------------------------------------

NOISE = (16, 4, 6, 16, 16)  # 16384 samples per frame


def frame_corr(eps: Tensor, j: int, k: int) -> float:
    a, b = eps[:, :, j].flatten().double(), eps[:, :, k].flatten().double()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_iid_noise_is_independent_unit_gaussian() -> None:
    eps = iid_noise(NOISE, gen())
    assert eps.var().item() == pytest.approx(1.0, abs=0.02)
    assert abs(frame_corr(eps, 0, 1)) < 0.03 and abs(frame_corr(eps, 2, 5)) < 0.03
    left, right = eps[..., :-1].flatten(), eps[..., 1:].flatten()  # neighbouring pixels
    assert abs(torch.corrcoef(torch.stack([left, right]))[0, 1].item()) < 0.01
    assert torch.equal(iid_noise(NOISE, gen(4)), iid_noise(NOISE, gen(4)))


@pytest.mark.parametrize("shared", [0.0, 0.3, 0.8])
def test_correlated_noise_shares_a_fraction_across_frames(shared: float) -> None:
    eps = correlated_noise(NOISE, gen(), shared=shared)
    assert eps.var(dim=(0, 1, 3, 4)).sub(1).abs().max().item() < 0.04  # unit variance per frame
    for j, k in [(0, 1), (0, 5), (2, 4)]:
        assert frame_corr(eps, j, k) == pytest.approx(shared, abs=0.03)


def test_progressive_noise_is_an_ar1_chain() -> None:
    rho = 0.8
    eps = progressive_noise(NOISE, gen(), rho=rho)
    assert eps.var(dim=(0, 1, 3, 4)).sub(1).abs().max().item() < 0.04
    for lag in (1, 2, 3, 5):
        assert frame_corr(eps, 0, lag) == pytest.approx(rho**lag, abs=0.03)
    assert frame_corr(eps, 3, 4) == pytest.approx(rho, abs=0.03)


def test_video_noise_argument_checks() -> None:
    with pytest.raises(ConfigurationError):
        correlated_noise((4, 4, 4, 4), gen())
    with pytest.raises(ConfigurationError):
        correlated_noise(NOISE, gen(), shared=1.5)
    with pytest.raises(ConfigurationError):
        progressive_noise(NOISE, gen(), rho=-1.1)


# --- guidance ---------------------------------------------------------------------------------


def test_cfg_endpoints_and_extrapolation() -> None:
    cond, uncond = torch.randn(3, 5, generator=gen(1)), torch.randn(3, 5, generator=gen(2))
    assert torch.equal(cfg(cond, uncond, 1.0), cond)
    assert torch.equal(cfg(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(cfg(cond, uncond, 7.5), uncond + 7.5 * (cond - uncond))


def cond_model(x: Tensor, t: Tensor, c: Tensor | tuple[Tensor, ...]) -> Tensor:
    """A model whose output depends nonlinearly on x, t and the conditioning."""
    emb = c if isinstance(c, Tensor) else c[0] * c[1]
    return torch.tanh(x * emb[:, :, None]) + t[:, None, None] * emb.sum(dim=1)[:, None, None]


def test_batched_cfg_equals_two_separate_calls() -> None:
    x, t = torch.randn(3, 4, 6, generator=gen(1)), torch.rand(3, generator=gen(2))
    cond, uncond = torch.randn(3, 4, generator=gen(3)), torch.zeros(3, 4)
    calls: list[int] = []

    def counted(x: Tensor, t: Tensor, c: Tensor | tuple[Tensor, ...]) -> Tensor:
        calls.append(x.shape[0])
        return cond_model(x, t, c)

    expected = cfg(cond_model(x, t, cond), cond_model(x, t, uncond), 4.0)
    torch.testing.assert_close(batched_cfg(counted, x, t, cond, uncond, 4.0), expected)
    assert calls == [6]  # one call on 2B
    mask = torch.ones(3, 4)
    torch.testing.assert_close(batched_cfg(counted, x, t, (cond, mask), (uncond, mask), 4.0),
                               expected)
    guided = guided_model(
        lambda x, t: cond_model(x, t, cond), lambda x, t: cond_model(x, t, uncond), 4.0
    )
    torch.testing.assert_close(guided(x, t), expected)
