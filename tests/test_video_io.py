"""Tests for vidgen.video_io: round trips, other containers, limits, hostile files."""

from __future__ import annotations

import io
import os
import struct
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidgen import video_io as vio
from vidgen.errors import ConfigurationError, MediaError
from vidgen.types import Video


def smooth_clip(frames: int, height: int, width: int, fps: float = 24.0) -> Video:
    """Smooth moving gradients: what H.264 at crf 18 should keep above 35 dB."""
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    y = np.arange(height, dtype=np.float64)[None, :, None]
    x = np.arange(width, dtype=np.float64)[None, None, :]
    red = 128 + 90 * np.sin(x / 17 + t / 5)
    green = 128 + 90 * np.cos(y / 13 - t / 7)
    blue = 128 + 60 * np.sin((x + y) / 23 + t / 3)
    pixels = np.stack(np.broadcast_arrays(red, green, blue), axis=-1)
    return Video(np.clip(pixels, 0, 255).astype(np.uint8), fps=fps)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def mux_with_pyav(path: Path, fmt: str, codec: str, video: Video, pix_fmt: str = "yuv420p") -> Path:
    """Write ``video`` with another container/codec, independently of write_video."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(video.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, pix_fmt
        for index, pixels in enumerate(video.frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def clip() -> Video:
    return smooth_clip(16, 64, 64, fps=24.0)


@pytest.fixture(scope="module")
def mp4_bytes(clip: Video) -> bytes:
    return vio.encode_video_bytes(clip, preset="ultrafast")


@pytest.fixture
def mp4(tmp_path: Path, mp4_bytes: bytes) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4_bytes)
    return path


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("fps", [8.0, 24.0, 29.97, 30.0, 59.94, 12.5])
def test_round_trip_64x64x16_preserves_shape_fps_and_quality(tmp_path: Path, fps: float) -> None:
    video = smooth_clip(16, 64, 64, fps=fps)
    path = vio.write_video(video, tmp_path / "out.mp4")
    assert path == tmp_path / "out.mp4"
    back = vio.read_video(path)
    assert back.frames.shape == video.frames.shape
    assert back.frames.dtype == np.uint8
    assert abs(back.fps - fps) < 0.01
    assert psnr(back.frames, video.frames) > 35.0


def test_round_trip_320x240(tmp_path: Path) -> None:
    video = smooth_clip(12, 240, 320, fps=29.97)
    back = vio.read_video(vio.write_video(video, tmp_path / "big.mp4", preset="veryfast"))
    assert back.frames.shape == (12, 240, 320, 3)
    assert abs(back.fps - 29.97) < 0.01
    assert psnr(back.frames, video.frames) > 35.0


def test_ntsc_rates_snap_to_exact_fractions() -> None:
    assert vio._fps_fraction(29.97) == Fraction(30000, 1001)
    assert vio._fps_fraction(23.976) == Fraction(24000, 1001)
    assert vio._fps_fraction(59.94) == Fraction(60000, 1001)
    assert vio._fps_fraction(25.0) == Fraction(25)
    assert vio._fps_fraction(12.5) == Fraction(25, 2)


def test_crf_0_is_near_lossless_and_higher_crf_is_smaller(tmp_path: Path, clip: Video) -> None:
    lossless = vio.encode_video_bytes(clip, crf=0, preset="ultrafast")
    small = vio.encode_video_bytes(clip, crf=40, preset="ultrafast")
    assert len(small) < len(lossless)
    (tmp_path / "l.mp4").write_bytes(lossless)
    # Only the 4:2:0 chroma subsampling and RGB<->YUV rounding remain.
    assert psnr(vio.read_video(tmp_path / "l.mp4").frames, clip.frames) > 40.0


def test_encoding_and_decoding_are_deterministic(tmp_path: Path, clip: Video) -> None:
    first = vio.encode_video_bytes(clip, threads=1)
    second = vio.encode_video_bytes(clip, threads=1)
    assert first == second
    (tmp_path / "a.mp4").write_bytes(first)
    assert vio.read_video(tmp_path / "a.mp4") == vio.read_video(tmp_path / "a.mp4")


def test_encode_video_bytes_is_faststart_mp4(mp4_bytes: bytes) -> None:
    assert mp4_bytes[4:8] == b"ftyp"
    assert mp4_bytes.index(b"moov") < mp4_bytes.index(b"mdat")
    assert vio.check_container(mp4_bytes) == "mp4"


def test_without_faststart_moov_comes_last(tmp_path: Path, clip: Video) -> None:
    data = vio.encode_video_bytes(clip, faststart=False, preset="ultrafast")
    assert data.index(b"mdat") < data.index(b"moov")
    (tmp_path / "late.mp4").write_bytes(data)
    assert vio.read_video(tmp_path / "late.mp4").num_frames == 16


def test_video_read_and_write_delegate(tmp_path: Path, clip: Video) -> None:
    path = clip.write(tmp_path / "v.mp4", preset="ultrafast")
    back = Video.read(path, max_frames=4)
    assert back.num_frames == 4


def test_written_stream_is_h264_yuv420p_tagged_bt709(mp4: Path) -> None:
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.codec_context.colorspace == 1
        assert stream.codec_context.color_range == 1


def test_weird_file_names_are_literal(tmp_path: Path, clip: Video) -> None:
    path = tmp_path / "concat:a%03d|b.mp4"
    vio.write_video(clip, path, preset="ultrafast")
    assert path.is_file()
    assert vio.read_video(path).num_frames == 16


def test_libx265_when_available(tmp_path: Path, clip: Video) -> None:
    if not has_encoder("libx265"):
        pytest.skip("this PyAV build has no libx265 encoder")
    path = vio.write_video(clip, tmp_path / "h.mp4", codec="libx265", preset="ultrafast")
    assert vio.probe_video(path).codec == "hevc"
    assert psnr(vio.read_video(path).frames, clip.frames) > 30.0


def test_libx265_refuses_small_frames(tmp_path: Path) -> None:
    # x265 4.2 as bundled corrupts the heap (glibc aborts) on e.g. 48x32 frames.
    with pytest.raises(ConfigurationError, match="at least 64x64"):
        vio.write_video(smooth_clip(2, 32, 48), tmp_path / "h.mp4", codec="libx265")


# ------------------------------------------------------------- frame selection


def test_start_step_and_max_frames(mp4: Path) -> None:
    full = vio.read_video(mp4)
    part = vio.read_video(mp4, start_frame=2, step=3, max_frames=4)
    assert part.num_frames == 4
    np.testing.assert_array_equal(part.frames, full.frames[2:14:3])
    assert part.fps == pytest.approx(full.fps / 3)
    assert vio.read_video(mp4, start_frame=15).num_frames == 1


def test_start_frame_past_the_end(mp4: Path) -> None:
    with pytest.raises(MediaError, match="past the end"):
        vio.read_video(mp4, start_frame=100)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_frames": 0},
        {"max_frames": 1.5},
        {"start_frame": -1},
        {"step": 0},
        {"step": True},
        {"limits": "small"},
    ],
)
def test_bad_read_arguments(mp4: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        vio.read_video(mp4, **kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- probe


def test_probe_video(mp4: Path) -> None:
    info = vio.probe_video(mp4)
    assert info.codec == "h264"
    assert "mp4" in info.container.split(",")
    assert (info.width, info.height) == (64, 64)
    assert info.fps == pytest.approx(24.0, abs=0.01)
    assert info.num_frames == 16
    assert info.duration == pytest.approx(16 / 24, abs=0.05)
    assert info.has_audio is False


def test_probe_reports_audio(tmp_path: Path, clip: Video) -> None:
    path = tmp_path / "av.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        for index, pixels in enumerate(clip.frames[:4]):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
        )
        samples.sample_rate, samples.pts = 48000, 0
        out.mux(audio.encode(samples))
        out.mux(audio.encode(None))
    assert vio.probe_video(path).has_audio is True
    assert vio.read_video(path).num_frames == 4


# --------------------------------------------------------- other containers


OTHER_FORMATS = [
    ("mov", "mjpeg", "yuvj420p", "mov"),
    ("mov", "mpeg4", "yuv420p", "mov"),
    ("avi", "mjpeg", "yuvj420p", "avi"),
    ("matroska", "libvpx-vp9", "yuv420p", "mkv"),
    ("webm", "libvpx-vp9", "yuv420p", "webm"),
    ("matroska", "libsvtav1", "yuv420p", "mkv"),
    ("matroska", "ffv1", "yuv420p", "mkv"),
]


@pytest.mark.parametrize(("fmt", "codec", "pix_fmt", "suffix"), OTHER_FORMATS)
def test_reads_other_containers_and_codecs(
    tmp_path: Path, fmt: str, codec: str, pix_fmt: str, suffix: str
) -> None:
    if not has_encoder(codec):
        pytest.skip(f"this PyAV build has no {codec} encoder")
    video = smooth_clip(8, 64, 64, fps=25.0)
    path = mux_with_pyav(tmp_path / f"clip.{suffix}", fmt, codec, video, pix_fmt)
    back = vio.read_video(path)
    assert back.frames.shape == video.frames.shape
    assert abs(back.fps - 25.0) < 0.01
    assert psnr(back.frames, video.frames) > 25.0
    info = vio.probe_video(path)
    assert (info.width, info.height) == (64, 64)


def test_check_container_recognises_mov(tmp_path: Path) -> None:
    path = mux_with_pyav(tmp_path / "c.mov", "mov", "mjpeg", smooth_clip(4, 32, 32), "yuvj420p")
    assert vio.check_container(path) == "mov"


def test_frame_size_change_mid_stream_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "varying.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuvj420p"
        small = av.CodecContext.create("mjpeg", "w")
        small.width, small.height, small.pix_fmt = 32, 32, "yuvj420p"
        small.time_base = Fraction(1, 10)
        for index in range(6):
            encoder = stream.codec_context if index < 3 else small
            size = 64 if index < 3 else 32
            frame = av.VideoFrame.from_ndarray(
                np.full((size, size, 3), 40 * index, dtype=np.uint8), format="rgb24"
            )
            frame.pts = index
            frame = frame.reformat(format="yuvj420p")
            for packet in encoder.encode(frame):
                packet.stream = stream
                packet.pts = packet.dts = index
                packet.time_base = Fraction(1, 10)
                out.mux(packet)
    with pytest.raises(MediaError, match="frame size changed mid-stream from 64x64 to 32x32"):
        vio.read_video(path)
    assert vio.read_video(path, max_frames=3).num_frames == 3


# ------------------------------------------------------------------- writing


def test_odd_dimensions_are_refused_not_padded(tmp_path: Path) -> None:
    target = tmp_path / "odd.mp4"
    for shape in [(4, 65, 64, 3), (4, 64, 63, 3)]:
        video = Video(np.zeros(shape, dtype=np.uint8), fps=10)
        with pytest.raises(ConfigurationError, match="even"):
            vio.write_video(video, target)
    assert not target.exists()
    # Without chroma subsampling odd sizes are fine.
    video = Video(np.zeros((2, 65, 63, 3), dtype=np.uint8), fps=10)
    vio.write_video(video, target, pix_fmt="yuv444p", preset="ultrafast")
    assert vio.read_video(target).frames.shape == (2, 65, 63, 3)


@pytest.mark.parametrize(
    "options",
    [
        {"crf": -1},
        {"crf": 52},
        {"crf": 18.5},
        {"crf": True},
        {"preset": "warp"},
        {"preset": "MEDIUM"},
        {"codec": "no-such-codec"},
        {"codec": "aac"},
        {"pix_fmt": "no-such-format"},
        {"threads": -1},
    ],
)
def test_write_options_are_validated(
    tmp_path: Path, clip: Video, options: dict[str, object]
) -> None:
    target = tmp_path / "x.mp4"
    with pytest.raises(ConfigurationError):
        vio.write_video(clip, target, **options)  # type: ignore[arg-type]
    assert not target.exists()


@pytest.mark.parametrize("preset", vio.X264_PRESETS[:3])
def test_all_crf_bounds_and_presets_work(tmp_path: Path, preset: str) -> None:
    video = smooth_clip(2, 32, 32)
    for crf in (0, 51):
        vio.write_video(video, tmp_path / "p.mp4", crf=crf, preset=preset)
        assert vio.read_video(tmp_path / "p.mp4").num_frames == 2


def test_write_refuses_non_video(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        vio.write_video(np.zeros((1, 8, 8, 3), np.uint8), tmp_path / "x.mp4")  # type: ignore[arg-type]


def test_write_into_missing_directory_is_media_error(tmp_path: Path, clip: Video) -> None:
    with pytest.raises(MediaError, match="cannot write"):
        vio.write_video(clip, tmp_path / "nope" / "x.mp4")
    assert not (tmp_path / "nope").exists()


def test_write_onto_a_directory_keeps_the_directory(tmp_path: Path, clip: Video) -> None:
    target = tmp_path / "dir.mp4"
    target.mkdir()
    with pytest.raises(MediaError):
        vio.write_video(clip, target)
    assert target.is_dir()


def test_failed_encode_removes_partial_file(
    tmp_path: Path, clip: Video, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = vio._encode_frames

    def explode(out: object, stream: object, video: Video, pix_fmt: str) -> None:
        real(out, stream, Video(video.frames[:2], fps=video.fps), pix_fmt)  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vio, "_encode_frames", explode)
    target = tmp_path / "partial.mp4"
    with pytest.raises(MediaError, match="No space left"):
        vio.write_video(clip, target)
    assert not target.exists()


def test_validation_failure_leaves_existing_file_alone(tmp_path: Path, clip: Video) -> None:
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"precious")
    with pytest.raises(ConfigurationError):
        vio.write_video(clip, target, crf=99)
    assert target.read_bytes() == b"precious"


# -------------------------------------------------------------------- limits


def test_read_limits_are_frozen_and_validated() -> None:
    limits = vio.ReadLimits()
    assert limits == vio.DEFAULT_LIMITS
    assert limits.max_width == 7680 and limits.max_height == 4320
    assert limits.max_frames == 20_000
    assert limits.max_file_bytes == limits.max_decoded_bytes == 4 << 30
    assert limits.max_seconds == 120.0
    with pytest.raises(AttributeError):
        limits.max_frames = 5  # type: ignore[misc]
    for bad in [{"max_frames": 0}, {"max_width": -1}, {"max_seconds": 0}, {"max_seconds": "1"}]:
        with pytest.raises(ConfigurationError):
            vio.ReadLimits(**bad)  # type: ignore[arg-type]


def test_frame_count_limit(mp4: Path) -> None:
    with pytest.raises(MediaError, match="more than 5 frames"):
        vio.read_video(mp4, limits=vio.ReadLimits(max_frames=5))
    # A prefix within the limit is fine.
    assert vio.read_video(mp4, limits=vio.ReadLimits(max_frames=5), max_frames=5).num_frames == 5


def test_dimension_limit_checked_before_decoding(mp4: Path) -> None:
    for limits in [vio.ReadLimits(max_width=32), vio.ReadLimits(max_height=63)]:
        with pytest.raises(MediaError, match="exceeds the limit"):
            vio.read_video(mp4, limits=limits)
        with pytest.raises(MediaError, match="exceeds the limit"):
            vio.probe_video(mp4, limits=limits)


def test_file_size_limit(mp4: Path) -> None:
    with pytest.raises(MediaError, match="max_file_bytes"):
        vio.read_video(mp4, limits=vio.ReadLimits(max_file_bytes=100))


def test_decoded_bytes_limit(mp4: Path) -> None:
    one_frame = 64 * 64 * 3
    with pytest.raises(MediaError, match="max_decoded_bytes"):
        vio.read_video(mp4, limits=vio.ReadLimits(max_decoded_bytes=3 * one_frame))
    small = vio.ReadLimits(max_decoded_bytes=3 * one_frame)
    assert vio.read_video(mp4, limits=small, max_frames=3).num_frames == 3


def test_time_budget(mp4: Path) -> None:
    with pytest.raises(MediaError, match="took longer than"):
        vio.read_video(mp4, limits=vio.ReadLimits(max_seconds=1e-9))


# ------------------------------------------------------------- hostile inputs


def assert_fast_media_error(path: Path, match: str | None = None) -> None:
    start = time.monotonic()
    with pytest.raises(MediaError, match=match) as caught:
        vio.read_video(path)
    assert time.monotonic() - start < 5.0
    assert str(path) in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    assert_fast_media_error(tmp_path / "missing.mp4", "no such file")


def test_directory(tmp_path: Path) -> None:
    assert_fast_media_error(tmp_path, "directory")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert_fast_media_error(tmp_path / "empty.mp4", "empty")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    assert_fast_media_error(fifo, "not a regular file")


@pytest.mark.parametrize("size", [1, 7, 100, 4096, 1 << 20])
def test_garbage_bytes(tmp_path: Path, size: int) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes())
    assert_fast_media_error(path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "playlist.mp4"
    path.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    )
    assert_fast_media_error(path)


def test_image_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    path.write_bytes(vio.encode_png(np.zeros((8, 8, 3), np.uint8)))
    assert_fast_media_error(path, "unsupported format")


def test_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        audio = out.add_stream("aac", rate=48000)
        samples = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
        )
        samples.sample_rate, samples.pts = 48000, 0
        out.mux(audio.encode(samples))
        out.mux(audio.encode(None))
    assert_fast_media_error(path, "no video stream")
    with pytest.raises(MediaError, match="no video stream"):
        vio.probe_video(path)


@pytest.mark.parametrize("fraction", [0.0005, 0.01, 0.1, 0.3, 0.5, 0.8, 0.95, 0.999])
def test_truncated_mp4(tmp_path: Path, mp4_bytes: bytes, fraction: float) -> None:
    cut = max(1, int(len(mp4_bytes) * fraction))
    path = tmp_path / "cut.mp4"
    path.write_bytes(mp4_bytes[:cut])
    assert_fast_media_error(path)
    with pytest.raises(MediaError):
        vio.check_container(path)


def test_truncated_mp4_refused_even_for_a_prefix(tmp_path: Path, mp4_bytes: bytes) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes(mp4_bytes[: len(mp4_bytes) - 50])
    with pytest.raises(MediaError, match="truncated"):
        vio.read_video(path, max_frames=2)


def test_truncation_inside_mdat_detected_by_the_index(tmp_path: Path, mp4_bytes: bytes) -> None:
    # Patch mdat's size so the structure check passes; the sample index still
    # promises 16 frames, so the missing tail is reported.
    data = bytearray(mp4_bytes[: len(mp4_bytes) - 50])
    mdat = data.index(b"mdat") - 4
    data[mdat : mdat + 4] = struct.pack(">I", len(data) - mdat)
    path = tmp_path / "cut.mp4"
    path.write_bytes(bytes(data))
    assert vio.check_container(path) == "mp4"
    with pytest.raises(MediaError, match=r"truncated|corrupt"):
        vio.read_video(path)


def box(kind: bytes, payload: bytes = b"", size: int | None = None) -> bytes:
    return struct.pack(">I", 8 + len(payload) if size is None else size) + kind + payload


FTYP = box(b"ftyp", b"isom" + b"\0\0\2\0" + b"isomiso2avc1mp41")


def test_box_larger_than_file(tmp_path: Path, mp4_bytes: bytes) -> None:
    data = bytearray(mp4_bytes)
    moov = data.index(b"moov") - 4
    data[moov : moov + 4] = struct.pack(">I", 0x7FFFFFF0)
    path = tmp_path / "big-box.mp4"
    path.write_bytes(bytes(data))
    assert_fast_media_error(path)
    with pytest.raises(MediaError, match="declares"):
        vio.check_container(path)


def test_nested_box_larger_than_parent(mp4_bytes: bytes) -> None:
    data = bytearray(mp4_bytes)
    trak = data.index(b"trak") - 4
    data[trak : trak + 4] = struct.pack(">I", 0x00FFFFFF)
    with pytest.raises(MediaError, match=r"'trak'.*declares"):
        vio.check_container(bytes(data))


def test_zero_size_boxes(tmp_path: Path, mp4_bytes: bytes) -> None:
    # size 0 at top level means "to the end of the file": valid if last.
    data = bytearray(mp4_bytes)
    mdat = data.index(b"mdat") - 4
    data[mdat : mdat + 4] = b"\0\0\0\0"
    assert vio.check_container(bytes(data)) == "mp4"
    # size 0 inside moov is not.
    data = bytearray(mp4_bytes)
    trak = data.index(b"trak") - 4
    data[trak : trak + 4] = b"\0\0\0\0"
    with pytest.raises(MediaError, match="size 0"):
        vio.check_container(bytes(data))
    path = tmp_path / "zero.mp4"
    path.write_bytes(bytes(data))
    assert_fast_media_error(path)
    # sizes 1..7 are never valid; a file of only zero-size boxes has no moov.
    with pytest.raises(MediaError):
        vio.check_container(FTYP + box(b"moov", size=4))
    path.write_bytes(FTYP + box(b"free", size=0))
    with pytest.raises(MediaError, match="no moov"):
        vio.check_container(path)
    assert_fast_media_error(path)


def deeply_nested(depth: int, kind: bytes = b"trak") -> bytes:
    inner = box(b"free")
    for _ in range(depth):
        inner = box(kind, inner)
    return FTYP + box(b"moov", inner)


def test_deeply_nested_boxes(tmp_path: Path) -> None:
    data = deeply_nested(5000)
    start = time.monotonic()
    with pytest.raises(MediaError, match="nested deeper"):
        vio.check_container(data)
    assert time.monotonic() - start < 1.0
    path = tmp_path / "nested.mp4"
    path.write_bytes(data)
    assert_fast_media_error(path)
    # Unknown (non-container) boxes nested deeply are opaque payload: not walked.
    assert (
        vio.check_container(FTYP + box(b"moov", box(b"mvhd", bytes(100))) + box(b"free")) == "mp4"
    )


def test_too_many_boxes() -> None:
    data = FTYP + box(b"moov") + box(b"free") * 20_000
    with pytest.raises(MediaError, match="more than 10000 boxes"):
        vio.check_container(data, max_boxes=10_000)
    assert vio.check_container(data) == "mp4"
    start = time.monotonic()
    with pytest.raises(MediaError, match="more than 100000 boxes"):
        vio.check_container(FTYP + box(b"moov") + box(b"free") * 100_001)
    assert time.monotonic() - start < 2.0


def test_check_container_structure_rules() -> None:
    moov = box(b"moov", box(b"mvhd", bytes(100)))
    assert vio.check_container(FTYP + moov + box(b"mdat", b"x" * 10)) == "mp4"
    qt = box(b"ftyp", b"qt  \0\0\0\0qt  ")
    assert vio.check_container(qt + moov) == "mov"
    # QuickTime without ftyp: lenient about the leading box.
    assert vio.check_container(box(b"wide") + box(b"mdat", b"abc") + moov) == "mov"
    assert vio.check_container(moov) == "mov"
    # Brands are not judged.
    odd_brand = box(b"ftyp", b"\x01\x02\x03\x04\0\0\0\0")
    assert vio.check_container(odd_brand + moov) == "mp4"
    # 64-bit largesize.
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 5) + b"hello"
    assert vio.check_container(FTYP + large + moov) == "mp4"
    bad_cases = {
        "empty": b"",
        "no moov": FTYP + box(b"mdat", b"abc"),
        "two moov": FTYP + moov + moov,
        "two ftyp": FTYP + FTYP + moov,
        "ftyp after moov": moov + FTYP,
        "non-printable": FTYP + box(b"mo\x00v") + moov,
        "stray tail": FTYP + moov + b"\0\0\0",
        "short largesize": FTYP + moov + struct.pack(">I4sQ", 1, b"mdat", 8),
        "largesize overrun": FTYP + moov + struct.pack(">I4sQ", 1, b"mdat", 1 << 62),
        "cut largesize": FTYP + moov + struct.pack(">I4s", 1, b"mdat") + b"\0\0",
        "tiny ftyp": box(b"ftyp", b"isom") + moov,
        "huge ftyp": box(b"ftyp", b"isom\0\0\0\0" + b"isom" * 2000) + moov,
        "short uuid": FTYP + moov + box(b"uuid", b"1234"),
        "not bmff": b"RIFF\x10\0\0\0AVI LIST" + bytes(64),
        "garbage first box": box(b"abcd") + moov,
    }
    for name, data in bad_cases.items():
        with pytest.raises(MediaError):
            vio.check_container(data)
            pytest.fail(f"accepted: {name}")


def test_check_container_accepts_memoryview_and_bytearray(mp4_bytes: bytes) -> None:
    assert vio.check_container(bytearray(mp4_bytes)) == "mp4"
    assert vio.check_container(memoryview(mp4_bytes)) == "mp4"


def test_check_container_reads_only_headers(tmp_path: Path) -> None:
    path = tmp_path / "sparse.mp4"
    moov = box(b"moov", box(b"mvhd", bytes(100)))
    with path.open("wb") as handle:
        handle.write(FTYP + moov + struct.pack(">I4sQ", 1, b"mdat", 16 + (8 << 30)))
        handle.truncate(handle.tell() + (8 << 30))  # 8 GiB sparse mdat
    start = time.monotonic()
    assert vio.check_container(path) == "mp4"
    assert time.monotonic() - start < 0.5
    assert_fast_media_error(path, "max_file_bytes")


def test_check_container_file_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        vio.check_container(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="directory"):
        vio.check_container(tmp_path)
    with pytest.raises(ConfigurationError):
        vio.check_container(12)  # type: ignore[arg-type]


# -------------------------------------------------------------------- images


def test_encode_png_round_trips_exactly_through_read_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    data = vio.encode_png(image)
    assert data == vio.encode_png(image.copy())
    path = tmp_path / "i.png"
    path.write_bytes(data)
    back = vio.read_image(path)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, image)


def test_encode_png_is_a_valid_png_for_pyav() -> None:
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[..., 0] = 255
    data = vio.encode_png(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, colour) == (6, 4, 8, 2)
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29]) & 0xFFFFFFFF
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        np.testing.assert_array_equal(frame.to_ndarray(format="rgb24"), image)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((4, 4, 3), np.float32),
        np.zeros((0, 4, 3), np.uint8),
        [[0, 0, 0]],
    ],
)
def test_encode_png_validates(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        vio.encode_png(bad)  # type: ignore[arg-type]


def test_read_image_jpeg(tmp_path: Path) -> None:
    image = smooth_clip(1, 48, 64).frames[0]
    path = tmp_path / "i.jpg"
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    frame.save(str(path))
    back = vio.read_image(path)
    assert back.shape == (48, 64, 3)
    assert psnr(back, image) > 30.0


def test_read_image_webp_when_available(tmp_path: Path) -> None:
    if not has_encoder("libwebp"):
        pytest.skip("this PyAV build has no libwebp encoder")
    image = smooth_clip(1, 32, 32).frames[0]
    path = tmp_path / "i.webp"
    with av.open(str(path), "w", format="webp") as out:
        stream = out.add_stream("libwebp", rate=1, options={"lossless": "1"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "bgra"
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="bgra")
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    np.testing.assert_array_equal(vio.read_image(path), image)


def test_read_image_limits_and_bad_files(tmp_path: Path, mp4: Path) -> None:
    path = tmp_path / "i.png"
    path.write_bytes(vio.encode_png(np.zeros((40, 50, 3), np.uint8)))
    with pytest.raises(MediaError, match="exceeds the limit"):
        vio.read_image(path, limits=vio.ReadLimits(max_width=49))
    with pytest.raises(MediaError, match="unsupported format"):
        vio.read_image(mp4)
    path.write_bytes(vio.encode_png(np.zeros((40, 50, 3), np.uint8))[:60])
    with pytest.raises(MediaError):
        vio.read_image(path)
    with pytest.raises(MediaError, match="no such file"):
        vio.read_image(tmp_path / "none.png")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unreadable_file(tmp_path: Path, mp4: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read anything")
    mp4.chmod(0)
    assert_fast_media_error(mp4, "ermission")
