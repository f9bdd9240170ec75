"""Watermark attacks: named, deterministic ``Video -> Video`` transformations.

Each attack stands for something a clip meets after it leaves vidgen: platform
re-encodes, rescaling, cropping, re-timing, colour grading, noise, stills
grabbed as JPEG, screen recording. They use PyAV (FFmpeg) and numpy only, and
the same input always gives the same output (fixed seeds, fixed encoder thread
counts), so benchmark numbers can be rerun.

Conventions: frames stay uint8 RGB; geometry that must be re-encoded is kept
to even sizes (4:2:0 needs them), so a crop or resize may lose one extra pixel
row or column. Re-encodes use vidgen's own writer and hardened reader
(``vidgen.video_io``), tagged BT.709 limited range like vidgen's output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np
import numpy.typing as npt

from vidgen.errors import ConfigurationError
from vidgen.types import Video
from vidgen.video_io import read_video, write_video

Attack = Callable[[Video], Video]
Frames = npt.NDArray[np.uint8]

ENCODER_THREADS: Final = 1  # x264/x265/vpx output depends on the thread count
X265_MIN_SIDE: Final = 64  # libx265 in the PyAV wheel corrupts the heap below this
NOISE_SEED: Final = 20240501


# --- helpers --------------------------------------------------------------------------------


def _even(n: int) -> int:
    return max(2, n - n % 2)


def _evenly(video: Video) -> Video:
    """Drop a trailing odd row/column so 4:2:0 encoders accept the frames."""
    h, w = _even(video.height), _even(video.width)
    if (h, w) == (video.height, video.width):
        return video
    return Video(frames=np.ascontiguousarray(video.frames[:, :h, :w]), fps=video.fps)


def _clip(values: npt.NDArray[np.floating]) -> Frames:
    return np.asarray(np.clip(np.rint(values), 0, 255), dtype=np.uint8)


def _reencode(video: Video, *, codec: str, crf: int, preset: str = "medium") -> Video:
    """Write an MP4 with vidgen's writer and read it back with vidgen's reader."""
    with tempfile.TemporaryDirectory(prefix="wm-attack-") as tmp:
        path = Path(tmp) / "clip.mp4"
        write_video(_evenly(video), path, crf=crf, preset=preset, codec=codec,
                    threads=ENCODER_THREADS)
        return _same_fps(read_video(path), video.fps)


def _same_fps(decoded: Video, fps: float) -> Video:
    """The container's rate is a rational approximation; keep the exact input rate."""
    return Video(frames=decoded.frames, fps=fps)


def resize_frames(video: Video, height: int, width: int, interpolation: str) -> Video:
    """Rescale every frame with swscale (``AREA`` to shrink, ``BILINEAR`` to grow)."""
    out = np.empty((video.num_frames, height, width, 3), dtype=np.uint8)
    for i, pixels in enumerate(video.frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        scaled = frame.reformat(width=width, height=height, format="rgb24",
                                interpolation=interpolation)
        out[i] = scaled.to_ndarray()
    return Video(frames=out, fps=video.fps)


def _scale(video: Video, factor: float) -> Video:
    h = _even(round(video.height * factor))
    w = _even(round(video.width * factor))
    return resize_frames(video, h, w, "AREA" if factor < 1 else "BILINEAR")


def _crop_fraction(video: Video, fraction: float) -> Video:
    dy, dx = round(video.height * fraction), round(video.width * fraction)
    h, w = _even(video.height - 2 * dy), _even(video.width - 2 * dx)
    return Video(frames=np.ascontiguousarray(video.frames[:, dy:dy + h, dx:dx + w]),
                 fps=video.fps)


def _blur_121(video: Video) -> Video:
    """Convolve rows and columns with the 1-2-1 kernel (edge pixels repeated), in integers."""
    out = np.empty_like(video.frames)
    for i, frame in enumerate(video.frames):
        x = np.pad(frame, ((1, 1), (1, 1), (0, 0)), mode="edge").astype(np.uint16)
        rows = x[:-2] + 2 * x[1:-1] + x[2:]
        cols = rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]
        out[i] = ((cols + 8) >> 4).astype(np.uint8)
    return Video(frames=out, fps=video.fps)


