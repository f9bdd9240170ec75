"""Measurements on frames alone: what a clip shows, with no access to how it was made.

The evaluation harness scores every backend, learned or procedural, with these
functions, so they may only look at pixels: a background colour, foreground
blobs, their colour names and shapes, tracks across frames, and the motion,
physics and stability of those tracks. Ground truth enters only later, in
``vidgen.training.evaluate``, when the measured values are compared with what a
caption says.

Everything is frame-relative (positions in frame sizes, speeds in frame sizes
per second, shape descriptors invariant to scale and rotation), so clips of any
resolution are measured the same way. Learned models make blurry, fragmented,
colour-shifted clips; the segmentation thresholds each blob at half of its own
contrast, so a soft edge is cut where a hard one would be.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt

from vidgen.backends.scene.grammar import COLORS, SHAPES
from vidgen.errors import ConfigurationError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MIN_CONTRAST = 40.0
"""Euclidean RGB distance from the background (of 441) below which a pixel is background.

The closest object/background pair of the palette (magenta on purple) is 92 apart,
so 40 keeps every renderable object while ignoring codec-level noise.
"""
BACKGROUND_SPREAD = 2.0
"""A textured or noisy background raises the cut to this multiple of the border's own
90th-percentile distance from its median colour (a camera-pan texture reaches ~45)."""
MIN_BLOB_FRACTION = 0.001
"""Blobs smaller than this fraction of the frame (and than 3 pixels) are specks, not objects."""
MAX_BLOB_FRACTION = 0.25
"""Blobs larger than this fraction of the frame are not objects but an unsegmentable frame
(noise, a wash of colour): the largest captioned object covers 9% of the frame."""
COUNT_RELATIVE_AREA = 0.1
"""A blob counts as an object if it is at least this fraction of the frame's largest blob."""
STATIC_SPEED = 0.06
"""Speeds (frame sizes per second) below this are 'static'; 'moving' is 0.25 in the grammar."""
ROTATION_MIN = 0.35
"""Net turn (radians) over the clip above which a stationary object is 'rotating' (~20°)."""
ACCELERATION_RATIO = 1.7
"""Falling from rest covers 3x as much ground in the second half of a clip as in the first;
constant speed covers 1x. The cut sits near their geometric mean."""
BOUNCE_DROP = 0.1
"""A bounce needs a descent of at least this many frame heights before the turn ..."""
BOUNCE_RISE = 0.05
"""... a rise of at least this many after it ..."""
BOUNCE_FLOOR = 0.55
"""... and the turn in the lower part of the frame (y below this fraction of the height)."""
FALL_MIN_TRAVEL = 0.05
"""A fall fit needs this much vertical travel (frame heights); less is no fall at all."""
_LINK_REACH = 0.35
"""The farthest (frame sizes) an object may jump between frames and stay the same track."""
_LINK_GAP = 4
"""A track may resume after this many frames without its object (hidden behind another)."""

SHAPE_SYMMETRY: dict[str, int] = {"triangle": 3, "square": 4, "star": 5, "diamond": 2}
"""The lowest angular harmonic each shape has; a circle has none."""

# --- colour -------------------------------------------------------------------------------


