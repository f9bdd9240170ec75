"""A Space-Time U-Net over the whole latent clip (Lumiere-style STUNet), in one file.

Where the DiT cuts the clip into patches and runs a transformer over tokens,
the STUNet is a convolutional U-Net that shrinks the clip in space *and* time,
reasons about motion at the coarse levels, and grows it back, so the whole
clip is denoised in one pass (no keyframes, no temporal super-resolution).
Read top to bottom:

* ``conv_in`` lifts the latent (B, C, T, H, W) to ``channels[0]`` features;
* each level of the encoder is ``blocks`` factorised (2+1)D residual blocks:
  GroupNorm, SiLU, a spatial Conv3d (1, 3, 3) then a temporal Conv3d (3, 1, 1),
  twice, with the conditioning vector (timestep + pooled caption) applied as a
  FiLM scale and shift after the second GroupNorm;
* between levels a stride-2 Conv3d (kernel 3, padding 1) halves space and
  time, rounding up: a (9, 16, 16) latent goes 9 -> 5 -> 3 frames and
  16 -> 8 -> 4 pixels, and one frame stays one frame, so any T, H, W works;
* the coarse levels (``attention_levels``) and the middle add an attention
  block after their residual blocks: spatial self-attention within each frame,
  temporal self-attention across frames at each position (with sinusoidal
  frame positions), and cross-attention to the caption tokens with the padding
  mask, all ``F.scaled_dot_product_attention``;
* the decoder mirrors the encoder: upsample by interpolation to the exact size
  of the skip connection (so odd sizes round-trip), a Conv3d, concatenate the
  skip, residual blocks, attention where the encoder had it;
* GroupNorm, SiLU and a zero-initialised ``conv_out`` give the prediction
  (eps, v, x0 or flow velocity, whatever the trainer chose) in the input's shape.

Initialisation: ``conv_out`` is zero, so an untrained network predicts
exactly 0. The last layer of every residual branch (the second conv of a
block, the output projection of each attention) and the FiLM projections start
at a tenth of their default scale (``BRANCH_GAIN``), so each block is near the
identity and FiLM near scale 1, shift 0; yet no weight but ``conv_out`` is
zero, so once it moves, gradients reach every parameter. Temporal convolutions
start as the identity (Dirac), so a fresh (2+1)D pair is its spatial conv
applied frame by frame, the inflation trick of Make-A-Video and Lumiere.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidgen.backends.text_encoder import TimestepEmbedder, sinusoidal_embedding

BRANCH_GAIN = 0.1  # initial scale of the last layer of each residual branch


@attrs.frozen
class STUNetConfig:
    in_channels: int = 4  # latent channels (and output channels)
    cond_channels: int = 0  # extra input channels: masked frame conditioning (known, mask)
    channels: tuple[int, ...] = (48, 80, 144)  # width of each level, finest first
    blocks: int = 1  # residual blocks per level, on each side of the U
    attention_levels: tuple[int, ...] = (1, 2)  # levels (0 = finest) with attention blocks
    heads: int = 4
    groups: int = 8  # GroupNorm groups
    cond_dim: int = 192  # width of the timestep + caption conditioning vector
    text_dim: int = 128


STUNET_PRESETS: dict[str, STUNetConfig] = {
    "test": STUNetConfig(channels=(16, 32, 32), heads=2, groups=4, cond_dim=32, text_dim=32),
    "tiny": STUNetConfig(channels=(32, 48, 72), cond_dim=128),  # 1.5M (+0.4M text encoder)
    "small": STUNetConfig(channels=(48, 80, 144), cond_dim=192),  # 5.0M, as the DiT small
}


# --- conditioning embedders -----------------------------------------------------------------




# --- the (2+1)D residual block --------------------------------------------------------------


class Conv2Plus1d(nn.Sequential):
    """A 3x3x3 convolution factorised into a spatial (1, 3, 3) and a temporal (3, 1, 1) one.

    The weights are Conv3d's (checkpoint keys ``0.weight``, ``1.weight``), but the forward
    runs them as 2-D convolutions: frames folded into the batch for the spatial one, pixels
    flattened into a width for the temporal one. Same result (to float rounding); 2-D kernels
    are the better tuned ones (19% less time at the fine level on CPU: benchmarks/stunet_step.py).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, (1, 3, 3), padding=(0, 1, 1)),  # per frame
            nn.Conv3d(out_channels, out_channels, (3, 1, 1), padding=(1, 0, 0)),  # per pixel
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial, temporal = self[0], self[1]
        assert isinstance(spatial, nn.Conv3d) and isinstance(temporal, nn.Conv3d)
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        y = F.conv2d(y, spatial.weight.squeeze(2), spatial.bias, padding=1)  # (B*T, C', H, W)
        c_out = y.shape[1]
        y = y.reshape(b, t, c_out, h, w).transpose(1, 2).reshape(b, c_out, t, h * w)
        y = F.conv2d(y, temporal.weight.squeeze(-1), temporal.bias, padding=(1, 0))  # (B,C',T,HW)
        return y.reshape(b, c_out, t, h, w)  # (B, C', T, H, W)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, (2+1)D conv; GroupNorm, FiLM(c), SiLU, (2+1)D conv; plus the input."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = Conv2Plus1d(in_channels, out_channels)
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * out_channels))
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.conv2 = Conv2Plus1d(out_channels, out_channels)
        self.skip = (nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, T, H, W)
        scale, shift = self.film(c)[:, :, None, None, None].chunk(2, dim=1)  # (B, C_out, 1, 1, 1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)  # (B, C_out, T, H, W)
        h = self.conv2(h)  # (B, C_out, T, H, W)
        out: torch.Tensor = self.skip(x) + h
        return out  # (B, C_out, T, H, W)


