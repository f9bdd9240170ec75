"""Video and image I/O on PyAV, hardened against hostile input.

Files handed to vidgen come from users and from the open internet, and the
native demuxers and decoders behind PyAV are the largest attack surface in the
SDK. So reading is defensive by construction:

* the file is opened by Python (regular files only, never a FIFO or device) and
  handed to FFmpeg as a file object, so FFmpeg never interprets the path as a
  URL, protocol or image-sequence pattern, and cannot read past the size seen
  when it was opened;
* only an allow-list of demuxers may claim the file (no playlists, no concat
  scripts, nothing that opens further files), and nested opens are refused;
* an MP4/MOV file must first pass :func:`check_container`, because FFmpeg's
  demuxer tolerates box sizes that overrun their parent;
* size, declared dimensions, frame count, decoded bytes and wall-clock time are
  all bounded by :class:`ReadLimits`, checked before or while decoding, never by
  allocating first;
* every failure is a :class:`~vidgen.errors.MediaError` naming the file and the
  problem, never a raw PyAV/OS traceback.

Writing produces H.264 in MP4 (yuv420p, CRF, ``+faststart``) tagged BT.709.
H.264 is lossy: a round trip is compared by PSNR, not equality. Encoding is
deterministic for the same frames, options and thread count.

:func:`check_container` is a pure-Python structural check of ISO-BMFF
(MP4/MOV) box layout, also usable on its own (the verifier runs it before any
native parser sees a file).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO, Final

import attrs
import av
import av.error
import numpy as np
import numpy.typing as npt
from av.video.reformatter import Interpolation, VideoReformatter

from vidgen.errors import ConfigurationError, MediaError
from vidgen.types import Frames, Video

__all__ = [
    "DEFAULT_LIMITS",
    "X264_PRESETS",
    "ReadLimits",
    "VideoInfo",
    "check_container",
    "encode_png",
    "encode_video_bytes",
    "probe_video",
    "read_image",
    "read_video",
    "write_video",
]

_GIB: Final = 1 << 30

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- limits


def _positive_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"ReadLimits.{attribute.name} must be a positive int, got {value!r}"
        )


def _positive_float(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool)):
        raise ConfigurationError(f"ReadLimits.{attribute.name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"ReadLimits.{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class ReadLimits:
    """Bounds on what one read may cost; exceeding any of them is a ``MediaError``.

    Defaults admit 8K video and long clips but stop a hostile file from taking
    the process's memory or time: the decoded-bytes bound is what the returned
    RGB array may occupy, ``max_seconds`` is the wall-clock budget for the
    whole read (open, probe, demux and decode).
    """

    max_file_bytes: int = attrs.field(default=4 * _GIB, validator=_positive_int)
    max_width: int = attrs.field(default=7680, validator=_positive_int)
    max_height: int = attrs.field(default=4320, validator=_positive_int)
    max_frames: int = attrs.field(default=20_000, validator=_positive_int)
    max_decoded_bytes: int = attrs.field(default=4 * _GIB, validator=_positive_int)
    max_seconds: float = attrs.field(default=120.0, validator=_positive_float)


DEFAULT_LIMITS: Final = ReadLimits()


@attrs.frozen
class VideoInfo:
    """What :func:`probe_video` learns from the headers alone (no full decode).

    ``container`` is FFmpeg's demuxer name (MP4 and MOV both read as
    ``"mov,mp4,m4a,3gp,3g2,mj2"``); ``num_frames`` and ``duration`` are ``None``
    when the container does not declare them.
    """

    container: str
    codec: str
    width: int
    height: int
    fps: float
    num_frames: int | None
    duration: float | None
    has_audio: bool


# ------------------------------------------------------------------ error handling

# Everything PyAV, FFmpeg, the OS or numpy may raise on a bad file. TypeError and
# AttributeError are deliberately absent: those are bugs here, not bad input.
_WRAPPED: Final = (
    av.error.FFmpegError,
    OSError,
    EOFError,
    ValueError,
    MemoryError,
    IndexError,
    KeyError,
    ArithmeticError,
    RuntimeError,
    BufferError,
)


class _OutOfTime(Exception):
    """Raised inside FFmpeg's I/O callbacks when the wall-clock budget is spent."""