def srgb_to_lab(rgb: npt.ArrayLike) -> FloatArray:
    """CIELAB (D65) of sRGB triples in 0..255 (any leading shape), for perceptual distances."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                    200 * (f[..., 1] - f[..., 2])], axis=-1)
    return np.asarray(lab, dtype=np.float64)


_PALETTE_NAMES: tuple[str, ...] = tuple(COLORS)
_PALETTE_LAB = srgb_to_lab(np.array([COLORS[c] for c in _PALETTE_NAMES]))


def name_color(rgb: npt.ArrayLike) -> str:
    """The grammar colour nearest to ``rgb`` in CIELAB (ΔE76)."""
    lab = srgb_to_lab(rgb)
    return _PALETTE_NAMES[int(np.argmin(np.linalg.norm(_PALETTE_LAB - lab, axis=-1)))]


def delta_e(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """ΔE76 between two sRGB colours (about 2.3 is a just-noticeable difference)."""
    return float(np.linalg.norm(srgb_to_lab(a) - srgb_to_lab(b)))


# --- segmentation -------------------------------------------------------------------------


def background_colors(frames: npt.NDArray[np.uint8]) -> FloatArray:
    """Per-frame background colour (T, 3): the median of the one-pixel frame border.

    Objects rarely cover half of the border, so the median ignores them; a
    camera-pan texture makes this the border's typical colour, not every pixel's.
    """
    f = frames.astype(np.float64)
    border = np.concatenate([f[:, 0, :, :], f[:, -1, :, :], f[:, 1:-1, 0, :], f[:, 1:-1, -1, :]],
                            axis=1)
    return np.asarray(np.median(border, axis=1), dtype=np.float64)


def foreground_cut(distance: npt.NDArray[np.float32]) -> float:
    """The contrast above which a pixel may belong to an object in this clip.

    ``MIN_CONTRAST``, or more when the background varies: twice the 90th
    percentile of the border's distances from the background colour, so a texture
    or noise that the border shows everywhere is not mistaken for objects.
    """
    border = np.concatenate([distance[:, 0, :], distance[:, -1, :], distance[:, 1:-1, 0],
                             distance[:, 1:-1, -1]], axis=1)
    return max(MIN_CONTRAST, BACKGROUND_SPREAD * float(np.percentile(border, 90)))


def contrast(frames: npt.NDArray[np.uint8], background: FloatArray) -> npt.NDArray[np.float32]:
    """Euclidean RGB distance (T, H, W) of every pixel from its frame's background colour."""
    diff = frames.astype(np.float32) - background[:, None, None, :].astype(np.float32)
    sq = diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1] + diff[..., 2] * diff[..., 2]
    return np.asarray(np.sqrt(sq), dtype=np.float32)


def label_components(mask: BoolArray) -> tuple[IntArray, int]:
    """8-connected components of each frame of a (T, H, W) mask; labels 0..n-1, -1 elsewhere.

    Min-label propagation with pointer jumping: every pixel takes the smallest
    label among its neighbours, then jumps to its label's own label, so long
    components converge in a few dozen array passes. Pure numpy, no scipy.
    """
    if mask.ndim != 3:
        raise ConfigurationError(f"mask must be (T, H, W), got shape {mask.shape}")
    labels = np.full(mask.shape, -1, dtype=np.int64)
    if not mask.any():
        return labels, 0
    # work inside the bounding box of everything that is set: objects are small
    rows, cols = np.nonzero(mask.any(axis=(0, 2)))[0], np.nonzero(mask.any(axis=(0, 1)))[0]
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    sub = np.ascontiguousarray(mask[:, r0:r1, c0:c1])
    h, w = sub.shape[1:]
    big = sub.size
    lab = np.where(sub, np.arange(sub.size, dtype=np.int32).reshape(sub.shape), big)
    padded = np.full((sub.shape[0], h + 2, w + 2), big, dtype=np.int32)
    while True:
        padded[:, 1:-1, 1:-1] = lab
        new = lab.copy()
        for dy in range(3):
            for dx in range(3):
                if dy != 1 or dx != 1:
                    np.minimum(new, padded[:, dy:dy + h, dx:dx + w], out=new)
        new[~sub] = big
        flat = new.reshape(-1)
        fg = flat < big
        for _ in range(2):
            flat[fg] = flat[flat[fg]]
        if np.array_equal(new, lab):
            break
        lab = new
    roots, inverse = np.unique(lab[sub], return_inverse=True)
    view = labels[:, r0:r1, c0:c1]
    view[sub] = inverse
    return labels, len(roots)


def _dilate(mask: BoolArray) -> BoolArray:
    """One-pixel 8-neighbour dilation of each frame of a (T, H, W) mask."""
    h, w = mask.shape[1:]
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[:, dy:dy + h, dx:dx + w]
    return out


# --- blobs --------------------------------------------------------------------------------


@attrs.frozen
class ShapeFeatures:
    """Scale- and rotation-invariant descriptors of a binary region.

    ``elongation`` is the ratio of the smaller to the larger principal variance
    (1 for every regular shape, 0.56 for the 0.75-aspect diamond); ``harmonics``
    maps k = 2..5 to ``|Σ z^k| / Σ |z|^k`` over the region's pixels (z the
    offset from the centroid as a complex number), which is zero unless the
    shape has a k-fold component: 3 for a triangle, 4 for a square, 5 for a star.
    ``phases`` holds ``arg Σ z^k``, which turns k times as fast as the shape.
    """

    elongation: float
    harmonics: dict[int, float]
    phases: dict[int, float]


