"""vidgen-plasma's tests: vidgen's conformance suite, plus what is particular to plasma.

Run after installing the package (the registry check needs its entry point):

    pip install -e examples/plugin/vidgen-plasma
    pytest examples/plugin/vidgen-plasma/tests
"""

from __future__ import annotations

import numpy as np
import pytest
from vidgen_plasma import PlasmaBackend

from vidgen.errors import ConfigurationError, UnsupportedTask
from vidgen.testing import BackendConformance, check_backend
from vidgen.types import GenerationRequest, Inputs, Task

TINY = {"num_frames": 4, "height": 16, "width": 16}


class TestPlasmaConformance(BackendConformance):
    """Every vidgen conformance check, one test each (tasks plasma lacks are skipped)."""

    backend_factory = PlasmaBackend
    backend_name = "plasma"  # the entry point name: checks load_backend and list_backends
    conformance_options = TINY


def test_conformance_report_with_options() -> None:
    """The function form, on the registered name, with non-default backend options."""
    report = check_backend("plasma", backend_options={"scale": 6.0, "speed": 0.5},
                           skip=["pipeline", "pipeline_cancellation"], **TINY)
    report.raise_for_failures()
    assert report["sample[loop]"].passed and report["sample[edit]"].skipped


def test_image_to_video_starts_from_the_image() -> None:
    image = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    video = PlasmaBackend().sample(GenerationRequest(
        prompt="melt", task=Task.IMAGE_TO_VIDEO, num_frames=5, height=16, width=24,
        inputs=Inputs(image=image)))
    assert video.frames.shape == (5, 16, 24, 3)
    resized = image[(np.arange(16) * 8) // 16][:, (np.arange(24) * 12) // 24]
    assert np.array_equal(video.frames[0], resized)
    assert not np.array_equal(video.frames[-1], resized)


def test_loops_are_seamless() -> None:
    frames = PlasmaBackend().sample(GenerationRequest(
        prompt="loop", task=Task.LOOP, num_frames=24, height=32, width=32)).frames.astype(int)
    steps = [np.abs(frames[i + 1] - frames[i]).mean() for i in range(len(frames) - 1)]
    wrap = np.abs(frames[0] - frames[-1]).mean()
    assert wrap <= 1.5 * max(steps)  # last -> first is like any other step


def test_prompt_and_seed_choose_the_clip() -> None:
    b = PlasmaBackend()
    clip = {(p, s): b.sample(GenerationRequest(prompt=p, seed=s, num_frames=2, height=8,
                                               width=8))
            for p in ("a", "b") for s in (0, 1)}
    assert clip["a", 0] == b.sample(GenerationRequest(prompt="a", seed=0, num_frames=2,
                                                      height=8, width=8))
    assert len({c.frames.tobytes() for c in clip.values()}) == 4


def test_refusals() -> None:
    with pytest.raises(ConfigurationError):
        PlasmaBackend(scale=0)
    with pytest.raises(TypeError):
        PlasmaBackend(colour="red")  # type: ignore[call-arg]
    with pytest.raises(UnsupportedTask):
        PlasmaBackend().sample(GenerationRequest(prompt="x", task=Task.EDIT))
    with pytest.raises(ConfigurationError, match="needs an input image"):
        PlasmaBackend().sample(GenerationRequest(prompt="x", task=Task.IMAGE_TO_VIDEO))
