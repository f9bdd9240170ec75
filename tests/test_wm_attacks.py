"""The benchmark's watermark attacks (benchmarks/wm_attacks.py) and its metrics, on tiny clips."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from vidgen.errors import ConfigurationError
from vidgen.types import Video

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import wm_attacks as A  # noqa: E402


def _load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wm_benchmark", BENCHMARKS / "watermark.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ISSUE_ATTACKS = {
    "h264_crf23", "h264_crf28", "h264_crf35", "h265_crf28", "vp9", "resize_0.5", "resize_0.25",
    "crop_10", "crop_10_resize_back", "fps_30_to_24", "drop_every_other", "trim_1s",
    "brightness_+20", "brightness_-20", "contrast_0.7", "gamma_0.8", "gamma_1.25",
    "noise_sigma5", "jpeg_q50", "screen_recording", "crop_crf28_resize_0.5",
}


def smooth_clip(frames: int = 8, h: int = 80, w: int = 120, fps: float = 30.0) -> Video:
    """Mid-tone moving gradients: no clipping under the photometric attacks, easy to encode."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = [np.stack([110 + 40 * np.sin((xx + 3 * t) / 13), 120 + 30 * np.cos(yy / 9 + t / 5),
                     100 + 35 * np.sin((xx + yy) / 17)], axis=-1) for t in range(frames)]
    return Video(frames=np.clip(np.rint(out), 0, 255).astype(np.uint8), fps=fps)


def indexed_clip(frames: int, fps: float) -> Video:
    """Frame i is filled with the value i, so retiming can be checked frame by frame."""
    values = np.arange(frames, dtype=np.uint8)[:, None, None, None]
    return Video(frames=np.broadcast_to(values, (frames, 16, 16, 3)).copy(), fps=fps)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


@pytest.fixture(scope="module")
def clip() -> Video:
    return smooth_clip()


def test_the_issue_attacks_are_all_there() -> None:
    assert set(A.ATTACKS) == ISSUE_ATTACKS
    for name in A.ATTACKS:
        assert A.describe(name) and A.describe(name) != name


@pytest.mark.parametrize("name", sorted(A.available_attacks()))
def test_attack_is_a_deterministic_video_transform(clip: Video, name: str) -> None:
    out = A.ATTACKS[name](clip)
    assert isinstance(out, Video) and out.frames.dtype == np.uint8
    assert out.frames.shape[-1] == 3 and out.num_frames >= 1
    assert A.ATTACKS[name](clip) == out


def test_reencodes_keep_shape_and_degrade_with_crf(clip: Video) -> None:
    quality = {}
    for name in ("h264_crf23", "h264_crf28", "h264_crf35", "h265_crf28", "screen_recording"):
        out = A.ATTACKS[name](clip)
        assert out.frames.shape == clip.frames.shape and out.fps == clip.fps
        quality[name] = psnr(out.frames, clip.frames)
    assert quality["h264_crf23"] >= quality["h264_crf35"]
    assert quality["h264_crf23"] > 30


@pytest.mark.skipif(not A.vp9_available(), reason="this PyAV build has no libvpx-vp9")
def test_vp9_round_trip(clip: Video) -> None:
    out = A.vp9(clip)
    assert out.frames.shape == clip.frames.shape and psnr(out.frames, clip.frames) > 28


def test_h265_refuses_frames_narrower_than_64() -> None:
    with pytest.raises(ConfigurationError, match="64x64"):
        A.h265_crf28(smooth_clip(frames=2, h=48, w=96))


def test_geometry(clip: Video) -> None:
    assert A.resize_0_5(clip).frames.shape[1:3] == (40, 60)
    assert A.resize_0_25(clip).frames.shape[1:3] == (20, 30)
    cropped = A.crop_10(clip)
    assert cropped.frames.shape[1:3] == (64, 96)  # 80% of each side
    assert np.array_equal(cropped.frames, clip.frames[:, 8:72, 12:108])
    assert A.crop_10_resize_back(clip).frames.shape == clip.frames.shape
    assert A.crop_crf28_resize(clip).frames.shape[1:3] == (32, 48)