@attrs.frozen
class Blob:
    """One connected foreground region in one frame.

    Positions are pixels with (0, 0) the top-left corner of the top-left pixel,
    the renderer's convention, so a centroid compares directly with its tracks.
    ``color`` is the mean sRGB of the blob's core (its higher-contrast half),
    which anti-aliased or blurred edges do not tint.
    """

    frame: int
    area: int
    x: float
    y: float
    color: tuple[float, float, float]
    lab: tuple[float, float, float]  # ``color`` in CIELAB
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1 (exclusive)
    touches_border: bool
    features: ShapeFeatures


def find_blobs(frames: npt.NDArray[np.uint8], background: FloatArray | None = None,
               distance: npt.NDArray[np.float32] | None = None) -> tuple[tuple[Blob, ...], ...]:
    """Every object-sized blob of every frame, largest first within a frame.

    Two passes: pixels above ``foreground_cut`` (at least ``MIN_CONTRAST``) form
    candidate regions, then each region keeps the pixels above half of its own
    peak contrast (a half-maximum cut: the true edge of an anti-aliased shape,
    and a stable one for a blurred shape), which are labelled again.
    """
    _check_frames(frames)
    t = frames.shape[0]
    bg = background_colors(frames) if background is None else background
    dist = contrast(frames, bg) if distance is None else distance
    coarse, n = label_components(dist >= foreground_cut(dist))
    if n == 0:
        return tuple(() for _ in range(t))
    inside = coarse >= 0
    peak = np.zeros(n, dtype=np.float32)
    np.maximum.at(peak, coarse[inside], dist[inside])
    fine_mask = inside & (dist >= 0.5 * peak[np.maximum(coarse, 0)])
    labels, m = label_components(fine_mask)
    return _blob_stats(frames, dist, labels, m)


def _blob_stats(frames: npt.NDArray[np.uint8], dist: npt.NDArray[np.float32], labels: IntArray,
                n: int) -> tuple[tuple[Blob, ...], ...]:
    t, h, w = frames.shape[:3]
    per_frame: list[list[Blob]] = [[] for _ in range(t)]
    if n == 0:
        return tuple(() for _ in range(t))
    where = labels >= 0
    lab = labels[where]
    tt, yy, xx = np.nonzero(where)
    area = np.bincount(lab, minlength=n).astype(np.float64)
    min_area = max(3.0, MIN_BLOB_FRACTION * h * w)
    keep = (area >= min_area) & (area <= MAX_BLOB_FRACTION * h * w)
    if not keep.any():
        return tuple(() for _ in range(t))
    px, py = xx + 0.5, yy + 0.5
    cx = np.bincount(lab, px, n) / area
    cy = np.bincount(lab, py, n) / area
    frame_of = np.zeros(n, dtype=np.int64)
    frame_of[lab] = tt
    # core colour: pixels above the midpoint between the blob's cut and its peak
    d = dist[where].astype(np.float64)
    peak = np.zeros(n)
    np.maximum.at(peak, lab, d)
    core = d >= 0.75 * peak[lab]
    rgb = frames[where].astype(np.float64)
    core_n = np.bincount(lab[core], minlength=n).astype(np.float64)
    color_sum = np.stack([np.bincount(lab[core], rgb[core, c], n) for c in range(3)], axis=1)
    color = np.asarray(color_sum, dtype=np.float64) / np.maximum(core_n, 1.0)[:, None]
    lab_color = srgb_to_lab(color)
    # bounding boxes
    y0 = np.full(n, h, dtype=np.int64)
    x0 = np.full(n, w, dtype=np.int64)
    y1 = np.zeros(n, dtype=np.int64)
    x1 = np.zeros(n, dtype=np.int64)
    np.minimum.at(y0, lab, yy)
    np.minimum.at(x0, lab, xx)
    np.maximum.at(y1, lab, yy + 1)
    np.maximum.at(x1, lab, xx + 1)
    # shape moments about each blob's centroid
    dx, dy = px - cx[lab], py - cy[lab]
    sxx = np.bincount(lab, dx * dx, n) + area / 12.0  # each pixel is a unit square
    syy = np.bincount(lab, dy * dy, n) + area / 12.0
    sxy = np.bincount(lab, dx * dy, n)
    half_trace = (sxx + syy) / 2
    root = np.sqrt(((sxx - syy) / 2) ** 2 + sxy**2)
    elongation = (half_trace - root) / np.maximum(half_trace + root, 1e-12)
    z = dx + 1j * dy
    r = np.abs(z)
    harmonics: dict[int, FloatArray] = {}
    phases: dict[int, FloatArray] = {}
    for k in (2, 3, 4, 5):
        zk = z**k
        num = np.bincount(lab, zk.real, n) + 1j * np.bincount(lab, zk.imag, n)
        harmonics[k] = np.abs(num) / np.maximum(np.bincount(lab, r**k, n), 1e-12)
        phases[k] = np.angle(num)
    for i in np.nonzero(keep)[0]:
        f = int(frame_of[i])
        box = (int(y0[i]), int(x0[i]), int(y1[i]), int(x1[i]))
        per_frame[f].append(Blob(
            frame=f, area=int(area[i]), x=float(cx[i]), y=float(cy[i]),
            color=(float(color[i, 0]), float(color[i, 1]), float(color[i, 2])),
            lab=(float(lab_color[i, 0]), float(lab_color[i, 1]), float(lab_color[i, 2])), bbox=box,
            touches_border=box[0] == 0 or box[1] == 0 or box[2] == h or box[3] == w,
            features=ShapeFeatures(
                elongation=float(elongation[i]),
                harmonics={k: float(v[i]) for k, v in harmonics.items()},
                phases={k: float(v[i]) for k, v in phases.items()}),
        ))
    return tuple(tuple(sorted(b, key=lambda blob: -blob.area)) for b in per_frame)


