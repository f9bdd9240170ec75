"""invisible-watermark's ``dwtDct``, ``dwtDctSvd`` and ``rivaGan`` behind vidgen's interface.

They are here for users who need them and as benchmark baselines. The library
(``pip install invisible-watermark``, import name ``imwatermark``) is optional:
without it (or without OpenCV/PyWavelets/onnxruntime) this module raises
ImportError at import and the package skips it.

The library has no key and no detector: it writes a bit string into every
frame and reads back whatever bits a frame holds (all zeros on a flat frame;
for any unmarked frame, some word). The key and the statistical test are
vidgen's additions, and the per-frame embedding is the library's, unchanged.
That includes its flaws: it casts the reconstructed YUV planes back to uint8
with wrap-around, so strongly saturated colours can be visibly damaged, and
it refuses frames under 256x256 pixels of area (here a ``WatermarkError``).

``dwtDct`` / ``dwtDctSvd`` (64-bit words)
    Every frame carries ``(P || C) XOR M``: the 32 payload bits ``P``, a check
    word ``C = HMAC(key, P)[:32 bits]`` and a key-derived 64-bit mask ``M``.
    Detection decodes each frame, drops frames that decode to all zeros (the
    library's answer on flat frames; key-independent, so harmless to the
    test), takes a per-bit majority over the rest, unmasks, and counts the
    ``k`` check bits that agree with ``HMAC(key, P')``. With no mark under
    this key the decoded word does not depend on the key, so those 32 bits
    match like fair coins: ``p = P(Binomial(32, 1/2) >= k)`` exactly (HMAC as
    a PRF). ``p < 1e-6`` needs ``k >= 30``, so the false positive rate per
    clip is at most 1.2e-7. Only a payload decoded without error can pass.

``rivaGan`` (32-bit words only)
    A fixed mask cannot make a 32-bit word testable: every word is a valid
    payload, and an unmarked (say static) clip decodes to the same word in
    every frame, so "frames agree" is no evidence of a mark. So the mask
    changes with time: the frame at ``t`` seconds carries ``P XOR M_j`` with
    ``j = floor(t / 0.25 s) mod 16`` and 16 key-derived masks. Detection
    groups frames by ``j`` under each of 64 alignments (16 slot shifts x 4
    phases, which covers trimming the start and re-timing), takes a
    per-group majority word, unmasks each group with its ``M_j``, and scores
    ``S``, the number of (group, bit) pairs that agree with the majority
    payload. Without a mark, distinct groups are unmasked by independent
    random masks, so their bits are fair coins whatever the clip shows; the
    exact null distribution of ``S`` gives the p-value, times 64 for the
    alignment search (Bonferroni). At least two groups (>= 0.5 s of video)
    are needed to detect anything. Time is read from the clip's fps, so
    speed changes (fps kept, frames dropped) break the alignment.

Why a baseline is weaker than vidgen's own mark: the library's mark has no
synchronisation (resizing or cropping moves the block grid), ``dwtDct`` does
not survive mild H.264, and the key cannot make the embedding itself secret:
the positions and quantisation are public, so anyone can read, average away or
overwrite the bits even without the key; the key only stops them from making a
mark that *this* detector accepts for a chosen payload.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import math
import threading
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vidgen.errors import WatermarkError
from vidgen.provenance.watermark.base import (
    PAYLOAD_BITS,
    Detection,
    check_key,
    check_payload,
    register_method,
)
from vidgen.types import Video

# Optional dependencies: ImportError here makes the package loader skip this module.
_imwatermark: Any = importlib.import_module("imwatermark")
importlib.import_module("cv2")
importlib.import_module("pywt")

P_THRESHOLD: Final = 1e-6
MIN_AREA: Final = 256 * 256  # the library refuses frames with fewer pixels
CHECK_BITS: Final = 32
SLOT_SECONDS: Final = 0.25  # rivaGan: how long one mask lasts
SLOT_CYCLE: Final = 16  # rivaGan: masks before the sequence repeats
PHASES: Final = 4  # rivaGan: alignment phases tried per slot

Bits = npt.NDArray[np.uint8]

_model_lock = threading.Lock()


# --- keyed bits ---------------------------------------------------------------------------


def _prf_bits(key: bytes, label: bytes, count: int) -> Bits:
    """``count`` pseudo-random bits from HMAC-SHA256(key, label || counter)."""
    out = b""
    counter = 0
    while len(out) * 8 < count:
        out += hmac.new(key, label + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return np.unpackbits(np.frombuffer(out, dtype=np.uint8))[:count]


def payload_bits(payload: int) -> Bits:
    """The 32 payload bits, most significant first."""
    return np.unpackbits(np.frombuffer(payload.to_bytes(4, "big"), dtype=np.uint8))


def bits_payload(bits: Bits) -> int:
    return int.from_bytes(np.packbits(bits.astype(np.uint8)).tobytes(), "big")


def check_word(key: bytes, method: str, payload: int) -> Bits:
    """The keyed 32-bit check word of ``payload``: a forger without the key must guess it."""
    label = f"vidgen/baseline/{method}/check/".encode() + payload.to_bytes(4, "big")
    return _prf_bits(key, label, CHECK_BITS)


def mask(key: bytes, method: str, index: int, length: int) -> Bits:
    """Key-derived scrambling mask number ``index`` (domain-separated from the check word)."""
    return _prf_bits(key, f"vidgen/baseline/{method}/mask/{index}".encode(), length)


# --- statistics ---------------------------------------------------------------------------


def binomial_tail(n: int, k: int) -> float:
    """P(Binomial(n, 1/2) >= k), exactly."""
    if k <= 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0**n


@cache
def _agreement_tail(groups: int) -> tuple[float, ...]:
    """Tail of S = sum over 32 bits of max(K, n-K), K ~ Binomial(n, 1/2): index s -> P(S >= s)."""
    per_bit = np.zeros(groups + 1)
    for ones in range(groups + 1):
        per_bit[max(ones, groups - ones)] += math.comb(groups, ones) / 2.0**groups
    pmf = np.array([1.0])
    for _ in range(PAYLOAD_BITS):
        pmf = np.convolve(pmf, per_bit)
    tail = np.cumsum(pmf[::-1])[::-1]
    return tuple(float(min(1.0, t)) for t in tail)


def agreement_p_value(score: int, groups: int) -> float:
    """P(S >= score) when every group's 32 bits are fair coins."""
    tail = _agreement_tail(groups)
    return tail[score] if score < len(tail) else 0.0


