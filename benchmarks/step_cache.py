"""Step caching on the shipped DiT: seconds per clip, steps skipped, and what it costs in quality.

    python benchmarks/step_cache.py [--thresholds 0,0.08,0.1,0.15,0.2,0.3] [--max-skips 2]
        [--limit 24] [--threads 1] [--weights FILE] [--out FILE]

For every held-out caption of the evaluation harness (``--limit`` of them,
spread evenly; the same seeds as ``vidgen eval``), one ``DiTBackend`` per
threshold samples the clip (threshold 0 is the uncached baseline), the
thresholds taking turns caption by caption so that load from other processes
falls on all of them alike. Each clip is scored with the harness's own
functions (``vidgen.training.evaluate``: colour, shape, direction, ...), and
compared pixel by pixel with the baseline's clip of the same caption and seed
(PSNR over all frames, 8-bit). Prints JSON: per threshold the seconds per clip
(mean and median of ``backend.sample``, wall and this process's CPU time), the
fraction of model calls whose block stack was skipped, the PSNR against the
baseline and the metrics, plus the machine, its load and the thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidgen.backends.base import Capabilities, ProgressCallback
from vidgen.backends.dit import DiTBackend
from vidgen.backends.dit.step_cache import StepCacheStats
from vidgen.training.evaluate import aggregate, caption_seed, eval_captions, evaluate_caption
from vidgen.types import GenerationRequest, Video


class Recorder:
    """A backend that passes requests to ``inner`` and keeps the clips and the cache stats."""

    def __init__(self, inner: DiTBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.clips: list[np.ndarray] = []
        self.cpu_seconds: list[float] = []  # this process's CPU time per clip
        self.stats = StepCacheStats()

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        start = time.process_time()
        video = self.inner.sample(request, progress)
        self.cpu_seconds.append(time.process_time() - start)
        self.clips.append(video.frames)
        self.stats = self.stats + self.inner.step_cache_stats
        return video


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 clips (inf where identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _finite(value: float) -> float | str:
    return value if np.isfinite(value) else "inf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--thresholds", default="0,0.08,0.1,0.15,0.2,0.3")
    parser.add_argument("--max-skips", type=int, default=2)
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    thresholds = [float(x) for x in args.thresholds.split(",")]
    if thresholds[0] != 0.0:
        thresholds.insert(0, 0.0)  # the baseline the others are compared with
    backends = {thr: Recorder(DiTBackend(weights=args.weights, steps=args.steps,
                                         step_cache=thr, step_cache_max_skips=args.max_skips))
                for thr in thresholds}
    captions = eval_captions("heldout", "single", args.limit)
    rows: dict[float, list[Any]] = {thr: [] for thr in thresholds}
    start = time.monotonic()
    load_before = os.getloadavg()
    warm = GenerationRequest(prompt=captions[0], num_frames=16, height=64, width=64, seed=0)
    for recorder in backends.values():
        recorder.inner.sample(warm)  # first-call allocations out of the timings
    for i, caption in enumerate(captions):
        for thr, recorder in backends.items():
            row, _ = evaluate_caption(recorder, caption, seed=caption_seed(0, i),
                                      num_frames=16, height=64, width=64)
            rows[thr].append(row)
    baseline = backends[0.0]
    results = []
    for thr, recorder in backends.items():
        seconds = [r.sample_seconds for r in rows[thr]]
        psnrs = [psnr(a, b) for a, b in zip(recorder.clips, baseline.clips, strict=True)]
        finite = [p for p in psnrs if np.isfinite(p)]
        stats = recorder.stats
        metrics = {m.name: m.value for m in aggregate(rows[thr])}
        results.append({
            "threshold": thr,
            "max_skips": args.max_skips if thr > 0 else 0,
            "seconds_per_clip_mean": round(statistics.fmean(seconds), 4),
            "seconds_per_clip_median": round(statistics.median(seconds), 4),
            "cpu_seconds_per_clip_mean": round(statistics.fmean(recorder.cpu_seconds), 4),
            "cpu_seconds_per_clip_median": round(statistics.median(recorder.cpu_seconds), 4),
            "model_calls": stats.calls or args.steps * len(captions),  # off: every step
            "calls_skipped": stats.skipped,
            "fraction_skipped": round(stats.fraction_skipped, 4),
            "psnr_vs_uncached_mean_db": _finite(round(statistics.fmean(psnrs), 2)),
            "psnr_vs_uncached_min_db": _finite(round(min(psnrs), 2)),
            "psnr_vs_uncached_finite_mean_db": (round(statistics.fmean(finite), 2)
                                                if finite else "inf"),
            "identical_clips": sum(not np.isfinite(p) for p in psnrs),
            "metrics": {k: (round(v, 4) if v is not None else None)
                        for k, v in metrics.items()},
        })
    base_wall = results[0]["seconds_per_clip_median"]
    base_cpu = results[0]["cpu_seconds_per_clip_median"]
    for r in results:
        r["speedup_wall_median"] = round(base_wall / r["seconds_per_clip_median"], 3)
        r["speedup_cpu_median"] = round(base_cpu / r["cpu_seconds_per_clip_median"], 3)
    report = {
        "benchmark": "step_cache",
        "backend": "dit",
        "weights": str(args.weights) if args.weights else "shipped (dit-small)",
        "model_version": baseline.capabilities().model_version,
        "captions": len(captions),
        "split": "heldout (single)",
        "clip": {"frames": 16, "height": 64, "width": 64},
        "sampling": {"steps": args.steps, "guidance": baseline.inner.guidance,
                     "sampler": baseline.inner.sampler},
        "threads": args.threads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__},
        "seconds_total": round(time.monotonic() - start, 1),
        "load_average_1min": {"start": round(load_before[0], 2),
                              "end": round(os.getloadavg()[0], 2)},
        "timing_note": "seconds: wall time of backend.sample; cpu_seconds: this process's CPU "
                       "time over the same calls (with 1 thread, less sensitive to other "
                       "processes on a shared machine); thresholds take turns per caption",
        "results": results,
    }
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