class _Deadline:
    """The wall-clock budget of one read, checked in I/O callbacks and per packet."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() > self._end

    def check(self) -> None:
        if self.expired:
            raise _OutOfTime


def _describe(exc: BaseException) -> str:
    if isinstance(exc, av.error.EOFError):
        return "unexpected end of file (truncated?)"
    if isinstance(exc, av.error.FFmpegError) and exc.errno == errno.EIO:
        return "read error inside the container (truncated or corrupt?)"
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    if isinstance(exc, MemoryError):
        return "out of memory"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


@contextlib.contextmanager
def _media_errors(path: object, action: str, deadline: _Deadline | None = None) -> Iterator[None]:
    """Turn any low-level failure inside the block into one clear ``MediaError``."""
    try:
        yield
    except _OutOfTime as exc:
        raise _timeout_error(path, action, deadline) from exc
    except _WRAPPED as exc:
        if deadline is not None and deadline.expired:
            raise _timeout_error(path, action, deadline) from exc
        raise MediaError(f"cannot {action} {path}: {_describe(exc)}") from exc


def _timeout_error(path: object, action: str, deadline: _Deadline | None) -> MediaError:
    budget = f"{deadline.seconds:g} s" if deadline else "its time"
    return MediaError(f"cannot {action} {path}: took longer than the {budget} budget")


# --------------------------------------------------------------------- safe opening


def _open_regular(path: Path, action: str) -> IO[bytes]:
    """Open ``path`` for reading only if it is a regular file.

    ``O_NONBLOCK`` keeps a FIFO from hanging the open; the type check is on the
    descriptor actually opened, so swapping the path afterwards does not help.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise MediaError(f"cannot {action} {path}: no such file") from exc
    except OSError as exc:
        raise MediaError(f"cannot {action} {path}: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise MediaError(f"cannot {action} {path}: it is a directory")
        if not stat.S_ISREG(mode):
            raise MediaError(f"cannot {action} {path}: not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _GuardedReader:
    """The file object FFmpeg reads through: bounded in size and in time.

    Reads stop at the size seen when the file was opened (a file growing under
    us cannot feed the demuxer more), and every read checks the deadline, so a
    demuxer looping over I/O is stopped even inside one FFmpeg call.
    """

    def __init__(self, raw: IO[bytes], size: int, deadline: _Deadline) -> None:
        self._raw = raw
        self._size = size
        self._deadline = deadline

    def read(self, n: int = -1) -> bytes:
        self._deadline.check()
        left = max(0, self._size - self._raw.tell())
        return self._raw.read(left if n < 0 else min(n, left))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._deadline.check()
        if whence == os.SEEK_END:
            offset, whence = self._size + offset, os.SEEK_SET
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


# Demuxers allowed to claim a file. Anything else (playlists, concat scripts,
# image sequences, raw bitstreams that match almost any bytes) is refused.
_VIDEO_DEMUXERS: Final = ("mov", "matroska", "avi", "ivf", "flv", "mpegts", "gif")
_IMAGE_DEMUXERS: Final = ("png_pipe", "jpeg_pipe", "webp_pipe")


def _container_options(demuxers: tuple[str, ...]) -> dict[str, str]:
    return {
        "format_whitelist": ",".join(demuxers),
        # No nested opens at all: the input is a file object, never a URL.
        "protocol_whitelist": "none",
        "probesize": str(8 << 20),
        "analyzeduration": str(10_000_000),
        "max_streams": "100",
    }


def _codec_options(limits: ReadLimits) -> dict[str, str]:
    return {"max_pixels": str(limits.max_width * limits.max_height)}


@contextlib.contextmanager
def _open_input(
    path: Path,
    limits: ReadLimits,
    deadline: _Deadline,
    demuxers: tuple[str, ...],
    action: str,
) -> Iterator[av.container.InputContainer]:
    """Open ``path`` as an FFmpeg input after the size, type and structure checks."""
    raw = _open_regular(path, action)
    with raw, _media_errors(path, action, deadline):
        size = os.fstat(raw.fileno()).st_size
        if size == 0:
            raise MediaError(f"cannot {action} {path}: the file is empty")
        if size > limits.max_file_bytes:
            raise MediaError(
                f"cannot {action} {path}: {size} bytes exceeds the limit of "
                f"{limits.max_file_bytes} bytes (ReadLimits.max_file_bytes)"
            )
        checked = _looks_like_bmff(raw) and _check_bmff(raw, path)
        container = _av_open(_GuardedReader(raw, size, deadline), limits, demuxers, path, action)
        try:
            if not checked and "mov" in container.format.name.split(","):
                _check_bmff(raw, path)
            yield container
        finally:
            with contextlib.suppress(*_WRAPPED, _OutOfTime):
                container.close()


# First boxes by which the MP4/MOV demuxer recognises a file.
_BMFF_FIRST: Final = frozenset(
    b"ftyp styp moov mdat wide free skip pnot junk uuid meta moof".split()
)


def _looks_like_bmff(raw: IO[bytes]) -> bool:
    raw.seek(0)
    head = raw.read(8)
    raw.seek(0)
    return head[4:8] in _BMFF_FIRST


def _check_bmff(raw: IO[bytes], path: Path) -> bool:
    """Run :func:`check_container` on an open file before (or under) FFmpeg.

    FFmpeg's MP4 demuxer is lenient about box sizes that overrun their parent;
    refusing such files here keeps malformed structure away from it. The file
    position is restored, since FFmpeg may be mid-read on the same handle.
    """
    position = raw.tell()
    try:
        _check_source(_File(raw), str(path), _MAX_BOXES, _MAX_DEPTH)
    finally:
        raw.seek(position)
    return True


def _av_open(
    reader: _GuardedReader,
    limits: ReadLimits,
    demuxers: tuple[str, ...],
    path: Path,
    action: str,
) -> av.container.InputContainer:
    try:
        return av.open(
            reader,
            "r",
            options=_codec_options(limits),
            container_options=_container_options(demuxers),
            metadata_errors="ignore",
            timeout=limits.max_seconds,
        )
    except av.error.ArgumentError as exc:  # how FFmpeg refuses a demuxer not allowed
        accepted = ", ".join(name for name in demuxers)
        raise MediaError(
            f"cannot {action} {path}: unrecognised or unsupported format (accepted: {accepted})"
        ) from exc


def _check_limits(limits: object) -> None:
    if not isinstance(limits, ReadLimits):
        raise ConfigurationError(f"limits must be ReadLimits, got {type(limits).__name__}")


def _as_path(path: object) -> Path:
    if isinstance(path, Path):
        return path
    if isinstance(path, str | os.PathLike):
        return Path(path)
    raise ConfigurationError(f"expected a file path, got {type(path).__name__}")


# ------------------------------------------------------------------ stream metadata


def _pick_video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    """The first real video stream; cover art (attached pictures) only as a last resort."""
    videos = list(container.streams.video)
    if not videos:
        raise MediaError(f"cannot read {path}: no video stream")
    real = [s for s in videos if not s.disposition & av.stream.Disposition.attached_pic]
    stream = (real or videos)[0]
    if stream.codec_context is None:
        raise MediaError(f"cannot read {path}: no decoder for the video stream's codec")
    return stream


def _check_declared_size(stream: av.VideoStream, limits: ReadLimits, path: Path) -> None:
    width, height = stream.width, stream.height
    if width <= 0 or height <= 0:
        raise MediaError(f"cannot read {path}: the video stream declares no frame size")
    _check_frame_size(width, height, limits, path)


def _check_frame_size(width: int, height: int, limits: ReadLimits, path: Path) -> None:
    if width > limits.max_width or height > limits.max_height:
        raise MediaError(
            f"cannot read {path}: frame size {width}x{height} exceeds the limit of "
            f"{limits.max_width}x{limits.max_height} (ReadLimits.max_width/max_height)"
        )


_FPS_MIN: Final = 0.1
_FPS_MAX: Final = 1000.0
_FALLBACK_FPS: Final = 25.0


def _clamp_fps(value: float) -> float:
    return min(_FPS_MAX, max(_FPS_MIN, value))


def _declared_fps(stream: av.VideoStream) -> float | None:
    """The stream's frame rate from its headers, if any is plausible."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate.denominator != 0:
            value = float(rate)
            if math.isfinite(value) and 1e-3 < value < 1e6:
                return value
    return None


def _declared_frames(stream: av.VideoStream) -> int | None:
    frames = stream.frames
    return frames if frames > 0 else None


def _declared_duration(
    stream: av.VideoStream, container: av.container.InputContainer
) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    return None


def _codec_name(stream: av.VideoStream) -> str:
    return str(stream.codec_context.codec.canonical_name)


@contextlib.contextmanager
def _video_stream(
    file: Path, limits: ReadLimits, deadline: _Deadline, demuxers: tuple[str, ...], action: str
) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """Open ``file`` defensively and yield its video stream, its declared size checked."""
    with (
        _open_input(file, limits, deadline, demuxers, action) as container,
        _media_errors(file, action, deadline),
    ):
        stream = _pick_video_stream(container, file)
        _check_declared_size(stream, limits, file)
        yield container, stream


# ------------------------------------------------------------------------- probing


def probe_video(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> VideoInfo:
    """Describe a video from its headers, applying the file-size and dimension limits."""
    file = _as_path(path)
    _check_limits(limits)
    deadline = _Deadline(limits.max_seconds)
    with _video_stream(file, limits, deadline, _VIDEO_DEMUXERS, "probe") as (container, stream):
        declared = _declared_fps(stream)
        frames = _declared_frames(stream)
        duration = _declared_duration(stream, container)
        if declared is None and frames and duration:
            declared = frames / duration
        return VideoInfo(
            container=str(container.format.name),
            codec=_codec_name(stream),
            width=stream.width,
            height=stream.height,
            fps=_clamp_fps(declared if declared is not None else _FALLBACK_FPS),
            num_frames=frames,
            duration=duration,
            has_audio=bool(container.streams.audio),
        )


# ------------------------------------------------------------------------- reading


@attrs.frozen
class _Selection:
    """Which decoded frames a read keeps: ``start``, every ``step``-th, at most ``count``."""

    start: int
    step: int
    count: int | None

    def wants(self, index: int) -> bool:
        return index >= self.start and (index - self.start) % self.step == 0


def _selection(max_frames: int | None, start_frame: int, step: int) -> _Selection:
    def is_int(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if max_frames is not None and (not is_int(max_frames) or max_frames < 1):
        raise ConfigurationError(f"max_frames must be a positive int or None, got {max_frames!r}")
    if not is_int(start_frame) or start_frame < 0:
        raise ConfigurationError(f"start_frame must be an int >= 0, got {start_frame!r}")
    if not is_int(step) or step < 1:
        raise ConfigurationError(f"step must be an int >= 1, got {step!r}")
    return _Selection(start_frame, step, max_frames)


class _FrameSink:
    """Collects the kept frames, enforcing the limits before each allocation."""

    def __init__(self, path: Path, limits: ReadLimits, selection: _Selection) -> None:
        self.path = path
        self.limits = limits
        self.selection = selection
        self.frames: list[Frames] = []
        self.size: tuple[int, int] | None = None
        self.decoded = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.first_timed_index = 0
        self.last_timed_index = 0
        self._reformatter = VideoReformatter()

    @property
    def full(self) -> bool:
        count = self.selection.count
        return count is not None and len(self.frames) >= count

    def add(self, frame: av.VideoFrame) -> None:
        index = self.decoded
        self.decoded += 1
        self._check_size(frame.width, frame.height)
        self._note_time(index, frame.time)
        if not self.selection.wants(index):
            return
        self._check_budget(frame.width, frame.height)
        self.frames.append(_to_rgb(frame, self._reformatter))

    def _check_size(self, width: int, height: int) -> None:
        if self.size is None:
            _check_frame_size(width, height, self.limits, self.path)
            self.size = (width, height)
        elif self.size != (width, height):
            w0, h0 = self.size
            raise MediaError(
                f"cannot read {self.path}: frame size changed mid-stream "
                f"from {w0}x{h0} to {width}x{height} at frame {self.decoded - 1}"
            )

    def _check_budget(self, width: int, height: int) -> None:
        limits = self.limits
        if len(self.frames) >= limits.max_frames:
            raise MediaError(
                f"cannot read {self.path}: more than {limits.max_frames} frames "
                "(ReadLimits.max_frames); pass max_frames to read a prefix"
            )
        if (len(self.frames) + 1) * width * height * 3 > limits.max_decoded_bytes:
            raise MediaError(
                f"cannot read {self.path}: decoded frames would exceed "
                f"{limits.max_decoded_bytes} bytes (ReadLimits.max_decoded_bytes)"
            )

    def _note_time(self, index: int, when: float | None) -> None:
        if when is None or not math.isfinite(when):
            return
        if self.first_time is None:
            self.first_time = when
            self.first_timed_index = index
        self.last_time = when
        self.last_timed_index = index

    def measured_fps(self) -> float | None:
        """Frame rate from the decoded timestamps, for streams that declare none."""
        if self.first_time is None or self.last_time is None:
            return None
        span = self.last_time - self.first_time
        frames = self.last_timed_index - self.first_timed_index
        return frames / span if span > 0 and frames > 0 else None

    def stacked(self) -> Frames:
        """One (T, H, W, 3) array, releasing each frame as it is copied (peak ~1x)."""
        frames = self.frames
        out: Frames = np.empty((len(frames), *frames[0].shape), dtype=np.uint8)
        empty: Frames = np.empty((0, 0, 3), dtype=np.uint8)
        for i in range(len(frames)):
            out[i] = frames[i]
            frames[i] = empty
        frames.clear()
        return out


# swscale's fast YUV->RGB path darkens every channel by ~1 level; the accurate
# path is unbiased and costs ~10 ms per 1080p frame, bounded by max_decoded_bytes.
_RGB_INTERPOLATION: Final = (
    Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND
)


def _to_rgb(frame: av.VideoFrame, reformatter: VideoReformatter) -> Frames:
    """RGB24 pixels, honouring a full-range tag the pixel format does not imply.

    One reformatter per read keeps swscale's context cached across frames.
    """
    full_range = 2  # AVCOL_RANGE_JPEG
    rgb = reformatter.reformat(
        frame,
        format="rgb24",
        interpolation=_RGB_INTERPOLATION,
        src_color_range=full_range if frame.color_range == full_range else None,
    )
    array = rgb.to_ndarray()
    if array.dtype != np.uint8 or array.shape != (frame.height, frame.width, 3):
        raise ValueError(f"unexpected decoded frame layout {array.dtype} {array.shape}")
    return np.asarray(array, dtype=np.uint8)


def _prepare_decoder(stream: av.VideoStream, limits: ReadLimits) -> None:
    context = stream.codec_context
    context.options = {**(context.options or {}), **_codec_options(limits)}
    context.thread_type = "AUTO"
    context.thread_count = min(8, os.cpu_count() or 1)


# A real decoder delays output by a few frames (B-frame reordering, frame threads); a stream
# that yields no frame from this many packets is garbage that would otherwise be decoded to
# the time limit (a fuzzed MP4 fed FFmpeg 21,845 frameless packets).
MAX_PACKETS_WITHOUT_FRAME = 1024


def _decode(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    sink: _FrameSink,
    deadline: _Deadline,
) -> int | None:
    """Demux and decode into ``sink``; returns packets read, or None if stopped early."""
    packets = 0
    for packet in container.demux(stream):
        deadline.check()
        if packet.is_corrupt:
            raise MediaError(f"cannot read {sink.path}: corrupt or truncated packet {packets}")
        if packet.size:
            packets += 1
        if packets > MAX_PACKETS_WITHOUT_FRAME and sink.decoded == 0:
            raise MediaError(f"cannot read {sink.path}: no frame decoded from the first "
                             f"{MAX_PACKETS_WITHOUT_FRAME} packets")
        for frame in packet.decode():
            deadline.check()
            sink.add(frame)
            if sink.full:
                return None
    return packets


def _check_complete(
    container: av.container.InputContainer, stream: av.VideoStream, packets: int, path: Path
) -> None:
    """An MP4/MOV index is authoritative: fewer packets than samples means truncation."""
    declared = _declared_frames(stream)
    if declared and "mov" in container.format.name.split(",") and packets < declared:
        raise MediaError(
            f"cannot read {path}: truncated, {packets} of {declared} declared frames present"
        )


def _finish(sink: _FrameSink, stream: av.VideoStream, path: Path) -> Video:
    if sink.decoded == 0:
        raise MediaError(f"cannot read {path}: no decodable video frames")
    if not sink.frames:
        raise MediaError(
            f"cannot read {path}: start_frame {sink.selection.start} is past the end "
            f"({sink.decoded} frames)"
        )
    fps = _declared_fps(stream) or sink.measured_fps() or _FALLBACK_FPS
    return Video(frames=sink.stacked(), fps=_clamp_fps(fps / sink.selection.step))


def read_video(
    path: PathLike,
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    max_frames: int | None = None,
    start_frame: int = 0,
    step: int = 1,
) -> Video:
    """Decode a video file to RGB frames within ``limits``.

    Keeps frames ``start_frame, start_frame + step, ...`` (in presentation
    order), at most ``max_frames`` of them; the returned fps is the stream's
    divided by ``step`` so the clip keeps its duration. Raises ``MediaError``
    for anything unreadable, truncated, oversized or too slow, and
    ``ConfigurationError`` for bad arguments.
    """
    file = _as_path(path)
    _check_limits(limits)
    selection = _selection(max_frames, start_frame, step)
    deadline = _Deadline(limits.max_seconds)
    with _video_stream(file, limits, deadline, _VIDEO_DEMUXERS, "read") as (container, stream):
        _prepare_decoder(stream, limits)
        sink = _FrameSink(file, limits, selection)
        packets = _decode(container, stream, sink, deadline)
        if packets is not None:
            _check_complete(container, stream, packets, file)
        return _finish(sink, stream, file)


def read_image(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> npt.NDArray[np.uint8]:
    """Decode a PNG, JPEG or WebP image to (H, W, 3) uint8 RGB, within ``limits``."""
    file = _as_path(path)
    _check_limits(limits)
    deadline = _Deadline(limits.max_seconds)
    with _video_stream(
        file, limits, deadline, _IMAGE_DEMUXERS, "read image"
    ) as (container, stream):
        _prepare_decoder(stream, limits)
        sink = _FrameSink(file, limits, _Selection(0, 1, 1))
        _decode(container, stream, sink, deadline)
        if not sink.frames:
            raise MediaError(f"cannot read image {file}: no decodable picture")
        return sink.frames[0]


# ------------------------------------------------------------------------- writing

X264_PRESETS: Final = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
_CRF_CODECS: Final = ("libx264", "libx264rgb", "libx265")
_X265_MIN_SIDE: Final = 64


def _fps_fraction(fps: float) -> Fraction:
    """An exact rate for the muxer: NTSC rates snap to n*1000/1001, others to d <= 1001."""
    for base in (24, 30, 48, 60, 120, 240):
        ntsc = Fraction(base * 1000, 1001)
        if abs(fps - float(ntsc)) <= 1e-4 * fps:
            return ntsc
    rate = Fraction(fps).limit_denominator(1001)
    return rate if rate > 0 else Fraction(1, 10)


def _subsampling(pix_fmt: str) -> tuple[int, int]:
    """How many luma columns and rows share one chroma sample in ``pix_fmt``."""
    try:
        fmt = av.VideoFormat(pix_fmt)
    except ValueError as exc:
        raise ConfigurationError(f"unknown pixel format {pix_fmt!r}") from exc
    probe = 1024
    return probe // max(1, fmt.chroma_width(probe)), probe // max(1, fmt.chroma_height(probe))


def _check_write_options(
    video: Video, crf: int, preset: str, codec: str, pix_fmt: str, threads: int | None
) -> None:
    if not isinstance(video, Video):
        raise ConfigurationError(f"expected a vidgen.Video, got {type(video).__name__}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ConfigurationError(f"crf must be an int in 0..51, got {crf!r}")
    if preset not in X264_PRESETS:
        raise ConfigurationError(f"preset must be one of {', '.join(X264_PRESETS)}; got {preset!r}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 0
    ):
        raise ConfigurationError(f"threads must be an int >= 0 or None, got {threads!r}")
    try:
        encoder = av.Codec(codec, "w")
    except (ValueError, av.error.FFmpegError) as exc:
        raise ConfigurationError(f"no encoder named {codec!r} in this PyAV build") from exc
    if encoder.type != "video":
        raise ConfigurationError(f"{codec!r} is not a video encoder")
    if codec == "libx265" and min(video.width, video.height) < _X265_MIN_SIDE:
        # The x265 bundled with PyAV corrupts the heap on frames narrower than this.
        raise ConfigurationError(
            f"libx265 needs frames of at least {_X265_MIN_SIDE}x{_X265_MIN_SIDE}, got "
            f"{video.width}x{video.height}; use libx264 for small clips"
        )
    sub_w, sub_h = _subsampling(pix_fmt)
    if video.width % sub_w or video.height % sub_h:
        need = "even" if (sub_w, sub_h) == (2, 2) else f"multiples of {sub_w}x{sub_h}"
        raise ConfigurationError(
            f"{pix_fmt} needs frame dimensions that are {need}; got {video.width}x"
            f"{video.height} (crop or pad the frames first)"
        )


_BT709: Final = 1  # AVCOL_SPC/PRI/TRC_BT709
_RANGE_MPEG: Final = 1  # AVCOL_RANGE_MPEG (limited range)


def _add_video_stream(
    out: av.container.OutputContainer,
    video: Video,
    crf: int,
    preset: str,
    codec: str,
    pix_fmt: str,
    threads: int | None,
) -> av.VideoStream:
    options = {"crf": str(crf), "preset": preset} if codec in _CRF_CODECS else {}
    if codec == "libx265":
        options["x265-params"] = "log-level=error"
    stream = out.add_stream(codec, rate=_fps_fraction(video.fps), options=options)
    if not isinstance(stream, av.VideoStream):
        raise ConfigurationError(f"{codec!r} is not a video encoder")
    stream.width, stream.height, stream.pix_fmt = video.width, video.height, pix_fmt
    context = stream.codec_context
    context.colorspace = context.color_primaries = context.color_trc = _BT709
    context.color_range = _RANGE_MPEG
    if threads is not None:
        context.thread_count = threads
    if codec == "libx265":
        context.codec_tag = "hvc1"  # what Apple players expect for HEVC in MP4
    return stream


def _encode_frames(
    out: av.container.OutputContainer, stream: av.VideoStream, video: Video, pix_fmt: str
) -> None:
    for index, pixels in enumerate(video.frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame = frame.reformat(format=pix_fmt, dst_colorspace="itu709", dst_color_range=_RANGE_MPEG)
        frame.pts = index
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _remove_partial(path: Path, before: tuple[int, int, int] | None) -> None:
    """Remove what a failed encode left, but never a file it did not touch."""
    if path.is_dir() or (before is not None and _file_state(path) == before):
        return
    with contextlib.suppress(OSError):
        path.unlink()


def write_video(
    video: Video,
    path: PathLike,
    *,
    crf: int = 18,
    preset: str = "medium",
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    faststart: bool = True,
    threads: int | None = None,
) -> Path:
    """Encode ``video`` to an MP4 at ``path`` and return the path.

    H.264 yuv420p at the given CRF and x264 preset, tagged BT.709 limited
    range, ``moov`` first when ``faststart``. Lossy: compare by PSNR. Output is
    deterministic for equal frames, options and ``threads`` (x264's default
    thread count depends on the machine). Odd sizes are refused, not padded.
    On failure the partial file is removed and ``MediaError`` raised.
    """
    _check_write_options(video, crf, preset, codec, pix_fmt, threads)
    file = _as_path(path)
    before = _file_state(file)
    # "file:" + absolute path: FFmpeg must not read the name as another protocol.
    url = "file:" + os.path.abspath(file)
    container_options = {"movflags": "+faststart"} if faststart else {}
    container_options["fflags"] = "+bitexact"
    try:
        with (
            _media_errors(file, "write"),
            av.open(url, "w", format="mp4", container_options=container_options) as out,
        ):
            stream = _add_video_stream(out, video, crf, preset, codec, pix_fmt, threads)
            _encode_frames(out, stream, video, pix_fmt)
    except BaseException:
        _remove_partial(file, before)
        raise
    return file


def encode_video_bytes(
    video: Video,
    *,
    crf: int = 18,
    preset: str = "medium",
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    faststart: bool = True,
    threads: int | None = None,
) -> bytes:
    """Encode ``video`` like :func:`write_video` and return the MP4 bytes.

    Goes through a private temporary file: ``+faststart`` rewrites the file in
    place, which FFmpeg cannot do on an in-memory buffer.
    """
    with tempfile.TemporaryDirectory(prefix="vidgen-encode-") as tmp:
        target = Path(tmp) / "clip.mp4"
        write_video(
            video,
            target,
            crf=crf,
            preset=preset,
            codec=codec,
            pix_fmt=pix_fmt,
            faststart=faststart,
            threads=threads,
        )
        with _media_errors(target, "read back"):
            return target.read_bytes()


# --------------------------------------------------------------------------- PNG

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(image: npt.NDArray[np.uint8]) -> bytes:
    """A minimal 8-bit RGB PNG, in pure Python, byte-identical for equal pixels.

    Used to embed in-memory images (e.g. an I2V input) as C2PA ingredients
    without depending on an image library.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ConfigurationError("encode_png needs a uint8 numpy array")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ConfigurationError(f"encode_png needs shape (H, W, 3), got {image.shape}")
    height, width = int(image.shape[0]), int(image.shape[1])
    if max(height, width) >= 1 << 31:
        raise ConfigurationError(f"image too large for PNG: {width}x{height}")
    rows = np.zeros((height, 1 + width * 3), dtype=np.uint8)  # filter byte 0 = None
    rows[:, 1:] = image.reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)),
            _png_chunk(b"IEND", b""),
        )
    )


