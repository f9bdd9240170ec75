"""The ``scene`` backend: captions in the scene language rendered procedurally.

It is not a learned model. It gives tests a fast, exact and deterministic
backend, and it is the same renderer that makes the training data and the
ground truth for evaluating the learned backends.
"""

from __future__ import annotations

from typing import Any

from vidgen.backends.base import Capabilities, ProgressCallback
from vidgen.backends.scene.grammar import GRAMMAR_VERSION, parse_caption
from vidgen.backends.scene.render import render_scene
from vidgen.errors import ConfigurationError
from vidgen.types import GenerationRequest, Task, Video


class SceneBackend:
    """Renders ``request.prompt`` with ``render_scene``; takes no options."""

    name = "scene"

    def __init__(self, **options: Any) -> None:
        if options:
            raise ConfigurationError(
                f"the scene backend takes no options, got: {', '.join(sorted(options))}"
            )

    def capabilities(self) -> Capabilities:
        return Capabilities(
            tasks=frozenset({Task.TEXT_TO_VIDEO}),
            min_frames=1,
            max_frames=1024,
            max_height=2160,
            max_width=3840,
            default_frames=16,
            default_height=64,
            default_width=64,
            default_fps=8.0,
            size_multiple=2,
            device="cpu",
            model_id="vidgen/scene",
            model_version=GRAMMAR_VERSION,
            deterministic=True,
        )

    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> Video:
        """Parse, check sizes, render frame by frame (``progress`` may raise to cancel)."""
        caps = self.capabilities()
        caps.check(request, self.name)
        spec = parse_caption(request.prompt)  # before any rendering: bad captions cost nothing
        fps = request.fps if request.fps is not None else caps.default_fps
        if not 0.1 <= fps <= 1000.0:  # what Video accepts; refuse before rendering, not after
            raise ConfigurationError(f"fps must be in [0.1, 1000], got {fps}")
        rendered = render_scene(
            spec,
            num_frames=request.num_frames if request.num_frames is not None
            else caps.default_frames,
            height=request.height if request.height is not None else caps.default_height,
            width=request.width if request.width is not None else caps.default_width,
            fps=fps,
            seed=request.seed,
            progress=progress,
        )
        return Video(frames=rendered.frames, fps=fps)
