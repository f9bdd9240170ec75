"""Shared diffusion maths for the native backends: schedules, targets, samplers, guidance, noise.

Plain PyTorch. Latents are (B, C, T, H, W) but only the video-noise helpers
rely on that layout; everything else works on any (B, ...) tensor. Times are
continuous, ``t`` in [0, 1] with 0 = data, and ``x_t = alpha_t x0 + sigma_t eps``.
See ``docs/diffusion.md`` for the formulas.
"""

from vidgen.diffusion.guidance import Cond, CondModel, batched_cfg, cfg, guided_model
from vidgen.diffusion.noise import correlated_noise, iid_noise, progressive_noise
from vidgen.diffusion.samplers import (
    SAMPLERS,
    Callback,
    Cancelled,
    Known,
    Model,
    SamplerName,
    ddim_sample,
    ddpm_sample,
    dpmpp_2m_sample,
    euler_sample,
    sample,
    sampling_times,
)
from vidgen.diffusion.schedules import (
    SCHEDULES,
    CosineSchedule,
    LinearSchedule,
    RectifiedFlow,
    Schedule,
    get_schedule,
    shift_timesteps,
)
from vidgen.diffusion.targets import (
    PREDICTIONS,
    Prediction,
    TimeSampling,
    add_noise,
    check_prediction,
    diffusion_loss,
    sample_training_t,
    target,
    to_x0_eps,
)

__all__ = [
    "PREDICTIONS",
    "SAMPLERS",
    "SCHEDULES",
    "Callback",
    "Cancelled",
    "Cond",
    "CondModel",
    "CosineSchedule",
    "Known",
    "LinearSchedule",
    "Model",
    "Prediction",
    "RectifiedFlow",
    "SamplerName",
    "Schedule",
    "TimeSampling",
    "add_noise",
    "batched_cfg",
    "cfg",
    "check_prediction",
    "correlated_noise",
    "ddim_sample",
    "ddpm_sample",
    "diffusion_loss",
    "dpmpp_2m_sample",
    "euler_sample",
    "get_schedule",
    "guided_model",
    "iid_noise",
    "progressive_noise",
    "sample",
    "sample_training_t",
    "sampling_times",
    "shift_timesteps",
    "target",
    "to_x0_eps",
]
