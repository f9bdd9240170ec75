"""STUNet model and backend: any clip size, zero start, gradients, presets, train -> sample."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

from vidgen.backends.dit import DiTBackend
from vidgen.backends.latent import ModelSpec, TextConditionedDenoiser, save_checkpoint
from vidgen.backends.stunet import STUNET_PRESETS, STUNet, STUNetBackend, STUNetConfig
from vidgen.backends.stunet.backend import DEFAULT_WEIGHTS
from vidgen.backends.stunet.model import parameter_count
from vidgen.backends.text_encoder import CaptionEncoder, CaptionEncoderConfig
from vidgen.errors import ConfigurationError
from vidgen.paths import weights_dir
from vidgen.training.train import TrainConfig, export, train
from vidgen.types import GenerationRequest, Inputs, Task, Video

from .tiny_models import tiny_recipe

torch.set_num_threads(1)

TEST_CONFIG = attrs.evolve(STUNET_PRESETS["test"], in_channels=8)


@pytest.fixture(scope="module")
def encoder() -> CaptionEncoder:
    torch.manual_seed(0)
    return CaptionEncoder(CaptionEncoderConfig(width=32, depth=1, heads=2))


def _perturb(model: STUNet) -> STUNet:
    """Jitter every weight (the zero output conv too) so the tests see a non-trivial network."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


# --- the model ------------------------------------------------------------------------------


def test_untrained_model_predicts_zero(encoder: CaptionEncoder) -> None:
    torch.manual_seed(0)
    model = STUNet(TEST_CONFIG)
    text = encoder(["a red circle", "two blue squares moving up"])
    out = model(torch.randn(2, 8, 9, 16, 16), torch.rand(2), text.tokens, text.mask, text.pooled)
    assert out.shape == (2, 8, 9, 16, 16) and torch.count_nonzero(out) == 0


@pytest.mark.parametrize("shape", [(9, 16, 16), (1, 16, 16), (5, 8, 8), (17, 8, 8),
                                   (9, 24, 24), (3, 32, 32), (2, 12, 20), (4, 5, 3)])
def test_output_shape_follows_input(encoder: CaptionEncoder, shape: tuple[int, ...]) -> None:
    """Odd and even sizes in time and space round-trip through the U (9 -> 5 -> 3 -> 5 -> 9)."""
    model = _perturb(STUNet(TEST_CONFIG))
    text = encoder(["a red circle moving left", "two blue squares"])
    x = torch.randn(2, 8, *shape)
    out = model(x, torch.rand(2), text.tokens, text.mask, text.pooled)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert out.abs().mean() > 0


def test_gradients_reach_every_parameter(encoder: CaptionEncoder) -> None:
    """With a non-zero output conv, one step gives every weight a gradient (no dead branch)."""
    torch.manual_seed(0)
    model = STUNet(TEST_CONFIG)
    with torch.no_grad():
        model.conv_out.weight.normal_(std=0.02)
    text = encoder(["a red circle", "two blue squares moving up"])
    x, target = torch.randn(2, 8, 5, 8, 8), torch.randn(2, 8, 5, 8, 8)
    t = torch.rand(2)
    out = model(x, t, text.tokens.detach(), text.mask, text.pooled.detach())
    loss = torch.nn.functional.mse_loss(out, target)
    loss.backward()  # type: ignore[no-untyped-call]
    dead = [name for name, p in model.named_parameters()
            if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum()]
    assert dead == []
    torch.optim.SGD(model.parameters(), lr=1e-2).step()
    after = model(x, t, text.tokens, text.mask, text.pooled)
    assert torch.nn.functional.mse_loss(after, target) < loss


def test_from_untrained_the_first_step_moves_the_output(encoder: CaptionEncoder) -> None:
    """Only conv_out is zero: one optimiser step from the untrained network makes it predict."""
    torch.manual_seed(0)
    model = STUNet(TEST_CONFIG)
    text = encoder(["a red circle"])
    x = torch.randn(1, 8, 5, 8, 8)
    loss = model(x, torch.rand(1), text.tokens, text.mask, text.pooled).sub(x).square().mean()
    loss.backward()  # type: ignore[no-untyped-call]
    zero = [n for n, p in model.named_parameters() if p.dim() > 1 and torch.count_nonzero(p) == 0]
    assert zero == ["conv_out.weight"]  # (biases start at zero)
    assert model.conv_out.weight.grad is not None and model.conv_out.weight.grad.abs().sum() > 0


def test_caption_time_and_padding(encoder: CaptionEncoder) -> None:
    """The caption and t change the prediction; padding tokens in a batch do not."""
    model = _perturb(STUNet(TEST_CONFIG)).eval()
    x = torch.randn(1, 8, 5, 8, 8)
    red, blue = encoder(["a red circle"]), encoder(["a blue triangle falling"])
    base = model(x, torch.tensor([0.5]), red.tokens, red.mask, red.pooled)
    assert not torch.allclose(base, model(x, torch.tensor([0.5]), blue.tokens, blue.mask,
                                          blue.pooled))
    assert not torch.allclose(base, model(x, torch.tensor([0.9]), red.tokens, red.mask,
                                          red.pooled))
    batch = encoder(["a red circle", "two small green squares moving up and a white star"])
    out_batch = model(x.expand(2, -1, -1, -1, -1), torch.tensor([0.5, 0.5]), batch.tokens,
                      batch.mask, batch.pooled)[:1]
    torch.testing.assert_close(base, out_batch, atol=1e-5, rtol=1e-4)


