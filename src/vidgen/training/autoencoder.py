"""A causal 3D-convolutional video autoencoder, so that diffusion runs in latent space (as in LDM).

One file, plain PyTorch. A clip ``x`` of shape (B, 3, T, H, W) in [-1, 1] maps to a latent
``z`` of shape (B, C, T', H/s, W/s), where ``s = spatial_down`` (4) and, with
``d = temporal_down`` (2),

    T' = 1 + ceil((T - 1) / d)

(the causal convention): latent frame 0 encodes frame 0 *alone*, and latent frame j >= 1
encodes frames (j-1)*d+1 .. j*d. So a single image (T = 1) is a one-frame latent that is
exactly latent frame 0 of every video that starts with it (what image-to-video needs), and
T = 1 + k*d round-trips with no extra information. Other lengths have a partial last group
(padded by repeating the last frame): T = 16 gives T' = 9, and the decoder returns
``1 + d*(T'-1)`` = 17 frames unless it is told ``num_frames``, so pass ``num_frames=16``
(``forward`` does this itself).

Causality: every convolution pads time on the past side only, and normalisation is per pixel,
so latent frame j depends only on frames <= j*d, and decoded frame t only on latent frames
<= ceil(t/d). Spatially the model is an ordinary fully convolutional network, so any H, W
divisible by ``spatial_down`` works (it is trained on crops).

Public surface: ``AutoencoderConfig``, ``AUTOENCODER_PRESETS``, ``VideoAutoencoder``
(``encode`` -> posterior, ``encode_latents`` -> scaled latents for diffusion, ``decode`` ->
pixels), ``save_autoencoder`` / ``load_autoencoder`` (safetensors with the config and the
latent scaling in its metadata) and ``shipped_weights``.
"""

from __future__ import annotations

import itertools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from vidgen.errors import ConfigurationError

WEIGHTS_FORMAT = "vidgen-video-autoencoder/1"
"""The ``format`` entry of the safetensors metadata written by ``save_autoencoder``."""


# ----------------------------------------------------------------------------- configuration


