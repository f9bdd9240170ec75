"""The causal video autoencoder: shapes, causality, determinism, weights on disk, training loop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from vidgen.errors import ConfigurationError
from vidgen.training.autoencoder import (
    AUTOENCODER_PRESETS,
    AutoencoderConfig,
    VideoAutoencoder,
    load_autoencoder,
    psnr,
    read_metadata,
    save_autoencoder,
    shipped_weights,
)
from vidgen.training.data import SceneDataset, clip_to_tensor
from vidgen.training.train_autoencoder import TrainConfig, latest_checkpoint, train, training_batch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def random_tiny() -> VideoAutoencoder:
    """The untrained tiny model with every parameter random (no zero-initialised branches, so
    every path of the network is live for the causality checks)."""
    torch.manual_seed(0)
    model = VideoAutoencoder(AUTOENCODER_PRESETS["tiny"]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    return model


@pytest.fixture(scope="module")
def shipped() -> VideoAutoencoder:
    return load_autoencoder(shipped_weights("tiny"))


@pytest.mark.parametrize(("frames", "height", "width"), [(16, 64, 64), (1, 64, 64),
                                                          (16, 32, 48), (1, 32, 48), (17, 32, 32)])
@torch.no_grad()
def test_shapes(random_tiny: VideoAutoencoder, frames: int, height: int, width: int) -> None:
    x = torch.rand(2, 3, frames, height, width) * 2 - 1
    z = random_tiny.encode_latents(x)
    latent_frames = {1: 1, 16: 9, 17: 9}[frames]  # 1 + ceil((T - 1) / 2)
    expected = (8, latent_frames, height // 4, width // 4)
    assert z.shape == (2, *expected) == (2, *random_tiny.config.latent_shape(frames, height, width))
    assert random_tiny.decode(z, num_frames=frames).shape == x.shape
    assert random_tiny.forward(x).reconstruction.shape == x.shape
    if frames in (1, 17):  # 1 + k*temporal_down frames round-trip without a hint
        assert random_tiny.decode(z).shape == x.shape


def test_latent_shape_of_a_training_clip() -> None:
    assert AUTOENCODER_PRESETS["tiny"].latent_shape(16, 64, 64) == (8, 9, 16, 16)


@torch.no_grad()
def test_bad_shapes_are_refused(random_tiny: VideoAutoencoder) -> None:
    with pytest.raises(ConfigurationError):
        random_tiny.encode(torch.zeros(1, 3, 4, 30, 32))
    with pytest.raises(ConfigurationError):
        random_tiny.encode(torch.zeros(1, 4, 4, 32, 32))
    z = torch.zeros(1, 8, 9, 8, 8)
    with pytest.raises(ConfigurationError):
        random_tiny.decode(z, num_frames=15)  # 9 latent frames decode to 16 or 17 frames
    with pytest.raises(ConfigurationError):
        AutoencoderConfig(spatial_down=8)


@torch.no_grad()
def test_encoder_is_causal(random_tiny: VideoAutoencoder) -> None:
    torch.manual_seed(1)
    x = torch.rand(1, 3, 16, 32, 32) * 2 - 1
    before = random_tiny.encode(x).mean  # (1, 8, 9, 8, 8)
    for k in (1, 6, 9, 15):
        changed = x.clone()
        changed[:, :, k] = torch.rand(1, 3, 32, 32) * 2 - 1
        after = random_tiny.encode(changed).mean
        first_affected = 1 + (k - 1) // 2  # latent j >= 1 covers frames 2j-1, 2j
        torch.testing.assert_close(after[:, :, :first_affected], before[:, :, :first_affected],
                                   rtol=0, atol=1e-6)
        assert not torch.allclose(after[:, :, first_affected], before[:, :, first_affected])


@torch.no_grad()
def test_first_frame_is_encoded_alone(random_tiny: VideoAutoencoder) -> None:
    torch.manual_seed(2)
    x = torch.rand(1, 3, 16, 32, 32) * 2 - 1
    video = random_tiny.encode_latents(x)
    image = random_tiny.encode_latents(x[:, :, :1])
    torch.testing.assert_close(image, video[:, :, :1], rtol=0, atol=1e-5)


@torch.no_grad()
def test_decoder_is_causal(random_tiny: VideoAutoencoder) -> None:
    torch.manual_seed(3)
    z = torch.randn(1, 8, 9, 8, 8)
    before = random_tiny.decode(z, num_frames=16)
    for j in (1, 4, 8):
        changed = z.clone()
        changed[:, :, j] = torch.randn(1, 8, 8, 8)
        after = random_tiny.decode(changed, num_frames=16)
        unaffected = 2 * j - 1  # latent j first shows in frame 2j-1
        torch.testing.assert_close(after[:, :, :unaffected], before[:, :, :unaffected],
                                   rtol=0, atol=1e-6)
        assert not torch.allclose(after[:, :, unaffected], before[:, :, unaffected])


@torch.no_grad()
def test_encode_is_deterministic_and_sampling_is_seeded(random_tiny: VideoAutoencoder) -> None:
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    assert torch.equal(random_tiny.encode_latents(x), random_tiny.encode_latents(x))
    a = random_tiny.encode_latents(x, sample=True, generator=torch.Generator().manual_seed(7))
    b = random_tiny.encode_latents(x, sample=True, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, random_tiny.encode_latents(x))


def test_save_load_round_trip(random_tiny: VideoAutoencoder, tmp_path: Path) -> None:
    random_tiny.scaling_factor.fill_(0.5)
    path = save_autoencoder(random_tiny, tmp_path / "vae.safetensors")
    loaded = load_autoencoder(path)
    assert loaded.config == random_tiny.config
    for key, value in random_tiny.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert read_metadata(path)["scaling_factor"] == "0.5"
    random_tiny.scaling_factor.fill_(1.0)
    assert AutoencoderConfig.from_dict(json.loads(json.dumps(random_tiny.config.to_dict()))) \
        == random_tiny.config


def test_shipped_weights_store_the_latent_scaling(shipped: VideoAutoencoder) -> None:
    metadata = read_metadata(shipped_weights("tiny"))
    assert float(metadata["scaling_factor"]) == pytest.approx(float(shipped.scaling_factor))
    assert float(shipped.scaling_factor) != 1.0
    assert shipped.config == AUTOENCODER_PRESETS["tiny"]
    assert shipped_weights("tiny").stat().st_size <= 4 * 1024 * 1024


@torch.no_grad()
def test_shipped_weights_reconstruct_a_heldout_clip(shipped: VideoAutoencoder) -> None:
    _, clip = SceneDataset(split="heldout", seed=99).item(0)
    x = clip_to_tensor(clip)[None]  # (1, 3, 16, 64, 64)
    z = shipped.encode_latents(x)
    assert 0.3 < float(z.std()) < 3.0  # scaled to about unit std
    x_hat = shipped.decode(z, num_frames=16)
    assert float(psnr(x_hat, x)) >= 28.0


def test_training_runs_resumes_and_is_deterministic(tmp_path: Path) -> None:
    config = TrainConfig(steps=2, batch_size=2, crop_size=16, crop_frames=(3, 4), cache_clips=3,
                         eval_clips=1, calibration_clips=2, checkpoint_every=1, log_every=1,
                         warmup_steps=1)
    cache = torch.randint(0, 256, (3, 16, 64, 64, 3), dtype=torch.uint8)
    assert torch.equal(training_batch(cache, config, 5), training_batch(cache, config, 5))
    train(config, tmp_path)
    found = latest_checkpoint(tmp_path)
    assert found is not None and found[0] == 2
    model = train(TrainConfig(**{**config.to_dict(), "steps": 3,
                                 "crop_frames": config.crop_frames}), tmp_path)
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"event": "resume", "step": 2, "checkpoint": "step-000002.safetensors"} in events
    assert [e["step"] for e in events if "loss" in e] == [1, 2, 3]
    assert float(model.scaling_factor) != 1.0
    assert len(list(tmp_path.glob("step-*.safetensors"))) == config.keep_checkpoints
