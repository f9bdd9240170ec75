"""Procedural scene backend: a small caption language rendered with exact physics.

Training data source, evaluation ground truth and fast deterministic test
backend in one; see docs/scene-grammar.md for the language.
"""

from vidgen.backends.scene.backend import SceneBackend
from vidgen.backends.scene.grammar import (
    GRAMMAR_VERSION,
    ObjectSpec,
    SceneSpec,
    parse_caption,
    vocabulary,
)
from vidgen.backends.scene.render import ObjectTrack, SceneRender, render_scene
from vidgen.errors import CaptionError

__all__ = [
    "GRAMMAR_VERSION",
    "CaptionError",
    "ObjectSpec",
    "ObjectTrack",
    "SceneBackend",
    "SceneRender",
    "SceneSpec",
    "parse_caption",
    "render_scene",
    "vocabulary",
]