def majority(words: Bits) -> Bits:
    """Per-bit majority of rows; ties go to 0 (a rule that does not depend on the key)."""
    ones = np.sum(words, axis=0, dtype=np.int64)
    return np.asarray(2 * ones > words.shape[0], dtype=np.uint8)


# --- the library --------------------------------------------------------------------------


def _check_size(video: Video, method: str) -> None:
    if video.height * video.width < MIN_AREA:
        raise WatermarkError(
            f"{method} (invisible-watermark) needs frames of at least {MIN_AREA} pixels "
            f"(256x256); got {video.width}x{video.height}"
        )


def _load_rivagan() -> None:
    with _model_lock:
        try:
            _imwatermark.WatermarkEncoder.loadModel()
        except Exception as exc:  # missing onnxruntime or model files
            raise WatermarkError(f"rivaGan: cannot load the ONNX models: {exc}") from exc


class _Library:
    """One library method, frame by frame (RGB in and out; the library works in BGR)."""

    def __init__(self, method: str, length: int) -> None:
        self.method = method
        self.length = length

    def encode(self, frame: npt.NDArray[np.uint8], bits: Bits) -> npt.NDArray[np.uint8]:
        encoder = _imwatermark.WatermarkEncoder()
        encoder.set_watermark("bits", [int(b) for b in bits])
        try:
            out = encoder.encode(np.ascontiguousarray(frame[..., ::-1]), self.method)
        except Exception as exc:
            raise WatermarkError(f"{self.method}: embedding failed: {exc}") from exc
        return np.ascontiguousarray(np.asarray(out, dtype=np.uint8)[..., ::-1])

    def decode(self, frame: npt.NDArray[np.uint8]) -> Bits:
        decoder = _imwatermark.WatermarkDecoder("bits", self.length)
        try:
            bits = decoder.decode(np.ascontiguousarray(frame[..., ::-1]), self.method)
        except Exception as exc:
            raise WatermarkError(f"{self.method}: decoding failed: {exc}") from exc
        return np.asarray(bits, dtype=np.uint8).reshape(self.length)


# --- dwtDct / dwtDctSvd -------------------------------------------------------------------