def _check_frames(frames: npt.NDArray[np.uint8]) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
            or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
        shape = getattr(frames, "shape", None)
        raise ConfigurationError(f"frames must be non-empty uint8 (T, H, W, 3), got {shape}")


# --- shape --------------------------------------------------------------------------------


@attrs.frozen
class ShapeRules:
    """Decision rules of ``classify_shape``: three numbers, calibrated on scene renders.

    Only a diamond is elongated. The other shapes are told apart by which angular
    harmonic (3: triangle, 4: square, 5: star) is strong relative to that
    harmonic's strength on clean renders (``scale``); if none reaches
    ``circle_cut`` of its scale, the region is a circle.
    """

    elongation_cut: float
    scale: tuple[float, float, float]  # typical |harmonic| for k = 3, 4, 5
    circle_cut: float


SHAPE_RULES = ShapeRules(elongation_cut=0.845, scale=(0.661, 0.432, 0.765), circle_cut=0.48)
"""From ``calibrate_shape_rules`` on renders of the training split (see docs/evaluation.md and
``benchmarks/eval_scene.py --calibrate-shapes``, which reproduces them)."""

MIN_SHAPE_SIZE = 6.0
"""Objects smaller than this (pixels across) are too few pixels to have a shape; calibration
and the accuracy bar skip them (a small object in a 32x32 clip is 3.8 pixels)."""


def corner_alignment(features: ShapeFeatures) -> float:
    """cos(arg c4 - 2 arg c2): +1 when the corners lie on the principal axes (a diamond), -1 when
    they lie between them (a square stretched by pixelation). Rotation-invariant: both phases
    turn by 4θ."""
    return math.cos(features.phases[4] - 2 * features.phases[2])


def classify_shape(features: ShapeFeatures, rules: ShapeRules = SHAPE_RULES) -> str:
    """The grammar shape a region looks like, from its invariant descriptors.

    No strong 3-, 4- or 5-fold harmonic: a circle (or an ellipse, which is a circle
    smeared by motion). An elongated region with a dominant 4-fold harmonic is a diamond if its
    corners lie on its principal axes, else a square whose pixels happen to
    be uneven; a small star or triangle that comes out elongated keeps its own
    (3- or 5-fold) harmonic.
    """
    scores = [features.harmonics[k] / s for k, s in zip((3, 4, 5), rules.scale, strict=True)]
    best = int(np.argmax(scores))
    elongated = features.elongation < rules.elongation_cut
    if scores[best] < rules.circle_cut:
        return "circle"  # an ellipse too: a diamond always has a strong 4-fold harmonic
    if best == 1 and elongated:
        return "diamond" if corner_alignment(features) > 0 else "square"
    return ("triangle", "square", "star")[best]


