"""Score any backend on held-out captions: does each clip show what its caption says?

For every caption, the backend's clip is measured with ``vidgen.training.measure``
(frames only), and the measurements are compared with what the caption
constrains, read from the scene grammar: the colour, the shape, how many
objects, the direction or kind of motion, and for falling objects a constant
acceleration. The scene renderer's ground truth for the same caption and seed
adds two things: an informative position error (a learned model's seed does not
reproduce the renderer's start position, so it is never a pass/fail score), and
reference values for the stability metrics, measured the same way on the
renderer's clip, so "within 1.5x of the renderer" compares like with like.

The scene backend itself is the upper bound of every score; a backend that
draws noise or nothing is the floor.
"""

from __future__ import annotations

import itertools
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs
import numpy as np
import torch

import vidgen
from vidgen.backends.base import Backend
from vidgen.backends.scene.grammar import (
    COLORS,
    DIRECTIONS,
    GRAMMAR_VERSION,
    ObjectSpec,
    SceneSpec,
    parse_caption,
)
from vidgen.backends.scene.motion import FALL_GRAVITY, camera_offset
from vidgen.backends.scene.render import ObjectTrack, render_scene
from vidgen.errors import ConfigurationError
from vidgen.training.data import SPLITS, Split, caption_space, split_combinations
from vidgen.training.measure import ObjectMeasurement, delta_e, measure_clip
from vidgen.types import GenerationRequest

CaptionSet = Literal["single", "space"]
CAPTION_SETS: tuple[CaptionSet, ...] = ("single", "space")
"""``single``: one caption per (colour, shape, motion) combination of the split, a medium
object on the default background, which isolates composition. ``space``: every caption of
the split's training-style caption space (sizes, pairs, backgrounds, camera pans)."""

GOAL_COLOR = 0.95
GOAL_SHAPE = 0.90
GOAL_DIRECTION = 0.90
GOAL_FALLING_R2 = 0.95
GOAL_STABILITY_RATIO = 1.5
"""Flicker and drift may be at most this multiple of the renderer's on the same captions ..."""
STABILITY_FLOORS: dict[str, float] = {"flicker": 1.0, "size_drift": 0.02, "color_drift": 2.3}
"""... or, where the renderer's is smaller, at most these: one grey level of flicker (the 8-bit
step), 2% of area (a pixel or two on an object at 64x64), and ΔE 2.3 (a just-noticeable
colour difference). A ratio to a renderer value of exactly zero would demand perfection."""

Progress = Callable[[int, int], None]


@attrs.frozen
class ObjectRow:
    """One expected object of one caption: what the caption asks and what the clip shows.

    Fields measured on the clip are None when no object was found for it (a miss).
    ``ref_*`` are the same measurements on the renderer's clip of this caption.
    """

    color: str
    shape: str
    motion: str
    size: str
    found: bool
    measured_color: str | None = None
    measured_shape: str | None = None
    measured_direction: str | None = None
    measured_motion: str | None = None
    color_ok: bool = False
    shape_ok: bool = False
    direction_ok: bool = False
    motion_ok: bool = False
    falling_r2: float | None = None
    falling_gravity_ratio: float | None = None
    bounce_expected: bool = False
    bounced: bool | None = None
    position_error: float | None = None
    size_drift: float | None = None
    color_drift: float | None = None
    smoothness: float | None = None
    ref_size_drift: float | None = None
    ref_color_drift: float | None = None
    ref_smoothness: float | None = None


@attrs.frozen
class CaptionRow:
    """One caption: the clip's count and flicker, and a row per expected object."""

    caption: str
    seed: int
    expected_count: int
    count: int
    count_ok: bool
    flicker: float
    ref_flicker: float
    objects: tuple[ObjectRow, ...]
    sample_seconds: float
    clip_shape: tuple[int, int, int]  # what the backend returned: frames, height, width
    fps: float


@attrs.frozen
class Metric:
    """One aggregate score; ``reference`` is the renderer's value on the same captions."""

    name: str
    value: float | None
    count: int
    description: str
    reference: float | None = None
    goal: str | None = None
    met: bool | None = None