def test_frames_are_not_interchangeable(encoder: CaptionEncoder) -> None:
    """Temporal convs and frame positions: reversing the input does not just reverse the output."""
    model = _perturb(STUNet(TEST_CONFIG)).eval()
    text = encoder(["a red circle"])
    x, t = torch.randn(1, 8, 5, 8, 8), torch.tensor([0.5])
    out = model(x, t, text.tokens, text.mask, text.pooled)
    flipped = model(x.flip(2), t, text.tokens, text.mask, text.pooled).flip(2)
    assert not torch.allclose(out, flipped, atol=1e-4)


def test_preset_sizes() -> None:
    """Denoiser alone, for 8 latent channels and a 128-wide caption encoder (the defaults)."""
    counts = {name: parameter_count(STUNet(attrs.evolve(c, in_channels=8, text_dim=128)))
              for name, c in STUNET_PRESETS.items() if name != "test"}
    assert 1.2e6 <= counts["tiny"] <= 2.5e6
    assert 4.0e6 <= counts["small"] <= 6.0e6
    assert parameter_count(STUNet(TEST_CONFIG)) < 0.5e6


def test_bad_configs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="groups"):
        STUNet(STUNetConfig(channels=(12, 24), groups=8))
    with pytest.raises(ValueError, match="attention_levels"):
        STUNet(STUNetConfig(channels=(16, 32), attention_levels=(2,)))
    with pytest.raises(ConfigurationError, match="unknown STUNet preset"):
        TextConditionedDenoiser(ModelSpec(architecture="stunet", preset="huge"))


def test_spec_overrides_rebuild() -> None:
    spec = ModelSpec(architecture="stunet", preset="test", latent_channels=4,
                     text=CaptionEncoderConfig(width=32, depth=1, heads=2),
                     overrides={"channels": [8, 16], "attention_levels": [1]})
    denoiser = TextConditionedDenoiser(spec).denoiser
    assert isinstance(denoiser, STUNet)
    assert denoiser.config.channels == (8, 16) and denoiser.config.in_channels == 4


# --- trainer and backend --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, TrainConfig]:
    root = tmp_path_factory.mktemp("stunet")
    config = tiny_recipe(root, architecture="stunet")
    run = root / "run"
    assert train(config, run, max_minutes=None, threads=1) == 4
    weights = export(run, root / "stunet-test.safetensors")
    return run, weights, config


def test_training_runs(trained: tuple[Path, Path, TrainConfig]) -> None:
    run, _weights, _config = trained
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "train"]
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_backend_tasks_are_deterministic(trained: tuple[Path, Path, TrainConfig]) -> None:
    _run, weights, _config = trained
    backend = STUNetBackend(weights=weights, steps=2)
    caps = backend.capabilities()
    assert caps.tasks == {Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO, Task.EXTEND, Task.EDIT,
                          Task.STYLIZE, Task.INPAINT, Task.CINEMAGRAPH, Task.LOOP,
                          Task.STORYBOARD}
    assert caps.model_id == "vidgen/stunet-test" and caps.size_multiple == 4  # the VAE's factor
    request = GenerationRequest(prompt="a red circle moving left", num_frames=8, height=32,
                                width=32, seed=3)
    a, b = backend.sample(request), backend.sample(request)
    assert a.frames.shape == (8, 32, 32, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames)
    odd = backend.sample(attrs.evolve(request, num_frames=5, height=36, width=20))
    assert odd.frames.shape == (5, 36, 20, 3)  # latent (3, 9, 5): no patch grid to fit
    image = np.full((32, 32, 3), 200, np.uint8)
    i2v_request = GenerationRequest(prompt="a blue square", task=Task.IMAGE_TO_VIDEO,
                                    num_frames=8, height=32, width=32, inputs=Inputs(image=image))
    i2v = backend.sample(i2v_request)
    assert np.array_equal(i2v.frames[0], image)
    assert np.array_equal(i2v.frames, backend.sample(i2v_request).frames)
    source = Video(np.zeros((9, 32, 32, 3), np.uint8), fps=8.0)
    ext_request = GenerationRequest(prompt="a blue square", task=Task.EXTEND, num_frames=12,
                                    height=32, width=32, inputs=Inputs(video=source))
    ext = backend.sample(ext_request)
    assert ext.frames.shape == (12, 32, 32, 3)
    assert np.array_equal(ext.frames, backend.sample(ext_request).frames)


def test_architecture_mismatch_is_refused(trained: tuple[Path, Path, TrainConfig],
                                          tmp_path: Path) -> None:
    _run, weights, _config = trained
    with pytest.raises(ConfigurationError, match=r"holds a 'stunet' model.*'dit' backend"):
        DiTBackend(weights=weights)
    dit = TextConditionedDenoiser(ModelSpec(architecture="dit", preset="test",
                                            text=CaptionEncoderConfig(width=32, depth=1),
                                            autoencoder="vae-test.safetensors"))
    path = save_checkpoint(dit, tmp_path / "dit-test.safetensors")
    with pytest.raises(ConfigurationError, match=r"holds a 'dit' model.*'stunet' backend"):
        STUNetBackend(weights=path)


def test_missing_weights_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no STUNet weights"):
        STUNetBackend(weights=tmp_path / "nope.safetensors")
    if (weights_dir() / DEFAULT_WEIGHTS).is_file():
        pytest.skip("stunet weights ship now")
    with pytest.raises(ConfigurationError, match=r"none ship yet.*vidgen train --backend stunet"):
        STUNetBackend()


def test_listed_with_its_error_while_no_weights_ship(capsys: pytest.CaptureFixture[str]) -> None:
    from vidgen.cli import main

    assert main(["backends", "--json"]) == 0
    backends = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
    assert {"scene", "dit", "stunet"} <= set(backends)
    assert backends["scene"]["error"] is None
    stunet = backends["stunet"]
    if not (weights_dir() / DEFAULT_WEIGHTS).is_file():
        assert stunet["capabilities"] is None and "none ship yet" in stunet["error"]
