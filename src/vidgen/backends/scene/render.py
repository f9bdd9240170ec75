"""Render a ``SceneSpec`` to frames plus the exact ground truth of every object.

The tracks are computed first (closed-form physics in ``motion``), then each
frame is drawn from them, so the frames and the ground truth can never
disagree. Drawing touches only a small crop around each object, which keeps
4K frames cheap, and one frame is finished before the next starts so that a
progress callback can cancel between frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import numpy as np
import numpy.typing as npt

from vidgen.backends.scene import motion
from vidgen.backends.scene.grammar import COLORS, ObjectSpec, SceneSpec, parse_caption
from vidgen.backends.scene.shapes import EXTENTS, FloatArray, coverage, signed_distance
from vidgen.errors import ConfigurationError

Frames = npt.NDArray[np.uint8]

TEXTURE_STRENGTH = 0.2
"""How far the pan texture mixes the background towards white (dark) or black (light)."""
_TEXTURE_WAVES = 3


@attrs.frozen(eq=False)
class ObjectTrack:
    """Ground truth for one object: centroid, rotation and visibility at every frame.

    ``x``, ``y`` are in pixels on screen (camera pan included), with (0, 0) the
    top-left corner of the top-left pixel; ``size`` is the shape's size ``s``;
    ``visible`` is True where the centroid lies inside the frame.
    """

    spec: ObjectSpec
    x: FloatArray
    y: FloatArray
    angle: FloatArray
    size: float
    visible: npt.NDArray[np.bool_]


@attrs.frozen(eq=False)
class SceneRender:
    """Frames (uint8, (T, H, W, 3)) and the ground truth they were drawn from."""

    frames: Frames
    tracks: tuple[ObjectTrack, ...]
    spec: SceneSpec
    fps: float
    times: FloatArray  # seconds, ``arange(T) / fps``
    camera_x: FloatArray  # pan offset in pixels added to every x (0 without a camera)


def plan_tracks(
    spec: SceneSpec, *, num_frames: int, height: int, width: int, fps: float, seed: int
) -> tuple[FloatArray, FloatArray, tuple[ObjectTrack, ...]]:
    """Frame times, camera offsets and tracks of a scene, without drawing anything."""
    _check_args(num_frames, height, width, fps, seed)
    times = np.arange(num_frames, dtype=np.float64) / fps
    rng = np.random.default_rng([seed, 0])
    starts = motion.layout(spec.objects, height=height, width=width, rng=rng)
    camera_x = motion.camera_offset(spec.camera, times, width=width)
    tracks = []
    for obj, start in zip(spec.objects, starts, strict=True):
        path = motion.trajectory(obj, start, times, height=height, width=width)
        x = path.x + camera_x
        visible = (x >= 0) & (x < width) & (path.y >= 0) & (path.y < height)
        tracks.append(ObjectTrack(spec=obj, x=x, y=path.y, angle=path.angle,
                                  size=motion.object_size(obj, height, width), visible=visible))
    return times, camera_x, tuple(tracks)


def render_scene(
    spec: SceneSpec | str,
    *,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    fps: float = 8.0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SceneRender:
    """Draw ``spec`` (or a caption) deterministically: the same arguments give the same bytes.

    ``progress(done, num_frames)`` is called after each frame; if it raises, the
    render stops and the exception propagates.
    """
    if isinstance(spec, str):
        spec = parse_caption(spec)
    times, camera_x, tracks = plan_tracks(
        spec, num_frames=num_frames, height=height, width=width, fps=fps, seed=seed
    )
    plate = _Background(spec, height=height, width=width, seed=seed)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for k in range(num_frames):
        frame = frames[k]
        frame[...] = plate.at(float(camera_x[k]))
        for track in tracks:
            _draw(frame, track, k)
        if progress is not None:
            progress(k + 1, num_frames)
    return SceneRender(frames=frames, tracks=tracks, spec=spec, fps=float(fps),
                       times=times, camera_x=camera_x)


def _check_args(num_frames: int, height: int, width: int, fps: float, seed: int) -> None:
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise ConfigurationError(f"fps must be a positive number, got {fps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigurationError(f"seed must be a non-negative integer, got {seed!r}")


class _Background:
    """The background plate; with a camera pan, a subtle texture fixed to the world makes the
    pan visible (a flat colour looks the same at every offset)."""

    def __init__(self, spec: SceneSpec, *, height: int, width: int, seed: int) -> None:
        self._color = np.asarray(COLORS[spec.background], dtype=np.float32)
        self._width = width
        self._textured = spec.camera is not None
        if not self._textured:  # one flat plate, copied (memcpy) into every frame
            self._flat = np.empty((height, width, 3), dtype=np.uint8)
            self._flat[...] = np.rint(self._color).astype(np.uint8)
            return
        rng = np.random.default_rng([seed, 1])
        # cycles per frame width / height, random direction and phase per wave
        self._fx = rng.uniform(1.5, 4.0, _TEXTURE_WAVES) * rng.choice([-1.0, 1.0], _TEXTURE_WAVES)
        fy = rng.uniform(0.5, 3.0, _TEXTURE_WAVES)
        self._phase = rng.uniform(0.0, 2 * math.pi, _TEXTURE_WAVES)
        ys = (np.arange(height) + 0.5) / height
        self._cos_y = np.cos(2 * math.pi * np.outer(fy, ys)).astype(np.float32)  # (waves, H)
        self._sin_y = np.sin(2 * math.pi * np.outer(fy, ys)).astype(np.float32)
        target = 255.0 if self._color.mean() < 128 else 0.0
        self._delta = (target - self._color) * TEXTURE_STRENGTH

    def at(self, offset: float) -> npt.NDArray[np.uint8]:
        """The plate when the world is shifted ``offset`` pixels right on screen."""
        if not self._textured:
            return self._flat
        xs = (np.arange(self._width) + 0.5 - offset) / self._width  # world x, frame widths
        arg = 2 * math.pi * np.outer(self._fx, xs) + self._phase[:, None]  # (waves, W)
        cos_x, sin_x = np.cos(arg).astype(np.float32), np.sin(arg).astype(np.float32)
        # sum_i cos(ax_i + ay_i) computed separably: cos ax cos ay - sin ax sin ay
        wave = self._cos_y.T @ cos_x - self._sin_y.T @ sin_x  # (H, W)
        mix = 0.5 + wave / (2 * _TEXTURE_WAVES)  # in [0, 1]
        plate = self._color + mix[..., None] * self._delta
        return np.rint(plate).astype(np.uint8)


def _draw(frame: Frames, track: ObjectTrack, k: int) -> None:
    """Composite one object into ``frame`` in place, over its crop only."""
    height, width = frame.shape[:2]
    cx, cy, angle = float(track.x[k]), float(track.y[k]), float(track.angle[k])
    reach = EXTENTS[track.spec.shape].radius * track.size + 1.0
    x0, x1 = max(math.floor(cx - reach), 0), min(math.ceil(cx + reach), width)
    y0, y1 = max(math.floor(cy - reach), 0), min(math.ceil(cy + reach), height)
    if x0 >= x1 or y0 >= y1:
        return
    px = (np.arange(x0, x1, dtype=np.float64) + 0.5 - cx)[None, :]
    py = (np.arange(y0, y1, dtype=np.float64) + 0.5 - cy)[:, None]
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        px, py = c * px + s * py, -s * px + c * py  # undo a clockwise turn on screen
    else:
        px, py = np.broadcast_arrays(px, py)
    alpha = coverage(signed_distance(track.spec.shape, px, py, track.size))[..., None]
    if not alpha.any():
        return
    crop = frame[y0:y1, x0:x1].astype(np.float32)
    color = np.asarray(COLORS[track.spec.color], dtype=np.float32)
    frame[y0:y1, x0:x1] = np.rint(crop + alpha * (color - crop)).astype(np.uint8)