@attrs.frozen
class Timing:
    """Cost of the run: backend sampling and measurement, per clip, and the process's peak RSS."""

    seconds_per_clip: float
    measure_seconds_per_clip: float
    total_seconds: float
    torch_threads: int
    peak_rss_mb: float | None


@attrs.frozen
class EvalReport:
    """The result of ``evaluate_backend``: aggregate metrics, per-caption rows and timing."""

    backend: str
    model_id: str
    model_version: str
    split: str
    caption_set: str
    n: int
    seed: int
    num_frames: int
    height: int
    width: int
    fps: float
    metrics: tuple[Metric, ...]
    rows: tuple[CaptionRow, ...]
    timing: Timing
    vidgen_version: str = vidgen.__version__
    grammar_version: str = GRAMMAR_VERSION

    def metric(self, name: str) -> Metric:
        """The metric called ``name``; ``ConfigurationError`` if there is none."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise ConfigurationError(f"no metric {name!r}; have {', '.join(self.metric_names())}")

    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=True)

    def to_json(self, indent: int | None = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent)


# --- captions -----------------------------------------------------------------------------


def eval_captions(split: Split = "heldout", caption_set: CaptionSet = "single",
                  n: int | None = None) -> tuple[str, ...]:
    """The captions an evaluation uses, in order; ``n`` picks that many spread evenly.

    Evenly spaced rather than the first ``n``, so a quick ``--limit`` run still
    sees several colours, shapes and motions (the lists are colour-major).
    """
    if split not in SPLITS:
        raise ConfigurationError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if caption_set not in CAPTION_SETS:
        raise ConfigurationError(f"unknown caption set {caption_set!r}; "
                                 f"use one of {', '.join(CAPTION_SETS)}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigurationError(f"n must be a positive integer, got {n!r}")
    if caption_set == "single":
        captions = tuple(SceneSpec((ObjectSpec(color=c, shape=s, motion=m),)).caption()
                         for c, s, m in split_combinations(split))
    else:
        captions = caption_space(split)
    if n is None or n >= len(captions):
        return captions
    picks = np.unique(np.round(np.linspace(0, len(captions) - 1, n)).astype(int))
    return tuple(captions[int(i)] for i in picks)


def caption_seed(seed: int, index: int) -> int:
    """The seed of caption ``index``: independent streams per caption, reproducible by index."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


# --- expectations -------------------------------------------------------------------------


def expected_direction(motion: str) -> str:
    """What a caption's motion implies for net travel: a direction, or static."""
    if motion in DIRECTIONS:
        return motion
    return "down" if motion in ("falling", "bouncing") else "static"


def accepted_motions(obj: ObjectSpec, bounces_in_clip: bool) -> frozenset[str]:
    """Measured motions that satisfy the caption.

    A rotating circle looks static, and a bouncing object that has not reached
    the floor by the end of a short clip looks like a fall.
    """
    accepted = {obj.motion}
    if obj.motion == "rotating" and obj.shape == "circle":
        accepted.add("static")
    if obj.motion == "bouncing" and not bounces_in_clip:
        accepted.add("falling")
    return frozenset(accepted)


def _bounces(track: ObjectTrack) -> bool:
    vy = np.diff(track.y)
    return bool(np.any((vy[:-1] > 0) & (vy[1:] < 0)))


# --- one caption --------------------------------------------------------------------------


def _match(measured: Sequence[ObjectMeasurement],
           expected: Sequence[ObjectSpec]) -> list[ObjectMeasurement | None]:
    """Assign the clip's most prominent objects to the expected ones.

    Only as many objects as the caption names take part (the most prominent
    ones), so a clip full of noise cannot be rescued by a lucky speck. Among
    those, the assignment that agrees best with the caption wins (colour ΔE, plus
    a unit for each wrong shape and direction), as detection benchmarks match
    predictions to targets: permuting objects cannot make a wrong attribute right,
    it only keeps two objects of one colour from being scored against each other.
    """
    out: list[ObjectMeasurement | None] = [None] * len(expected)
    if not measured:
        return out
    cost = [[delta_e(m.color_rgb, COLORS[e.color]) / 50.0 + (m.shape != e.shape)
             + (m.direction != expected_direction(e.motion)) for e in expected]
            for m in measured]
    slots = range(len(expected))
    if len(expected) <= 4:
        best = min(itertools.permutations(slots, len(measured)),
                   key=lambda perm: sum(cost[i][j] for i, j in enumerate(perm)))
        for i, j in enumerate(best):
            out[j] = measured[i]
        return out
    free = set(slots)
    for i in range(len(measured)):  # many objects: greedy, most prominent first
        j = min(free, key=lambda s: cost[i][s])
        out[j] = measured[i]
        free.discard(j)
    return out


