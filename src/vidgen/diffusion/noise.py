"""Start noise for video sampling: i.i.d., shared across frames, or an AR(1) chain in time.

Video diffusion models fine-tuned from image models flicker when every frame
starts from independent noise; correlating the noise of neighbouring frames
(Ge et al. 2023, "Preserve Your Own Correlation") gives the model a temporally
coherent starting point. Every variant keeps each element marginally N(0, 1),
so it is a drop-in replacement for ``torch.randn`` as far as the schedule is
concerned.

All noise is drawn on the generator's device and then moved, so a seed gives
the same noise on CPU and GPU.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vidgen.errors import ConfigurationError

Device = torch.device | str | None


def iid_noise(
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Independent N(0, 1) noise of ``shape``."""
    eps = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    return eps.to(device) if device is not None else eps


def _check_video_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 5:
        raise ConfigurationError(f"video noise needs a (B, C, T, H, W) shape, got {shape}")


def correlated_noise(
    shape: tuple[int, ...],
    generator: torch.Generator,
    *,
    shared: float = 0.5,
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Mixed noise (B, C, T, H, W): ``sqrt(shared) z_video + sqrt(1 - shared) z_frame``.

    ``z_video`` (B, C, 1, H, W) is common to all frames of a video, ``z_frame`` is
    drawn per frame, so any two frames have correlation ``shared`` and every
    element keeps unit variance. ``shared = 0`` is i.i.d. noise, ``shared = 1``
    repeats one noise map over time.
    """
    _check_video_shape(shape)
    if not 0.0 <= shared <= 1.0:
        raise ConfigurationError(f"shared must be in [0, 1], got {shared}")
    b, c, _, h, w = shape
    common = iid_noise((b, c, 1, h, w), generator, dtype=dtype)  # (B, C, 1, H, W)
    own = iid_noise(shape, generator, dtype=dtype)  # (B, C, T, H, W)
    eps = math.sqrt(shared) * common + math.sqrt(1.0 - shared) * own
    return eps.to(device) if device is not None else eps


def progressive_noise(
    shape: tuple[int, ...],
    generator: torch.Generator,
    *,
    rho: float,
    device: Device = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """AR(1) noise along time (B, C, T, H, W): ``z_k = rho z_{k-1} + sqrt(1 - rho^2) n_k``.

    PYoCo's progressive noise: frames ``k`` apart have correlation ``rho**k``, so
    near frames start alike and distant ones drift apart, while each frame stays
    N(0, 1).
    """
    _check_video_shape(shape)
    if not -1.0 <= rho <= 1.0:
        raise ConfigurationError(f"rho must be in [-1, 1], got {rho}")
    innovations = iid_noise(shape, generator, dtype=dtype)  # (B, C, T, H, W)
    keep, fresh = rho, math.sqrt(1.0 - rho * rho)
    frames = [innovations[:, :, 0]]
    for k in range(1, shape[2]):
        frames.append(keep * frames[-1] + fresh * innovations[:, :, k])
    eps = torch.stack(frames, dim=2)
    return eps.to(device) if device is not None else eps


__all__ = ["correlated_noise", "iid_noise", "progressive_noise"]
