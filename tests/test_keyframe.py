"""Masked frame conditioning, frame-stride training and the keyframe cascade, on tiny models."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

from vidgen.backends.keyframe import KeyframeBackend
from vidgen.backends.latent import load_checkpoint, with_frame_condition
from vidgen.errors import ConfigurationError
from vidgen.training.train import TrainConfig, export, sample_frame_masks, train
from vidgen.types import GenerationRequest, Inputs, Task

from .tiny_models import tiny_recipe

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cascade(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keyframe")
    base = tiny_recipe(root, steps=3, checkpoint_every=3)
    paths = {}
    train(base, root / "plain", threads=1)
    paths["plain"] = export(root / "plain", root / "plain.safetensors")
    for name, stride in (("keyframe", 2), ("interp", 1)):
        config = attrs.evolve(base, conditioning="frames", frame_stride=stride,
                              init=str(paths["plain"]))
        assert train(config, root / name, threads=1) == 3
        paths[name] = export(root / name, root / f"{name}.safetensors")
    return paths


def test_frame_masks_cover_the_four_kinds() -> None:
    masks = sample_frame_masks(400, 5, torch.Generator().manual_seed(0))[:, 0, :, 0, 0]
    rows = {tuple(int(v) for v in row) for row in masks}
    assert (0, 0, 0, 0, 0) in rows and (1, 0, 0, 0, 0) in rows and (1, 0, 1, 0, 1) in rows
    assert (1, 1, 0, 0, 0) in rows  # a prefix
    assert masks.shape == (400, 5) and set(masks.unique().tolist()) <= {0.0, 1.0}


def test_conditioning_channels() -> None:
    x = torch.randn(2, 4, 5, 3, 3)
    known = torch.randn(1, 4, 5, 3, 3)
    mask = torch.tensor([1.0, 0, 1, 0, 1]).reshape(1, 1, 5, 1, 1)
    out = with_frame_condition(x, known, mask)  # (2, 9, 5, 3, 3)
    assert out.shape == (2, 9, 5, 3, 3)
    assert torch.equal(out[:, :4], x) and torch.equal(out[:, 8, 1], torch.zeros(2, 3, 3))
    assert torch.equal(out[0, 4:8, 2], known[0, :, 2]) and torch.equal(out[1, 4:8, 1],
                                                                      torch.zeros(4, 3, 3))


def test_widened_model_starts_as_the_plain_one(cascade: dict[str, Path], tmp_path: Path) -> None:
    """--init onto a conditioned model zero-fills the new input weights: same predictions."""
    plain, _ = load_checkpoint(cascade["plain"])
    config = TrainConfig(preset="test", text_width=32, text_depth=1,
                         autoencoder=str(cascade["plain"].parent / "vae-test.safetensors"),
                         steps=0, batch_size=2, cache_clips=6, num_frames=8, height=32, width=32,
                         conditioning="frames", init=str(cascade["plain"]))
    train(config, tmp_path / "run", threads=1)
    widened, _ = load_checkpoint(tmp_path / "run" / "last.safetensors")
    x = torch.randn(1, 4, 5, 8, 8)
    t = torch.full((1,), 0.5)
    with torch.no_grad():
        text = plain.encode_text(["a red circle"])
        cond = with_frame_condition(x, torch.randn_like(x), torch.ones(1, 1, 5, 1, 1))
        assert torch.allclose(plain.denoiser(x, t, *text), widened.denoiser(cond, t, *text),
                              atol=1e-6)


def test_cascade_text_and_image_to_video(cascade: dict[str, Path]) -> None:
    backend = KeyframeBackend(weights=cascade["interp"], keyframe_weights=cascade["keyframe"],
                              steps=2)
    caps = backend.capabilities()
    assert caps.model_id == "vidgen/keyframe-test" and Task.IMAGE_TO_VIDEO in caps.tasks
    request = GenerationRequest(prompt="a red circle moving left", num_frames=8, height=32,
                                width=32, seed=3)
    first, second = backend.sample(request), backend.sample(request)
    assert first.frames.shape == (8, 32, 32, 3) and np.array_equal(first.frames, second.frames)
    image = np.full((32, 32, 3), 90, dtype=np.uint8)
    i2v = backend.sample(GenerationRequest(prompt="a red circle", task=Task.IMAGE_TO_VIDEO,
                                           num_frames=8, height=32, width=32,
                                           inputs=Inputs(image=image)))
    assert np.array_equal(i2v.frames[0], image)
    edited = backend.sample(GenerationRequest(  # an editing task, on the interpolation model
        prompt="a blue circle", task=Task.EDIT, strength=0.5,
        inputs=Inputs(video=first), height=32, width=32))
    assert edited.frames.shape == first.frames.shape


def test_roles_are_checked(cascade: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match="conditioning frames"):
        KeyframeBackend(weights=cascade["plain"], keyframe_weights=cascade["keyframe"])
    with pytest.raises(ConfigurationError, match="not a keyframe model"):
        KeyframeBackend(weights=cascade["interp"], keyframe_weights=cascade["interp"])
    with pytest.raises(ConfigurationError, match="no keyframe model"):
        KeyframeBackend(weights=cascade["interp"], keyframe_weights=Path("/nonexistent.st"))
