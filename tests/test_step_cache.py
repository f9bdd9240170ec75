"""Step caching of the DiT sampler: off is exact, on skips bounded runs of steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidgen.backends.dit import DiTBackend
from vidgen.backends.dit.model import DiT
from vidgen.backends.dit.step_cache import (
    StepCachePolicy,
    StepCacheStats,
    cached_steps,
    relative_l1,
)
from vidgen.backends.latent import ModelSpec, TextConditionedDenoiser, save_checkpoint
from vidgen.backends.text_encoder import CaptionEncoderConfig
from vidgen.diffusion import get_schedule
from vidgen.diffusion.guidance import Cond, batched_cfg
from vidgen.diffusion.samplers import sample
from vidgen.errors import ConfigurationError
from vidgen.training.autoencoder import save_autoencoder
from vidgen.types import GenerationRequest, Inputs, Task

from .tiny_models import tiny_autoencoder

torch.set_num_threads(1)

REQUEST = GenerationRequest(prompt="a red circle moving left", num_frames=8, height=32,
                            width=32, seed=3)


def random_denoiser() -> TextConditionedDenoiser:
    """A ``test``-preset DiT whose zero-initialised layers are made non-zero, so every
    block contributes (an untrained DiT's blocks add exactly nothing)."""
    torch.manual_seed(0)
    spec = ModelSpec(architecture="dit", preset="test", latent_channels=4,
                     text=CaptionEncoderConfig(width=32, depth=1),
                     autoencoder="vae-test.safetensors")
    model = TextConditionedDenoiser(spec)
    with torch.no_grad():
        for p in model.parameters():
            if not p.abs().sum():
                p.normal_(0.0, 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("step-cache")
    save_autoencoder(tiny_autoencoder(), root / "vae-test.safetensors")
    return save_checkpoint(random_denoiser(), root / "dit-random.safetensors")


def test_threshold_zero_gives_exactly_the_uncached_frames(weights: Path) -> None:
    plain = DiTBackend(weights=weights, steps=6).sample(REQUEST)
    off = DiTBackend(weights=weights, steps=6, step_cache=0.0)
    assert np.array_equal(off.sample(REQUEST).frames, plain.frames)
    assert off.step_cache_stats == StepCacheStats()  # off: no cache installed at all


def test_a_hook_that_never_skips_is_exact_and_batches_cfg_as_one() -> None:
    model = random_denoiser()
    dit = model.denoiser
    assert isinstance(dit, DiT)
    tokens, mask, pooled = model.encode_text(["a red circle", ""])

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        def net(x: torch.Tensor, t: torch.Tensor, c: Cond) -> torch.Tensor:
            assert isinstance(c, tuple)
            out: torch.Tensor = dit(x, t, *c)
            return out

        return batched_cfg(net, x, t, (tokens[:1], mask[:1], pooled[:1]),
                           (tokens[1:], mask[1:], pooled[1:]), 3.0)

    def run() -> torch.Tensor:
        return sample("euler", guided, (1, 4, 3, 8, 8), get_schedule("flow"), "flow", 5,
                      torch.Generator().manual_seed(0))

    with torch.no_grad():
        plain = run()
        with cached_steps(dit, StepCachePolicy(threshold=0.0)) as never:
            assert torch.equal(run(), plain)
        with cached_steps(dit, StepCachePolicy(threshold=1e9, max_skips=1)) as always:
            cached = run()
    assert dit.block_hook is None  # removed on leaving
    assert never.stats() == StepCacheStats(computed=5)
    assert always.stats().skipped_calls == (1, 3)  # no forced steps given: skip, compute, ...
    assert always.residual is not None and always.residual.shape[0] == 2  # cond + uncond
    assert torch.isfinite(cached).all() and not torch.equal(cached, plain)


@pytest.mark.parametrize("max_skips", [1, 2, 3])
def test_a_large_threshold_skips_bounded_runs_and_computes_first_and_last(
        weights: Path, max_skips: int) -> None:
    steps = 10
    backend = DiTBackend(weights=weights, steps=steps, step_cache=1e9,
                         step_cache_max_skips=max_skips)
    video = backend.sample(REQUEST)
    assert video.frames.shape == (8, 32, 32, 3) and video.frames.dtype == np.uint8
    stats = backend.step_cache_stats
    assert stats.calls == steps and stats.computed + stats.skipped == steps
    assert 0 not in stats.skipped_calls and steps - 1 not in stats.skipped_calls
    assert stats.longest_skip_run == max_skips
    # every run of skips is followed by a computed call: compute, skip x max_skips, compute, ...
    expected = tuple(i for i in range(1, steps - 1) if i % (max_skips + 1) != 0)
    assert stats.skipped_calls == expected
    assert stats.fraction_skipped == pytest.approx(len(expected) / steps)
    again = DiTBackend(weights=weights, steps=steps, step_cache=1e9,
                       step_cache_max_skips=max_skips).sample(REQUEST)
    assert np.array_equal(again.frames, video.frames)  # still deterministic


def test_a_small_threshold_skips_nothing_and_stays_exact(weights: Path) -> None:
    plain = DiTBackend(weights=weights, steps=6).sample(REQUEST)
    tight = DiTBackend(weights=weights, steps=6, step_cache=1e-9)
    assert np.array_equal(tight.sample(REQUEST).frames, plain.frames)
    assert tight.step_cache_stats == StepCacheStats(computed=6)


def test_image_to_video_with_the_cache_keeps_the_first_frame(weights: Path) -> None:
    backend = DiTBackend(weights=weights, steps=6, step_cache=1e9)
    image = np.full((32, 32, 3), 120, np.uint8)
    video = backend.sample(GenerationRequest(prompt="a blue square", task=Task.IMAGE_TO_VIDEO,
                                             num_frames=8, height=32, width=32,
                                             inputs=Inputs(image=image)))
    assert np.array_equal(video.frames[0], image)
    assert backend.step_cache_stats.skipped > 0


def test_options_are_checked() -> None:
    for bad in (-0.1, float("nan"), "0.1"):
        with pytest.raises(ConfigurationError, match="threshold"):
            StepCachePolicy(threshold=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_skips"):
        StepCachePolicy(threshold=0.1, max_skips=-1)
    assert not StepCachePolicy(threshold=0.1, max_skips=0).enabled
    assert relative_l1(torch.ones(3), torch.zeros(3)) == float("inf")
    assert relative_l1(torch.full((3,), 1.1), torch.ones(3)) == pytest.approx(0.1)
    total = StepCacheStats(2, 1, (1,), 1) + StepCacheStats(1, 2, (0, 1), 2)
    assert total == StepCacheStats(3, 3, (1, 3, 4), 2)


def test_a_stunet_checkpoint_refuses_the_cache(tmp_path: Path) -> None:
    from vidgen.backends.stunet import STUNetBackend

    save_autoencoder(tiny_autoencoder(), tmp_path / "vae-test.safetensors")
    spec = ModelSpec(architecture="stunet", preset="test", latent_channels=4,
                     text=CaptionEncoderConfig(width=32, depth=1),
                     autoencoder="vae-test.safetensors")
    weights = save_checkpoint(TextConditionedDenoiser(spec), tmp_path / "stunet.safetensors")
    with pytest.raises(ConfigurationError, match="step caching needs a DiT"):
        STUNetBackend(weights=weights, step_cache=0.1)
    assert STUNetBackend(weights=weights, step_cache=0.0).step_cache_stats == StepCacheStats()
