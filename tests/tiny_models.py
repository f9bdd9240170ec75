"""The tiny autoencoder and training recipe the latent-backend tests train in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vidgen.training.autoencoder import AutoencoderConfig, VideoAutoencoder, save_autoencoder
from vidgen.training.train import TrainConfig


def tiny_autoencoder() -> VideoAutoencoder:
    """An untrained 4x spatial, 2x temporal autoencoder, the same for every test (seed 0)."""
    torch.manual_seed(0)
    return VideoAutoencoder(AutoencoderConfig(base_channels=8, channel_multipliers=(1, 2, 2)))


def tiny_recipe(root: Path, autoencoder: VideoAutoencoder | None = None,
                **fields: Any) -> TrainConfig:
    """Saves the autoencoder to ``root`` and returns a few-step recipe on 8x32x32 clips."""
    path = save_autoencoder(autoencoder if autoencoder is not None else tiny_autoencoder(),
                            root / "vae-test.safetensors")
    recipe: dict[str, Any] = {
        "preset": "test", "text_width": 32, "text_depth": 1, "autoencoder": str(path),
        "steps": 4, "batch_size": 2, "cache_clips": 6, "num_frames": 8, "height": 32,
        "width": 32, "warmup": 1, "checkpoint_every": 2, "log_every": 1}
    return TrainConfig(**{**recipe, **fields})