def calibrate_shape_rules(samples: Sequence[tuple[ShapeFeatures, str]]) -> ShapeRules:
    """Fit ``ShapeRules`` to labelled regions.

    The scales are per-class medians of each class's own harmonic. Each cut is
    then chosen on a grid by training accuracy; of the values within 0.2% of the
    best, the middle one is kept, which leaves the widest margin on both sides
    instead of hugging one class.
    """
    if not samples:
        raise ConfigurationError("shape calibration needs labelled samples")
    labels = [label for _, label in samples]
    missing = [s for s in SHAPES if s not in labels]
    if missing:
        raise ConfigurationError(f"shape calibration needs every shape, missing {missing}")
    scale = tuple(
        float(np.median([f.harmonics[k] for f, label in samples if label == shape]))
        for k, shape in ((3, "triangle"), (4, "square"), (5, "star"))
    )
    rules = ShapeRules(elongation_cut=0.75, scale=(scale[0], scale[1], scale[2]), circle_cut=0.35)

    def accuracy(r: ShapeRules) -> float:
        return float(np.mean([classify_shape(f, r) == label for f, label in samples]))

    def with_cut(r: ShapeRules, field: str, cut: float) -> ShapeRules:
        if field == "elongation_cut":
            return ShapeRules(elongation_cut=cut, scale=r.scale, circle_cut=r.circle_cut)
        return ShapeRules(elongation_cut=r.elongation_cut, scale=r.scale, circle_cut=cut)

    grid = np.round(np.arange(0.10, 0.96, 0.01), 2)
    for field in ("elongation_cut", "circle_cut", "elongation_cut"):
        scores = np.array([accuracy(with_cut(rules, field, float(c))) for c in grid])
        plateau = grid[scores >= scores.max() - 0.002]
        rules = with_cut(rules, field, float(np.median(plateau)))
    return rules


# --- tracks -------------------------------------------------------------------------------


@attrs.frozen
class Track:
    """One object followed through the clip: its blob in each frame it was found in."""

    blobs: tuple[Blob, ...]  # in frame order, at most one per frame

    @property
    def frames(self) -> IntArray:
        return np.array([b.frame for b in self.blobs], dtype=np.int64)

    @property
    def total_area(self) -> int:
        return sum(b.area for b in self.blobs)


def link_tracks(blobs: Sequence[Sequence[Blob]], *, height: int, width: int) -> tuple[Track, ...]:
    """Link blobs frame to frame into tracks, most prominent (largest total area) first.

    Each track predicts its next position at constant velocity; blobs are assigned
    greedily by a cost mixing distance (to the prediction or the last position,
    whichever is nearer, so a bounce's reversal still links), colour and size.
    A blob farther than ``_LINK_REACH`` frame sizes (per frame of gap) from every
    track starts a new one; a track can resume after up to ``_LINK_GAP`` frames
    without its object, which is how an object passing behind another stays one track.
    """
    tracks: list[list[Blob]] = []
    for frame_blobs in blobs:
        candidates: list[tuple[float, int, int]] = []
        for ti, tr in enumerate(tracks):
            last = tr[-1]
            gap = frame_blobs[0].frame - last.frame if frame_blobs else 1
            if gap > _LINK_GAP:
                continue
            vx = vy = 0.0
            if len(tr) >= 2 and tr[-2].frame == last.frame - 1:
                vx, vy = last.x - tr[-2].x, last.y - tr[-2].y
            for bi, b in enumerate(frame_blobs):
                near = min(math.hypot((b.x - last.x - gap * vx) / width,
                                      (b.y - last.y - gap * vy) / height),
                           math.hypot((b.x - last.x) / width, (b.y - last.y) / height))
                if near > _LINK_REACH * gap:
                    continue
                colour_gap = math.dist(b.lab, last.lab)
                cost = (near + colour_gap / 200.0
                        + abs(math.log(b.area / last.area)) / 4.0)
                candidates.append((cost, ti, bi))
        used_t: set[int] = set()
        used_b: set[int] = set()
        for _cost, ti, bi in sorted(candidates):
            if ti in used_t or bi in used_b:
                continue
            tracks[ti].append(frame_blobs[bi])
            used_t.add(ti)
            used_b.add(bi)
        tracks.extend([b] for bi, b in enumerate(frame_blobs) if bi not in used_b)
    out = [Track(blobs=tuple(tr)) for tr in tracks]
    return tuple(sorted(out, key=lambda tr: -tr.total_area))


