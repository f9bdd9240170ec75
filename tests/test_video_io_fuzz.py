"""Property tests: mutated, truncated and spliced MP4s only ever give a Video or MediaError.

Seeds are small valid MP4s made once per module (moov first and moov last).
Every read runs under tight limits, so a case that tried to take much memory or
time would fail here rather than hang CI.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vidgen import video_io as vio
from vidgen.errors import MediaError
from vidgen.types import Video

FUZZ_LIMITS = vio.ReadLimits(
    max_file_bytes=1 << 20,
    max_width=256,
    max_height=256,
    max_frames=64,
    max_decoded_bytes=1 << 22,
    max_seconds=3.0,
)
CASE_SECONDS = 5.0


def _seed_clip() -> Video:
    t = np.arange(6, dtype=np.float64)[:, None, None]
    y = np.arange(32, dtype=np.float64)[None, :, None]
    x = np.arange(48, dtype=np.float64)[None, None, :]
    red = 128 + 90 * np.sin(x / 7 + t)
    green = 128 + 90 * np.cos(y / 5 - t / 2)
    blue = 128 + 60 * np.sin((x + y) / 9)
    pixels = np.stack(np.broadcast_arrays(red, green, blue), axis=-1)
    return Video(np.clip(pixels, 0, 255).astype(np.uint8), fps=12)


_SEEDS: dict[str, bytes] = {}


def seeds() -> dict[str, bytes]:
    """Small valid MP4s, encoded once per module (a cache, not a fixture, for hypothesis)."""
    if not _SEEDS:
        clip = _seed_clip()
        _SEEDS["faststart"] = vio.encode_video_bytes(clip, crf=30, preset="ultrafast")
        _SEEDS["moov_last"] = vio.encode_video_bytes(clip, crf=30, faststart=False)
    return _SEEDS


SEED_NAMES = ("faststart", "moov_last")
_BOX_TYPES = (
    b"ftyp moov mvhd trak tkhd edts elst mdia mdhd hdlr minf vmhd dinf dref stbl "
    b"stsd avc1 avcC stts stss ctts stsc stsz stco udta meta mdat free"
).split()
_INTERESTING_SIZES = (0, 1, 7, 8, 9, 16, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def box_size_offsets(data: bytes) -> list[int]:
    """Offsets of the 32-bit size fields of every recognisable box in ``data``."""
    offsets = []
    for kind in _BOX_TYPES:
        start = 0
        while (found := data.find(kind, start)) != -1:
            if found >= 4:
                offsets.append(found - 4)
            start = found + 1
    return sorted(offsets)


Mutation = Callable[[bytearray, dict[str, bytes]], bytearray]


def _position(data: bytearray, raw: int) -> int:
    return raw % (len(data) + 1)


@st.composite
def truncate(draw: st.DrawFn) -> Mutation:
    raw = draw(st.integers(0, 1 << 16))
    return lambda data, _s: data[: _position(data, raw)]


@st.composite
def set_bytes(draw: st.DrawFn) -> Mutation:
    raw = draw(st.integers(0, 1 << 16))
    value = draw(st.binary(min_size=1, max_size=8))

    def apply(data: bytearray, _s: dict[str, bytes]) -> bytearray:
        at = _position(data, raw)
        data[at : at + len(value)] = value
        return data

    return apply


@st.composite
def corrupt_header(draw: st.DrawFn) -> Mutation:
    """Overwrite bytes before the media data: the sample tables and codec config."""
    raw = draw(st.integers(0, 1 << 16))
    value = draw(st.binary(min_size=1, max_size=4))

    def apply(data: bytearray, _s: dict[str, bytes]) -> bytearray:
        end = data.find(b"mdat")
        at = raw % max(1, end if end > 0 else len(data))
        data[at : at + len(value)] = value
        return data

    return apply


@st.composite
def patch_box_size(draw: st.DrawFn) -> Mutation:
    which = draw(st.integers(0, 1 << 16))
    size = draw(st.sampled_from(_INTERESTING_SIZES) | st.integers(0, 0xFFFFFFFF))
    delta = draw(st.integers(-16, 16))

    def apply(data: bytearray, _s: dict[str, bytes]) -> bytearray:
        offsets = box_size_offsets(bytes(data))
        if not offsets:
            return data
        at = offsets[which % len(offsets)]
        if delta and size in (0, 1):  # nudge the real size instead
            (current,) = struct.unpack(">I", data[at : at + 4])
            value = max(0, min(0xFFFFFFFF, current + delta))
        else:
            value = size
        data[at : at + 4] = struct.pack(">I", value)
        return data

    return apply


@st.composite
def insert_bytes(draw: st.DrawFn) -> Mutation:
    raw = draw(st.integers(0, 1 << 16))
    payload = draw(st.binary(min_size=1, max_size=64))

    def apply(data: bytearray, _s: dict[str, bytes]) -> bytearray:
        at = _position(data, raw)
        return data[:at] + bytearray(payload) + data[at:]

    return apply


@st.composite
def delete_range(draw: st.DrawFn) -> Mutation:
    raw = draw(st.integers(0, 1 << 16))
    length = draw(st.integers(1, 256))

    def apply(data: bytearray, _s: dict[str, bytes]) -> bytearray:
        at = _position(data, raw)
        return data[:at] + data[at + length :]

    return apply


@st.composite
def duplicate_range(draw: st.DrawFn) -> Mutation:
    src, dst = draw(st.integers(0, 1 << 16)), draw(st.integers(0, 1 << 16))
    length = draw(st.integers(1, 512))

    def apply(data: bytearray, _s: dict[str, bytes]) -> bytearray:
        a, b = _position(data, src), _position(data, dst)
        return data[:b] + data[a : a + length] + data[b:]

    return apply


@st.composite
def splice_seeds(draw: st.DrawFn) -> Mutation:
    other = draw(st.sampled_from(SEED_NAMES))
    cut, resume = draw(st.integers(0, 1 << 16)), draw(st.integers(0, 1 << 16))

    def apply(data: bytearray, all_seeds: dict[str, bytes]) -> bytearray:
        donor = all_seeds[other]
        return data[: _position(data, cut)] + bytearray(donor[resume % (len(donor) + 1) :])

    return apply


MUTATIONS = st.one_of(
    truncate(),
    set_bytes(),
    corrupt_header(),
    patch_box_size(),
    insert_bytes(),
    delete_range(),
    duplicate_range(),
    splice_seeds(),
)


@st.composite
def mutated_mp4(draw: st.DrawFn) -> bytes:
    all_seeds = seeds()
    data = bytearray(all_seeds[draw(st.sampled_from(SEED_NAMES))])
    for mutation in draw(st.lists(MUTATIONS, min_size=1, max_size=4)):
        data = mutation(data, all_seeds)
    return bytes(data)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def timed(action: Callable[[], object]) -> object:
    start = time.monotonic()
    try:
        return action()
    finally:
        elapsed = time.monotonic() - start
        assert elapsed < CASE_SECONDS, f"took {elapsed:.1f} s"


def check_read(path: Path) -> None:
    try:
        video = timed(lambda: vio.read_video(path, limits=FUZZ_LIMITS))
    except MediaError as exc:
        assert str(exc)
        event("read: structure refused" if "well-formed" in str(exc) else "read: FFmpeg refused")
        return
    event("read: decoded")
    assert isinstance(video, Video)
    assert video.frames.dtype == np.uint8 and video.frames.ndim == 4
    assert video.num_frames <= FUZZ_LIMITS.max_frames
    assert video.frames.nbytes <= FUZZ_LIMITS.max_decoded_bytes
    assert video.width <= FUZZ_LIMITS.max_width and video.height <= FUZZ_LIMITS.max_height
    assert 0.1 <= video.fps <= 1000


def check_probe(path: Path) -> None:
    try:
        info = timed(lambda: vio.probe_video(path, limits=FUZZ_LIMITS))
    except MediaError:
        return
    assert isinstance(info, vio.VideoInfo)
    assert 0 < info.width <= FUZZ_LIMITS.max_width


def check_structure(data: bytes, path: Path) -> None:
    for source in (data, path):
        try:
            kind = timed(lambda src=source: vio.check_container(src))  # type: ignore[misc]
        except MediaError:
            continue
        assert kind in ("mp4", "mov", "heif")


def run_case(data: bytes, workdir: Path) -> None:
    path = workdir / "case.mp4"
    path.write_bytes(data)
    check_structure(data, path)
    check_read(path)
    check_probe(path)


def test_seeds_are_valid(workdir: Path) -> None:
    for name, data in seeds().items():
        path = workdir / f"{name}.mp4"
        path.write_bytes(data)
        assert vio.check_container(path) == "mp4"
        assert vio.read_video(path, limits=FUZZ_LIMITS).num_frames == 6


_CI = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_CI
@given(data=mutated_mp4())
def test_mutated_mp4_gives_video_or_media_error(data: bytes, workdir: Path) -> None:
    run_case(data, workdir)


@_CI
@given(data=st.binary(min_size=0, max_size=2048))
def test_random_bytes_give_media_error(data: bytes, workdir: Path) -> None:
    run_case(data, workdir)


@pytest.mark.slow
@settings(
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=mutated_mp4())
def test_mutated_mp4_long_run(data: bytes, workdir: Path) -> None:
    run_case(data, workdir)


_PNG = vio.encode_png(_seed_clip().frames[0])


@_CI
@given(
    cut=st.integers(0, len(_PNG)),
    edits=st.lists(st.tuples(st.integers(0, len(_PNG) - 1), st.integers(0, 255)), max_size=6),
)
def test_mutated_png_gives_image_or_media_error(
    cut: int, edits: list[tuple[int, int]], workdir: Path
) -> None:
    data = bytearray(_PNG)
    for at, value in edits:
        data[at] = value
    path = workdir / "case.png"
    path.write_bytes(bytes(data[: max(cut, 1)]))
    try:
        image = timed(lambda: vio.read_image(path, limits=FUZZ_LIMITS))
    except MediaError:
        return
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