class CheckedBaseline:
    """``dwtDct`` / ``dwtDctSvd``: payload + keyed check word, scrambled, in every frame."""

    def __init__(self, method: str, key: bytes) -> None:
        self.name = method
        self._key = check_key(key)
        self._lib = _Library(method, PAYLOAD_BITS + CHECK_BITS)
        self._mask = mask(self._key, method, 0, PAYLOAD_BITS + CHECK_BITS)

    def codeword(self, payload: int) -> Bits:
        plain = np.concatenate([payload_bits(payload), check_word(self._key, self.name, payload)])
        return plain ^ self._mask

    def embed(self, video: Video, payload: int) -> Video:
        _check_size(video, self.name)
        word = self.codeword(check_payload(payload))
        frames = np.stack([self._lib.encode(f, word) for f in video.frames])
        return Video(frames=frames, fps=video.fps)

    def detect(self, video: Video) -> Detection:
        _check_size(video, self.name)
        words = np.stack([self._lib.decode(f) for f in video.frames])
        words = words[words.any(axis=1)]  # flat frames decode to all zeros
        if len(words) == 0:
            return Detection(False, None, 1.0, None, 0, self.name, 0.0)
        plain = majority(words) ^ self._mask
        candidate = bits_payload(plain[:PAYLOAD_BITS])
        matched = int(np.sum(plain[PAYLOAD_BITS:] == check_word(self._key, self.name, candidate)))
        p_value = binomial_tail(CHECK_BITS, matched)
        detected = p_value < P_THRESHOLD
        return Detection(
            detected=detected,
            payload=candidate if detected else None,
            p_value=p_value,
            bits_matched=PAYLOAD_BITS + matched,  # of the 64 code bits re-encoded from P'
            frames_used=len(words),
            method=self.name,
            score=float(matched),
        )


# --- rivaGan ------------------------------------------------------------------------------


def slot_indices(num_frames: int, fps: float, offset: float) -> npt.NDArray[np.int64]:
    """Mask index of each frame: ``floor(t / SLOT_SECONDS + offset) mod SLOT_CYCLE``."""
    times = np.arange(num_frames, dtype=np.float64) / fps
    slots = np.floor(times / SLOT_SECONDS + offset + 1e-9).astype(np.int64)
    return np.asarray(slots % SLOT_CYCLE, dtype=np.int64)


class RivaGanBaseline:
    """``rivaGan``: 32 payload bits under a time-varying keyed mask (see the module doc)."""

    name = "rivaGan"
    offsets: Final = tuple(s + p / PHASES for s in range(SLOT_CYCLE) for p in range(PHASES))

    def __init__(self, key: bytes) -> None:
        self._key = check_key(key)
        self._lib = _Library(self.name, PAYLOAD_BITS)
        self._masks = np.stack(
            [mask(self._key, self.name, j, PAYLOAD_BITS) for j in range(SLOT_CYCLE)])

    def embed(self, video: Video, payload: int) -> Video:
        _check_size(video, self.name)
        _load_rivagan()
        bits = payload_bits(check_payload(payload))
        slots = slot_indices(video.num_frames, video.fps, 0.0)
        frames = np.stack([self._lib.encode(f, bits ^ self._masks[j])
                           for f, j in zip(video.frames, slots, strict=True)])
        return Video(frames=frames, fps=video.fps)

    def detect(self, video: Video) -> Detection:
        _check_size(video, self.name)
        _load_rivagan()
        words = np.stack([self._lib.decode(f) for f in video.frames])
        best = min((self._score(words, video.fps, o) for o in self.offsets),
                   key=lambda r: r[0])
        p_raw, score, _groups, candidate = best
        p_value = min(1.0, p_raw * len(self.offsets))
        detected = p_value < P_THRESHOLD
        return Detection(
            detected=detected,
            payload=candidate if detected else None,
            p_value=p_value,
            bits_matched=score,  # of 32 x groups code bits re-encoded from P'
            frames_used=len(words),
            method=self.name,
            score=float(score),
        )

    def _score(self, words: Bits, fps: float, offset: float) -> tuple[float, int, int, int]:
        """(raw p, agreement S, groups, payload) for one alignment hypothesis."""
        slots = slot_indices(len(words), fps, offset)
        present = sorted(set(int(j) for j in slots))
        unmasked = np.stack([majority(words[slots == j]) ^ self._masks[j] for j in present])
        payload = majority(unmasked)
        score = int(np.sum(unmasked == payload))
        if len(present) < 2:
            return 1.0, score, len(present), bits_payload(payload)
        return agreement_p_value(score, len(present)), score, len(present), bits_payload(payload)


# --- registry -----------------------------------------------------------------------------


def _checked_factory(method: str) -> Callable[[bytes], CheckedBaseline]:
    def factory(key: bytes) -> CheckedBaseline:
        return CheckedBaseline(method, key)

    return factory


BASELINE_METHODS: Final[Sequence[str]] = ("dwtDct", "dwtDctSvd", "rivaGan")

register_method("dwtDct", _checked_factory("dwtDct"))
register_method("dwtDctSvd", _checked_factory("dwtDctSvd"))
register_method("rivaGan", RivaGanBaseline)