def count_objects(blobs: Sequence[Sequence[Blob]]) -> int:
    """How many objects the clip shows: the median per-frame number of object-sized blobs.

    A blob counts if it is at least ``COUNT_RELATIVE_AREA`` of its frame's largest,
    so a speck beside an object is not a second object, while a fragment of
    comparable size is (a fragmented object is a miss).
    """
    counts = []
    for frame_blobs in blobs:
        if not frame_blobs:
            counts.append(0)
            continue
        largest = max(b.area for b in frame_blobs)
        counts.append(sum(b.area >= COUNT_RELATIVE_AREA * largest for b in frame_blobs))
    return round(float(np.median(counts))) if counts else 0


# --- motion and physics -------------------------------------------------------------------


@attrs.frozen
class FallFit:
    """``y(t) = a + b t + c t²`` by least squares, in frame heights and seconds."""

    r2: float
    gravity: float  # 2c, frame heights / s²
    initial_speed: float  # b, frame heights / s (0 when falling from rest)


def fit_fall(times: FloatArray, y: FloatArray, min_points: int = 4) -> FallFit:
    """Quadratic fit of a vertical track; R² is 0 when the track barely moves or is too short.

    A track with less than ``FALL_MIN_TRAVEL`` of vertical travel has nothing to
    explain, and a parabola (three parameters) through a handful of points fits
    almost anything, so fewer than ``min_points`` (at least 4) points score 0.
    """
    if len(times) < max(4, min_points) or float(np.ptp(y)) < FALL_MIN_TRAVEL:
        return FallFit(r2=0.0, gravity=0.0, initial_speed=0.0)
    coef = np.polyfit(times, y, 2)
    resid = y - np.polyval(coef, times)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 0.0
    return FallFit(r2=max(r2, 0.0), gravity=float(2 * coef[0]), initial_speed=float(coef[1]))


