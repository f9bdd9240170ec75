"""vidgen's default video watermark: a keyed, smooth, frame-relative spread-spectrum mark.

Design (what survives what):

* **Frame-relative, low-frequency carrier.** The mark is a tile of ``N x N``
  cells whose side is the frame height; cells carry keyed +-1 chips and are
  interpolated smoothly (no block edges, no seams). Because the tile is defined
  relative to the frame, any resize (0.25x-2x) keeps it in place; because it
  lives at about 1/N of the frame height, it survives H.264/H.265/VP9
  quantisation and downscaling, which remove fine detail first.
* **Static in time.** Every frame carries the same tile, so dropped,
  duplicated, reordered or re-timed frames (frame-rate change, trims) change
  nothing; the detector averages evidence over the frames it samples.
* **Synchronisation by search.** Crops and aspect changes move and rescale the
  tile. The detector resamples the averaged residual for a grid of (x, y)
  scale hypotheses, folds it modulo the tile, and finds the translation with
  one circular cross-correlation (FFT) against the keyed pilot per hypothesis.
* **A statistical detector.** The score is the correlation peak in units of
  the correlation surface's own spread (a z-score, so content and contrast
  cancel out), maximised over every hypothesis and shift. Its law without a
  mark is Gumbel; the p-value comes from a fit on unmarked content
  (``benchmarks/wm_null_calibration.py``), and ``detected`` means p < 1e-6.
* **Payload.** 32 bits + CRC-16, convolutionally coded (rate 1/2, K=7), each
  code bit spread over keyed cells; the soft values are the correlations, a
  soft-decision Viterbi decoder finds the most likely word and the CRC checks it.
* **Perceptual shaping.** Strength follows local texture (more in busy areas,
  little in flat ones) and is scaled per frame to a target PSNR.

Without the key, the chips, the cell layout and the pilot are unknown: neither
detection nor forging is possible by guessing. A static mark can however be
estimated by averaging many frames of one clip (content averages out, the mark
does not): that is the cost of robustness to frame drops; see docs/watermark.md.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from functools import lru_cache

import attrs
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from vidgen.errors import WatermarkError
from vidgen.provenance.watermark.base import (
    PAYLOAD_BITS,
    Detection,
    check_key,
    check_payload,
    register_method,
)
from vidgen.types import Video

METHOD = "vidgen"
ALGORITHM_ID = "org.vidgen.wm.v1"

FloatArray = npt.NDArray[np.float32]

CRC_BITS = 16
CONV_K = 7  # payload code: rate 1/2 convolutional, constraint length 7
CONV_GENERATORS = (0o171, 0o133)
INFO_BITS = PAYLOAD_BITS + CRC_BITS  # 48
CODE_BITS = (INFO_BITS + CONV_K - 1) * len(CONV_GENERATORS)  # 108 coded bits, tail included


@attrs.frozen
class Params:
    """Knobs of the mark; changing any of them changes the algorithm (bump ALGORITHM_ID)."""

    cells: int = 40  # cells per tile side; the tile side is the frame height
    pilot_cells: int = 800  # of cells**2; the rest carry the 108 code bits (7 cells each)
    target_rms: float = 1.7  # luma levels; PSNR = 20 log10(255 / rms) ~ 43.5 dB
    mask_floor: float = 0.35  # strength in flat areas, relative to the frame mean
    mask_ceiling: float = 2.5
    canonical: int = 160  # detector works at this height (4 px per cell)
    max_frames: int = 48  # frames sampled by the detector
    threshold: float = 1e-6  # p-value below which a clip counts as marked
    # Null law of the score (max z over every hypothesis and shift), Gumbel(mu, beta),
    # fitted on unmarked content with random keys (benchmarks/wm_null_calibration.py),
    # set at or above the worst content kind measured: p = 1e-6 at z ~ 8.5.
    null_mu: float = 5.10
    null_beta: float = 0.25

    @property
    def code_cells(self) -> int:
        return self.cells**2 - self.pilot_cells


DEFAULT_PARAMS = Params()


# --- keyed layout ---------------------------------------------------------------------------


def _rng(key: bytes, label: str) -> np.random.Generator:
    seed = hmac.new(key, label.encode(), hashlib.sha256).digest()
    return np.random.default_rng(np.frombuffer(seed, dtype=np.uint64))


@attrs.frozen(eq=False)
class Layout:
    """Which cell carries what, and its keyed chip. Secret: derived from the key."""

    chips: npt.NDArray[np.float32]  # (cells*cells,) +-1
    pilot: npt.NDArray[np.intp]  # cell indices of the pilot
    code: npt.NDArray[np.intp]  # (CODE_BITS, cells_per_bit) cell indices per code bit


@lru_cache(maxsize=16)
def layout(key: bytes, params: Params = DEFAULT_PARAMS) -> Layout:
    n = params.cells**2
    rng = _rng(key, "layout")
    order = rng.permutation(n)
    chips = rng.choice(np.array([-1.0, 1.0], np.float32), size=n)
    per_bit = params.code_cells // CODE_BITS
    pilot = order[: params.pilot_cells]
    code = order[params.pilot_cells : params.pilot_cells + per_bit * CODE_BITS]
    return Layout(chips=chips.astype(np.float32), pilot=np.sort(pilot),
                  code=code.reshape(CODE_BITS, per_bit))


# --- payload coding -------------------------------------------------------------------------
#
# 32 payload bits + CRC-16, convolutionally coded (rate 1/2, constraint length 7, the
# 171/133 octal generators, zero tail) and decoded with a soft-decision Viterbi decoder; the
# CRC then rejects wrong paths. Against plain repetition of the 48 bits over the same cells
# this gains about 4-5 dB where it matters (payload exact recovery after crop and H.265,
# where the pilot still detects but single code bits flip).



def crc16(value: int, nbits: int = PAYLOAD_BITS) -> int:
    """CRC-16/CCITT over the payload bits (MSB first)."""
    crc = 0xFFFF
    for i in reversed(range(nbits)):
        bit = (value >> i) & 1
        top = (crc >> 15) & 1
        crc = ((crc << 1) & 0xFFFF) ^ (0x1021 if top ^ bit else 0)
    return crc


def _parity(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    x = x ^ (x >> 4)
    x = x ^ (x >> 2)
    x = x ^ (x >> 1)
    return x & 1


def _info_bits(payload: int) -> list[int]:
    word = (payload << CRC_BITS) | crc16(payload)
    return [(word >> (INFO_BITS - 1 - i)) & 1 for i in range(INFO_BITS)]


def _convolve(bits: list[int]) -> npt.NDArray[np.int64]:
    """Code bits (0/1) of ``bits`` followed by K-1 zero tail bits."""
    register, out = 0, list[int]()
    for b in [*bits, *([0] * (CONV_K - 1))]:
        register = ((register << 1) | b) & ((1 << CONV_K) - 1)
        out.extend(bin(register & g).count("1") & 1 for g in CONV_GENERATORS)
    return np.array(out, np.int64)


def encode_bits(payload: int) -> npt.NDArray[np.float32]:
    """The 108 code bits of ``payload`` as +-1 (bit 1 -> +1)."""
    return _convolve(_info_bits(payload)).astype(np.float32) * 2 - 1


@lru_cache(maxsize=1)
def _trellis() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """For each next state and each of its two predecessors: (predecessor, expected +-1 outputs)."""
    states = 1 << (CONV_K - 1)
    nxt = np.arange(states)
    bit = nxt & 1  # the newest bit is the low bit of the state
    prev = np.stack([(nxt >> 1), (nxt >> 1) | (1 << (CONV_K - 2))], axis=1)  # (S, 2)
    register = (prev << 1) | bit[:, None]  # (S, 2) the full K-bit register
    outs = np.stack([_parity(register & g) for g in CONV_GENERATORS], axis=-1)  # (S, 2, n)
    return prev, (outs * 2 - 1).astype(np.float32)


def viterbi(soft: npt.NDArray[np.float32]) -> list[int]:
    """Maximum-likelihood info bits for soft code values (positive = bit 1), zero tail."""
    n = len(CONV_GENERATORS)
    steps = len(soft) // n
    prev, outs = _trellis()
    states = prev.shape[0]
    metric = np.full(states, -np.inf)
    metric[0] = 0.0
    choices = np.zeros((steps, states), np.int64)
    pairs = np.asarray(soft, np.float64).reshape(steps, n)
    for t in range(steps):
        branch = outs @ pairs[t]  # (S, 2) correlation of each branch with the received pair
        cand = metric[prev] + branch
        pick = np.argmax(cand, axis=1)
        choices[t] = pick
        metric = cand[np.arange(states), pick]
    state, bits = 0, []  # the zero tail ends the path in state 0
    for t in reversed(range(steps)):
        bits.append(state & 1)
        state = int(prev[state, choices[t, state]])
    return bits[::-1][:INFO_BITS]


def decode_bits(soft: npt.NDArray[np.float32]) -> tuple[int | None, int]:
    """(payload, code bits agreeing with its re-encoding), or (None, 0) if the CRC fails."""
    bits = viterbi(soft)
    word = 0
    for b in bits:
        word = (word << 1) | b
    payload, crc = word >> CRC_BITS, word & 0xFFFF
    if crc16(payload) != crc:
        return None, 0
    agree = int(np.sum(np.sign(soft) == encode_bits(payload)))
    return payload, agree


# --- the pattern ----------------------------------------------------------------------------


def cell_values(key: bytes, payload: int | None, params: Params = DEFAULT_PARAMS) -> FloatArray:
    """The tile's cell grid (cells, cells): pilot chips, and code chips times bits."""
    lay = layout(key, params)
    values = np.zeros(params.cells**2, np.float32)
    values[lay.pilot] = lay.chips[lay.pilot]
    if payload is not None:
        bits = encode_bits(payload)
        values[lay.code] = lay.chips[lay.code] * bits[:, None]
    return values.reshape(params.cells, params.cells)


