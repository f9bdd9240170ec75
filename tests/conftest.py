"""Shared fixtures: throwaway dev keys, a tiny deterministic backend, sample clips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidgen.backends.base import Capabilities, ProgressCallback
from vidgen.provenance.keys import DevKeys, init_dev_keys
from vidgen.provenance.watermark import register_method
from vidgen.types import GenerationRequest, Task, Video

from .watermark_double import TEST_KEY, TEST_METHOD, BlockTestWatermark

register_method(TEST_METHOD, BlockTestWatermark)


@pytest.fixture(autouse=True, scope="session")
def _isolated_keys_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the user's real keys, watermark key, manifest store or signer env.

    Chain tests watermark with the ``test-blocks`` double (``watermark_double.py``)
    through ``$VIDGEN_WATERMARK_METHOD``: fast, exact, and independent of the
    real method; tests of the real method name it explicitly.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("VIDGEN_KEYS_DIR", str(tmp_path_factory.mktemp("default-keys")))
    mp.setenv("VIDGEN_STORE", str(tmp_path_factory.mktemp("store") / "manifests.sqlite3"))
    mp.setenv("VIDGEN_CONSENT_DB", str(tmp_path_factory.mktemp("consent") / "consent.sqlite3"))
    mp.setenv("VIDGEN_WATERMARK_KEY", TEST_KEY.hex())
    mp.setenv("VIDGEN_WATERMARK_METHOD", TEST_METHOD)
    for var in ("VIDGEN_SIGN_CERT", "VIDGEN_SIGN_KEY", "VIDGEN_TRUST_ANCHORS", "VIDGEN_TSA_URL",
                "VIDGEN_WATERMARK_KEY_FILE"):
        mp.delenv(var, raising=False)


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> DevKeys:
    return init_dev_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def anchors(dev_keys: DevKeys) -> Path:
    return dev_keys.ca_cert


class GradientBackend:
    """A tiny deterministic backend for chain tests: moving colour gradients.

    Supports every task so the pipeline's ingredient and input paths can be
    exercised; edits blend the input clip with the gradient.
    """

    name = "gradient"

    def __init__(self, **options: Any) -> None:
        self.calls = 0
        self.options = options

    def capabilities(self) -> Capabilities:
        return Capabilities(tasks=frozenset(Task), max_frames=64, max_height=256,
                            max_width=256, default_frames=8, default_height=32,
                            default_width=32, model_id="test/gradient", model_version="1")

    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        self.calls += 1
        caps = self.capabilities()
        t = request.num_frames or caps.default_frames
        if request.task == Task.STORYBOARD:  # num_frames is per segment
            t *= max(1, len(request.storyboard))
        h = request.height or caps.default_height
        w = request.width or caps.default_width
        rng = np.random.default_rng(request.seed)
        base = rng.integers(0, 255, size=3)
        yy, xx = np.mgrid[0:h, 0:w]
        frames = np.empty((t, h, w, 3), np.uint8)
        for i in range(t):
            for c in range(3):
                frames[i, :, :, c] = (base[c] + 4 * xx + 3 * yy + 8 * i * (c + 1)) % 256
            if progress is not None:
                progress(i + 1, t)
        src = request.inputs.video
        if src is not None and src.frames.shape[1:3] == (h, w):
            n = min(t, src.num_frames)
            frames[:n] = (frames[:n] // 2 + src.frames[:n] // 2).astype(np.uint8)
        return Video(frames, fps=request.fps or caps.default_fps)


@pytest.fixture
def gradient_backend() -> GradientBackend:
    return GradientBackend()