# ------------------------------------------------------------ ISO-BMFF structure

# Boxes whose payload is nothing but child boxes, so their structure can be walked
# without understanding their content. ("meta" and "udta" are left out: their
# layout differs between ISO and QuickTime files.)
_CONTAINER_BOXES: Final = frozenset(
    b"moov trak mdia minf stbl edts dinf mvex moof traf mfra".split()
)
# Top-level boxes a QuickTime file may start with when it has no ftyp.
_QT_LEADING: Final = frozenset(b"wide free skip mdat moov pnot junk".split())
_HEIF_BRANDS: Final = frozenset(b"mif1 msf1 mif2 heic heix avif".split())
_MAX_FTYP: Final = 4096
# A long fragmented MP4 has ~7 boxes per fragment; 100k headers take well under 1 s.
_MAX_BOXES: Final = 100_000
_MAX_DEPTH: Final = 8


class _Bytes:
    """Box headers from an in-memory buffer."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = memoryview(data).cast("B")
        self.size = len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self._data[offset : offset + length])


class _File:
    """Box headers from a file, by seeking: never more than a few bytes per box."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.size = os.fstat(handle.fileno()).st_size

    def read(self, offset: int, length: int) -> bytes:
        self._handle.seek(offset)
        return self._handle.read(length)