def render_tile(cells: FloatArray, size: int) -> FloatArray:
    """Smooth periodic interpolation of the cell grid to a (size, size) tile."""
    n = cells.shape[0]
    padded = np.pad(cells, 2, mode="wrap")  # periodic, so the tile joins without seams
    t = torch.from_numpy(np.ascontiguousarray(padded))[None, None]
    up = F.interpolate(t, scale_factor=size / n, mode="bicubic", align_corners=False)
    margin = round(2 * size / n)
    tile = up[0, 0, margin : margin + size, margin : margin + size].numpy()
    if tile.shape != (size, size):  # rounding at odd sizes
        tile = _resize(tile, size, size)
    return np.ascontiguousarray(tile, dtype=np.float32)


def _tile_across(tile: FloatArray, height: int, width: int) -> FloatArray:
    reps = math.ceil(width / tile.shape[1])
    return np.ascontiguousarray(np.tile(tile, (1, reps))[:height, :width])


def _resize(image: FloatArray, height: int, width: int) -> FloatArray:
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    antialias = height < image.shape[0] or width < image.shape[1]
    out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False,
                        antialias=antialias)
    return out[0, 0].numpy()


def _box_blur(image: FloatArray, radius: int) -> FloatArray:
    """Separable box blur with edge replication (fast on any size)."""
    k = 2 * radius + 1
    padded = np.pad(image, radius, mode="edge")
    c = np.cumsum(padded, axis=0, dtype=np.float64)
    c = np.vstack([np.zeros((1, c.shape[1])), c])
    rows = (c[k:] - c[:-k]) / k
    c = np.cumsum(rows, axis=1)
    c = np.hstack([np.zeros((c.shape[0], 1)), c])
    return ((c[:, k:] - c[:, :-k]) / k).astype(np.float32)


