"""Where objects start and where they are at any time: layout and continuous-time physics.

Positions are closed-form functions of time in seconds, evaluated at frame
times ``k / fps``, so a clip's motion does not depend on its frame rate or
length (the first 16 frames of a 32-frame clip equal the 16-frame clip), and
the evaluation harness can compare generated motion with exact ground truth.
All speeds and accelerations are in frame sizes per second (squared) so a
scene looks the same at any resolution.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from vidgen.backends.scene.grammar import DIRECTIONS, ObjectSpec
from vidgen.backends.scene.shapes import EXTENTS, FloatArray

FALL_GRAVITY = 0.4
"""Falling, in frame heights / s²: from rest near the top, ~0.7 of the frame in 1.9 s."""
BOUNCE_GRAVITY = 2.5
"""Bouncing, in frame heights / s²: stronger, so two or three bounces fit in 2 s."""
RESTITUTION = 0.75
"""Speed kept at each bounce; peak heights shrink by ``RESTITUTION**2`` per bounce."""
LINEAR_SPEED = 0.25
"""'moving <direction>', in frame sizes / s (diagonals move this fast along the diagonal)."""
PAN_SPEED = 0.15
"""Camera pan, in frame widths / s; panning left moves the content right on screen."""
ROTATION_SPEED = math.pi / 2
"""'rotating', in radians / s (a quarter turn per second, clockwise on screen)."""
NOMINAL_DURATION = 2.0
"""The clip length (s) the layout plans for: 16 frames at 8 fps keep objects in frame."""
SIZE_FRACTIONS = {"small": 0.12, "medium": 0.2, "large": 0.3}
"""Object size ``s`` as a fraction of min(height, width)."""

_REST_HEIGHT = 1e-3  # bounces lower than this (pixels) are treated as resting on the floor
_LAYOUT_TRIES = 24


def object_size(spec: ObjectSpec, height: int, width: int) -> float:
    """The size ``s`` in pixels (circle diameter, square side, triangle side, star diameter)."""
    return SIZE_FRACTIONS[spec.size] * min(height, width)


def floor_y(spec: ObjectSpec, height: int, width: int) -> float:
    """The centroid's y when the object rests on the bottom edge of the frame."""
    return height - EXTENTS[spec.shape].bottom * object_size(spec, height, width)


def direction_vector(motion: str) -> tuple[float, float]:
    """Unit direction of a linear motion in frame units (y down); (0, 0) for the others."""
    if motion not in DIRECTIONS:
        return 0.0, 0.0
    dx = (-1.0 if "left" in motion else 0.0) + (1.0 if "right" in motion else 0.0)
    dy = (-1.0 if "up" in motion else 0.0) + (1.0 if "down" in motion else 0.0)
    norm = math.hypot(dx, dy)
    return dx / norm, dy / norm


def _draw_start(motion: str, rng: np.random.Generator) -> tuple[float, float]:
    """A start centroid in frame units (before clamping into the frame)."""
    if motion in ("falling", "bouncing"):
        top = (0.1, 0.2) if motion == "falling" else (0.15, 0.3)
        return float(rng.uniform(0.15, 0.85)), float(rng.uniform(*top))
    ux, uy = direction_vector(motion)
    if ux == 0.0 and uy == 0.0:
        return float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))
    # a path centred on the frame, shifted a little along and freely across the motion
    along = float(rng.uniform(-0.05, 0.05)) - LINEAR_SPEED * NOMINAL_DURATION / 2
    across = float(rng.uniform(-0.35, 0.35))
    return 0.5 + along * ux - across * uy, 0.5 + along * uy + across * ux