@attrs.frozen
class _Box:
    kind: bytes
    offset: int
    header: int
    size: int


class _BoxWalker:
    """Walks box headers with bounded count and depth; raises ``MediaError`` on any flaw."""

    def __init__(self, source: _Bytes | _File, name: str, max_boxes: int, max_depth: int) -> None:
        self.source = source
        self.name = name
        self.max_boxes = max_boxes
        self.max_depth = max_depth
        self.count = 0

    def fail(self, why: str) -> MediaError:
        return MediaError(f"not a well-formed MP4/MOV file ({self.name}): {why}")

    def children(self, start: int, end: int, depth: int) -> list[_Box]:
        boxes: list[_Box] = []
        offset = start
        while offset < end:
            box = self._header(offset, end, depth)
            boxes.append(box)
            if box.kind in _CONTAINER_BOXES:
                if depth + 1 > self.max_depth:
                    raise self.fail(f"boxes nested deeper than {self.max_depth} levels")
                self.children(box.offset + box.header, box.offset + box.size, depth + 1)
            offset += box.size
        return boxes

    def _header(self, offset: int, end: int, depth: int) -> _Box:
        self.count += 1
        if self.count > self.max_boxes:
            raise self.fail(f"more than {self.max_boxes} boxes")
        remaining = end - offset
        raw = self.source.read(offset, min(16, remaining))
        if len(raw) < 8:
            raise self.fail(f"{remaining} stray bytes at offset {offset}, too short for a box")
        size, kind = struct.unpack(">I4s", raw[:8])
        if not all(0x20 <= c <= 0x7E for c in kind):
            raise self.fail(f"box type {kind!r} at offset {offset} is not printable")
        header = 8
        if size == 1:
            if len(raw) < 16:
                raise self.fail(f"box {_fourcc(kind)} at offset {offset} is cut in its header")
            (size,) = struct.unpack(">Q", raw[8:16])
            header = 16
        elif size == 0:
            if depth > 0:
                raise self.fail(f"box {_fourcc(kind)} at offset {offset} has size 0 inside a box")
            size = remaining
        if kind == b"uuid":
            header += 16
        if size < header:
            raise self.fail(f"box {_fourcc(kind)} at offset {offset} declares {size} bytes")
        if size > remaining:
            raise self.fail(
                f"box {_fourcc(kind)} at offset {offset} declares {size} bytes but only "
                f"{remaining} remain (truncated or corrupt)"
            )
        return _Box(kind, offset, header, size)