@attrs.frozen
class AutoencoderConfig:
    """Sizes of a ``VideoAutoencoder``.

    The network has one resolution level per entry of ``channel_multipliers``; level i runs
    at 1/2**i of the input size with ``base_channels * channel_multipliers[i]`` channels, so
    ``spatial_down`` must be ``2 ** (levels - 1)``. ``time_kernels[i]`` is the temporal kernel
    of that level's convolutions (1 = per-frame 2D convs, cheap at high resolution; 3 = causal
    3D convs). Time is compressed once, at the lowest resolution, by ``temporal_down``.
    ``kl_weight`` multiplies the per-element KL term returned by ``forward``.
    """

    in_channels: int = 3
    latent_channels: int = 4
    base_channels: int = 16
    channel_multipliers: tuple[int, ...] = (1, 2, 4)
    encoder_blocks: tuple[int, ...] = (0, 1, 1)
    decoder_blocks: tuple[int, ...] = (1, 1, 1)
    time_kernels: tuple[int, ...] = (1, 1, 3)
    mid_blocks: int = 1
    spatial_down: int = 4
    temporal_down: int = 2
    kl_weight: float = 1e-6

    def __attrs_post_init__(self) -> None:
        levels = len(self.channel_multipliers)
        if levels < 1:
            raise ConfigurationError("channel_multipliers needs at least one level")
        for name in ("encoder_blocks", "decoder_blocks", "time_kernels"):
            if len(getattr(self, name)) != levels:
                raise ConfigurationError(f"{name} needs one entry per level ({levels})")
        if self.spatial_down != 2 ** (levels - 1):
            raise ConfigurationError(
                f"spatial_down={self.spatial_down} does not match {levels} levels "
                f"(expected {2 ** (levels - 1)})")
        if self.temporal_down < 1:
            raise ConfigurationError(f"temporal_down must be >= 1, got {self.temporal_down}")
        if any(k < 1 or k % 2 == 0 for k in self.time_kernels):
            raise ConfigurationError(f"time_kernels must be odd and >= 1: {self.time_kernels}")
        if min(self.in_channels, self.latent_channels, self.mid_blocks + 1) < 1:
            raise ConfigurationError("in_channels, latent_channels must be >= 1, mid_blocks >= 0")
        if self.kl_weight < 0:
            raise ConfigurationError(f"kl_weight must be non-negative, got {self.kl_weight}")
        ch = self.channels
        pairs = [(4 * a, b) for a, b in itertools.pairwise(ch)]  # sampling shortcuts
        pairs.append((ch[-1], self.latent_channels))  # encoder output / decoder input
        if any(a % b and b % a for a, b in pairs):
            raise ConfigurationError(
                f"widths {ch} and latent_channels={self.latent_channels} must divide each "
                "other as the parameter-free shortcuts need")

    @property
    def channels(self) -> tuple[int, ...]:
        """The width of each resolution level."""
        return tuple(self.base_channels * m for m in self.channel_multipliers)

    def latent_frames(self, num_frames: int) -> int:
        """T' for T input frames: ``1 + ceil((T - 1) / temporal_down)``."""
        if num_frames < 1:
            raise ConfigurationError(f"num_frames must be >= 1, got {num_frames}")
        return 1 + -(-(num_frames - 1) // self.temporal_down)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, T', H', W') of the latent of a (3, T, H, W) clip."""
        if height % self.spatial_down or width % self.spatial_down:
            raise ConfigurationError(
                f"height and width must be multiples of {self.spatial_down}, got {height}x{width}")
        return (self.latent_channels, self.latent_frames(num_frames),
                height // self.spatial_down, width // self.spatial_down)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoencoderConfig:
        known = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigurationError(f"unknown autoencoder config keys: {sorted(unknown)}")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items()}
        return cls(**kwargs)


AUTOENCODER_PRESETS: dict[str, AutoencoderConfig] = {
    # 1.24M parameters (2.5 MB in float16), trained on one CPU thread (docs/training.md)
    "tiny": AutoencoderConfig(latent_channels=8),
    # wider and deeper, for a machine with more compute (untrained here)
    "small": AutoencoderConfig(latent_channels=8, base_channels=32, encoder_blocks=(1, 1, 2),
                               decoder_blocks=(1, 2, 2), time_kernels=(1, 3, 3), mid_blocks=2),
}


# ----------------------------------------------------------------------------- building blocks


class CausalConv3d(nn.Module):
    """A 3D convolution that pads time on the past side only: output frame t sees inputs <= t.

    The past padding repeats the first frame, so the start of a clip looks like a still
    scene; space is zero-padded symmetrically. ``stride`` (time, space) subsamples; a temporal
    stride ``d`` keeps output frames 0, d, 2d, ... of the causal sequence.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int],
                 stride: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        kt, kh, kw = kernel
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(in_channels, out_channels, kernel,
                              stride=(stride[0], stride[1], stride[1]),
                              padding=(0, kh // 2, kw // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            past = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)  # (B, C, kt-1, H, W)
            x = torch.cat([past, x], dim=2)  # (B, C, T+kt-1, H, W)
        out: torch.Tensor = self.conv(x)  # (B, C_out, T_out, H_out, W_out)
        return out


class PixelNorm(nn.Module):
    """Normalisation over the channels of each (frame, pixel) with a per-channel affine:
    GroupNorm with one group whose statistics are taken at one position, not over the frame.

    Spatial statistics are wrong for these clips in two ways: GroupNorm of a flat frame or
    crop maps it to the same features whatever its colour (it cannot be decoded back), and
    statistics over time would let future frames change past ones (breaking causality).
    Per-position statistics have neither problem and are the same on crops and full frames.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(1, -1)  # (B, T, H, W, C)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)  # (B, C, T, H, W)


class ResBlock(nn.Module):
    """norm -> SiLU -> conv -> norm -> SiLU -> conv, plus a (1x1x1 if widths differ) skip."""

    def __init__(self, in_channels: int, out_channels: int, time_kernel: int) -> None:
        super().__init__()
        kernel = (time_kernel, 3, 3)
        self.norm1 = PixelNorm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, kernel)
        self.norm2 = PixelNorm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, kernel)
        self.skip = (nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, T, H, W)
        h = self.conv2(F.silu(self.norm2(h)))  # (B, C_out, T, H, W)
        skip: torch.Tensor = self.skip(x)  # (B, C_out, T, H, W)
        return skip + h  # (B, C_out, T, H, W)


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Parameter-free channel change: average groups of adjacent channels (fewer channels)
    or repeat each channel (more); (B, C, ...) -> (B, channels, ...)."""
    c = x.shape[1]
    if c == channels:
        return x
    if c % channels == 0:
        return x.reshape(x.shape[0], channels, c // channels, *x.shape[2:]).mean(dim=2)
    if channels % c == 0:
        return x.repeat_interleave(channels // c, dim=1)
    raise ConfigurationError(f"cannot match {c} channels to {channels} without parameters")


class SpatialDownsample(nn.Module):
    """Halve H and W: a stride-2 3x3 convolution (per frame) plus a parameter-free shortcut,
    space-to-channel (each 2x2 block becomes 4 channels) then ``match_channels``.

    These parameter-free shortcuts (the idea of DC-AE's residual autoencoding), with the
    ones of the temporal sampling layers and of the encoder output / decoder input, give
    every resolution a linear path through the latent that carries block averages, so the
    convolutions only have to learn the detail on top; on one CPU thread this is the
    difference between blobs and sharp shapes within the training budget.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv = CausalConv3d(in_channels, out_channels, (1, 3, 3), stride=(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        blocks = x.reshape(b, c, t, h // 2, 2, w // 2, 2)  # (B, C, T, H/2, 2, W/2, 2)
        blocks = blocks.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, 4 * c, t, h // 2, w // 2)
        shortcut = match_channels(blocks, self.out_channels)  # (B, C_out, T, H/2, W/2)
        out: torch.Tensor = self.conv(x)  # (B, C_out, T, H/2, W/2)
        return out + shortcut  # (B, C_out, T, H/2, W/2)


class SpatialUpsample(nn.Module):
    """Double H and W: nearest-neighbour upsampling then a 3x3 convolution (per frame), plus
    the mirror of the downsampling shortcut (``match_channels`` then channel-to-space)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv = CausalConv3d(in_channels, out_channels, (1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        shortcut = match_channels(x, 4 * self.out_channels)  # (B, 4*C_out, T, H, W)
        shortcut = shortcut.reshape(b, self.out_channels, 2, 2, t, h, w)
        shortcut = shortcut.permute(0, 1, 4, 5, 2, 6, 3).reshape(b, -1, t, 2 * h, 2 * w)
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")  # (B, C, T, 2H, 2W)
        out: torch.Tensor = self.conv(x)  # (B, C_out, T, 2H, 2W)
        return out + shortcut  # (B, C_out, T, 2H, 2W)


class TemporalDownsample(nn.Module):
    """Causal time compression by ``factor``: T -> 1 + ceil((T-1)/factor).

    Output frame j is a causal conv (kernel factor+1, stride factor) ending on input frame
    j*factor, so it sees the whole group (j-1)*factor+1 .. j*factor and one frame before it;
    frame 0 alone makes output 0. A partial last group is completed by repeating the last
    frame. The shortcut is the mean of each group.
    """

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.conv = CausalConv3d(channels, channels, (factor + 1, 3, 3), stride=(factor, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        missing = -(x.shape[2] - 1) % self.factor
        if missing:
            tail = x[:, :, -1:].expand(-1, -1, missing, -1, -1)  # (B, C, missing, H, W)
            x = torch.cat([x, tail], dim=2)  # (B, C, 1 + factor*k, H, W)
        b, c, t, h, w = x.shape
        groups = x[:, :, 1:].reshape(b, c, (t - 1) // self.factor, self.factor, h, w)
        groups = groups.mean(dim=3)  # (B, C, k, H, W)
        shortcut = torch.cat([x[:, :, :1], groups], dim=2)  # (B, C, 1 + k, H, W)
        out: torch.Tensor = self.conv(x)  # (B, C, 1 + k, H, W)
        return out + shortcut  # (B, C, 1 + k, H, W)


class TemporalUpsample(nn.Module):
    """Causal inverse of ``TemporalDownsample``: T' -> 1 + factor*(T'-1).

    Nearest upsampling in time (each latent frame repeated ``factor`` times, dropping the
    copies of frame 0 that precede the clip), then a residual causal 3x3x3 convolution, so
    decoded frame t depends on latent frames <= ceil(t/factor) only.
    """

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.conv = CausalConv3d(channels, channels, (3, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat_interleave(self.factor, dim=2)  # (B, C, factor*T', H, W)
        x = x[:, :, self.factor - 1:]  # (B, C, 1 + factor*(T'-1), H, W)
        out: torch.Tensor = self.conv(x)  # (B, C, 1 + factor*(T'-1), H, W)
        return x + out  # (B, C, 1 + factor*(T'-1), H, W)


class OutputHead(nn.Module):
    """norm -> SiLU -> conv, the last layer of the encoder and of the decoder."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int]
                 ) -> None:
        super().__init__()
        self.norm = PixelNorm(in_channels)
        self.conv = CausalConv3d(in_channels, out_channels, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(F.silu(self.norm(x)))  # (B, C_out, T, H, W)
        return out


# ----------------------------------------------------------------------------- encoder / decoder


class Encoder(nn.Module):
    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        ch, kt = config.channels, config.time_kernels
        self.conv_in = CausalConv3d(config.in_channels, ch[0], (kt[0], 3, 3))
        self.levels = nn.ModuleList()
        width = ch[0]
        for i in range(len(ch)):
            level = nn.Sequential()
            for _ in range(config.encoder_blocks[i]):
                level.append(ResBlock(width, ch[i], kt[i]))
                width = ch[i]
            if i < len(ch) - 1:
                level.append(SpatialDownsample(width, ch[i + 1]))
                width = ch[i + 1]
            self.levels.append(level)
        self.time_down = (TemporalDownsample(width, config.temporal_down)
                          if config.temporal_down > 1 else nn.Identity())
        self.mid = nn.Sequential(*(ResBlock(width, width, 3)
                                   for _ in range(config.mid_blocks)))
        self.head = OutputHead(width, 2 * config.latent_channels, (3, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # (B, ch0, T, H, W)
        for level in self.levels:
            h = level(h)  # (B, ch_i+1, T, H/2^(i+1), W/2^(i+1)); last level keeps its size
        h = self.time_down(h)  # (B, ch_last, T', H/s, W/s)
        h = self.mid(h)  # (B, ch_last, T', H/s, W/s)
        moments = self.head(h)  # (B, 2*C_lat, T', H/s, W/s)
        mean, logvar = moments.chunk(2, dim=1)  # each (B, C_lat, T', H/s, W/s)
        mean = mean + match_channels(h, mean.shape[1])  # parameter-free shortcut
        return torch.cat([mean, logvar], dim=1)  # (B, 2*C_lat, T', H/s, W/s)


class Decoder(nn.Module):
    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        ch, kt = config.channels, config.time_kernels
        width = self.width = ch[-1]
        self.conv_in = CausalConv3d(config.latent_channels, width, (3, 3, 3))
        self.mid = nn.Sequential(*(ResBlock(width, width, 3)
                                   for _ in range(config.mid_blocks)))
        self.time_up = (TemporalUpsample(width, config.temporal_down)
                        if config.temporal_down > 1 else nn.Identity())
        self.levels = nn.ModuleList()
        for i in reversed(range(len(ch))):
            level = nn.Sequential()
            for _ in range(config.decoder_blocks[i]):
                level.append(ResBlock(width, ch[i], kt[i]))
                width = ch[i]
            if i > 0:
                level.append(SpatialUpsample(width, ch[i - 1]))
                width = ch[i - 1]
            self.levels.append(level)
        self.head = OutputHead(width, config.in_channels, (kt[0], 3, 3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z) + match_channels(z, self.width)  # (B, ch_last, T', H/s, W/s)
        h = self.mid(h)  # (B, ch_last, T', H/s, W/s)
        h = self.time_up(h)  # (B, ch_last, 1 + d*(T'-1), H/s, W/s)
        for level in self.levels:
            h = level(h)  # (B, ch_i-1, T_out, 2x, 2x); the full-resolution level keeps its size
        out: torch.Tensor = self.head(h)  # (B, 3, T_out, H, W)
        return out


# ----------------------------------------------------------------------------- the autoencoder


@attrs.frozen
class Posterior:
    """A diagonal Gaussian over latents, each (B, C, T', H', W')."""

    mean: torch.Tensor
    logvar: torch.Tensor

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype,
                            device=self.mean.device)
        return self.mean + torch.exp(0.5 * self.logvar) * noise

    def kl(self) -> torch.Tensor:
        """KL to N(0, I), averaged over every element (a scalar)."""
        return 0.5 * (self.mean.square() + self.logvar.exp() - 1.0 - self.logvar).mean()


@attrs.frozen
class AutoencoderOutput:
    """What ``VideoAutoencoder.forward`` returns for training."""

    reconstruction: torch.Tensor  # (B, 3, T, H, W)
    posterior: Posterior
    kl: torch.Tensor  # scalar: per-element KL, not yet multiplied by kl_weight


class VideoAutoencoder(nn.Module):
    """Causal video VAE: ``encode_latents`` for diffusion inputs, ``decode`` back to pixels.

    ``encode_latents`` returns ``(mean - shift_factor) * scaling_factor`` (or a posterior
    sample in place of the mean); both factors are buffers, set after training by
    ``calibrate_latents`` so that latents have about zero mean and unit std, and saved with
    the weights. ``decode`` takes latents in that same scaled space.
    """

    scaling_factor: torch.Tensor
    shift_factor: torch.Tensor

    def __init__(self, config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.register_buffer("scaling_factor", torch.tensor(1.0))
        self.register_buffer("shift_factor", torch.tensor(0.0))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal convolutions, zero biases, unit/zero norms; the second conv of every
        residual block (so each block starts as the identity) and the decoder's output conv
        start at zero."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, PixelNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, ResBlock):
                nn.init.zeros_(module.conv2.conv.weight)
        nn.init.zeros_(self.decoder.head.conv.conv.weight)

    # -- encoding

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.config.in_channels:
            raise ConfigurationError(
                f"expected (B, {self.config.in_channels}, T, H, W), got {tuple(x.shape)}")
        self.config.latent_shape(x.shape[2], x.shape[3], x.shape[4])  # validates H, W

    def encode(self, x: torch.Tensor) -> Posterior:
        """x (B, 3, T, H, W) in [-1, 1] -> posterior over unscaled latents (B, C, T', H', W')."""
        self._check_input(x)
        moments = self.encoder(x)  # (B, 2*C, T', H', W')
        mean, logvar = moments.chunk(2, dim=1)  # each (B, C, T', H', W')
        return Posterior(mean, logvar.clamp(-30.0, 20.0))

    def encode_latents(self, x: torch.Tensor, sample: bool = False,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """x (B, 3, T, H, W) in [-1, 1] -> scaled latents (B, C, T', H', W') for diffusion.

        Deterministic (the posterior mean) unless ``sample``.
        """
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mean  # (B, C, T', H', W')
        return (z - self.shift_factor) * self.scaling_factor

    # -- decoding

    def decode_unscaled(self, z: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Unscaled latents (B, C, T', H', W') -> x (B, 3, T, H, W), T = ``num_frames`` or
        ``1 + temporal_down*(T'-1)``."""
        if z.ndim != 5 or z.shape[1] != self.config.latent_channels:
            raise ConfigurationError(
                f"expected (B, {self.config.latent_channels}, T', H', W'), got {tuple(z.shape)}")
        full = 1 + self.config.temporal_down * (z.shape[2] - 1)
        if num_frames is not None and not full - self.config.temporal_down < num_frames <= full:
            raise ConfigurationError(
                f"{z.shape[2]} latent frames decode to {full - self.config.temporal_down + 1}"
                f"..{full} frames, not {num_frames}")
        x: torch.Tensor = self.decoder(z)  # (B, 3, 1 + d*(T'-1), H, W)
        return x if num_frames is None else x[:, :, :num_frames]  # (B, 3, T, H, W)

    def decode(self, z: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """Scaled latents (as from ``encode_latents``) -> x (B, 3, T, H, W), about [-1, 1].

        T is ``num_frames`` if given (a T=16 clip has 9 latent frames: pass 16), else
        ``1 + temporal_down*(T'-1)`` (exact for T = 1, 17, 33, ...).
        """
        return self.decode_unscaled(z / self.scaling_factor + self.shift_factor, num_frames)

    # -- training

    def forward(self, x: torch.Tensor, sample: bool = True,
                generator: torch.Generator | None = None) -> AutoencoderOutput:
        """x (B, 3, T, H, W) -> reconstruction of the same shape, posterior and KL."""
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mean  # (B, C, T', H', W')
        reconstruction = self.decode_unscaled(z, num_frames=x.shape[2])  # (B, 3, T, H, W)
        return AutoencoderOutput(reconstruction, posterior, posterior.kl())

    @torch.no_grad()
    def calibrate_latents(self, clips: torch.Tensor, batch_size: int = 8) -> tuple[float, float]:
        """Set shift/scaling so posterior means of ``clips`` (N, 3, T, H, W) have zero mean and
        unit std over all elements; returns (shift_factor, scaling_factor)."""
        means = [self.encode(clips[i:i + batch_size]).mean
                 for i in range(0, clips.shape[0], batch_size)]
        latents = torch.cat(means)  # (N, C, T', H', W')
        shift, std = float(latents.mean()), float(latents.std())
        self.shift_factor.fill_(shift)
        self.scaling_factor.fill_(1.0 / max(std, 1e-8))
        return shift, 1.0 / max(std, 1e-8)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- losses


def edge_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between the horizontal and vertical finite differences of two clips
    (B, C, T, H, W): penalises blurred or displaced outlines more than plain L1 does."""
    dh = (x_hat.diff(dim=3) - x.diff(dim=3)).abs().mean()
    dw = (x_hat.diff(dim=4) - x.diff(dim=4)).abs().mean()
    return 0.5 * (dh + dw)


def psnr(x_hat: torch.Tensor, x: torch.Tensor, dims: tuple[int, ...] | None = None
         ) -> torch.Tensor:
    """PSNR in dB of clips in [-1, 1] (peak-to-peak 2), after clamping ``x_hat`` to the range;
    averaged over ``dims`` (all dims if None)."""
    err = (x_hat.clamp(-1.0, 1.0) - x).square()
    mse = err.mean() if dims is None else err.mean(dim=dims)
    return 10.0 * torch.log10(4.0 / mse.clamp_min(1e-12))


# ----------------------------------------------------------------------------- weights on disk


def save_autoencoder(model: VideoAutoencoder, path: str | Path, *,
                     dtype: torch.dtype = torch.float32,
                     extra_metadata: dict[str, str] | None = None) -> Path:
    """Write the weights (and buffers) to ``path`` as safetensors in ``dtype``, with the
    config, scaling and shift factors in the metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous()
             for k, v in model.state_dict().items()
             if k not in ("scaling_factor", "shift_factor")}
    metadata = {
        "format": WEIGHTS_FORMAT,
        "config": json.dumps(model.config.to_dict(), sort_keys=True),
        "scaling_factor": repr(float(model.scaling_factor)),
        "shift_factor": repr(float(model.shift_factor)),
        **(extra_metadata or {}),
    }
    save_file(state, str(path), metadata=metadata)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of an autoencoder weights file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    return dict(metadata or {})


def load_autoencoder(path: str | Path) -> VideoAutoencoder:
    """Read a file written by ``save_autoencoder`` into a float32 model in eval mode, with
    gradients off (a frozen autoencoder, as diffusion training uses it)."""
    from safetensors.torch import load_file

    metadata = read_metadata(path)
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise ConfigurationError(f"{path} is not a vidgen video autoencoder "
                                 f"(format {metadata.get('format')!r})")
    config = AutoencoderConfig.from_dict(json.loads(metadata["config"]))
    model = VideoAutoencoder(config)
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    state["scaling_factor"] = torch.tensor(float(metadata["scaling_factor"]))
    state["shift_factor"] = torch.tensor(float(metadata.get("shift_factor", "0.0")))
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


def shipped_weights(preset: str = "tiny") -> Path:
    """Path of the autoencoder weights that ship in the package (``vidgen/weights``)."""
    path = Path(str(resources.files("vidgen"))) / "weights" / f"vae-{preset}.safetensors"
    if not path.is_file():
        raise ConfigurationError(f"no shipped autoencoder weights for preset {preset!r}")
    return path


__all__ = [
    "AUTOENCODER_PRESETS",
    "WEIGHTS_FORMAT",
    "AutoencoderConfig",
    "AutoencoderOutput",
    "CausalConv3d",
    "Posterior",
    "VideoAutoencoder",
    "edge_loss",
    "load_autoencoder",
    "num_parameters",
    "psnr",
    "read_metadata",
    "save_autoencoder",
    "shipped_weights",
]