def layout(
    objects: tuple[ObjectSpec, ...], *, height: int, width: int, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Start centroids (pixels), drawn from ``rng``; objects keep apart where they can.

    Each later object takes the best of a few random candidates (the one farthest
    from those already placed), which spreads crowded scenes without a solver.
    """
    placed: list[tuple[float, float, float]] = []  # x, y, radius
    for spec in objects:
        radius = EXTENTS[spec.shape].radius * object_size(spec, height, width)
        best, best_gap = (0.0, 0.0), -math.inf
        for _ in range(_LAYOUT_TRIES):
            u, v = _draw_start(spec.motion, rng)
            x, y = _clamp(u * width, radius, width), _clamp(v * height, radius, height)
            gap = min((math.hypot(x - px, y - py) - radius - pr for px, py, pr in placed),
                      default=math.inf)
            if gap > best_gap:
                best, best_gap = (x, y), gap
            if not placed:
                break  # nothing to keep apart from: the first draw is as good as any
        placed.append((*best, radius))
    return [(x, y) for x, y, _ in placed]


def _clamp(value: float, margin: float, extent: int) -> float:
    """Keep a start centroid ``margin`` pixels inside the frame where the frame allows."""
    if 2 * margin >= extent:
        return extent / 2
    return min(max(value, margin), extent - margin)


@attrs.frozen(eq=False)
class Trajectory:
    """Centroid (pixels) and rotation (radians, clockwise) at each requested time."""

    x: FloatArray
    y: FloatArray
    angle: FloatArray


def trajectory(
    spec: ObjectSpec, start: tuple[float, float], times: FloatArray, *, height: int, width: int
) -> Trajectory:
    """The object's exact position at ``times`` (seconds) given its start centroid."""
    x0, y0 = start
    x = np.full(times.shape, x0, dtype=np.float64)
    y = np.full(times.shape, y0, dtype=np.float64)
    angle = np.zeros(times.shape, dtype=np.float64)
    if spec.motion in DIRECTIONS:
        dx, dy = direction_vector(spec.motion)
        x = x0 + dx * LINEAR_SPEED * width * times
        y = y0 + dy * LINEAR_SPEED * height * times
    elif spec.motion == "falling":
        y = y0 + 0.5 * FALL_GRAVITY * height * times**2
    elif spec.motion == "bouncing":
        y = bounce(y0, floor_y(spec, height, width), BOUNCE_GRAVITY * height, RESTITUTION, times)
    elif spec.motion == "rotating":
        angle = ROTATION_SPEED * times
    return Trajectory(x=x, y=y, angle=angle)


def bounce(y0: float, floor: float, g: float, e: float, times: FloatArray) -> FloatArray:
    """Height of a body dropped from rest at ``y0`` onto ``floor`` (y down), restitution ``e``.

    Solved per flight in closed form, so there is no time step to tunnel through
    the floor and no energy is gained: flight ``k`` leaves the floor at speed
    ``e**k * v1`` and reaches ``(e**k * v1)**2 / (2 g)`` above it.
    """
    drop = floor - y0
    if drop <= 0.0:
        return np.full(times.shape, floor, dtype=np.float64)
    t1 = math.sqrt(2.0 * drop / g)
    v1 = g * t1
    launches = [v1 * e]
    while launches[-1] ** 2 / (2.0 * g) > _REST_HEIGHT and len(launches) < 10_000:
        launches.append(launches[-1] * e)
    speeds = np.asarray(launches)
    # flight k (launch speed speeds[k]) starts at impacts[k] and lasts 2 speeds[k] / g
    impacts = t1 + np.concatenate(([0.0], np.cumsum(2.0 * speeds / g)))
    t = np.asarray(times, dtype=np.float64)
    k = np.searchsorted(impacts, t, side="right") - 1
    flying = (k >= 0) & (k < len(speeds))
    kk = np.clip(k, 0, len(speeds) - 1)
    tau = t - impacts[kk]
    rise = np.where(flying, speeds[kk] * tau - 0.5 * g * tau**2, 0.0)
    y = np.where(k < 0, y0 + 0.5 * g * t**2, floor - np.maximum(rise, 0.0))
    return np.asarray(np.minimum(y, floor), dtype=np.float64)


def camera_offset(camera: str | None, times: FloatArray, *, width: int) -> FloatArray:
    """Horizontal shift (pixels) of everything in the scene at ``times``."""
    if camera is None:
        return np.zeros(times.shape, dtype=np.float64)
    sign = 1.0 if camera == "pan-left" else -1.0
    return np.asarray(sign * PAN_SPEED * width * times, dtype=np.float64)