def _pair_identical(found: list[ObjectMeasurement | None], expected: Sequence[ObjectSpec],
                    tracks: Sequence[ObjectTrack], height: int,
                    width: int) -> list[ObjectMeasurement | None]:
    """Within each group of identical expected objects ("two red circles"), which is which is
    arbitrary, so the renderer's tracks decide: the pairing with the smallest position error.
    Only the informative position error depends on it."""
    out = list(found)
    groups: dict[ObjectSpec, list[int]] = {}
    for i, obj in enumerate(expected):
        groups.setdefault(obj, []).append(i)
    for members in groups.values():
        if len(members) < 2 or len(members) > 4:
            continue
        items = [found[i] for i in members]

        def error(perm: tuple[int, ...], items: list[ObjectMeasurement | None] = items,
                  members: list[int] = members) -> float:
            return sum(_position_error(items[k], tracks[members[j]], height, width) or 0.0
                       for j, k in enumerate(perm))

        best = min(itertools.permutations(range(len(members))), key=error)
        for j, k in enumerate(best):
            out[members[j]] = items[k]
    return out


def _position_error(m: ObjectMeasurement | None, track: ObjectTrack, height: int,
                    width: int) -> float | None:
    """Mean distance (frame units) of a measured centroid track from the renderer's."""
    if m is None:
        return None
    f = m.track_frames
    return float(np.mean(np.hypot((m.screen_x - track.x[f]) / width,
                                  (m.screen_y - track.y[f]) / height)))


def _object_row(obj: ObjectSpec, m: ObjectMeasurement | None, ref: ObjectMeasurement | None,
                track: ObjectTrack, height: int, width: int) -> ObjectRow:
    bounce_expected = obj.motion == "bouncing" and _bounces(track)
    base = ObjectRow(color=obj.color, shape=obj.shape, motion=obj.motion, size=obj.size,
                     found=m is not None, bounce_expected=bounce_expected)
    if obj.motion == "falling":
        base = attrs.evolve(base, falling_r2=0.0)
    if ref is not None:
        base = attrs.evolve(base, ref_size_drift=ref.size_drift, ref_color_drift=ref.color_drift,
                            ref_smoothness=ref.smoothness)
    if m is None:
        return base
    return attrs.evolve(
        base,
        measured_color=m.color, measured_shape=m.shape, measured_direction=m.direction,
        measured_motion=m.motion, color_ok=m.color == obj.color, shape_ok=m.shape == obj.shape,
        direction_ok=m.direction == expected_direction(obj.motion),
        motion_ok=m.motion in accepted_motions(obj, _bounces(track)),
        falling_r2=m.fall.r2 if obj.motion == "falling" else None,
        falling_gravity_ratio=m.fall.gravity / FALL_GRAVITY if obj.motion == "falling" else None,
        bounced=m.bounced, position_error=_position_error(m, track, height, width),
        size_drift=m.size_drift,
        color_drift=m.color_drift, smoothness=m.smoothness,
    )


def evaluate_caption(backend: Backend, caption: str, *, seed: int, num_frames: int | None,
                     height: int | None, width: int | None) -> tuple[CaptionRow, float]:
    """Sample, render the ground truth, measure both; returns the row and measuring seconds."""
    spec = parse_caption(caption)
    request = GenerationRequest(prompt=caption, num_frames=num_frames, height=height,
                                width=width, seed=seed)
    start = time.perf_counter()
    video = backend.sample(request)
    sampled = time.perf_counter() - start
    start = time.perf_counter()
    t, h, w = video.frames.shape[:3]
    truth = render_scene(spec, num_frames=t, height=h, width=w, fps=video.fps, seed=seed)
    pan = camera_offset(spec.camera, truth.times, width=w)
    clip = measure_clip(video.frames, video.fps)
    ref_clip = measure_clip(truth.frames, truth.fps)
    expected = spec.objects
    # the caption fixes the pan speed (a grammar constant), so motion is judged in the world:
    # a static object under a panning camera is still static
    found = _pair_identical(_match(clip.objects(len(expected), pan), expected),
                            expected, truth.tracks, h, w)
    ref_found = _match(ref_clip.objects(len(expected), pan), expected)
    objects = tuple(_object_row(obj, m, r, track, h, w)
                    for obj, m, r, track in zip(expected, found, ref_found, truth.tracks,
                                                strict=True))
    row = CaptionRow(caption=caption, seed=seed, expected_count=len(expected), count=clip.count,
                     count_ok=clip.count == len(expected), flicker=clip.flicker,
                     ref_flicker=ref_clip.flicker, objects=objects, sample_seconds=sampled,
                     clip_shape=(t, h, w), fps=video.fps)
    return row, time.perf_counter() - start


