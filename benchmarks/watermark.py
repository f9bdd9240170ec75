"""Watermark benchmark: every registered method through the same attacks, one JSON object out.

    python benchmarks/watermark.py                 # --quick: 360p + 720p, 2 s clips (~10 min)
    python benchmarks/watermark.py --full          # 360p/720p/1080p, 2-10 s, 10,000 FPR trials
    python benchmarks/watermark.py --methods vidgen dwtDct --fpr-trials 1000

For each method (default: all registered: "vidgen" and the invisible-watermark
baselines that import) and each attack in ``wm_attacks.py``: detection rate,
exact payload recovery, bits correct, p-values; a false-positive run on
unmarked clips and on clips marked under other keys (empirical FPR,
Clopper-Pearson bound, p-value calibration); quality of marked vs original
(PSNR, SSIM, bitrate change at CRF 23); embed and detect fps at 1080p.

Inputs are synthetic and made here, deterministically: natural-like 1/f
textures (panning), flat areas with gradients, fast high-contrast motion, dark
scenes. Each clip is marked once per method under its own key and payload;
each attack is applied once to that marked clip. Methods too slow for the run
(rivaGan: ~2 s per 360p frame on 2 cores) are limited, and the output says how.
"""

from __future__ import annotations

import os

# Idle OpenMP workers must not spin on a 2-core machine shared with the codecs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import concurrent.futures as futures
import hashlib
import importlib.metadata
import json
import math
import multiprocessing
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

import wm_attacks
from machine import cpu_model

from vidgen.errors import VidgenError
from vidgen.provenance.watermark import available_methods, watermarker
from vidgen.provenance.watermark.base import KeyedWatermarker
from vidgen.types import Video
from vidgen.video_io import encode_video_bytes

FloatArray = npt.NDArray[np.float32]
KINDS = ("texture", "gradient", "motion", "dark")
RESOLUTIONS = {360: (360, 640), 720: (720, 1280), 1080: (1080, 1920)}
FPS = 30.0
P_CALIBRATION = (0.5, 0.1, 0.01, 0.001)
QUALITY_FRAMES = 8  # SSIM is computed on this many evenly spaced frames per clip
FPR_CLIP = (256, 256, 8, 16.0)  # height, width, frames, fps of a false-positive trial clip
SLOW_QUICK_ATTACKS = ("h264_crf23", "h264_crf28", "crop_10", "fps_30_to_24", "trim_1s",
                      "jpeg_q50")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- synthetic content ----------------------------------------------------------------------


@attrs.frozen
class ClipSpec:
    kind: str
    resolution: int
    seconds: float
    seed: int
    fps: float = FPS

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.resolution}p_{self.seconds:g}s"

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)


def pink_noise(h: int, w: int, rng: np.random.Generator, exponent: float = 1.0) -> FloatArray:
    """Periodic 1/f^exponent noise (natural images are close to 1/f), zero mean, unit std."""
    spectrum = np.fft.rfft2(rng.standard_normal((h, w)))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    field = np.fft.irfft2(spectrum / radius**exponent, s=(h, w))
    field -= field.mean()
    return np.asarray(field / (field.std() + 1e-9), dtype=np.float32)


def _to_frame(rgb: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.uint8]:
    return np.asarray(np.clip(np.rint(rgb), 0, 255), dtype=np.uint8)


def _tinted(luma: FloatArray, c1: FloatArray, c2: FloatArray) -> FloatArray:
    return np.stack([luma + c1, luma - 0.5 * (c1 + c2), luma + c2], axis=-1)


def _gaussian_spot(h: int, w: int, cy: float, cx: float, radius: float) -> FloatArray:
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)).astype(np.float32)