# --- re-encodes -------------------------------------------------------------------------------


def h264_crf23(video: Video) -> Video:
    """H.264 (libx264, preset medium) at CRF 23, FFmpeg's default quality."""
    return _reencode(video, codec="libx264", crf=23)


def h264_crf28(video: Video) -> Video:
    """H.264 at CRF 28: typical of platform re-encodes of user uploads."""
    return _reencode(video, codec="libx264", crf=28)


def h264_crf35(video: Video) -> Video:
    """H.264 at CRF 35: visibly degraded, low-bitrate streaming."""
    return _reencode(video, codec="libx264", crf=35)


def h265_crf28(video: Video) -> Video:
    """H.265 (libx265, preset medium) at CRF 28; refuses frames under 64x64 (x265 crash)."""
    if min(video.height, video.width) < X265_MIN_SIDE:
        raise ConfigurationError(
            f"h265_crf28 needs frames of at least {X265_MIN_SIDE}x{X265_MIN_SIDE}, "
            f"got {video.width}x{video.height}")
    return _reencode(video, codec="libx265", crf=28)


VP9_CRF: Final = 33


def vp9_available() -> bool:
    return "libvpx-vp9" in av.codecs_available


def vp9(video: Video) -> Video:
    """VP9 (libvpx-vp9, constant quality CRF 33, cpu-used 4) in WebM: YouTube-like."""
    if not vp9_available():
        raise ConfigurationError("this PyAV build has no libvpx-vp9 encoder")
    video = _evenly(video)
    with tempfile.TemporaryDirectory(prefix="wm-attack-") as tmp:
        path = Path(tmp) / "clip.webm"
        _write_vp9(video, path)
        return _same_fps(read_video(path), video.fps)


def _write_vp9(video: Video, path: Path) -> None:
    rate = Fraction(video.fps).limit_denominator(1001)
    options = {"crf": str(VP9_CRF), "b": "0", "deadline": "good", "cpu-used": "4",
               "row-mt": "0"}
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=rate, options=options)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        ctx = stream.codec_context
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1  # BT.709, as vidgen writes
        ctx.color_range = 1
        ctx.thread_count = ENCODER_THREADS
        for index, pixels in enumerate(video.frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="itu709",
                                   dst_color_range=1)
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


# --- geometry ---------------------------------------------------------------------------------


def resize_0_5(video: Video) -> Video:
    """Downscale to half size (area averaging): 1080p -> 540p."""
    return _scale(video, 0.5)


def resize_0_25(video: Video) -> Video:
    """Downscale to a quarter (area averaging): a thumbnail."""
    return _scale(video, 0.25)


def crop_10(video: Video) -> Video:
    """Cut 10% from every side (80% of width and height remain), no rescale."""
    return _crop_fraction(video, 0.10)


def crop_10_resize_back(video: Video) -> Video:
    """Crop 10% per side, then scale back to the original size (bilinear): a zoom-in."""
    return resize_frames(_crop_fraction(video, 0.10), video.height, video.width, "BILINEAR")


# --- time -------------------------------------------------------------------------------------


def retime(video: Video, fps: float) -> Video:
    """Resample to ``fps`` by timestamps: output frame i shows the input frame nearest i/fps."""
    count = max(1, int(np.floor(video.duration * fps + 1e-9)))
    source = np.rint(np.arange(count) * video.fps / fps).astype(np.int64)
    source = np.minimum(source, video.num_frames - 1)
    return Video(frames=np.ascontiguousarray(video.frames[source]), fps=fps)