def test_odd_sizes_stay_encodable() -> None:
    odd = smooth_clip(frames=2, h=70, w=90)
    assert all(s % 2 == 0 for s in A.crop_10(odd).frames.shape[1:3])
    assert all(s % 2 == 0 for s in A.resize_0_25(odd).frames.shape[1:3])
    assert A.h264_crf28(odd).frames.shape[1:3] == (70, 90)  # encodes the even part


def test_frame_rate_conversion_by_timestamps() -> None:
    clip = indexed_clip(30, 30.0)
    out = A.fps_30_to_24(clip)
    assert out.num_frames == 24 and out.fps == 24.0 and out.duration == clip.duration
    shown = out.frames[:, 0, 0, 0].astype(int)
    assert np.all(np.abs(shown - np.arange(24) * 30 / 24) <= 0.5)  # nearest source frame
    assert len(set(shown.tolist())) == 24  # 30 -> 24 only drops, never repeats


def test_drop_and_trim() -> None:
    clip = indexed_clip(60, 30.0)
    dropped = A.drop_every_other(clip)
    assert dropped.num_frames == 30 and dropped.fps == 15.0 and dropped.duration == clip.duration
    assert dropped.frames[:, 0, 0, 0].tolist() == list(range(0, 60, 2))
    trimmed = A.trim_1s(clip)
    assert trimmed.num_frames == 30 and trimmed.frames[0, 0, 0, 0] == 30
    assert A.trim_1s(indexed_clip(10, 30.0)).num_frames == 1  # never empty


def test_photometric(clip: Video) -> None:
    mean = clip.frames.mean()
    assert A.brightness_up_20(clip).frames.mean() == pytest.approx(1.2 * mean, rel=0.01)
    assert A.brightness_down_20(clip).frames.mean() == pytest.approx(0.8 * mean, rel=0.01)
    low = A.contrast_0_7(clip)
    assert low.frames.mean() == pytest.approx(mean, abs=2.0)
    assert low.frames.std() == pytest.approx(0.7 * clip.frames.std(), rel=0.05)
    assert A.gamma_0_8(clip).frames.mean() > mean > A.gamma_1_25(clip).frames.mean()


def test_noise_has_sigma_5(clip: Video) -> None:
    diff = A.noise_sigma5(clip).frames.astype(float) - clip.frames
    assert diff.std() == pytest.approx(5.0, rel=0.05) and abs(diff.mean()) < 0.2


def test_jpeg_q50_changes_pixels_but_keeps_them_close(clip: Video) -> None:
    out = A.jpeg_q50(clip)
    assert out.frames.shape == clip.frames.shape and not np.array_equal(out.frames, clip.frames)
    assert psnr(out.frames, clip.frames) > 25
    odd = smooth_clip(frames=1, h=37, w=53)
    assert A.jpeg_q50(odd).frames.shape == odd.frames.shape


# --- the benchmark's metrics ------------------------------------------------------------------


def test_ssim_and_psnr() -> None:
    bench = _load_benchmark()
    a = bench.luma(smooth_clip(frames=1).frames[0])
    assert bench.ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    rng = np.random.default_rng(0)
    noisy = np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.float32)
    assert 0.2 < bench.ssim(a, noisy) < 0.95
    frames = smooth_clip(frames=1).frames
    assert bench.psnr(frames, frames) == math.inf


def test_clopper_pearson() -> None:
    bench = _load_benchmark()
    assert bench.clopper_pearson_upper(0, 10_000) == pytest.approx(3.69e-4, rel=0.01)
    assert bench.clopper_pearson_upper(5, 100) == pytest.approx(0.1128, abs=5e-4)
    assert bench.clopper_pearson_upper(3, 3) == 1.0


def test_strided_detection_keeps_time() -> None:
    bench = _load_benchmark()
    clip = indexed_clip(60, 30.0)
    sub = bench.strided(clip, 12)
    assert sub.num_frames == 12 and sub.fps == 6.0 and sub.duration == clip.duration
    assert bench.strided(clip, None) is clip