# --- attention ------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over a token axis: (B', N, D) -> (B', N, D) residual."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        h = self.norm(x)  # (B', N, D)
        if positions is not None:
            h = h + positions.to(h.dtype)  # (B', N, D) + (N, D)
        qkv = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads)  # (B', N, 3, h, d/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B', h, N, d/h)
        y = F.scaled_dot_product_attention(q, k, v)  # (B', h, N, d/h)
        out: torch.Tensor = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return out  # (B', N, D)


class CrossAttention(nn.Module):
    """Video tokens attend to caption tokens; padding positions are masked out."""

    def __init__(self, width: int, text_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(text_dim, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q(self.norm(x)).reshape(b, n, self.heads, hd).transpose(1, 2)  # (B, h, N, d/h)
        kv = self.kv(text).reshape(b, text.shape[1], 2, self.heads, hd)  # (B, L, 2, h, d/h)
        k, v = kv.permute(2, 0, 3, 1, 4)  # each (B, h, L, d/h)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        out: torch.Tensor = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return out  # (B, N, D)


class SpaceTimeAttention(nn.Module):
    """Spatial self-attention per frame, temporal self-attention per position, then text."""

    def __init__(self, width: int, text_dim: int, heads: int) -> None:
        super().__init__()
        self.spatial = SelfAttention(width, heads)
        self.temporal = SelfAttention(width, heads)
        self.cross = CrossAttention(width, text_dim, heads)

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor
                ) -> torch.Tensor:
        b, d, t, h, w = x.shape
        s = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, d)  # (B*T, H*W, D): one row a frame
        s = self.spatial(s)  # (B*T, H*W, D)
        v = s.reshape(b, t, h * w, d).transpose(1, 2).reshape(b * h * w, t, d)  # (B*H*W, T, D)
        frames = sinusoidal_embedding(torch.arange(t, device=x.device), d)  # (T, D)
        v = self.temporal(v, frames)  # (B*H*W, T, D): one row a position
        v = v.reshape(b, h * w, t, d).transpose(1, 2).reshape(b, t * h * w, d)  # (B, N, D)
        v = self.cross(v, text, text_mask)  # (B, N, D)
        out: torch.Tensor = v.reshape(b, t, h, w, d).permute(0, 4, 1, 2, 3)
        return out  # (B, D, T, H, W)


# --- resampling -----------------------------------------------------------------------------


class Downsample(nn.Module):
    """Halve T, H and W (rounding up) with a stride-2 Conv3d: 9 -> 5, 16 -> 8, 1 -> 1."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return out  # (B, C_out, ceil(T/2), ceil(H/2), ceil(W/2))


class Upsample(nn.Module):
    """Trilinear interpolation to the skip connection's exact (T, H, W), then a Conv3d."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
        # In float32 even under bf16 autocast: the backward of trilinear upsampling scatters
        # with atomic adds, which are slow (and lossy) in bf16 on GPUs.
        x = F.interpolate(x.float(), size=size, mode="trilinear",
                          align_corners=False).to(x.dtype)  # (B, C, *size)
        out: torch.Tensor = self.conv(x)
        return out  # (B, C_out, *size)


# --- one level of the U ---------------------------------------------------------------------


class Level(nn.Module):
    """Residual blocks at one resolution, then (at coarse levels) a space-time attention block."""

    def __init__(self, in_channels: int, width: int, config: STUNetConfig,
                 attention: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(in_channels if i == 0 else width, width, config.cond_dim, config.groups)
            for i in range(config.blocks))
        self.attention = (SpaceTimeAttention(width, config.text_dim, config.heads)
                          if attention else None)

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, c)  # (B, D, T, H, W)
        if self.attention is not None:
            x = self.attention(x, text, text_mask)  # (B, D, T, H, W)
        return x


# --- the model ------------------------------------------------------------------------------