def fps_30_to_24(video: Video) -> Video:
    """Frame-rate conversion to 24 fps (drops 1 frame in 5 from 30 fps); duration kept."""
    return retime(video, 24.0)


def drop_every_other(video: Video) -> Video:
    """Keep frames 0, 2, 4, ... at half the frame rate (duration kept)."""
    return Video(frames=np.ascontiguousarray(video.frames[::2]), fps=video.fps / 2)


def trim_1s(video: Video) -> Video:
    """Remove the first second (at least one frame is kept)."""
    start = min(round(video.fps), video.num_frames - 1)
    return Video(frames=np.ascontiguousarray(video.frames[start:]), fps=video.fps)


# --- photometric ------------------------------------------------------------------------------


def _lookup(video: Video, table: Frames) -> Video:
    return Video(frames=table[video.frames], fps=video.fps)


def _gain(video: Video, factor: float) -> Video:
    return _lookup(video, _clip(np.arange(256) * factor))


def brightness_up_20(video: Video) -> Video:
    """All channels x1.2 (clipped): brighter exposure."""
    return _gain(video, 1.2)


def brightness_down_20(video: Video) -> Video:
    """All channels x0.8: darker exposure."""
    return _gain(video, 0.8)


def contrast_0_7(video: Video) -> Video:
    """Contrast x0.7 about each frame's mean luma (like PIL's ImageEnhance.Contrast)."""
    out = np.empty_like(video.frames)
    for i, frame in enumerate(video.frames):
        mean = float(luma(frame[None]).mean())
        out[i] = _clip(mean + 0.7 * (np.arange(256) - mean))[frame]
    return Video(frames=out, fps=video.fps)


def _gamma(video: Video, gamma: float) -> Video:
    return _lookup(video, _clip(255.0 * (np.arange(256) / 255.0) ** gamma))


def gamma_0_8(video: Video) -> Video:
    """Gamma 0.8 (out = in^0.8): lifts shadows."""
    return _gamma(video, 0.8)


def gamma_1_25(video: Video) -> Video:
    """Gamma 1.25: deepens shadows."""
    return _gamma(video, 1.25)


def noise_sigma5(video: Video) -> Video:
    """Additive Gaussian noise, sigma 5 per channel, from a fixed seed."""
    rng = np.random.default_rng(NOISE_SEED)
    out = np.empty_like(video.frames)
    for i, frame in enumerate(video.frames):
        noise = rng.standard_normal(size=frame.shape, dtype=np.float32) * np.float32(5.0)
        out[i] = _clip(frame + noise)
    return Video(frames=out, fps=video.fps)


# --- JPEG -------------------------------------------------------------------------------------

# ITU-T T.81 Annex K tables; quality 50 uses them unscaled (libjpeg's scale = 100%).
_JPEG_LUMA_Q50: Final = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float32).reshape(8, 8)
_JPEG_CHROMA_Q50: Final = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
], dtype=np.float32).reshape(8, 8)


def _dct_matrix() -> npt.NDArray[np.float32]:
    k = np.arange(8)[:, None]
    n = np.arange(8)[None, :]
    m = np.sqrt(2 / 8) * np.cos(np.pi * (2 * n + 1) * k / 16)
    m[0] /= np.sqrt(2)
    return np.asarray(m, dtype=np.float32)


_DCT: Final = _dct_matrix()