# --- aggregation --------------------------------------------------------------------------


def _rate(values: Sequence[bool]) -> float | None:
    return float(np.mean(values)) if values else None


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _at_least(name: str, value: float | None, count: int, goal: float,
              description: str) -> Metric:
    met = None if value is None else value >= goal
    return Metric(name=name, value=value, count=count, description=description,
                  goal=f">= {goal:g}", met=met)


def _stability(name: str, pairs: Sequence[tuple[float, float]], description: str) -> Metric:
    """Mean over objects (or clips) measured in both the clip and the renderer's clip."""
    goal = f"<= max({GOAL_STABILITY_RATIO:g}x ref, {STABILITY_FLOORS[name]:g})"
    if not pairs:
        return Metric(name=name, value=None, count=0, description=description, goal=goal)
    value = float(np.mean([p[0] for p in pairs]))
    reference = float(np.mean([p[1] for p in pairs]))
    bound = max(GOAL_STABILITY_RATIO * reference, STABILITY_FLOORS[name])
    return Metric(name=name, value=value, count=len(pairs), description=description,
                  reference=reference, goal=goal, met=value <= bound)


def aggregate(rows: Sequence[CaptionRow]) -> tuple[Metric, ...]:
    """The report's metrics from per-caption rows (misses count against every rate)."""
    objs = [o for r in rows for o in r.objects]
    falling = [o for o in objs if o.motion == "falling"]
    r2 = [o.falling_r2 if o.falling_r2 is not None else 0.0 for o in falling]
    gravity = [o.falling_gravity_ratio for o in falling if o.falling_gravity_ratio is not None]
    bouncing = [o for o in objs if o.bounce_expected]
    positions = [o.position_error for o in objs if o.position_error is not None]
    smooth = [(o.smoothness, o.ref_smoothness) for o in objs
              if o.smoothness is not None and o.ref_smoothness is not None]
    return (
        Metric(name="found", value=_rate([o.found for o in objs]), count=len(objs),
               description="expected objects matched to a tracked object in the clip"),
        _at_least("color", _rate([o.color_ok for o in objs]), len(objs), GOAL_COLOR,
                  "object colour named right (nearest palette colour in CIELAB)"),
        _at_least("shape", _rate([o.shape_ok for o in objs]), len(objs), GOAL_SHAPE,
                  "object shape classified right (invariant moments, majority over frames)"),
        Metric(name="count", value=_rate([r.count_ok for r in rows]), count=len(rows),
               description="number of objects (median per-frame blob count) as captioned"),
        _at_least("direction", _rate([o.direction_ok for o in objs]), len(objs),
                  GOAL_DIRECTION, "net travel in the captioned 45° sector, or static "
                                  "(falling/bouncing: down; rotating: static)"),
        Metric(name="motion", value=_rate([o.motion_ok for o in objs]), count=len(objs),
               description="motion class as captioned: static, 8 directions, falling "
                           "(accelerating down), bouncing, rotating"),
        _at_least("falling_r2", float(np.median(r2)) if r2 else None, len(r2),
                  GOAL_FALLING_R2, "median R² of a quadratic fit to falling objects' height "
                                   "(missed object: 0)"),
        Metric(name="falling_gravity_ratio",
               value=float(np.median(gravity)) if gravity else None, count=len(gravity),
               description="median fitted acceleration / the renderer's (informative)"),
        Metric(name="bounce", value=_rate([bool(o.bounced) for o in bouncing]),
               count=len(bouncing),
               description="bouncing objects seen to turn upwards near the bottom"),
        Metric(name="position_error", value=_mean(positions), count=len(positions),
               description="mean centroid distance from the renderer's track, frame sizes "
                           "(informative: a learned model's seed need not reproduce it)"),
        _stability("flicker", [(r.flicker, r.ref_flicker) for r in rows],
                   "mean |frame-to-frame change| of background pixels, grey levels"),
        _stability("size_drift", [(o.size_drift, o.ref_size_drift) for o in objs
                                  if o.size_drift is not None and o.ref_size_drift is not None],
                   "mean relative deviation of object area from its median"),
        _stability("color_drift", [(o.color_drift, o.ref_color_drift) for o in objs
                                   if o.color_drift is not None
                                   and o.ref_color_drift is not None],
                   "mean ΔE76 of object colour from its median"),
        Metric(name="smoothness", value=_mean([p[0] for p in smooth]), count=len(smooth),
               reference=_mean([p[1] for p in smooth]),
               description="mean |second difference| of the centroid, frame sizes per frame²"),
    )