# --- embedding ------------------------------------------------------------------------------


def _box_blur_t(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Box blur of (B, 1, H, W), normalised at the borders."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def texture_mask(frames: torch.Tensor, params: Params = DEFAULT_PARAMS) -> torch.Tensor:
    """Relative strength (B, H, W) for uint8 frames (B, H, W, 3): high where textured.

    Analysed at about 135 rows (cheap at any resolution), then upsampled smoothly;
    the mean over the frame is about 1 before clipping to [floor, ceiling]. The
    overall strength is not lowered on flat frames: on black or white backgrounds
    half of the mark is clipped away, and a weaker one was no longer detected.
    """
    _b, h, w, _ = frames.shape
    factor = max(1, h // 135)
    # Point-sampled, not averaged: aliased detail still reads as texture, and this
    # avoids converting every full-resolution pixel to float.
    small = frames[:, ::factor, ::factor].float()
    luma = (0.299 * small[..., 0] + 0.587 * small[..., 1] + 0.114 * small[..., 2])[:, None]
    detail = luma - _box_blur_t(luma, 2)
    activity = torch.sqrt(_box_blur_t(detail * detail, 3)) + 1.0
    mask = activity / activity.mean(dim=(2, 3), keepdim=True)
    mask = mask.clamp(params.mask_floor, params.mask_ceiling)
    return F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False)[:, 0]


@lru_cache(maxsize=4)
def _pattern(key: bytes, payload: int, height: int, width: int, params: Params) -> FloatArray:
    tile = render_tile(cell_values(key, payload, params), height)
    pattern = _tile_across(tile, height, width)
    pattern /= float(np.sqrt(np.mean(pattern * pattern)))
    pattern.setflags(write=False)  # shared through the cache
    return pattern


class KeyedVideoWatermark:
    """The default method: embed/detect a 32-bit id under a secret key."""

    name = METHOD

    def __init__(self, key: bytes, params: Params = DEFAULT_PARAMS) -> None:
        self._key = check_key(key)
        self.params = params

    def __repr__(self) -> str:  # never show the key
        return f"KeyedVideoWatermark(method={METHOD!r})"

    def pattern(self, payload: int, height: int, width: int) -> FloatArray:
        """The (height, width) unit-RMS pattern for ``payload`` at this frame size."""
        return _pattern(self._key, payload, height, width, self.params)

    def embed(self, video: Video, payload: int) -> Video:
        check_payload(payload)
        t, h, w = video.frames.shape[:3]
        if h < 16 or w < 16:
            raise WatermarkError(f"frames of {w}x{h} are too small to watermark (min 16x16)")
        pattern = torch.from_numpy(self.pattern(payload, h, w).copy())
        out = np.empty_like(video.frames)
        chunk = max(1, 8_000_000 // (h * w))  # ~100 MB of float work per step
        with torch.no_grad():
            for start in range(0, t, chunk):
                frames = torch.from_numpy(video.frames[start : start + chunk])
                delta = pattern * texture_mask(frames, self.params)  # (B, H, W)
                rms = delta.square().mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-6)
                delta *= self.params.target_rms / rms
                # Same step on R, G and B (chroma unchanged). A contiguous (B, H, W, 3)
                # step adds much faster than a broadcast over the 3-wide last axis.
                step = delta.round_().to(torch.int16).unsqueeze(-1).expand(-1, -1, -1, 3)
                marked = frames.to(torch.int16).add_(step.contiguous()).clamp_(0, 255)
                torch.from_numpy(out[start : start + chunk]).copy_(marked)
        return Video(out, fps=video.fps)

    # --- detection ----------------------------------------------------------------------

    def residual(self, video: Video) -> FloatArray:
        """Average whitened residual of the sampled frames at the canonical height.

        Reads the green channel only: the mark is added equally to R, G and B, and
        one channel costs a third of full luma at 1080p.
        """
        p = self.params
        t, h, w = video.frames.shape[:3]
        idx = np.unique(np.linspace(0, t - 1, min(t, p.max_frames)).round().astype(int))
        ch = p.canonical
        cw = max(8, round(w * ch / h))
        factor = max(1, h // (2 * ch))
        acc = np.zeros((ch, cw), np.float32)
        with torch.no_grad():
            for i in idx:
                green = torch.from_numpy(video.frames[i, :, :, 1]).float()[None, None]
                if factor > 1:
                    green = F.avg_pool2d(green, factor)
                small = F.interpolate(green, size=(ch, cw), mode="bilinear",
                                      align_corners=False, antialias=True)[0, 0].numpy()
                acc += whiten(small)
        acc /= len(idx)
        return acc

    def detect(self, video: Video) -> Detection:
        p = self.params
        t, h, w = video.frames.shape[:3]
        frames_used = min(t, p.max_frames)
        if h < 16 or w < 16:
            return Detection(False, None, 1.0, None, 0, METHOD, 0.0)
        residual = self.residual(video)
        sync = synchronise(residual, self._key, p)
        detected = sync.p_value < p.threshold
        payload, bits = None, None
        if detected:
            soft = code_soft_values(sync.folded, sync.shift, self._key, p)
            payload, agree = decode_bits(soft)
            bits = agree if payload is not None else None
        return Detection(detected=detected, payload=payload, p_value=sync.p_value,
                         bits_matched=bits, frames_used=frames_used, method=METHOD,
                         score=sync.z)


def whiten(image: FloatArray) -> FloatArray:
    """Remove content far above the cell scale and equalise local contrast.

    The rest of the whitening is spectral, after folding (see ``_spectral_weights``).
    """
    detail = image - _box_blur(image, 8)
    spread = np.sqrt(_box_blur(detail * detail, 8)) + 1.0
    return np.clip(detail / spread, -3.0, 3.0)


@lru_cache(maxsize=16)
def pilot_template(key: bytes, params: Params = DEFAULT_PARAMS) -> npt.NDArray[np.complex64]:
    """FFT of the pilot tile at the canonical size (what the detector looks for)."""
    tile = render_tile(cell_values(key, None, params), params.canonical)
    return np.fft.rfft2(tile - tile.mean()).astype(np.complex64)


WHITENING_FLOOR = 0.5  # regularises the whitening on flat content (null tails)


def _spectral_weights(spectrum: npt.NDArray[np.complex128]) -> npt.NDArray[np.float64]:
    """1 / (smoothed power): the folded residual is mostly content, so this whitens it."""
    power = np.abs(spectrum) ** 2
    padded = np.pad(power, 2, mode="wrap")
    k = 5
    c = np.cumsum(np.cumsum(padded, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    smooth = (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)
    weights = 1.0 / (smooth + WHITENING_FLOOR * float(smooth.mean()) + 1e-12)
    weights[0, 0] = 0.0  # the mean carries no mark
    return np.asarray(weights, dtype=np.float64)


@attrs.frozen(eq=False)
class Sync:
    z: float
    p_value: float
    scale: tuple[float, float]  # (sy, sx) resampling that restored the tile size
    shift: tuple[int, int]  # (dy, dx) of the tile in the folded residual
    folded: FloatArray


def fold(image: FloatArray, size: int) -> FloatArray:
    """Average ``image`` modulo ``size`` in both axes (the tile's periodic sum)."""
    h, w = image.shape
    hp, wp = math.ceil(h / size) * size, math.ceil(w / size) * size
    total = np.zeros((hp, wp), np.float32)
    count = np.zeros((hp, wp), np.float32)
    total[:h, :w] = image
    count[:h, :w] = 1.0
    s = total.reshape(hp // size, size, wp // size, size).sum(axis=(0, 2))
    c = count.reshape(hp // size, size, wp // size, size).sum(axis=(0, 2))
    folded: FloatArray = (s / np.maximum(c, 1.0)).astype(np.float32)
    return folded


def _score(
    folded: FloatArray, template: npt.NDArray[np.complex64]
) -> tuple[float, tuple[int, int]]:
    """Whitened (noise-weighted) circular cross-correlation; z-score of its peak."""
    spectrum = np.fft.rfft2(folded)
    corr = np.fft.irfft2(spectrum * np.conj(template) * _spectral_weights(spectrum),
                         s=folded.shape)
    peak = int(np.argmax(corr))
    dy, dx = divmod(peak, corr.shape[1])
    z = (float(corr.flat[peak]) - float(corr.mean())) / (float(corr.std()) + 1e-12)
    return z, (dy, dx)


SCALES_Y = tuple(np.round(np.arange(0.72, 1.10, 0.04), 3))
SCALES_X = tuple(np.round(np.arange(0.68, 1.40, 0.04), 3))


def synchronise(residual: FloatArray, key: bytes, params: Params = DEFAULT_PARAMS) -> Sync:
    """Find the scale and shift that best align the keyed pilot; z-score and p-value."""
    size = params.canonical
    template = pilot_template(key, params)
    h, w = residual.shape

    def attempt(sy: float, sx: float) -> tuple[float, tuple[int, int], FloatArray]:
        ry, rx = max(8, round(h * sy)), max(8, round(w * sx))
        folded = fold(_resize(residual, ry, rx), size)
        z, shift = _score(folded, template)
        return z, shift, folded

    coarse = sorted(((attempt(sy, sx)[0], sy, sx) for sy in SCALES_Y for sx in SCALES_X),
                    reverse=True)[:3]
    best: tuple[float, float, float, tuple[int, int], FloatArray] | None = None
    for _, sy0, sx0 in coarse:
        for sy in np.arange(sy0 - 0.02, sy0 + 0.021, 0.01):
            for sx in np.arange(sx0 - 0.02, sx0 + 0.021, 0.01):
                z, shift, folded = attempt(float(sy), float(sx))
                if best is None or z > best[0]:
                    best = (z, float(sy), float(sx), shift, folded)
    assert best is not None
    z, sy, sx, shift, folded = best
    return Sync(z=z, p_value=null_p_value(z, params), scale=(sy, sx), shift=shift,
                folded=folded)


def null_p_value(z: float, params: Params = DEFAULT_PARAMS) -> float:
    """P(score >= z | no mark): the calibrated Gumbel survival function."""
    return -math.expm1(-math.exp(-(z - params.null_mu) / params.null_beta))



@lru_cache(maxsize=16)
def code_templates(key: bytes, params: Params = DEFAULT_PARAMS) -> npt.NDArray[np.complex64]:
    """FFT of each code bit's tile (CODE_BITS, size, size//2+1): its matched filter."""
    size = params.canonical
    lay = layout(key, params)
    out = []
    for k in range(CODE_BITS):
        values = np.zeros(params.cells**2, np.float32)
        values[lay.code[k]] = lay.chips[lay.code[k]]
        tile = render_tile(values.reshape(params.cells, params.cells), size)
        out.append(np.fft.rfft2(tile - tile.mean()))
    return np.array(out, np.complex64)


def code_soft_values(folded: FloatArray, shift: tuple[int, int], key: bytes,
                     params: Params = DEFAULT_PARAMS) -> npt.NDArray[np.float32]:
    """Whitened matched-filter output of each code bit at the alignment the pilot found."""
    aligned = np.roll(folded, (-shift[0], -shift[1]), axis=(0, 1))
    spectrum = np.fft.rfft2(aligned)
    weighted = spectrum * _spectral_weights(spectrum)
    # <aligned, template> in the whitened metric = Re sum(F * conj(T) * W), Hermitian-halved.
    cross = weighted[None] * np.conj(code_templates(key, params))
    soft: npt.NDArray[np.float32] = np.real(cross.sum(axis=(1, 2))).astype(np.float32)
    return soft


register_method(METHOD, KeyedVideoWatermark)
