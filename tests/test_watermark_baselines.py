"""The invisible-watermark baselines behind vidgen's interface, and their statistics.

Skipped when the optional ``invisible-watermark`` package is not installed.
The statistical design is also checked with a stand-in for the library that
stores bits in pixels, so the tests of keys, masks, time slots and p-values
run in milliseconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip(
    "imwatermark",
    reason="invisible-watermark is not installed (pip install opencv-python-headless "
           "PyWavelets onnxruntime && pip install --no-deps invisible-watermark)",
)

from vidgen.errors import WatermarkError
from vidgen.provenance.watermark import available_methods, watermarker
from vidgen.provenance.watermark import baselines as bl
from vidgen.types import Video

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PAYLOAD = 0xC0FFEE42


def textured_clip(frames: int = 10, size: int = 256, fps: float = 10.0, seed: int = 0) -> Video:
    """A panning 1/f texture with mild colour: what the DWT methods need to hold bits."""
    rng = np.random.default_rng(seed)
    pad = size + 2 * frames

    def pink() -> npt.NDArray[np.float64]:
        spectrum = np.fft.fft2(rng.standard_normal((pad, pad)))
        f = np.hypot(np.fft.fftfreq(pad)[:, None], np.fft.fftfreq(pad)[None, :])
        f[0, 0] = 1.0
        field = np.real(np.fft.ifft2(spectrum / f))
        return (field - field.mean()) / field.std()

    luma, c1, c2 = 128 + 35 * pink(), 10 * pink(), 10 * pink()
    rgb = np.stack([luma + c1, luma - (c1 + c2) / 2, luma + c2], axis=-1)
    out = [rgb[2 * t:2 * t + size, t:t + size] for t in range(frames)]
    return Video(frames=np.clip(np.rint(out), 0, 255).astype(np.uint8), fps=fps)


@pytest.fixture(scope="module")
def clip() -> Video:
    return textured_clip()


def test_registered_by_name() -> None:
    assert {"dwtDct", "dwtDctSvd", "rivaGan"} <= set(available_methods())
    assert watermarker(KEY, "dwtDct").name == "dwtDct"


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd"])
def test_round_trip_recovers_payload(clip: Video, method: str) -> None:
    wm = watermarker(KEY, method)
    marked = wm.embed(clip, PAYLOAD)
    assert marked.frames.shape == clip.frames.shape and marked.fps == clip.fps
    det = wm.detect(marked)
    assert det.detected and det.payload == PAYLOAD and det.method == method
    assert det.p_value < 1e-6 and det.frames_used == clip.num_frames
    assert det.bits_matched is not None and det.bits_matched >= 62


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd"])
def test_unmarked_and_wrong_key_not_detected(clip: Video, method: str) -> None:
    wm = watermarker(KEY, method)
    assert not wm.detect(clip).detected
    other = watermarker(OTHER_KEY, method).detect(wm.embed(clip, PAYLOAD))
    assert not other.detected and other.payload is None and other.p_value > 1e-6


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd"])
def test_flat_frames_are_no_evidence(method: str) -> None:
    """The library reads all zeros from flat frames; those frames are left out of the vote."""
    flat = Video(frames=np.full((4, 256, 256, 3), 90, np.uint8), fps=8)
    det = watermarker(KEY, method).detect(flat)
    assert not det.detected and det.frames_used == 0 and det.p_value == 1.0


@pytest.mark.parametrize("method", ["dwtDct", "dwtDctSvd", "rivaGan"])
def test_small_frames_refused(method: str) -> None:
    small = Video(frames=np.zeros((2, 128, 256, 3), np.uint8), fps=8)
    wm = watermarker(KEY, method)
    with pytest.raises(WatermarkError, match="256x256"):
        wm.embed(small, 1)
    with pytest.raises(WatermarkError, match="256x256"):
        wm.detect(small)


# --- statistics with a stand-in library ----------------------------------------------------


class PixelBits:
    """Stands in for the library: bits live in the first row of the red channel."""

    def __init__(self, length: int) -> None:
        self.length = length

    def encode(self, frame: npt.NDArray[np.uint8], bits: bl.Bits) -> npt.NDArray[np.uint8]:
        out = frame.copy()
        out[0, :self.length, 0] = bits * 255
        return out

    def decode(self, frame: npt.NDArray[np.uint8]) -> bl.Bits:
        return (frame[0, :self.length, 0] > 127).astype(np.uint8)


def fake(method: str, key: bytes) -> bl.CheckedBaseline | bl.RivaGanBaseline:
    wm: bl.CheckedBaseline | bl.RivaGanBaseline
    if method == "rivaGan":
        wm = bl.RivaGanBaseline(key)
        wm._lib = PixelBits(32)  # type: ignore[assignment]
    else:
        wm = bl.CheckedBaseline(method, key)
        wm._lib = PixelBits(64)  # type: ignore[assignment]
    return wm


def noise_clip(frames: int, fps: float, seed: int) -> Video:
    rng = np.random.default_rng(seed)
    return Video(frames=rng.integers(0, 256, (frames, 256, 256, 3), dtype=np.uint8), fps=fps)


def test_binomial_tail_threshold() -> None:
    assert bl.binomial_tail(32, 0) == 1.0
    assert bl.binomial_tail(32, 32) == pytest.approx(2.0**-32)
    assert bl.binomial_tail(32, 30) < 1e-6 < bl.binomial_tail(32, 29)


def test_agreement_null_is_a_distribution() -> None:
    for groups in (2, 3, 8):
        tail = bl._agreement_tail(groups)
        assert tail[0] == pytest.approx(1.0)
        assert tail[32 * ((groups + 1) // 2)] == pytest.approx(1.0)  # the minimum possible S
        assert tail[-1] == pytest.approx(2.0 ** (32 * (1 - groups)), rel=1e-9, abs=0)  # unanimous


@pytest.mark.parametrize("method", ["dwtDctSvd", "rivaGan"])
def test_null_p_values_are_calibrated(method: str) -> None:
    """Random decoded words under random keys: P(p <= a) <= a (up to sampling error)."""
    clip = noise_clip(8, 16.0, seed=1)
    p = np.array([fake(method, bytes([i % 256, i // 256]) * 16).detect(clip).p_value
                  for i in range(600)])
    for alpha in (0.5, 0.1):
        assert np.mean(p <= alpha) <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / len(p))
    assert not np.any(p < 1e-6)


def test_rivagan_static_unmarked_clip_is_not_evidence() -> None:
    """A static clip decodes to one word in every frame; time-varying masks make that noise."""
    still = np.repeat(noise_clip(1, 30.0, seed=2).frames, 60, axis=0)
    det = fake("rivaGan", KEY).detect(Video(frames=still, fps=30.0))
    assert not det.detected and det.p_value > 1e-3


def test_rivagan_survives_trim_and_retiming() -> None:
    wm = fake("rivaGan", KEY)
    marked = wm.embed(noise_clip(90, 30.0, seed=3), PAYLOAD)
    trimmed = Video(frames=marked.frames[37:], fps=30.0)
    source = np.minimum(np.rint(np.arange(72) * 30 / 24).astype(int), 89)
    retimed = Video(frames=marked.frames[source], fps=24.0)
    halved = Video(frames=marked.frames[::2], fps=15.0)
    for clip in (marked, trimmed, retimed, halved):
        det = wm.detect(clip)
        assert det.detected and det.payload == PAYLOAD, det
    assert not fake("rivaGan", OTHER_KEY).detect(marked).detected


def test_rivagan_needs_two_time_slots() -> None:
    wm = fake("rivaGan", KEY)
    short = wm.embed(noise_clip(3, 30.0, seed=4), PAYLOAD)  # 0.1 s: one slot
    assert not wm.detect(short).detected


def test_checked_word_rejects_a_single_payload_error() -> None:
    wm = fake("dwtDct", KEY)
    assert isinstance(wm, bl.CheckedBaseline)
    marked = wm.embed(noise_clip(4, 8.0, seed=5), PAYLOAD)
    frames = marked.frames.copy()
    frames[:, 0, 0, 0] = 255 - frames[:, 0, 0, 0]  # flip payload bit 0 in every frame
    det = wm.detect(Video(frames=frames, fps=8.0))
    assert not det.detected and det.payload is None


# --- the real rivaGan (ONNX, ~1 s per 256x256 frame each way on 2 cores) -----------------------


@pytest.mark.slow
def test_rivagan_round_trip(clip: Video) -> None:
    wm = watermarker(KEY, "rivaGan")
    marked = wm.embed(clip, PAYLOAD)
    det = wm.detect(marked)
    assert det.detected and det.p_value < 1e-6
    assert not watermarker(OTHER_KEY, "rivaGan").detect(marked).detected
    assert not wm.detect(clip).detected
