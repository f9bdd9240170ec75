"""A Diffusion Transformer over spacetime latent patches (Sora-style), in one file.

Read top to bottom like facebookresearch/DiT's ``models.py``:

* the latent video (B, C, T, H, W) is cut into non-overlapping spacetime
  patches (pt, ph, pw) by a strided Conv3d -> N = T/pt * H/ph * W/pw tokens;
* factorised 3D sin-cos positions are added (computed for any grid, so
  resolution and duration vary by patch count);
* each block: adaLN-Zero modulated self-attention (full spacetime, or
  factorised space-then-time), cross-attention to the caption tokens, and an
  adaLN-Zero modulated MLP; the conditioning vector is timestep + pooled text;
* a final adaLN layer projects tokens back to patches, and they are folded back
  into the video. The output has the input's shape (the prediction: eps, v,
  x0 or flow velocity, whatever the trainer chose).

Attention is ``F.scaled_dot_product_attention``. Every residual branch starts
at zero (adaLN-Zero, zero-initialised cross-attention output), so an untrained
network is the identity on its token stream and training starts stable.
"""

from __future__ import annotations

from typing import Literal, Protocol

import attrs
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidgen.backends.text_encoder import TimestepEmbedder

AttentionMode = Literal["full", "factorised"]


@attrs.frozen
class DiTConfig:
    in_channels: int = 4  # latent channels (and output channels)
    cond_channels: int = 0  # extra input channels: masked frame conditioning (known, mask)
    patch: tuple[int, int, int] = (1, 2, 2)  # (pt, ph, pw)
    width: int = 192
    depth: int = 6
    heads: int = 6
    mlp_ratio: float = 4.0
    text_dim: int = 128
    attention: AttentionMode = "full"


DIT_PRESETS: dict[str, DiTConfig] = {
    "test": DiTConfig(width=32, depth=2, heads=2, text_dim=32),
    "tiny": DiTConfig(width=128, depth=4, heads=4),
    "small": DiTConfig(width=192, depth=6, heads=6),
    "base": DiTConfig(width=384, depth=12, heads=6),
}


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


# --- positions ------------------------------------------------------------------------------


