"""Value types shared by the pipeline, backends, provenance and the CLI.

All are attrs frozen classes: a request or a result never changes after it is
made, so a stage cannot quietly alter what an earlier stage checked.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from vidgen.errors import ConfigurationError

Frames = npt.NDArray[np.uint8]
"""A clip as uint8 RGB frames, shape (T, H, W, 3)."""


class Task(enum.StrEnum):
    """What a request asks the backend to do."""

    TEXT_TO_VIDEO = "text_to_video"
    IMAGE_TO_VIDEO = "image_to_video"
    EDIT = "edit"
    INPAINT = "inpaint"
    STYLIZE = "stylize"
    CINEMAGRAPH = "cinemagraph"
    EXTEND = "extend"
    LOOP = "loop"  # a clip whose last frame flows into its first (from text, or a given video)
    STORYBOARD = "storyboard"  # one clip from a sequence of prompts, one segment each


def _check_frames(_instance: object, _attribute: object, value: Frames) -> None:
    if not isinstance(value, np.ndarray):
        raise ConfigurationError(f"frames must be a numpy array, got {type(value).__name__}")
    if value.dtype != np.uint8:
        raise ConfigurationError(f"frames must be uint8, got {value.dtype}")
    if value.ndim != 4 or value.shape[-1] != 3:
        raise ConfigurationError(f"frames must have shape (T, H, W, 3), got {value.shape}")
    if min(value.shape[:3]) < 1:
        raise ConfigurationError(f"frames must be non-empty, got shape {value.shape}")


def _check_fps(_instance: object, _attribute: object, value: float) -> None:
    if not (0.1 <= value <= 1000.0):
        raise ConfigurationError(f"fps must be in [0.1, 1000], got {value}")


@attrs.frozen(eq=False)
class Video:
    """A clip in memory: uint8 frames (T, H, W, 3) and a frame rate."""

    frames: Frames = attrs.field(validator=_check_frames)
    fps: float = attrs.field(default=8.0, converter=float, validator=_check_fps)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.fps

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Video):
            return NotImplemented
        return self.fps == other.fps and np.array_equal(self.frames, other.frames)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def read(cls, path: str | Path, **limits: Any) -> Video:
        """Decode a video file (any container/codec PyAV reads) with hostile-input limits."""
        from vidgen.video_io import read_video

        return read_video(path, **limits)

    def write(self, path: str | Path, **options: Any) -> Path:
        """Encode to H.264 MP4 (yuv420p, faststart); see ``vidgen.video_io.write_video``."""
        from vidgen.video_io import write_video

        return write_video(self, path, **options)


@attrs.frozen(eq=False)
class Inputs:
    """Media a task starts from. Each is also recorded as a C2PA ingredient."""

    image: Frames | None = None  # (H, W, 3) uint8
    video: Video | None = None
    mask: npt.NDArray[np.bool_] | None = None  # (H, W) or (T, H, W); True = regenerate
    image_source: Path | None = None  # the file the image came from, if any
    video_source: Path | None = None  # the file the video came from, if any


@attrs.frozen
class GenerationRequest:
    """Everything a backend needs to sample one clip. Backends never see keys or paths."""

    prompt: str
    task: Task = Task.TEXT_TO_VIDEO
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    fps: float | None = None
    seed: int = 0
    negative_prompt: str | None = None
    strength: float | None = None
    num_steps: int | None = None
    guidance: float | None = None
    inputs: Inputs = attrs.field(factory=Inputs)
    options: dict[str, Any] = attrs.field(factory=dict)
    # The per-segment prompts of a storyboard, in order; ``prompt`` is then the first of them
    # (the backend refuses a storyboard whose prompt is not its first segment's).
    storyboard: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def texts(self) -> tuple[str, ...]:
        """Every piece of text in the request; the prompt policy checks all of them."""
        return tuple(text for _kind, text in self.labelled_texts)

    @property
    def labelled_texts(self) -> tuple[tuple[str, str], ...]:
        """(kind, text) for every text: the prompt is a ``style`` for stylize and an
        ``edit_instruction`` for edit (the policy reads some kinds differently); storyboard
        prompt ``i`` is labelled ``storyboard[i]`` (read as a prompt, see ``policy_kind``)."""
        kind = {Task.STYLIZE: "style", Task.EDIT: "edit_instruction"}.get(self.task, "prompt")
        pairs = [(kind, self.prompt), ("negative_prompt", self.negative_prompt or ""),
                 *((f"storyboard[{i}]", text) for i, text in enumerate(self.storyboard))]
        return tuple((k, t) for k, t in pairs if t)


def policy_kind(label: str) -> str:
    """The prompt policy's text kind for a ``labelled_texts`` label: a storyboard segment's
    prompt (``storyboard[i]``) is read as a ``prompt``; other labels are kinds already."""
    return "prompt" if label.startswith("storyboard[") else label


@attrs.frozen
class PromptDecision:
    """The prompt policy's answer for one piece of text."""

    allowed: bool
    category: str | None = None
    reason: str = ""
    matched: tuple[str, ...] = ()


@attrs.frozen
class GenerationResult:
    """What ``Pipeline.generate`` and the task methods return."""

    path: Path
    video: Video
    manifest: dict[str, Any]
    watermark_id: int | None
    backend: str
    sha256: str
    timings: dict[str, float] = attrs.field(factory=dict)


@attrs.frozen
class C2paReport:
    """What the C2PA reader found in a file."""

    state: str  # "trusted" | "valid" | "invalid" | "absent"
    signer: str | None = None
    issuer: str | None = None
    claim_generator: str | None = None
    codes: tuple[str, ...] = ()
    ai_generated: bool | None = None
    manifest: dict[str, Any] | None = None
    explanation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "signer": self.signer,
            "issuer": self.issuer,
            "claim_generator": self.claim_generator,
            "codes": list(self.codes),
            "ai_generated": self.ai_generated,
            "explanation": self.explanation,
        }


@attrs.frozen
class WatermarkReport:
    """What the watermark detector found (``checked`` is False when no detector ran)."""

    checked: bool
    detected: bool = False
    payload: int | None = None
    p_value: float | None = None
    bits_matched: int | None = None
    frames_used: int = 0
    method: str | None = None
    # True/False when a mark was detected in a file with a manifest: whether its id is the
    # one the manifest's soft binding declares; None otherwise.
    matches_manifest: bool | None = None
    explanation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class VerificationReport:
    """The ``vidgen verify`` report (JSON contract in ARCHITECTURE.md)."""

    file: str
    sha256: str | None
    c2pa: C2paReport | None
    watermark: WatermarkReport | None
    recovered_manifest: dict[str, Any] | None
    verdict: str  # "confirmed" | "unconfirmed" | "tampered" | "error"
    error: str | None = None

    @property
    def exit_code(self) -> int:
        """0 = provenance confirmed, 1 = none or broken, 2 = file could not be processed."""
        if self.verdict == "confirmed":
            return 0
        if self.verdict == "error":
            return 2
        return 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "c2pa": self.c2pa.to_dict() if self.c2pa else None,
            "watermark": self.watermark.to_dict() if self.watermark else None,
            "recovered_manifest": self.recovered_manifest,
            "verdict": self.verdict,
            "error": self.error,
        }