def texture_clip(h: int, w: int, n: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """A panning natural-like texture with mild colour."""
    luma = 128 + 42 * pink_noise(h, w, rng)
    c1, c2 = 14 * pink_noise(h, w, rng), 14 * pink_noise(h, w, rng)
    base = _tinted(luma, c1, c2)
    step = max(1, h // 180)
    return np.stack([_to_frame(np.roll(base, (t * step, 2 * t * step), axis=(0, 1)))
                     for t in range(n)])


def gradient_clip(h: int, w: int, n: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Flat areas and smooth gradients (sky, floor, a flat panel) with a slow soft blob."""
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = np.array([90, 140, 200], np.float32) * (1 - y) + np.array([200, 220, 240]) * y
    base = np.broadcast_to(sky, (h, w, 3)).copy()
    base[int(0.6 * h):] = (110, 110, 100)
    y0, x0 = int(0.2 * h) + int(rng.integers(0, h // 10)), int(0.6 * w)
    base[y0:y0 + h // 4, x0:x0 + w // 5] = (180, 60, 60)
    frames = []
    for t in range(n):
        cx = w * (0.2 + 0.5 * t / max(1, n - 1))
        spot = 40 * _gaussian_spot(h, w, 0.45 * h, cx, h / 8)
        frames.append(_to_frame(base + spot[..., None]))
    return np.stack(frames)


def motion_clip(h: int, w: int, n: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Fast high-contrast shapes bouncing over a lightly textured grey background."""
    backdrop = _tinted(110 + 8 * pink_noise(h, w, rng), np.zeros((h, w), np.float32),
                       np.zeros((h, w), np.float32))
    colours = [(255, 255, 255), (0, 0, 0), (230, 30, 30), (30, 60, 230), (250, 220, 0),
               (20, 200, 60)]
    shapes = [(colours[i], float(rng.uniform(0.06, 0.14)) * h, rng.uniform(0, 1, 2),
               rng.uniform(0.03, 0.08, 2) * (1 if i % 2 else -1), i % 2 == 0)
              for i in range(len(colours))]
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    frames = []
    for t in range(n):
        frame = backdrop.copy()
        for colour, size, start, velocity, is_box in shapes:
            pos = np.abs(((start + velocity * t) % 2.0) - 1.0)  # bounce: triangle wave
            cy, cx = size + pos[0] * (h - 2 * size), size + pos[1] * (w - 2 * size)
            if is_box:
                mask = (np.abs(yy - cy) < size) & (np.abs(xx - cx) < size)
            else:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < size**2
            frame[mask] = colour
        frames.append(_to_frame(frame))
    return np.stack(frames)


def dark_clip(h: int, w: int, n: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """A dark, bluish low-contrast scene with a dim light moving in a circle."""
    luma = 20 + 9 * pink_noise(h, w, rng)
    base = _tinted(luma, np.full((h, w), -4, np.float32), np.full((h, w), 6, np.float32))
    frames = []
    for t in range(n):
        angle = 2 * math.pi * t / 60
        spot = 35 * _gaussian_spot(h, w, h * (0.5 + 0.25 * math.sin(angle)),
                                   w * (0.5 + 0.3 * math.cos(angle)), h / 6)
        frames.append(_to_frame(base + spot[..., None]))
    return np.stack(frames)


GENERATORS: dict[str, Callable[[int, int, int, np.random.Generator], npt.NDArray[np.uint8]]] = {
    "texture": texture_clip, "gradient": gradient_clip, "motion": motion_clip, "dark": dark_clip,
}


def make_clip(kind: str, h: int, w: int, n: int, fps: float, seed: int) -> Video:
    return Video(frames=GENERATORS[kind](h, w, n, np.random.default_rng(seed)), fps=fps)


def render(spec: ClipSpec) -> Video:
    h, w = RESOLUTIONS[spec.resolution]
    return make_clip(spec.kind, h, w, spec.frames, spec.fps, spec.seed)


def clip_plan(full: bool, seed: int) -> list[ClipSpec]:
    """Quick: four 2 s clips (three 360p, one 720p). Full: every kind at 360p/720p/1080p, 2-10 s."""
    if not full:
        pairs = [("texture", 360), ("motion", 360), ("gradient", 360), ("dark", 720)]
        return [ClipSpec(k, r, 2.0, seed + i) for i, (k, r) in enumerate(pairs)]
    durations = {360: (2.0, 10.0), 720: (2.0, 5.0), 1080: (2.0,)}
    specs: list[ClipSpec] = []
    for kind in KINDS:
        for res, secs in durations.items():
            specs += [ClipSpec(kind, res, s, seed + len(specs)) for s in secs]
    return specs


# --- method limits --------------------------------------------------------------------------


@attrs.frozen
class Limits:
    """What a method runs in this mode; anything limited is stated in the output."""

    resolutions: tuple[int, ...] | None = None  # None: every clip
    max_clips: int | None = None
    detect_frames: int | None = None  # detect on at most this many (evenly strided) frames
    attacks: tuple[str, ...] | None = None  # None: every attack
    fpr_trials: int | None = None  # cap on the false-positive trials
    timing_frames: int | None = None  # cap on the 1080p timing clip; 0 skips the timing

    def notes(self) -> list[str]:
        out = []
        if self.resolutions:
            out.append(f"clips limited to {', '.join(f'{r}p' for r in self.resolutions)}")
        if self.max_clips:
            out.append(f"at most {self.max_clips} clip(s)")
        if self.detect_frames:
            out.append(f"detection on at most {self.detect_frames} frames per clip "
                       "(every k-th frame, fps divided by k so time is kept)")
        if self.attacks:
            out.append(f"attacks limited to {', '.join(self.attacks)}")
        if self.fpr_trials is not None:
            out.append(f"false-positive trials capped at {self.fpr_trials}")
        if self.timing_frames == 0:
            out.append("1080p timing skipped in this mode (too slow; --full measures it)")
        elif self.timing_frames:
            out.append(f"1080p timing on {self.timing_frames} frames")
        return out


def method_limits(method: str, full: bool, detect_cap: int | None) -> Limits:
    """rivaGan (~2 s per 360p frame each way, 2 cores) is cut down; quick mode strides detection."""
    if method == "rivaGan":
        if full:
            return Limits(resolutions=(360,), max_clips=4, detect_frames=detect_cap or 16,
                          fpr_trials=200, timing_frames=4)
        return Limits(resolutions=(360,), max_clips=1, detect_frames=detect_cap or 4,
                      attacks=SLOW_QUICK_ATTACKS, fpr_trials=10, timing_frames=0)
    if method in ("dwtDct", "dwtDctSvd") and not full:
        return Limits(detect_frames=detect_cap or 8)
    return Limits(detect_frames=detect_cap)


# --- keys, payloads, detection --------------------------------------------------------------


def derived(seed: int, *labels: object) -> bytes:
    text = "/".join(str(x) for x in ("wm-bench", seed, *labels))
    return hashlib.sha256(text.encode()).digest()


def payload_for(seed: int, *labels: object) -> int:
    return int.from_bytes(derived(seed, "payload", *labels)[:4], "big")


def strided(video: Video, max_frames: int | None) -> Video:
    """Every k-th frame (fps / k, so timestamps are kept) so at most ``max_frames`` remain."""
    if not max_frames or video.num_frames <= max_frames:
        return video
    k = math.ceil(video.num_frames / max_frames)
    return Video(frames=np.ascontiguousarray(video.frames[::k]), fps=video.fps / k)


def detect_record(wm: KeyedWatermarker, video: Video, truth: int | None,
                  max_frames: int | None) -> dict[str, Any]:
    """One detection, as a flat record; a refusal (e.g. frames too small) counts as a miss."""
    start = time.perf_counter()
    try:
        det = wm.detect(strided(video, max_frames))
    except VidgenError as exc:
        return {"detected": False, "payload_exact": False, "bits_correct": None,
                "p_value": 1.0, "frames_used": 0, "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - start}
    bits = None
    if det.payload is not None and truth is not None:
        bits = 32 - bin((det.payload ^ truth) & 0xFFFFFFFF).count("1")
    return {"detected": bool(det.detected),
            "payload_exact": bool(det.detected and det.payload == truth),
            "bits_correct": bits, "p_value": float(det.p_value),
            "frames_used": int(det.frames_used), "error": None,
            "seconds": time.perf_counter() - start}


# --- quality --------------------------------------------------------------------------------


def luma(frames: npt.NDArray[np.uint8]) -> FloatArray:
    return wm_attacks.luma(frames)


def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> FloatArray:
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return np.asarray(g / g.sum(), dtype=np.float32)


_WINDOW = _gaussian_window()


def _filter_valid(image: FloatArray) -> FloatArray:
    """Separable 11x11 Gaussian filter, 'valid' region only (as in Wang et al.'s reference)."""
    n = len(_WINDOW)
    h, w = image.shape
    rows = np.zeros((h - n + 1, w), dtype=np.float32)
    for i, k in enumerate(_WINDOW):
        rows += k * image[i:h - n + 1 + i, :]
    cols = np.zeros((h - n + 1, w - n + 1), dtype=np.float32)
    for i, k in enumerate(_WINDOW):
        cols += k * rows[:, i:w - n + 1 + i]
    return cols


def ssim(a: FloatArray, b: FloatArray) -> float:
    """SSIM of two luma planes (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K=0.01/0.03)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a**2
    var_b = _filter_valid(b * b) - mu_b**2
    cov = _filter_valid(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def clip_ssim(original: Video, marked: Video, frames: int = QUALITY_FRAMES) -> float:
    picks = np.unique(np.linspace(0, original.num_frames - 1, frames).round().astype(int))
    return float(np.mean([ssim(luma(original.frames[i]), luma(marked.frames[i])) for i in picks]))


def quality(original: Video, marked: Video) -> dict[str, float]:
    """PSNR (RGB and luma), SSIM (luma) and the H.264 CRF 23 size change caused by the mark."""
    size_orig = len(encode_video_bytes(original, crf=23, preset="medium", threads=1))
    size_marked = len(encode_video_bytes(marked, crf=23, preset="medium", threads=1))
    return {
        "psnr_db": psnr(original.frames, marked.frames),
        "psnr_luma_db": psnr(_to_frame(luma(original.frames)), _to_frame(luma(marked.frames))),
        "ssim": clip_ssim(original, marked),
        "bytes_crf23_original": size_orig,
        "bytes_crf23_marked": size_marked,
        "bitrate_change": size_marked / size_orig - 1.0,
    }


# --- statistics -----------------------------------------------------------------------------


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), summed in log space."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp
             + (n - i) * lq for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """Upper end of the two-sided Clopper-Pearson interval for k successes in n trials."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0
    alpha = (1 - confidence) / 2
    if k == 0:
        return float(1 - alpha ** (1 / n))
    lo, hi = k / n, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if binom_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def summarise_detections(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    if n == 0:
        return {"clips": 0}
    bits = [r["bits_correct"] for r in records if r["bits_correct"] is not None]
    pvals = [r["p_value"] for r in records]
    by_res: dict[str, list[bool]] = {}
    for r in records:
        by_res.setdefault(f"{r['resolution']}p", []).append(r["detected"])
    errors = [r["error"] for r in records if r["error"]]
    return {
        "clips": n,
        "detection_rate": sum(r["detected"] for r in records) / n,
        "payload_exact_rate": sum(r["payload_exact"] for r in records) / n,
        "payloads_returned": len(bits),
        "bits_correct_mean": statistics.fmean(bits) if bits else None,
        "p_value_median": statistics.median(pvals),
        "p_value_max": max(pvals),
        "frames_used_mean": statistics.fmean(r["frames_used"] for r in records),
        "detection_rate_by_resolution": {k: sum(v) / len(v) for k, v in sorted(by_res.items())},
        "errors": len(errors),
        **({"first_error": errors[0]} if errors else {}),
    }


def summarise_fpr(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    fp = sum(r["detected"] for r in records)
    pvals = [r["p_value"] for r in records]
    out: dict[str, Any] = {
        "trials": n, "false_positives": fp, "fpr": fp / n if n else None,
        "cp95_upper": clopper_pearson_upper(fp, n),
        "p_value_min": min(pvals) if pvals else None,
        "calibration": _calibration(pvals),
        "errors": sum(1 for r in records if r["error"]),
    }
    for kind in ("unmarked", "other_key"):
        sub = [r for r in records if r["kind"] == kind]
        out[kind] = {"trials": len(sub), "false_positives": sum(r["detected"] for r in sub),
                     "calibration": _calibration([r["p_value"] for r in sub])}
    return out


def _calibration(pvals: Sequence[float]) -> dict[str, float | None]:
    """P(p <= a) for a few a: a valid p-value keeps each at or below a (up to noise)."""
    n = len(pvals)
    return {f"P(p<={a:g})": (sum(p <= a for p in pvals) / n if n else None)
            for a in P_CALIBRATION}


# --- work units (run in worker processes) ---------------------------------------------------


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def suite_unit(method: str, spec: ClipSpec, attacks: Sequence[str], limits: Limits,
               seed: int) -> dict[str, Any]:
    """Mark one clip, measure quality, then detect after each attack (each applied once)."""
    original = render(spec)
    wm = watermarker(derived(seed, method, spec.name, "key"), method)
    truth = payload_for(seed, method, spec.name)
    start = time.perf_counter()
    marked = wm.embed(original, truth)
    embed_s = time.perf_counter() - start
    rows: dict[str, dict[str, Any]] = {
        "none": detect_record(wm, marked, truth, limits.detect_frames),
        "unmarked_original": detect_record(wm, original, truth, limits.detect_frames),
    }
    attack_errors: dict[str, str] = {}
    for name in attacks:
        try:
            attacked = wm_attacks.ATTACKS[name](marked)
        except VidgenError as exc:
            attack_errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        rows[name] = detect_record(wm, attacked, truth, limits.detect_frames)
    for row in rows.values():
        row["resolution"] = spec.resolution
    return {"method": method, "clip": spec.name, "frames": spec.frames, "embed_seconds": embed_s,
            "quality": quality(original, marked), "rows": rows, "attack_errors": attack_errors}


def fpr_unit(method: str, start: int, count: int, seed: int) -> dict[str, Any]:
    """False-positive trials: half on unmarked clips, half on clips marked under another key."""
    h, w, n, fps = FPR_CLIP
    records = []
    pool: dict[int, Video] = {}
    for trial in range(start, start + count):
        kind = KINDS[trial % len(KINDS)]
        key = derived(seed, method, "fpr", trial)
        if trial % 2 == 0:
            clip = make_clip(kind, h, w, n, fps, seed=10_000 + trial)
            label = "unmarked"
        else:
            slot = (trial // 2) % 4
            if slot not in pool:
                other = watermarker(derived(seed, method, "fpr-other", slot), method)
                base = make_clip(KINDS[slot], h, w, n, fps, seed=20_000 + slot)
                pool[slot] = other.embed(base, payload_for(seed, "fpr-other", slot))
            clip, label = pool[slot], "other_key"
        rec = detect_record(watermarker(key, method), clip, None, None)
        rec["kind"] = label
        records.append(rec)
    return {"method": method, "fpr": records}


def timing(method: str, frames: int, seed: int) -> dict[str, Any]:
    """Embed and detect throughput on a 1080p texture clip (frames / wall seconds).

    The clip lasts at least 1 s (fps lowered for short clips) so that methods
    that need time to accumulate evidence can detect; throughput is per frame.
    """
    clip = make_clip("texture", 1080, 1920, frames, min(FPS, float(frames)), seed)
    wm = watermarker(derived(seed, method, "timing"), method)
    payload = payload_for(seed, method, "timing")
    warm = make_clip("texture", 256, 256, 2, FPS, seed)
    wm.detect(wm.embed(warm, payload))  # load models and caches outside the timed part
    start = time.perf_counter()
    marked = wm.embed(clip, payload)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    det = wm.detect(marked)
    detect_s = time.perf_counter() - start
    return {"frames": frames, "embed_fps": frames / embed_s, "detect_fps": frames / detect_s,
            "embed_seconds": embed_s, "detect_seconds": detect_s,
            "detected": bool(det.detected), "frames_used_by_detector": det.frames_used}


# --- orchestration --------------------------------------------------------------------------


def machine_info(threads: int) -> dict[str, Any]:
    import torch

    def version(pkg: str) -> str | None:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu = cpu_model()
    mem_gib = None
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gib = round(mem_kib / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    import av

    return {
        "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem_gib, "python": platform.python_version(), "gpu": None,
        "packages": {p: version(p) for p in ("numpy", "torch", "av", "invisible-watermark",
                                             "onnxruntime", "opencv-python-headless",
                                             "PyWavelets")},
        "ffmpeg_libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "torch_threads": torch.get_num_threads(), "torch_threads_requested": threads,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "onnxruntime_threads": "library default (rivaGan's sessions are created by "
                               "invisible-watermark; --threads does not reach them)",
        "vmaf": "not measured: this FFmpeg build has no libvmaf",
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    doc = (__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(description=doc)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="default: 360p+720p, 2 s clips")
    mode.add_argument("--full", action="store_true", help="every content kind and resolution")
    parser.add_argument("--methods", nargs="+", help="default: every registered method")
    parser.add_argument("--attacks", nargs="+", help="default: every available attack")
    parser.add_argument("--fpr-trials", type=int,
                        help="false-positive trials per method (default 200 quick, 10000 full)")
    parser.add_argument("--fpr-only", action="store_true", help="only the false-positive run")
    parser.add_argument("--max-detect-frames", type=int,
                        help="detect on at most N frames per clip (every k-th frame)")
    parser.add_argument("--timing-frames", type=int, help="1080p timing clip length")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes for the suite (timing always runs alone)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    return parser.parse_args(argv)


def _run_units(jobs: int, threads: int, units: Iterable[tuple[Callable[..., Any], tuple[Any, ...],
                                                                str]]) -> list[tuple[str, Any]]:
    """Run (function, args, label) units; results come back in submission order."""
    units = list(units)
    if jobs <= 1:
        _init_worker(threads)
        out = []
        for fn, args, label in units:
            log(f"start {label}")
            out.append((label, fn(*args)))
        return out
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                                     initargs=(threads,)) as pool:
        pending = [(label, pool.submit(fn, *args)) for fn, args, label in units]
        results = []
        for label, fut in pending:
            results.append((label, fut.result()))
            log(f"done {label}")
        return results


def plan_units(args: argparse.Namespace, methods: Sequence[str], attacks: Sequence[str],
               clips: Sequence[ClipSpec], limits: dict[str, Limits], fpr_trials: int
               ) -> list[tuple[Callable[..., Any], tuple[Any, ...], str]]:
    units: list[tuple[Callable[..., Any], tuple[Any, ...], str]] = []
    for method in methods:
        lim = limits[method]
        if not args.fpr_only:
            chosen = [c for c in clips if not lim.resolutions or c.resolution in lim.resolutions]
            chosen = chosen[:lim.max_clips] if lim.max_clips else chosen
            names = [a for a in attacks if not lim.attacks or a in lim.attacks]
            units += [(suite_unit, (method, c, names, lim, args.seed), f"{method} {c.name}")
                      for c in chosen]
        trials = min(fpr_trials, lim.fpr_trials) if lim.fpr_trials is not None else fpr_trials
        chunk = 250
        units += [(fpr_unit, (method, s, min(chunk, trials - s), args.seed),
                   f"{method} fpr {s}..{min(trials, s + chunk)}") for s in range(0, trials, chunk)]
    # Slowest first, so the pool is not left waiting on one long unit at the end.
    units.sort(key=lambda u: (u[1][0] != "rivaGan", u[0] is fpr_unit))
    return units


def collect(results: Sequence[tuple[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {m: {"suite": [], "fpr": []} for m in methods}
    for _label, result in results:
        if "fpr" in result:
            per[result["method"]]["fpr"].extend(result["fpr"])
        else:
            per[result["method"]]["suite"].append(result)
    out: dict[str, Any] = {}
    for method, parts in per.items():
        suite = parts["suite"]
        rows: dict[str, list[dict[str, Any]]] = {}
        for clip in suite:
            for name, row in clip["rows"].items():
                rows.setdefault(name, []).append(row)
        qualities = [c["quality"] for c in suite]
        out[method] = {
            "clips": [c["clip"] for c in suite],
            "quality": _quality_summary(qualities, suite),
            "robustness": {name: summarise_detections(r) for name, r in rows.items()},
            "attack_errors": {c["clip"]: c["attack_errors"] for c in suite if c["attack_errors"]},
            "false_positives": summarise_fpr(parts["fpr"]) if parts["fpr"] else None,
        }
    return out


def _quality_summary(qualities: Sequence[dict[str, float]], suite: Sequence[dict[str, Any]]
                     ) -> dict[str, Any] | None:
    if not qualities:
        return None

    def stats(key: str) -> dict[str, float]:
        values = [q[key] for q in qualities]
        return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}

    return {
        "psnr_db": stats("psnr_db"), "psnr_luma_db": stats("psnr_luma_db"),
        "ssim": stats("ssim"), "bitrate_change_crf23": stats("bitrate_change"),
        "per_clip": {c["clip"]: {k: round(v, 4) for k, v in c["quality"].items()}
                     | {"embed_fps": c["frames"] / max(c["embed_seconds"], 1e-9)}
                     for c in suite},
    }


def finite(value: Any) -> Any:
    """JSON has no infinities or NaN: map them to null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    full = bool(args.full)
    registered = available_methods()
    methods = args.methods or registered
    unknown = [m for m in methods if m not in registered]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; registered: {registered}")
    attacks = args.attacks or list(wm_attacks.available_attacks())
    clips = clip_plan(full, args.seed)
    fpr_trials = args.fpr_trials if args.fpr_trials is not None else (10_000 if full else 200)
    limits = {m: method_limits(m, full, args.max_detect_frames) for m in methods}

    speed: dict[str, Any] = {}
    if not args.fpr_only:
        for method in methods:  # alone, before the pool, so nothing competes for the cores
            frames = args.timing_frames or (30 if full else 8)
            cap = limits[method].timing_frames
            frames = min(frames, frames if cap is None else cap)
            if frames == 0:
                continue
            log(f"timing {method} on {frames} frames of 1080p")
            speed[method] = timing(method, frames, args.seed)

    units = plan_units(args, methods, attacks, clips, limits, fpr_trials)
    results = _run_units(args.jobs, args.threads, units)
    per_method = collect(results, methods)
    for method in methods:
        per_method[method]["speed_1080p"] = speed.get(method)
        per_method[method]["notes"] = limits[method].notes()

    report = {
        "benchmark": "watermark",
        "mode": "full" if full else "quick",
        "machine": machine_info(args.threads),
        "settings": {"threads": args.threads, "jobs": args.jobs, "seed": args.seed,
                     "fpr_trials": fpr_trials, "fpr_clip": dict(zip(
                         ("height", "width", "frames", "fps"), FPR_CLIP, strict=True)),
                     "detection_threshold": "each method's own (p < 1e-6 per clip)",
                     "ssim": "luma (BT.601), 11x11 Gaussian sigma 1.5, valid region, "
                             f"{QUALITY_FRAMES} evenly spaced frames per clip",
                     "psnr": "all frames, RGB (and BT.601 luma), marked vs original uint8",
                     "bitrate": "libx264 CRF 23 preset medium 1 thread, marked vs original",
                     "speed": "frames / wall seconds on a 1080p texture clip, run alone"},
        "inputs": [attrs.asdict(c) | {"name": c.name, "frames": c.frames} for c in clips],
        "attacks": {name: wm_attacks.describe(name) for name in attacks},
        "methods": per_method,
        "summary": {m: {a: r.get("detection_rate") for a, r in
                        per_method[m]["robustness"].items()} for m in methods},
        "elapsed_seconds": round(time.perf_counter() - began, 1),
    }
    text = json.dumps(finite(report), indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
