"""The scene renderer: frames agree with the ground-truth tracks, and the physics is exact."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidgen.backends.scene import ObjectSpec, SceneSpec, parse_caption, render_scene
from vidgen.backends.scene.grammar import COLORS, DIRECTIONS, MOTIONS, SHAPES, SIZES
from vidgen.backends.scene.motion import (
    BOUNCE_GRAVITY,
    FALL_GRAVITY,
    LINEAR_SPEED,
    PAN_SPEED,
    bounce,
    direction_vector,
    floor_y,
)
from vidgen.errors import ConfigurationError

Image = npt.NDArray[np.uint8]


def color_mask(frame: Image, color: str) -> npt.NDArray[np.float64]:
    """Per-pixel weight of ``color`` over a black background (anti-aliased edges count partly)."""
    rgb = np.asarray(COLORS[color], dtype=np.float64)
    weight = frame.astype(np.float64) @ rgb / (rgb @ rgb)
    close = np.abs(frame.astype(np.float64) - weight[..., None] * rgb).max(-1) < 8
    return np.where(close, np.clip(weight, 0, 1), 0.0)


def centroid(weights: npt.NDArray[np.float64]) -> tuple[float, float]:
    ys, xs = np.mgrid[0 : weights.shape[0], 0 : weights.shape[1]] + 0.5
    total = weights.sum()
    return float((weights * xs).sum() / total), float((weights * ys).sum() / total)


def r_squared(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], degree: int) -> float:
    fit = np.polyval(np.polyfit(x, y, degree), x)
    return float(1 - ((y - fit) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def test_shapes_types_and_ground_truth() -> None:
    out = render_scene("a red circle moving right and two blue squares falling",
                       num_frames=5, height=48, width=80, fps=10.0, seed=3)
    assert out.frames.shape == (5, 48, 80, 3) and out.frames.dtype == np.uint8
    assert len(out.tracks) == 3 and out.fps == 10.0
    np.testing.assert_allclose(out.times, np.arange(5) / 10.0)
    for track in out.tracks:
        assert track.x.shape == track.y.shape == track.visible.shape == (5,)
        assert track.size == pytest.approx(0.2 * 48)
    assert [t.spec.shape for t in out.tracks] == ["circle", "square", "square"]
    assert out.spec == parse_caption("a red circle moving right and two blue squares falling")


def test_same_seed_same_bytes_and_different_seeds_differ() -> None:
    caption = "a green star bouncing and a red circle moving up with the camera panning left"
    a = render_scene(caption, seed=7)
    b = render_scene(parse_caption(caption), seed=7)
    c = render_scene(caption, seed=8)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    assert a.tracks[0].x[0] != c.tracks[0].x[0]


def test_prefix_of_a_longer_clip_is_the_shorter_clip() -> None:
    short = render_scene("a yellow triangle bouncing and a star moving left", num_frames=8)
    long = render_scene("a yellow triangle bouncing and a star moving left", num_frames=20)
    assert np.array_equal(long.frames[:8], short.frames)


def test_moving_right_tracks_and_pixels_agree() -> None:
    out = render_scene("a red circle moving right", num_frames=16, height=96, width=96, seed=1)
    track = out.tracks[0]
    assert np.all(np.diff(track.x) > 0) and np.ptp(track.y) == 0
    np.testing.assert_allclose(np.diff(track.x), LINEAR_SPEED * 96 / 8.0)
    xs = [centroid(color_mask(f, "red"))[0] for f in out.frames]
    assert np.all(np.diff(xs) > 0)
    np.testing.assert_allclose(xs, track.x, atol=0.1)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_every_direction_moves_that_way_at_constant_speed(direction: str) -> None:
    out = render_scene(f"a white square moving {direction}", height=64, width=128, seed=2)
    track = out.tracks[0]
    ux, uy = direction_vector(direction)
    dx, dy = np.diff(track.x), np.diff(track.y)
    np.testing.assert_allclose(dx, ux * LINEAR_SPEED * 128 / 8.0, atol=1e-9)
    np.testing.assert_allclose(dy, uy * LINEAR_SPEED * 64 / 8.0, atol=1e-9)
    assert track.visible.all()


def test_falling_is_a_parabola_with_the_documented_gravity() -> None:
    height = 128
    out = render_scene("a yellow square falling", num_frames=16, height=height, width=height)
    track = out.tracks[0]
    t = out.times
    assert r_squared(t, track.y, 2) > 0.999999
    accel = 2 * np.polyfit(t, track.y, 2)[0]
    assert accel == pytest.approx(FALL_GRAVITY * height, rel=1e-9)
    assert np.polyfit(t, track.y, 2)[1] == pytest.approx(0.0, abs=1e-6)  # from rest
    # the pixels show the same motion: the colour centroid fits the same parabola
    ys = np.array([centroid(color_mask(f, "yellow"))[1] for f in out.frames])
    inside = track.y + track.size / 2 < height
    assert inside.sum() >= 12
    assert r_squared(t[inside], ys[inside], 2) > 0.999
    assert 2 * np.polyfit(t[inside], ys[inside], 2)[0] == pytest.approx(FALL_GRAVITY * height,
                                                                          rel=0.03)
    assert track.y[-1] - track.y[0] > 0.5 * height  # falls most of the frame in the clip


def _apexes(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    inner = (y[1:-1] < y[:-2]) & (y[1:-1] <= y[2:])
    return y[1:-1][inner]


def test_bouncing_stays_above_the_floor_and_loses_height() -> None:
    spec = ObjectSpec(color="green", shape="circle", motion="bouncing")
    out = render_scene(SceneSpec((spec,)), num_frames=600, height=100, width=100, fps=120.0)
    y = out.tracks[0].y
    floor = floor_y(spec, 100, 100)
    assert y.max() <= floor + 1e-9
    assert y.min() >= y[0] - 1e-9  # never higher than where it was dropped from
    apexes = _apexes(y)
    assert len(apexes) >= 3
    heights = floor - apexes
    assert np.all(np.diff(heights) < 0)
    drop = floor - y[0]
    assert heights[0] < drop
    # the first flights follow the restitution law: each peak keeps about e^2 of the height
    ratios = heights[1:3] / heights[:2]
    np.testing.assert_allclose(ratios, ratios[0], rtol=0.02)
    # the pixels never cross the bottom edge and the object touches it
    rows = np.nonzero(color_mask(out.frames[np.argmax(y)], "green").sum(1))[0]
    assert rows.max() == 99


def test_bouncing_bounces_within_the_default_clip() -> None:
    out = render_scene("a triangle bouncing", seed=4)
    y = out.tracks[0].y
    assert len(_apexes(y)) >= 1  # it went down, came back up and fell again
    assert np.all(y <= 64)


@settings(max_examples=200, deadline=None)
@given(
    y0=st.floats(0, 500),
    drop=st.floats(0, 500),
    g=st.floats(1, 1e4),
    e=st.floats(0, 0.99),
    times=st.lists(st.floats(0, 60), min_size=1, max_size=50),
)
def test_bounce_never_tunnels_or_gains_energy(
    y0: float, drop: float, g: float, e: float, times: list[float]
) -> None:
    floor = y0 + drop
    y = bounce(y0, floor, g, e, np.asarray(times))
    assert np.all(y <= floor)
    assert np.all(y >= y0 - 1e-9 * max(1.0, floor))


def test_default_bounce_gravity_is_what_the_track_shows() -> None:
    out = render_scene("a circle bouncing", num_frames=4, height=200, width=200, fps=50.0)
    y = out.tracks[0].y  # still in the first drop
    assert 2 * np.polyfit(out.times, y, 2)[0] == pytest.approx(BOUNCE_GRAVITY * 200, rel=1e-9)


def _fill_ratio(shape: str) -> float:
    frame = render_scene(f"a large white {shape}", num_frames=1, height=128, width=128).frames[0]
    cover = frame[..., 0].astype(np.float64) / 255
    rows = np.nonzero(cover.max(1) > 0.5)[0]
    cols = np.nonzero(cover.max(0) > 0.5)[0]
    box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    return float(cover.sum() / box)


def test_shapes_are_distinguishable_by_how_they_fill_their_box() -> None:
    fill = {shape: _fill_ratio(shape) for shape in SHAPES}
    assert fill["square"] > 0.9
    assert 0.7 < fill["circle"] < 0.85
    assert 0.4 < fill["triangle"] < 0.6 and 0.4 < fill["diamond"] < 0.6
    assert fill["star"] < 0.45
    assert fill["square"] > fill["circle"] > fill["triangle"] > fill["star"]


def test_triangle_points_up() -> None:
    frame = render_scene("a large white triangle", num_frames=1, height=128, width=128).frames[0]
    widths = (frame[..., 0] > 127).sum(1)
    rows = np.nonzero(widths)[0]
    assert widths[rows[0]] < widths[rows[-1]]


def test_edges_are_anti_aliased_and_interiors_exact() -> None:
    out = render_scene("a small magenta circle", num_frames=1, height=64, width=64)
    frame = out.frames[0]
    weight = color_mask(frame, "magenta")
    assert ((weight > 0.05) & (weight < 0.95)).sum() >= 8
    cx, cy = int(out.tracks[0].x[0]), int(out.tracks[0].y[0])
    assert tuple(frame[cy, cx]) == COLORS["magenta"]
    assert tuple(frame[0, 0]) == COLORS["black"]


def test_rotation_turns_the_shape_in_place() -> None:
    out = render_scene("a large white square rotating", num_frames=9, height=96, width=96)
    track = out.tracks[0]
    assert np.all(np.diff(track.angle) > 0) and np.ptp(track.x) == 0
    assert not np.array_equal(out.frames[0], out.frames[2])
    for frame in out.frames:
        cx, cy = centroid(color_mask(frame, "white"))
        assert (cx, cy) == pytest.approx((track.x[0], track.y[0]), abs=0.1)


def test_camera_pan_moves_world_and_objects_together() -> None:
    out = render_scene("a red circle with the camera panning left", height=64, width=64)
    track = out.tracks[0]
    np.testing.assert_allclose(out.camera_x, PAN_SPEED * 64 * out.times)
    np.testing.assert_allclose(np.diff(track.x), PAN_SPEED * 64 / 8.0)  # content moves right
    # the textured background shifts by the same amount (compare a strip far from the object)
    shift = out.camera_x[8] - out.camera_x[0]
    assert shift == pytest.approx(9.6)
    row = 0 if track.y[0] > 32 else 63
    before = out.frames[0, row, :, 0].astype(float)
    after = out.frames[8, row, :, 0].astype(float)
    assert np.ptp(before) > 5  # the texture is visible
    xs = np.arange(64) + 0.5
    predicted = np.interp(xs - shift, xs, before)
    valid = xs - shift > 1
    assert np.abs(after[valid] - predicted[valid]).mean() < 2.0
    right = render_scene("camera panning right", num_frames=3)
    assert right.camera_x[-1] < 0


def test_without_a_camera_the_background_is_flat() -> None:
    out = render_scene("a red circle on a blue background", num_frames=2)
    corners = out.frames[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.all(corners == np.asarray(COLORS["blue"], dtype=np.uint8))


@pytest.mark.parametrize("seed", range(5))
def test_several_objects_start_apart(seed: int) -> None:
    for caption in ("three circles", "two large stars falling", "three squares moving right"):
        out = render_scene(caption, seed=seed)
        for i, a in enumerate(out.tracks):
            for b in out.tracks[i + 1 :]:
                gap = np.hypot(a.x[0] - b.x[0], a.y[0] - b.y[0])
                assert gap >= (a.size + b.size) / 2, caption


def test_crowded_scenes_still_get_distinct_positions() -> None:
    out = render_scene("three large stars falling and three large squares bouncing")
    starts = {(round(float(t.x[0]), 6), round(float(t.y[0]), 6)) for t in out.tracks}
    assert len(starts) == 6


@pytest.mark.parametrize("motion", MOTIONS)
def test_single_objects_stay_in_frame_for_the_default_clip(motion: str) -> None:
    for size in SIZES:
        for seed in range(3):
            spec = SceneSpec((ObjectSpec(color="white", shape="star", size=size, motion=motion),))
            track = render_scene(spec, seed=seed).tracks[0]
            assert track.visible.all(), (motion, size, seed)
            assert np.all(track.x - track.size / 2 > -0.25 * track.size)


def test_visibility_follows_the_centroid() -> None:
    track = render_scene("a circle moving left", num_frames=64).tracks[0]
    assert track.visible[0] and not track.visible[-1]
    np.testing.assert_array_equal(track.visible, track.x >= 0)


def test_progress_is_reported_per_frame_and_can_cancel() -> None:
    calls: list[tuple[int, int]] = []
    render_scene("a circle", num_frames=5, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]

    class Stop(Exception):
        pass

    seen: list[int] = []

    def stop_at_two(done: int, total: int) -> None:
        seen.append(done)
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        render_scene("a circle", num_frames=50, progress=stop_at_two)
    assert seen == [1, 2]


@pytest.mark.parametrize(
    "kwargs",
    [{"num_frames": 0}, {"height": -1}, {"width": 2.5}, {"fps": 0.0}, {"fps": float("nan")},
     {"seed": -1}, {"num_frames": True}],
)
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        render_scene("a circle", **kwargs)  # type: ignore[arg-type]


def test_odd_sizes_and_tiny_frames_render() -> None:
    out = render_scene("a large red star rotating and a blue circle falling", num_frames=3,
                       height=7, width=5)
    assert out.frames.shape == (3, 7, 5, 3)
    wide = render_scene("a small diamond moving down", num_frames=2, height=16, width=300)
    assert wide.tracks[0].size == pytest.approx(0.12 * 16)


# --- the backend -----------------------------------------------------------------------------


def test_backend_registers_and_describes_itself() -> None:
    from vidgen.backends.base import Backend, load_backend
    from vidgen.backends.scene import GRAMMAR_VERSION, SceneBackend
    from vidgen.types import Task

    backend = load_backend("scene")
    assert isinstance(backend, SceneBackend) and isinstance(backend, Backend)
    assert backend.name == "scene"
    caps = backend.capabilities()
    assert caps.tasks == frozenset({Task.TEXT_TO_VIDEO})
    assert (caps.default_frames, caps.default_height, caps.default_width) == (16, 64, 64)
    assert (caps.max_frames, caps.max_height, caps.max_width) == (1024, 2160, 3840)
    assert caps.default_fps == 8.0 and caps.size_multiple == 2 and caps.deterministic
    assert caps.model_id == "vidgen/scene" and caps.model_version == GRAMMAR_VERSION


def test_backend_rejects_options() -> None:
    from vidgen.backends.scene import SceneBackend

    with pytest.raises(ConfigurationError, match=r"no options.*quality"):
        SceneBackend(quality="high")


def test_backend_uses_defaults_and_honours_requests() -> None:
    from vidgen.backends.scene import SceneBackend
    from vidgen.types import GenerationRequest

    backend = SceneBackend()
    video = backend.sample(GenerationRequest(prompt="a red circle moving right"))
    assert video.frames.shape == (16, 64, 64, 3) and video.fps == 8.0
    assert np.array_equal(video.frames, render_scene("a red circle moving right").frames)
    request = GenerationRequest(prompt="a blue star falling", num_frames=5, height=40,
                                width=72, fps=24.0, seed=9)
    video = backend.sample(request)
    assert video.frames.shape == (5, 40, 72, 3) and video.fps == 24.0
    expected = render_scene("a blue star falling", num_frames=5, height=40, width=72,
                            fps=24.0, seed=9)
    assert np.array_equal(video.frames, expected.frames)
    assert backend.sample(request) == video


def test_backend_refuses_what_it_cannot_do_before_rendering() -> None:
    from vidgen.backends.scene import SceneBackend
    from vidgen.errors import CaptionError, UnsupportedTask
    from vidgen.types import GenerationRequest, Task

    backend = SceneBackend()
    calls: list[int] = []
    with pytest.raises(CaptionError, match="'dragon'"):
        backend.sample(GenerationRequest(prompt="a red dragon"), lambda d, t: calls.append(d))
    with pytest.raises(UnsupportedTask):
        backend.sample(GenerationRequest(prompt="a circle", height=63))
    with pytest.raises(UnsupportedTask):
        backend.sample(GenerationRequest(prompt="a circle", num_frames=2000))
    with pytest.raises(UnsupportedTask):
        backend.sample(GenerationRequest(prompt="a circle", task=Task.EDIT))
    with pytest.raises(ConfigurationError):
        backend.sample(GenerationRequest(prompt="a circle", fps=5000.0))
    assert calls == []


def test_backend_reports_progress_and_cancels_when_it_raises() -> None:
    from vidgen.backends.scene import SceneBackend
    from vidgen.types import GenerationRequest

    backend = SceneBackend()
    calls: list[tuple[int, int]] = []
    backend.sample(GenerationRequest(prompt="a circle", num_frames=4),
                   lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]

    def cancel(done: int, total: int) -> None:
        calls.append((done, total))
        raise KeyboardInterrupt

    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        backend.sample(GenerationRequest(prompt="a circle", num_frames=1000), cancel)
    assert calls == [(1, 1000)]