class STUNet(nn.Module):
    """Denoiser: (noisy latent video, t, caption encoding) -> prediction of the same shape."""

    def __init__(self, config: STUNetConfig) -> None:
        super().__init__()
        ch = config.channels
        if not ch or config.blocks < 1:
            raise ValueError("a STUNet needs at least one level and one block per level")
        if any(c % config.groups for c in ch):
            raise ValueError(f"channels {ch} are not all divisible by groups {config.groups}")
        if any(not 0 <= i < len(ch) for i in config.attention_levels):
            raise ValueError(f"attention_levels {config.attention_levels} are not levels of "
                             f"{len(ch)}")
        if any(ch[i] % config.heads for i in (*config.attention_levels, len(ch) - 1)):
            raise ValueError(f"attention widths are not all divisible by heads {config.heads}")
        self.config = config
        attend = set(config.attention_levels)
        self.t_embed = TimestepEmbedder(config.cond_dim)
        self.text_pool = nn.Sequential(nn.Linear(config.text_dim, config.cond_dim), nn.SiLU(),
                                       nn.Linear(config.cond_dim, config.cond_dim))
        self.conv_in = nn.Conv3d(config.in_channels + config.cond_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(Level(w, w, config, i in attend) for i, w in enumerate(ch))
        self.downsample = nn.ModuleList(Downsample(ch[i], ch[i + 1]) for i in range(len(ch) - 1))
        self.mid = nn.ModuleList([ResBlock(ch[-1], ch[-1], config.cond_dim, config.groups),
                                  SpaceTimeAttention(ch[-1], config.text_dim, config.heads),
                                  ResBlock(ch[-1], ch[-1], config.cond_dim, config.groups)])
        self.upsample = nn.ModuleList(Upsample(ch[i + 1], ch[i]) for i in range(len(ch) - 1))
        self.up = nn.ModuleList(Level(2 * w, w, config, i in attend) for i, w in enumerate(ch))
        self.norm_out = nn.GroupNorm(config.groups, ch[0])
        self.conv_out = nn.Conv3d(ch[0], config.in_channels, 3, padding=1)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv3d):
                if module.kernel_size == (3, 1, 1):  # temporal: the identity across frames
                    nn.init.dirac_(module.weight)
                else:  # He init for the SiLU that precedes or follows
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                assert module.bias is not None
                nn.init.zeros_(module.bias)
        for layer in (self.t_embed.mlp[0], self.t_embed.mlp[2]):
            assert isinstance(layer, nn.Linear)
            nn.init.normal_(layer.weight, std=0.02)
        with torch.no_grad():  # residual branches start near the identity
            for module in self.modules():
                if isinstance(module, ResBlock):
                    spatial = module.conv2[0]
                    assert isinstance(spatial, nn.Conv3d)
                    spatial.weight.mul_(BRANCH_GAIN)  # the spatial conv before the Dirac one
                    film = module.film[1]
                    assert isinstance(film, nn.Linear)
                    film.weight.mul_(BRANCH_GAIN)  # FiLM starts as scale 1, shift 0 (nearly)
                elif isinstance(module, SelfAttention | CrossAttention):
                    module.proj.weight.mul_(BRANCH_GAIN)
        nn.init.zeros_(self.conv_out.weight)  # an untrained network predicts exactly 0
        assert self.conv_out.bias is not None
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor, text_pooled: torch.Tensor) -> torch.Tensor:
        c = self.t_embed(t) + self.text_pool(text_pooled)  # (B, Dc)
        h = self.conv_in(x)  # (B, ch[0], T, H, W)
        skips: list[torch.Tensor] = []
        for i, level in enumerate(self.down):
            h = level(h, c, text, text_mask)  # (B, ch[i], T_i, H_i, W_i)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)  # (B, ch[i+1], ceil(T_i/2), ceil(H_i/2), ceil(W_i/2))
        h = self.mid[0](h, c)  # (B, ch[-1], T_L, H_L, W_L)
        h = self.mid[1](h, text, text_mask)  # (B, ch[-1], T_L, H_L, W_L)
        h = self.mid[2](h, c)  # (B, ch[-1], T_L, H_L, W_L)
        for i in reversed(range(len(self.up))):
            skip = skips[i]  # (B, ch[i], T_i, H_i, W_i)
            if i < len(self.upsample):
                h = self.upsample[i](h, (skip.shape[2], skip.shape[3], skip.shape[4]))
            h = torch.cat([h, skip], dim=1)  # (B, 2 ch[i], T_i, H_i, W_i)
            h = self.up[i](h, c, text, text_mask)  # (B, ch[i], T_i, H_i, W_i)
        out: torch.Tensor = self.conv_out(F.silu(self.norm_out(h)))
        return out  # (B, C, T, H, W)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["STUNET_PRESETS", "STUNet", "STUNetConfig", "parameter_count"]