def _quantise_plane(plane: npt.NDArray[np.float32], table: npt.NDArray[np.float32]
                    ) -> npt.NDArray[np.float32]:
    """8x8 DCT, round(coef / q) * q, inverse DCT, over a plane padded to whole blocks."""
    h, w = plane.shape
    ph, pw = -h % 8, -w % 8
    padded = np.pad(plane, ((0, ph), (0, pw)), mode="edge") - np.float32(128.0)
    blocks = padded.reshape(padded.shape[0] // 8, 8, padded.shape[1] // 8, 8).swapaxes(1, 2)
    coef = _DCT @ blocks @ _DCT.T
    coef = np.rint(coef / table) * table
    back = _DCT.T @ coef @ _DCT
    out = back.swapaxes(1, 2).reshape(padded.shape) + 128.0
    return np.asarray(out[:h, :w])


def jpeg_frame(rgb: Frames) -> Frames:
    """Baseline JPEG at quality 50 (4:2:0), simulated exactly up to entropy coding.

    JFIF full-range BT.601 YCbCr, chroma averaged over 2x2, 8x8 DCT-II,
    Annex K tables at quality 50, chroma upsampled by replication. The
    Huffman stage is lossless, so it is left out.
    """
    x = rgb.astype(np.float32)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    cb = 128 - 0.168736 * x[..., 0] - 0.331264 * x[..., 1] + 0.5 * x[..., 2]
    cr = 128 + 0.5 * x[..., 0] - 0.418688 * x[..., 1] - 0.081312 * x[..., 2]
    h, w = y.shape
    y = _quantise_plane(y, _JPEG_LUMA_Q50)
    chroma = []
    for plane in (cb, cr):
        padded = np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge")
        small = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).mean(axis=(1, 3))
        small = _quantise_plane(small, _JPEG_CHROMA_Q50)
        chroma.append(np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:h, :w])
    cb, cr = chroma
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    return _clip(np.stack([r, g, b], axis=-1))


def jpeg_q50(video: Video) -> Video:
    """Every frame through JPEG quality 50 (frames grabbed as stills and reassembled)."""
    return Video(frames=np.stack([jpeg_frame(f) for f in video.frames]), fps=video.fps)


# --- composites -------------------------------------------------------------------------------


def screen_recording(video: Video) -> Video:
    """Slight blur (1-2-1 kernel), rescale to 0.9x and back, then H.264 CRF 28."""
    blurred = _blur_121(video)
    small = _scale(blurred, 0.9)
    back = resize_frames(small, video.height, video.width, "BILINEAR")
    return h264_crf28(back)


def crop_crf28_resize(video: Video) -> Video:
    """Crop 10% per side, H.264 CRF 28, then downscale 0.5x: a re-upload of a cut-down clip."""
    return resize_0_5(h264_crf28(crop_10(video)))


# --- registry ---------------------------------------------------------------------------------


def luma(frames: Frames) -> npt.NDArray[np.float32]:
    """BT.601 luma (Y') in [0, 255] as float32, shape (T, H, W)."""
    x = frames.astype(np.float32)
    return np.asarray(0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2],
                      dtype=np.float32)


ATTACKS: Final[dict[str, Attack]] = {
    "h264_crf23": h264_crf23,
    "h264_crf28": h264_crf28,
    "h264_crf35": h264_crf35,
    "h265_crf28": h265_crf28,
    "vp9": vp9,
    "resize_0.5": resize_0_5,
    "resize_0.25": resize_0_25,
    "crop_10": crop_10,
    "crop_10_resize_back": crop_10_resize_back,
    "fps_30_to_24": fps_30_to_24,
    "drop_every_other": drop_every_other,
    "trim_1s": trim_1s,
    "brightness_+20": brightness_up_20,
    "brightness_-20": brightness_down_20,
    "contrast_0.7": contrast_0_7,
    "gamma_0.8": gamma_0_8,
    "gamma_1.25": gamma_1_25,
    "noise_sigma5": noise_sigma5,
    "jpeg_q50": jpeg_q50,
    "screen_recording": screen_recording,
    "crop_crf28_resize_0.5": crop_crf28_resize,
}


def available_attacks() -> dict[str, Attack]:
    """The attacks this PyAV build can run (VP9 only when libvpx-vp9 is compiled in)."""
    return {name: fn for name, fn in ATTACKS.items() if name != "vp9" or vp9_available()}


def describe(name: str) -> str:
    """The first line of an attack's docstring."""
    doc = ATTACKS[name].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else name