# --- the harness --------------------------------------------------------------------------


def _peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far (MB), where the platform reports it."""
    try:
        peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    except (OSError, ValueError):
        return None
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def evaluate_backend(
    backend: Backend,
    *,
    split: Split = "heldout",
    n: int | None = None,
    seed: int = 0,
    num_frames: int | None = 16,
    height: int | None = 64,
    width: int | None = 64,
    caption_set: CaptionSet = "single",
    threads: int | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Generate a clip per evaluation caption with ``backend`` and score what the clips show.

    ``n`` limits the captions (spread evenly); None (or a larger number) takes all
    86 held-out combinations. ``num_frames``/``height``/``width`` of None use
    the backend's defaults. ``threads`` sets torch's intra-op threads for the run
    (restored afterwards); the count used is recorded either way, since learned
    backends' speed depends on it. ``progress(done, total)`` follows the captions.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigurationError(f"seed must be a non-negative integer, got {seed!r}")
    for name, value, least in (("num_frames", num_frames, 4), ("height", height, 8),
                               ("width", width, 8)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < least):
            raise ConfigurationError(f"{name} must be an integer >= {least}, got {value!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ConfigurationError(f"threads must be a positive integer, got {threads!r}")
    captions = eval_captions(split, caption_set, n)
    caps = backend.capabilities()
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    used_threads = torch.get_num_threads()
    rows: list[CaptionRow] = []
    measuring = 0.0
    start = time.perf_counter()
    try:
        for i, caption in enumerate(captions):
            row, seconds = evaluate_caption(backend, caption, seed=caption_seed(seed, i),
                                            num_frames=num_frames, height=height, width=width)
            rows.append(row)
            measuring += seconds
            if progress is not None:
                progress(i + 1, len(captions))
    finally:
        if threads is not None:
            torch.set_num_threads(previous_threads)
    total = time.perf_counter() - start
    count = max(len(rows), 1)
    # what the backend actually returned (the first clip), which may differ from the request
    shape = rows[0].clip_shape if rows else (num_frames or caps.default_frames,
                                             height or caps.default_height,
                                             width or caps.default_width)
    return EvalReport(
        backend=backend.name, model_id=caps.model_id, model_version=caps.model_version,
        split=split, caption_set=caption_set, n=len(rows), seed=seed,
        num_frames=shape[0], height=shape[1], width=shape[2],
        fps=rows[0].fps if rows else caps.default_fps, metrics=aggregate(rows), rows=tuple(rows),
        timing=Timing(seconds_per_clip=sum(r.sample_seconds for r in rows) / count,
                      measure_seconds_per_clip=measuring / count, total_seconds=total,
                      torch_threads=used_threads, peak_rss_mb=_peak_rss_mb()),
    )


__all__ = [
    "CAPTION_SETS",
    "CaptionRow",
    "CaptionSet",
    "EvalReport",
    "Metric",
    "ObjectRow",
    "Timing",
    "accepted_motions",
    "aggregate",
    "caption_seed",
    "eval_captions",
    "evaluate_backend",
    "evaluate_caption",
    "expected_direction",
]