def _fourcc(kind: bytes) -> str:
    return repr(kind.decode("latin-1"))


def _ftyp_brands(walker: _BoxWalker, box: _Box) -> tuple[bytes, set[bytes]]:
    """Major brand and all brands; the box must be a sane size, brands are not judged."""
    payload = box.size - box.header
    if payload < 8 or (payload - 8) % 4 or box.size > _MAX_FTYP:
        raise walker.fail(f"ftyp box of {box.size} bytes is malformed")
    data = walker.source.read(box.offset + box.header, payload)
    compatible = {data[i : i + 4] for i in range(8, payload, 4)}
    return data[:4], compatible | {data[:4]}


def _classify(walker: _BoxWalker, boxes: list[_Box]) -> str:
    kinds = [box.kind for box in boxes]
    if kinds.count(b"ftyp") > 1:
        raise walker.fail("more than one ftyp box")
    if kinds.count(b"moov") > 1:
        raise walker.fail("more than one moov box")
    if b"ftyp" in kinds:
        media = [i for i, k in enumerate(kinds) if k in (b"moov", b"mdat", b"moof")]
        if media and kinds.index(b"ftyp") > media[0]:
            raise walker.fail("ftyp box comes after the media boxes")
        major, brands = _ftyp_brands(walker, boxes[kinds.index(b"ftyp")])
        if b"moov" not in kinds:
            if brands & _HEIF_BRANDS and b"meta" in kinds:
                return "heif"
            raise walker.fail("no moov box (movie header missing or file truncated)")
        return "mov" if major == b"qt  " else "mp4"
    if kinds[0] not in _QT_LEADING:
        raise walker.fail(f"no ftyp box and first box is {_fourcc(kinds[0])}")
    if b"moov" not in kinds:
        raise walker.fail("no moov box (movie header missing or file truncated)")
    return "mov"


