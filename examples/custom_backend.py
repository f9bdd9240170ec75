"""A minimal third-party backend: implement the protocol, register, and get the whole chain.

(A complete plugin package, with its own pyproject and the conformance suite, is in
``examples/plugin/vidgen-plasma``; see docs/plugins.md.)

A packaged plugin declares the same class under the entry point group
``vidgen.backends`` in its pyproject.toml instead of calling ``register_backend``:

    [project.entry-points."vidgen.backends"]
    sines = "my_package:SinesBackend"

    python examples/custom_backend.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import vidgen
from vidgen.backends import Capabilities, ProgressCallback
from vidgen.types import GenerationRequest, Task, Video


class SinesBackend:
    """Animated sine plasma; deterministic per seed. Returns frames only."""

    name = "sines"

    def __init__(self, **options: Any) -> None:
        if options:
            raise vidgen.errors.ConfigurationError(f"unknown options: {sorted(options)}")

    def capabilities(self) -> Capabilities:
        return Capabilities(tasks=frozenset({Task.TEXT_TO_VIDEO}), max_frames=120,
                            max_height=512, max_width=512, default_frames=24,
                            default_height=96, default_width=96, default_fps=12.0,
                            model_id="example/sines", model_version="1")

    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        caps = self.capabilities()
        t = request.num_frames or caps.default_frames
        h = request.height or caps.default_height
        w = request.width or caps.default_width
        phase = np.random.default_rng(request.seed).uniform(0, 2 * np.pi, size=3)
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        frames = np.empty((t, h, w, 3), np.uint8)
        for i in range(t):
            v = np.sin(10 * xx + i / 3) + np.sin(10 * yy + i / 5) + np.sin(10 * (xx + yy) + i / 7)
            for c in range(3):
                frames[i, :, :, c] = (127.5 * (1 + np.sin(v + phase[c]))).astype(np.uint8)
            if progress is not None:
                progress(i + 1, t)
        return Video(frames, fps=request.fps or caps.default_fps)


def main(out_dir: Path) -> None:
    vidgen.register_backend("sines", SinesBackend)
    print([b.name for b in vidgen.list_backends()])
    pipe = vidgen.Pipeline.from_backend("sines", keys_dir=out_dir / "keys")
    result = pipe.generate("sine plasma", seed=7, output=out_dir / "sines.mp4")
    report = vidgen.verify(result.path, trust=out_dir / "keys" / "ca.pem")
    print(f"{result.path.name}: {result.video.num_frames} frames, verdict {report.verdict}")
    assert report.verdict == "confirmed"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