def _sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(n,) positions -> (n, dim) sin/cos features."""
    half = dim // 2
    freqs = 1.0 / (10_000 ** (torch.arange(half, dtype=torch.float64) / half))
    angles = positions.double()[:, None] * freqs[None]  # (n, half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


def sincos_3d(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Factorised positions for a (t, h, w) token grid -> (t*h*w, dim).

    A quarter of the channels encode time, three eighths each height and width
    (each part even), concatenated; tokens are ordered t-major, then h, then w.
    """
    t, h, w = grid
    dt = 2 * (dim // 8)
    dh = 2 * ((dim - dt) // 4)
    dw = dim - dt - dh
    et = _sincos_1d(torch.arange(t), dt)[:, None, None].expand(t, h, w, dt)
    eh = _sincos_1d(torch.arange(h), dh)[None, :, None].expand(t, h, w, dh)
    ew = _sincos_1d(torch.arange(w), dw)[None, None, :].expand(t, h, w, dw)
    return torch.cat([et, eh, ew], dim=-1).reshape(t * h * w, dim)


# --- conditioning embedders -----------------------------------------------------------------




# --- attention ------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, h, d/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, h, N, d/h)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d/h)
        out: torch.Tensor = self.proj(y.transpose(1, 2).reshape(b, n, d))
        return out  # (B, N, D)


class CrossAttention(nn.Module):
    """Video tokens attend to caption tokens; padding positions are masked out."""

    def __init__(self, width: int, text_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(text_dim, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q(x).reshape(b, n, self.heads, hd).transpose(1, 2)  # (B, h, N, d/h)
        kv = self.kv(text).reshape(b, text.shape[1], 2, self.heads, hd)  # (B, L, 2, h, d/h)
        k, v = kv.permute(2, 0, 3, 1, 4)  # each (B, h, L, d/h)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        out: torch.Tensor = self.proj(y.transpose(1, 2).reshape(b, n, d))
        return out  # (B, N, D)


# --- the block ------------------------------------------------------------------------------


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention, cross-attention to text, adaLN-Zero MLP."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        d = config.width
        self.attention_mode = config.attention
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(d, config.heads)
        self.temporal_attn = (SelfAttention(d, config.heads)
                              if config.attention == "factorised" else None)
        self.norm_cross = nn.LayerNorm(d, eps=1e-6)
        self.cross = CrossAttention(d, config.text_dim, config.heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, d))
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def _self_attention(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        if self.temporal_attn is None:
            full: torch.Tensor = self.attn(x)  # full spacetime attention over all N tokens
            return full
        b, n, d = x.shape
        t, s = grid[0], grid[1] * grid[2]
        spatial: torch.Tensor = self.attn(x.reshape(b * t, s, d)).reshape(b, t, s, d)  # per frame
        xt = (x.reshape(b, t, s, d) + spatial).transpose(1, 2).reshape(b * s, t, d)
        temporal: torch.Tensor = self.temporal_attn(xt).reshape(b, s, t, d).transpose(1, 2)
        return (spatial + temporal).reshape(b, n, d)

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN(c).chunk(6, dim=1)  # (B, D)
        x = x + gate1[:, None] * self._self_attention(modulate(self.norm1(x), shift1, scale1),
                                                      grid)  # (B, N, D)
        x = x + self.cross(self.norm_cross(x), text, text_mask)  # (B, N, D)
        x = x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))  # (B, N, D)
        return x


class FinalLayer(nn.Module):
    def __init__(self, width: int, patch_values: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, patch_values)
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN(c).chunk(2, dim=1)  # (B, D)
        out: torch.Tensor = self.linear(modulate(self.norm(x), shift, scale))
        return out  # (B, N, pt*ph*pw*C)


# --- the model ------------------------------------------------------------------------------


class BlockHook(Protocol):
    """Runs the block stack in place of ``DiT.run_blocks`` (``vidgen.backends.dit.step_cache``):
    ``(dit, tokens (B, N, D), c (B, D), t (B,), text, text_mask, grid) -> tokens (B, N, D)``."""

    def __call__(self, dit: DiT, tokens: torch.Tensor, c: torch.Tensor, t: torch.Tensor,
                 text: torch.Tensor, text_mask: torch.Tensor,
                 grid: tuple[int, int, int]) -> torch.Tensor: ...



class DiT(nn.Module):
    """Denoiser: (noisy latent video, t, caption encoding) -> prediction of the same shape."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        if config.width % config.heads:
            raise ValueError(f"width {config.width} is not divisible by heads {config.heads}")
        self.config = config
        pt, ph, pw = config.patch
        self.patch_embed = nn.Conv3d(config.in_channels + config.cond_channels, config.width,
                                     config.patch,
                                     stride=config.patch)
        self.t_embed = TimestepEmbedder(config.width)
        self.text_pool = nn.Sequential(nn.Linear(config.text_dim, config.width), nn.SiLU(),
                                       nn.Linear(config.width, config.width))
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final = FinalLayer(config.width, pt * ph * pw * config.in_channels)
        self._positions: dict[tuple[int, int, int], torch.Tensor] = {}
        self.block_hook: BlockHook | None = None  # set while a sampler caches steps
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def basic(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(basic)
        w = self.patch_embed.weight.data  # like nn.Linear over the flattened patch
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.patch_embed.bias is not None:
            nn.init.zeros_(self.patch_embed.bias)
        for layer in (self.t_embed.mlp[0], self.t_embed.mlp[2]):
            assert isinstance(layer, nn.Linear)
            nn.init.normal_(layer.weight, std=0.02)
        zero: list[nn.Module] = [self.final.adaLN[-1], self.final.linear]
        for block in self.blocks:
            assert isinstance(block, DiTBlock)
            zero += [block.adaLN[-1], block.cross.proj]  # adaLN-Zero gates, cross-attn output
        for layer in zero:
            assert isinstance(layer, nn.Linear)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def positions(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        if grid not in self._positions:
            self._positions[grid] = sincos_3d(grid, self.config.width)
        return self._positions[grid].to(device)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        b = x.shape[0]
        (gt, gh, gw), (pt, ph, pw) = grid, self.config.patch
        c = self.config.in_channels
        x = x.reshape(b, gt, gh, gw, pt, ph, pw, c)  # (B, gt, gh, gw, pt, ph, pw, C)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, gt, pt, gh, ph, gw, pw)
        return x.reshape(b, c, gt * pt, gh * ph, gw * pw)  # (B, C, T, H, W)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor, text_pooled: torch.Tensor) -> torch.Tensor:
        _b, _c, frames, height, width = x.shape
        pt, ph, pw = self.config.patch
        if frames % pt or height % ph or width % pw:
            raise ValueError(f"latent (T,H,W)=({frames},{height},{width}) is not divisible by "
                             f"the patch {self.config.patch}")
        grid = (frames // pt, height // ph, width // pw)
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2).contiguous()  # (B, N, D)
        tokens = tokens + self.positions(grid, x.device)  # (B, N, D)
        c = self.t_embed(t) + self.text_pool(text_pooled)  # (B, D)
        if self.block_hook is None:
            tokens = self.run_blocks(tokens, c, text, text_mask, grid)  # (B, N, D)
        else:
            tokens = self.block_hook(self, tokens, c, t, text, text_mask, grid)  # (B, N, D)
        out = self.final(tokens, c)  # (B, N, pt*ph*pw*C)
        return self.unpatchify(out, grid)  # (B, C, T, H, W)

    def run_blocks(self, tokens: torch.Tensor, c: torch.Tensor, text: torch.Tensor,
                   text_mask: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """The transformer blocks: tokens (B, N, D) -> tokens (B, N, D)."""
        for block in self.blocks:
            tokens = block(tokens, c, text, text_mask, grid)  # (B, N, D)
        return tokens


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["DIT_PRESETS", "BlockHook", "DiT", "DiTBlock", "DiTConfig", "parameter_count",
           "sincos_3d"]