def check_container(
    source: PathLike | bytes | bytearray | memoryview,
    *,
    max_boxes: int = _MAX_BOXES,
    max_depth: int = _MAX_DEPTH,
) -> str:
    """Check the box structure of an MP4/MOV file; return ``"mp4"``, ``"mov"`` or ``"heif"``.

    Pure Python and header-only (seeks, never reads payloads), so it is safe to
    run before any native parser. Walks the top-level boxes and the children of
    the plain container boxes (moov, trak, mdia, minf, stbl, ...), and rejects
    sizes that overrun their parent, non-printable box types, more than
    ``max_boxes`` boxes, nesting deeper than ``max_depth``, duplicate ftyp or
    moov, and a missing moov. Brands are not judged; a QuickTime file may start
    without ftyp. Raises ``MediaError`` describing the first flaw found.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return _check_source(_Bytes(source), "<bytes>", max_boxes, max_depth)
    path = _as_path(source)
    with _open_regular(path, "check") as handle, _media_errors(path, "check"):
        return _check_source(_File(handle), str(path), max_boxes, max_depth)


def _check_source(source: _Bytes | _File, name: str, max_boxes: int, max_depth: int) -> str:
    if source.size == 0:
        raise MediaError(f"not a well-formed MP4/MOV file ({name}): it is empty")
    walker = _BoxWalker(source, name, max_boxes, max_depth)
    return _classify(walker, walker.children(0, source.size, 0))
