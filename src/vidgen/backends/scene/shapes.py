"""Shape geometry as signed distance functions, and anti-aliased coverage from them.

A signed distance (negative inside, in pixels) gives each pixel's partial
coverage analytically, ``clip(0.5 - d, 0, 1)``, so small objects have clean
edges without supersampling and the cost is a handful of array operations per
object. Formulas follow Inigo Quilez's 2D distance functions.

Every shape is described by one size ``s`` (pixels) and is centred on its area
centroid, so the ground-truth track is also where the colour centroid is.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_SQRT3 = math.sqrt(3.0)
_STAR_K1 = (0.809016994375, -0.587785252292)  # (cos 36°, -sin 36°)
_STAR_INNER = 0.5  # how deep the star's notches are (0 = pentagon, 1 = needle points)
_DIAMOND_ASPECT = 0.75  # width / height of the rhombus


@attrs.frozen
class Extent:
    """How far a shape of size ``s`` reaches from its centroid (in units of ``s``)."""

    radius: float  # farthest point, any orientation: used for crops and layout
    bottom: float  # lowest point when upright: where it touches the floor


EXTENTS: dict[str, Extent] = {
    "circle": Extent(radius=0.5, bottom=0.5),
    "square": Extent(radius=math.sqrt(0.5), bottom=0.5),
    "triangle": Extent(radius=1.0 / _SQRT3, bottom=0.5 / _SQRT3),
    "diamond": Extent(radius=0.5, bottom=0.5),
    "star": Extent(radius=0.5, bottom=0.5 * 0.809016994375),
}
"""Per shape; the triangle is equilateral with side ``s``, the star has outer radius ``s/2``."""


def signed_distance(shape: str, x: FloatArray, y: FloatArray, size: float) -> FloatArray:
    """Distance in pixels to the edge of ``shape`` (negative inside) at offsets ``x, y``.

    ``x`` grows to the right and ``y`` downwards (image convention); the shape is
    upright (triangle and star point up) and centred on its centroid.
    """
    if shape == "circle":
        return np.asarray(np.hypot(x, y) - size / 2, dtype=np.float64)
    if shape == "square":
        return _box(x, y, size / 2)
    if shape == "triangle":
        return _triangle(x, -y, size / 2)
    if shape == "diamond":
        return _rhombus(x, y, _DIAMOND_ASPECT * size / 2, size / 2)
    if shape == "star":
        return _star5(x, -y, size / 2)
    raise ValueError(f"unknown shape {shape!r}")


def coverage(distance: FloatArray) -> npt.NDArray[np.float32]:
    """Fraction of a one-pixel footprint inside the shape, from the signed distance."""
    return np.clip(0.5 - distance, 0.0, 1.0).astype(np.float32)


def _box(x: FloatArray, y: FloatArray, half: float) -> FloatArray:
    qx = np.abs(x) - half
    qy = np.abs(y) - half
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return np.asarray(outside + inside, dtype=np.float64)


def _triangle(x: FloatArray, y: FloatArray, r: float) -> FloatArray:
    """Equilateral triangle with half-side ``r``, apex up (``y`` up), centroid at 0."""
    px = np.abs(x) - r
    py = y + r / _SQRT3
    fold = px + _SQRT3 * py > 0.0
    qx = np.where(fold, (px - _SQRT3 * py) / 2.0, px)
    qy = np.where(fold, (-_SQRT3 * px - py) / 2.0, py)
    qx = qx - np.clip(qx, -2.0 * r, 0.0)
    return np.asarray(-np.hypot(qx, qy) * np.sign(qy), dtype=np.float64)


def _rhombus(x: FloatArray, y: FloatArray, bx: float, by: float) -> FloatArray:
    qx = np.abs(x)
    qy = np.abs(y)
    h = np.clip(((bx - 2.0 * qx) * bx - (by - 2.0 * qy) * by) / (bx * bx + by * by), -1.0, 1.0)
    d = np.hypot(qx - 0.5 * bx * (1.0 - h), qy - 0.5 * by * (1.0 + h))
    return np.asarray(d * np.sign(qx * by + qy * bx - bx * by), dtype=np.float64)


def _star5(x: FloatArray, y: FloatArray, r: float) -> FloatArray:
    """Five-pointed star with outer radius ``r``, a point straight up (``y`` up)."""
    k1x, k1y = _STAR_K1
    k2x, k2y = -k1x, k1y
    px = np.abs(x)
    py = np.array(y, dtype=np.float64, copy=True)
    dot = np.maximum(k1x * px + k1y * py, 0.0)
    px, py = px - 2.0 * dot * k1x, py - 2.0 * dot * k1y
    dot = np.maximum(k2x * px + k2y * py, 0.0)
    px, py = px - 2.0 * dot * k2x, py - 2.0 * dot * k2y
    px = np.abs(px)
    py = py - r
    bax, bay = _STAR_INNER * -k1y, _STAR_INNER * k1x - 1.0
    h = np.clip((px * bax + py * bay) / (bax * bax + bay * bay), 0.0, r)
    d = np.hypot(px - bax * h, py - bay * h)
    return np.asarray(d * np.sign(py * bax - px * bay), dtype=np.float64)
