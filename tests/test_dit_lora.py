"""LoRA for the native DiT: train on a tiny base, export, load (merged), refuse strangers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

from vidgen.backends.base import load_backend
from vidgen.backends.dit import DiTBackend
from vidgen.backends.latent import (
    ModelSpec,
    TextConditionedDenoiser,
    load_checkpoint,
    save_checkpoint,
)
from vidgen.backends.lora import (
    DEFAULT_TARGETS,
    BaseModel,
    LoRAConfig,
    LoRALinear,
    apply_lora,
    file_digest,
    freeze_all_but_lora,
    inject_lora,
    lora_modules,
    merge_lora,
    read_lora,
    set_lora_scale,
    unmerge_lora,
    write_lora,
)
from vidgen.backends.text_encoder import CaptionEncoderConfig
from vidgen.cli import main
from vidgen.errors import ConfigurationError
from vidgen.training.train import export, lora_recipe, train
from vidgen.types import GenerationRequest

from .tiny_models import tiny_recipe

torch.set_num_threads(1)

REQUEST = GenerationRequest(prompt="a red circle moving left", num_frames=8, height=32,
                            width=32, seed=3)
CLIP = {"num_frames": 8, "height": 32, "width": 32, "cache_clips": 6, "batch_size": 2,
        "warmup": 1, "checkpoint_every": 2, "log_every": 1}


@attrs.frozen
class Trained:
    root: Path
    base: Path  # a tiny DiT checkpoint
    lora: Path  # a LoRA trained on it
    run: Path  # the LoRA run's directory


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("lora")
    train(tiny_recipe(root, lr=3e-2), root / "base-run", threads=1)
    base = export(root / "base-run", root / "dit-test.safetensors")
    config = lora_recipe(str(base), 4, steps=4, lr=3e-2, **CLIP)
    run = root / "lora-run"
    assert train(config, run, threads=1) == 4
    return Trained(root, base, export(run, root / "style.lora.safetensors"), run)


def _outputs(model: TextConditionedDenoiser) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, model.spec.latent_channels, 3, 8, 8, generator=g)
    with torch.no_grad():
        out: torch.Tensor = model(x, torch.tensor([0.3, 0.8]),
                                  ["a red circle", "a blue star falling"])
    return out


def _base(path: Path) -> tuple[TextConditionedDenoiser, BaseModel]:
    model, _ = load_checkpoint(path)
    return model, BaseModel(digest=file_digest(path), architecture="dit", preset="test")


def test_a_fresh_adapter_changes_nothing_and_only_adapters_train() -> None:
    torch.manual_seed(0)
    model = TextConditionedDenoiser(ModelSpec(architecture="dit", preset="test",
                                              text=CaptionEncoderConfig(width=32, depth=1)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # every block contributes
    before = _outputs(model)
    adapters = inject_lora(model, LoRAConfig(rank=2, alpha=4, targets=DEFAULT_TARGETS["dit"]))
    # 2 blocks x (self-attn qkv, proj; cross q, kv, proj; mlp in, out)
    assert len(adapters) == 14 and all(isinstance(m, LoRALinear) for m in adapters.values())
    assert torch.equal(_outputs(model), before)
    trainable = freeze_all_but_lora(model)
    assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in trainable}
    assert len(trainable) == 28
    with pytest.raises(ConfigurationError, match="already has LoRA"):
        inject_lora(model, LoRAConfig(rank=2, alpha=4, targets=DEFAULT_TARGETS["dit"]))
    stunet = TextConditionedDenoiser(ModelSpec(architecture="stunet", preset="test",
                                               text=CaptionEncoderConfig(width=32, depth=1)))
    assert len(inject_lora(stunet, LoRAConfig(rank=2, alpha=2,
                                              targets=DEFAULT_TARGETS["stunet"]))) > 0
    with pytest.raises(ConfigurationError, match="no Linear layer matches"):
        inject_lora(TextConditionedDenoiser(model.spec),
                    LoRAConfig(rank=2, alpha=2, targets=("denoiser.nothing.*",)))


def test_the_lora_file_records_its_base_and_run(trained: Trained) -> None:
    lora = read_lora(trained.lora)
    assert lora.config.rank == 4 and lora.config.alpha == 4.0
    assert lora.base == BaseModel(digest=file_digest(trained.base), architecture="dit",
                                  preset="test", name="dit-test.safetensors")
    assert lora.metadata["source"] == "vidgen train --lora" and lora.metadata["step"] == "4"
    assert len(lora.modules()) == 14 and lora.digest == file_digest(trained.lora)
    assert any(float(v.abs().max()) > 0 for k, v in lora.state.items() if k.endswith(".up"))


def _latents(backend: DiTBackend) -> torch.Tensor:
    """What the sampler returns (the untrained test autoencoder decodes everything to grey)."""
    return backend._sample_latents(REQUEST.prompt, (1, 4, 5, 8, 8), 3, None, None, 3, 3.0)


def test_a_trained_lora_changes_outputs_and_scale_zero_is_the_base(trained: Trained) -> None:
    plain = DiTBackend(weights=trained.base, steps=3)
    adapted = DiTBackend(weights=trained.base, steps=3, lora=trained.lora)
    off = DiTBackend(weights=trained.base, steps=3, lora=trained.lora, lora_scale=0.0)
    assert not torch.equal(_outputs(adapted.model), _outputs(plain.model))
    assert torch.equal(_outputs(off.model), _outputs(plain.model))
    z = _latents(plain)
    assert float((_latents(adapted) - z).abs().max()) > 1e-3
    assert torch.equal(_latents(off), z)
    video = adapted.sample(REQUEST)
    assert video.frames.shape == (8, 32, 32, 3) and video.frames.dtype == np.uint8


def test_merged_equals_unmerged_and_unmerge_restores(trained: Trained) -> None:
    model, base = _base(trained.base)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    plain = _outputs(model)
    apply_lora(model, read_lora(trained.lora), base, scale=0.0, merge=False)
    assert torch.equal(_outputs(model), plain)  # scale 0, unmerged: the base exactly
    set_lora_scale(model, 0.7)
    unmerged = _outputs(model)
    merge_lora(model, 0.7)
    merged = _outputs(model)
    assert not torch.equal(unmerged, plain)
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-5)
    unmerge_lora(model)
    torch.testing.assert_close(_outputs(model), unmerged, rtol=1e-4, atol=1e-5)
    for name, m in lora_modules(model).items():
        torch.testing.assert_close(m.base.weight, original[f"{name}.weight"], rtol=0, atol=1e-6)
    set_lora_scale(model, 0.0)
    torch.testing.assert_close(_outputs(model), plain, rtol=1e-4, atol=1e-5)


def test_model_version_names_the_lora(trained: Trained) -> None:
    lora_digest = file_digest(trained.lora)
    base_digest = file_digest(trained.base)
    caps = DiTBackend(weights=trained.base, lora=trained.lora).capabilities()
    assert caps.model_version == f"{base_digest}+lora.{lora_digest}"
    backend = load_backend("dit", weights=trained.base, lora=str(trained.lora), lora_scale=0.5)
    assert backend.capabilities().model_version == f"{base_digest}+lora.{lora_digest}@0.5"


def test_a_lora_for_another_base_is_refused(trained: Trained) -> None:
    model, _ = load_checkpoint(trained.base)
    with torch.no_grad():
        next(model.denoiser.parameters()).add_(0.01)  # other weights, same architecture
    (trained.root / "other").mkdir()
    shutil.copy(trained.root / "vae-test.safetensors", trained.root / "other")
    other = save_checkpoint(model, trained.root / "other" / "dit-test.safetensors")
    with pytest.raises(ConfigurationError, match="trained on another base model"):
        DiTBackend(weights=other, lora=trained.lora)


def test_foreign_and_damaged_files_are_typed_errors(trained: Trained) -> None:
    with pytest.raises(ConfigurationError, match="not a vidgen LoRA"):
        DiTBackend(weights=trained.base, lora=trained.base)  # a model, not a LoRA
    junk = trained.root / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ConfigurationError, match="not a readable"):
        DiTBackend(weights=trained.base, lora=junk)
    with pytest.raises(ConfigurationError, match="no LoRA file"):
        DiTBackend(weights=trained.base, lora=trained.root / "missing.safetensors")
    lora = read_lora(trained.lora)
    key = next(k for k in lora.state if k.endswith(".down"))
    for name, state in (
            ("shape", {**lora.state, key: torch.zeros(3, 5)}),
            ("no plain Linear", {**lora.state, "denoiser.nothing.down": torch.zeros(4, 32),
                                 "denoiser.nothing.up": torch.zeros(32, 4)})):
        bad = write_lora(attrs.evolve(lora, state=state), trained.root / f"{name}.safetensors")
        with pytest.raises(ConfigurationError, match=name):
            DiTBackend(weights=trained.base, lora=bad)
    header = trained.root / "header.safetensors"
    from safetensors.torch import save_file

    save_file({"x.down": torch.zeros(1)}, str(header), metadata={"kind": "vidgen.lora.v1"})
    with pytest.raises(ConfigurationError, match="damaged LoRA header"):
        read_lora(header)


def test_lora_runs_resume_and_need_their_base(trained: Trained) -> None:
    config = lora_recipe(str(trained.base), 4, steps=6, lr=3e-2, **CLIP)
    assert train(config, trained.run, threads=1) == 6
    records = [json.loads(line) for line in (trained.run / "log.jsonl").read_text().splitlines()]
    assert {"event": "resume", "step": 4} in records
    assert not (trained.run / "last.safetensors").exists()  # adapters only
    with pytest.raises(ConfigurationError, match="needs init weights"):
        attrs.evolve(config, init="")
    with pytest.raises(ConfigurationError, match="takes preset"):
        lora_recipe(str(trained.base), 4, preset="tiny")


def test_cli_trains_and_exports_a_lora(trained: Trained, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.lora.safetensors"
    assert main(["train", "--lora", "2", "--init", str(trained.base), "--out",
                 str(tmp_path / "run"), "--steps", "2", "--batch-size", "2", "--cache-clips",
                 "2", "--threads", "1", "--export", str(out)]) == 0
    assert read_lora(out).config.rank == 2
    assert DiTBackend(weights=trained.base, lora=out).lora_digest == file_digest(out)
    assert main(["train", "--lora", "2", "--init", str(trained.base), "--preset", "small",
                 "--out", str(tmp_path / "bad")]) == 1
    assert "--lora takes --preset" in capsys.readouterr().err