def direction_name(dx: float, dy: float) -> str:
    """The grammar direction nearest to a screen displacement (y down), in 45° buckets."""
    angle = math.degrees(math.atan2(-dy, dx)) % 360.0
    names = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")
    return names[int(((angle + 22.5) % 360.0) // 45.0)]


def detect_bounce(y: FloatArray) -> bool:
    """A fall, then a rise, turning near the bottom: y in frame heights, one sample per frame.

    The turn is a frame below ``BOUNCE_FLOOR`` reached by a run of at least three
    descending steps covering ``BOUNCE_DROP``, and left by a run of rising steps
    covering ``BOUNCE_RISE``: at least two, or one if the clip ends there. The
    descent must speed up (its last step at least its first), as a fall does; a
    track that jumps or wanders at random rarely does all of this.
    """
    n = len(y)
    for i in range(3, n - 1):
        if y[i] < BOUNCE_FLOOR or not y[i + 1] < y[i]:
            continue
        start = i
        while start > 0 and y[start - 1] < y[start]:
            start -= 1
        if i - start < 3 or y[i] - y[start] < BOUNCE_DROP or \
                y[i] - y[i - 1] < y[start + 1] - y[start]:  # a fall speeds up into the floor
            continue
        end = i + 1
        while end + 1 < n and y[end + 1] < y[end]:
            end += 1
        if y[i] - y[end] >= BOUNCE_RISE and (end - i >= 2 or end == n - 1):
            return True
    return False


@attrs.frozen(eq=False)
class ObjectMeasurement:
    """Everything measured about one tracked object.

    ``motion`` is one of the grammar's motions (``static``, a direction,
    ``falling``, ``bouncing``, ``rotating``); ``direction`` is coarser: the 8
    directions of net travel or ``static``. Drifts and smoothness are computed on
    frames where the object does not touch the frame border (clipping is not drift).
    """

    frames_found: int
    color_rgb: tuple[float, float, float]
    color: str
    shape: str
    direction: str
    motion: str
    velocity: tuple[float, float]  # frame widths / s, frame heights / s
    accelerating: bool  # covers >= ACCELERATION_RATIO as much ground in the 2nd half as the 1st
    rotation: float  # net turn over the clip, radians (0 for circles: not measurable)
    bounced: bool
    fall: FallFit
    size_drift: float  # mean |area - median| / median
    color_drift: float  # mean ΔE76 of the per-frame colour from the median colour
    smoothness: float  # mean |second difference| of the centroid, frame sizes per frame²
    screen_x: FloatArray  # centroid in each found frame, pixels, as seen on screen
    screen_y: FloatArray
    track_frames: IntArray


def describe_track(track: Track, *, height: int, width: int, fps: float, num_frames: int,
                   x_offset: FloatArray | None = None) -> ObjectMeasurement:
    """Colour, shape, motion class, fall fit, bounce, drift and smoothness of one track.

    ``num_frames`` is the clip's length: a fall fit needs the object in at least
    half of it. ``x_offset`` (pixels per clip frame) is subtracted from x before
    the motion is analysed: a known camera pan, so that motion is judged in the world.
    """
    blobs = track.blobs
    clean = [b for b in blobs if not b.touches_border] or list(blobs)
    rgb = np.median(np.array([b.color for b in clean]), axis=0)
    color_rgb = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
    votes = Counter(classify_shape(b.features) for b in clean)
    shape = min(votes, key=lambda s: (-votes[s], SHAPES.index(s)))
    frames = track.frames
    t = frames / fps
    screen_x = np.array([b.x for b in blobs])
    screen_y = np.array([b.y for b in blobs])
    shift = np.zeros(len(blobs)) if x_offset is None else np.asarray(x_offset)[frames]
    x = (screen_x - shift) / width
    y = screen_y / height
    # trajectories from unclipped frames where enough remain: a clipped blob's centroid is biased
    fit_idx = np.array([i for i, b in enumerate(blobs) if not b.touches_border])
    if len(fit_idx) < max(4, len(blobs) // 2):
        fit_idx = np.arange(len(blobs))
    tf, xf, yf = t[fit_idx], x[fit_idx], y[fit_idx]
    velocity = (0.0, 0.0)
    if len(tf) >= 2 and np.ptp(tf) > 0:
        velocity = (float(np.polyfit(tf, xf, 1)[0]), float(np.polyfit(tf, yf, 1)[0]))
    speed = math.hypot(*velocity)
    accelerating = _accelerating(tf, xf, yf, velocity)
    bounced = detect_bounce(y) if len(y) >= 4 else False
    rotation = _rotation(clean, shape, fps)
    fall = fit_fall(tf, yf, min_points=(num_frames + 1) // 2)
    if bounced:  # net travel of a bounce is down (peaks shrink): judged from the end points
        motion, direction = "bouncing", direction_name(x[-1] - x[0], y[-1] - y[0])
    elif speed < STATIC_SPEED:
        direction = "static"
        motion = "rotating" if rotation >= ROTATION_MIN else "static"
    else:
        direction = direction_name(*velocity)
        motion = "falling" if direction == "down" and accelerating else direction
    areas = np.array([b.area for b in clean], dtype=np.float64)
    size_drift = float(np.mean(np.abs(areas - np.median(areas))) / np.median(areas))
    lab = np.array([b.lab for b in clean])
    color_drift = float(np.mean(np.linalg.norm(lab - np.median(lab, axis=0), axis=1)))
    return ObjectMeasurement(
        frames_found=len(blobs), color_rgb=color_rgb, color=name_color(color_rgb), shape=shape,
        direction=direction, motion=motion, velocity=velocity, accelerating=accelerating,
        rotation=rotation, bounced=bounced, fall=fall, size_drift=size_drift,
        color_drift=color_drift, smoothness=smoothness(frames, x, y),
        screen_x=screen_x, screen_y=screen_y, track_frames=frames,
    )


def smoothness(frames: IntArray, x: FloatArray, y: FloatArray) -> float:
    """Mean |second difference| of a centroid track (frame units) over consecutive frame triples."""
    if len(frames) < 3:
        return 0.0
    consecutive = (frames[2:] - frames[:-2]) == 2
    if not consecutive.any():
        return 0.0
    ddx = x[2:] - 2 * x[1:-1] + x[:-2]
    ddy = y[2:] - 2 * y[1:-1] + y[:-2]
    return float(np.mean(np.hypot(ddx, ddy)[consecutive]))


def _accelerating(t: FloatArray, x: FloatArray, y: FloatArray,
                  velocity: tuple[float, float]) -> bool:
    """Does the track cover much more ground in its second half than its first (a quadratic fit
    along the direction of travel)?"""
    if len(t) < 4 or np.ptp(t) <= 0:
        return False
    norm = math.hypot(*velocity)
    if norm == 0:
        return False
    along = (x * velocity[0] + y * velocity[1]) / norm
    coef = np.polyfit(t, along, 2)
    t0, t1 = float(t.min()), float(t.max())
    mid = (t0 + t1) / 2
    first = float(np.polyval(coef, mid) - np.polyval(coef, t0))
    second = float(np.polyval(coef, t1) - np.polyval(coef, mid))
    return second > 0 and second >= ACCELERATION_RATIO * max(first, 0.0) + 1e-9


def _rotation(blobs: Sequence[Blob], shape: str, fps: float) -> float:
    """Net turn (radians) from the phase of the shape's own harmonic, unwrapped frame to frame.

    ``arg Σ z^k`` turns k times as fast as the shape, so dividing by k gives the
    shape's angle modulo its symmetry; a circle has no phase to follow.
    """
    k = SHAPE_SYMMETRY.get(shape)
    if k is None or len(blobs) < 2:
        return 0.0
    t = np.array([b.frame for b in blobs], dtype=np.float64) / fps
    phase = np.unwrap(np.array([b.features.phases[k] for b in blobs])) / k
    slope = float(np.polyfit(t, phase, 1)[0]) if np.ptp(t) > 0 else 0.0
    return abs(slope) * float(np.ptp(t))


# --- background ---------------------------------------------------------------------------


def flicker(frames: npt.NDArray[np.uint8], background: FloatArray | None = None,
            distance: npt.NDArray[np.float32] | None = None) -> float:
    """Mean absolute frame-to-frame change (0..255) of pixels that are background in both frames.

    Background is everything below ``foreground_cut``, minus a one-pixel margin
    around the foreground (anti-aliased edges move with the object). If under 5%
    of the frame is background, the clip has none to speak of and every pixel counts.
    """
    _check_frames(frames)
    if frames.shape[0] < 2:
        return 0.0
    bg = background_colors(frames) if background is None else background
    dist = contrast(frames, bg) if distance is None else distance
    fg = _dilate(dist >= foreground_cut(dist))
    still = ~(fg[1:] | fg[:-1])
    diff = np.abs(frames[1:].astype(np.int16) - frames[:-1].astype(np.int16)).mean(-1)
    if still.mean() < 0.05:
        return float(diff.mean())
    return float(diff[still].mean())


# --- a whole clip -------------------------------------------------------------------------


@attrs.frozen(eq=False)
class ClipMeasurement:
    """What a clip shows: blobs per frame, tracks (most prominent first), count and flicker."""

    height: int
    width: int
    fps: float
    background: FloatArray  # (T, 3)
    blobs: tuple[tuple[Blob, ...], ...]
    tracks: tuple[Track, ...]
    count: int
    flicker: float

    def objects(self, n: int, x_offset: FloatArray | None = None) -> list[ObjectMeasurement]:
        """The ``n`` most prominent tracks that persist through at least a quarter of the clip.

        ``x_offset`` (pixels per frame) is a known camera pan, taken out of x so
        that motion is judged in the world (see ``describe_track``).
        """
        t = len(self.blobs)
        keep = [tr for tr in self.tracks if len(tr.blobs) >= max(1, t // 4)][:n]
        return [describe_track(tr, height=self.height, width=self.width, fps=self.fps,
                               num_frames=t, x_offset=x_offset) for tr in keep]


def measure_clip(frames: npt.NDArray[np.uint8], fps: float) -> ClipMeasurement:
    """Segment, link and count: the frame-only half of the evaluation of one clip."""
    _check_frames(frames)
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigurationError(f"fps must be a positive number, got {fps!r}")
    h, w = frames.shape[1:3]
    bg = background_colors(frames)
    dist = contrast(frames, bg)
    blobs = find_blobs(frames, bg, dist)
    return ClipMeasurement(
        height=h, width=w, fps=float(fps), background=bg, blobs=blobs,
        tracks=link_tracks(blobs, height=h, width=w), count=count_objects(blobs),
        flicker=flicker(frames, bg, dist),
    )


__all__ = [
    "Blob",
    "ClipMeasurement",
    "FallFit",
    "ObjectMeasurement",
    "ShapeFeatures",
    "ShapeRules",
    "Track",
    "background_colors",
    "calibrate_shape_rules",
    "classify_shape",
    "corner_alignment",
    "count_objects",
    "delta_e",
    "describe_track",
    "detect_bounce",
    "direction_name",
    "find_blobs",
    "fit_fall",
    "flicker",
    "foreground_cut",
    "label_components",
    "link_tracks",
    "measure_clip",
    "name_color",
    "smoothness",
    "srgb_to_lab",
]
