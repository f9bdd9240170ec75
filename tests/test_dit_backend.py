"""Trainer and DiT backend end to end on tiny models: train a few steps, resume, export, sample."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

from vidgen.backends.dit import DiTBackend
from vidgen.backends.latent import load_checkpoint
from vidgen.errors import ConfigurationError
from vidgen.training.train import TrainConfig, export, train
from vidgen.types import GenerationRequest, Inputs, Task, Video

from .conftest import DevKeys
from .tiny_models import tiny_recipe

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, TrainConfig]:
    root = tmp_path_factory.mktemp("dit")
    config = tiny_recipe(root)
    run = root / "run"
    assert train(config, run, max_minutes=None, threads=1) == 4
    weights = export(run, root / "dit-test.safetensors")
    return run, weights, config


def test_training_logs_checkpoints_and_resumes(trained: tuple[Path, Path, TrainConfig]) -> None:
    run, _weights, config = trained
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "train"]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert train(attrs.evolve(config, steps=6), run, threads=1) == 6
    resumed = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert {"event": "resume", "step": 4} in resumed


def test_a_changed_recipe_is_refused(trained: tuple[Path, Path, TrainConfig]) -> None:
    run, _weights, config = trained
    with pytest.raises(ConfigurationError, match="different recipe"):
        train(attrs.evolve(config, lr=1.0), run, threads=1)


def test_export_is_half_precision_and_rebuilds(trained: tuple[Path, Path, TrainConfig]) -> None:
    _run, weights, _config = trained
    model, metadata = load_checkpoint(weights)
    assert metadata["source"] == "vidgen train" and model.spec.preset == "test"
    from safetensors.torch import load_file

    assert {v.dtype for v in load_file(str(weights)).values() if v.is_floating_point()} == {
        torch.float16}


def test_backend_tasks_are_deterministic(trained: tuple[Path, Path, TrainConfig]) -> None:
    _run, weights, _config = trained
    backend = DiTBackend(weights=weights, steps=2)
    caps = backend.capabilities()
    assert caps.tasks == {Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO, Task.EXTEND, Task.EDIT,
                          Task.STYLIZE, Task.INPAINT, Task.CINEMAGRAPH, Task.LOOP,
                          Task.STORYBOARD}
    request = GenerationRequest(prompt="a red circle moving left", num_frames=8, height=32,
                                width=32, seed=3)
    a, b = backend.sample(request), backend.sample(request)
    assert a.frames.shape == (8, 32, 32, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames)
    image = np.full((32, 32, 3), 200, np.uint8)
    i2v = backend.sample(GenerationRequest(prompt="a blue square", task=Task.IMAGE_TO_VIDEO,
                                           num_frames=8, height=32, width=32,
                                           inputs=Inputs(image=image)))
    assert np.array_equal(i2v.frames[0], image)
    source = Video(np.zeros((9, 32, 32, 3), np.uint8), fps=8.0)
    ext = backend.sample(GenerationRequest(prompt="a blue square", task=Task.EXTEND,
                                           num_frames=12, height=32, width=32,
                                           inputs=Inputs(video=source)))
    assert ext.frames.shape == (12, 32, 32, 3)


def test_missing_weights_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no DiT weights"):
        DiTBackend(weights=tmp_path / "nope.safetensors")


def test_shipped_weights_generate_through_the_chain(dev_keys: DevKeys, tmp_path: Path) -> None:
    """The contract call: ``Pipeline.from_backend("dit")`` with the embedded weights, on CPU."""
    from vidgen.pipeline import Pipeline

    pipe = Pipeline.from_backend("dit", signer=dev_keys.signer())
    caps = pipe.backend.capabilities()
    assert caps.model_id == "vidgen/dit-small" and caps.default_frames == 16
    res = pipe.generate("a red circle moving right", num_frames=16, seed=0,
                        output=tmp_path / "dit.mp4")
    assert res.video.frames.shape == (16, 64, 64, 3) and res.path.is_file()
    request = GenerationRequest(prompt="a red circle moving right", seed=0)
    first, second = pipe.backend.sample(request), pipe.backend.sample(request)
    assert np.array_equal(first.frames, second.frames)  # same seed, same frames on CPU


def test_shipped_weights_follow_held_out_captions() -> None:
    """The shipped model draws what held-out captions say (colour, motion), not noise."""
    from vidgen.pipeline import DEFAULT_BACKEND
    from vidgen.training.evaluate import evaluate_backend

    assert DEFAULT_BACKEND == "dit"
    report = evaluate_backend(DiTBackend(), n=6, threads=1)
    scores = {m.name: m.value for m in report.metrics}
    assert scores["found"] == 1.0 and scores["color"] >= 5 / 6 and scores["direction"] >= 4 / 6


def test_words_outside_the_caption_language_are_refused(
        trained: tuple[Path, Path, TrainConfig]) -> None:
    from vidgen.errors import CaptionError

    backend = DiTBackend(weights=trained[1])
    with pytest.raises(CaptionError, match="elephant"):
        backend.sample(GenerationRequest(prompt="a purple elephant dancing", num_frames=8,
                                         height=32, width=32))
