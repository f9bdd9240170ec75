"""Calibrate the default watermark detector's null distribution (no mark, or another key).

The detector's score is the maximum whitened correlation z over every scale
hypothesis and shift. Under no mark that maximum follows a Gumbel law; this
script samples it on varied unmarked content with random keys, fits the law
by moments per content kind, and prints the z threshold for a false-positive
rate of 1e-6 per clip. ``keyed.Params.null_mu/null_beta`` hold the values used,
chosen at or above the worst content kind measured here.

    python benchmarks/wm_null_calibration.py [--per-kind 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

import watermark as bench

from vidgen.provenance.watermark import keyed
from vidgen.types import Video

EULER_GAMMA = 0.5772156649


def gumbel_fit(samples: list[float]) -> tuple[float, float]:
    """Location and scale of a Gumbel law by the method of moments."""
    beta = statistics.stdev(samples) * math.sqrt(6) / math.pi
    return statistics.mean(samples) - EULER_GAMMA * beta, beta


def threshold(mu: float, beta: float, fpr: float) -> float:
    return mu - beta * math.log(-math.log(1 - fpr))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    kinds: dict[str, object] = {}
    start = time.perf_counter()
    for i, kind in enumerate(bench.KINDS):
        make = bench.GENERATORS[kind]
        scores = []
        for j in range(args.per_kind):
            height = (144, 256, 360)[j % 3]
            width = height * 16 // 9 // 2 * 2
            frames = make(height, width, 16, np.random.default_rng(1000 * i + j))
            wm = keyed.KeyedVideoWatermark(rng.bytes(32))
            scores.append(wm.detect(Video(frames, 30.0)).score)
        mu, beta = gumbel_fit(scores)
        kinds[kind] = {"n": len(scores), "mean": statistics.mean(scores),
                       "sd": statistics.stdev(scores), "max": max(scores),
                       "gumbel_mu": mu, "gumbel_beta": beta,
                       "z_for_fpr_1e-6": threshold(mu, beta, 1e-6)}
    p = keyed.DEFAULT_PARAMS
    print(json.dumps({
        "benchmark": "wm_null_calibration",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": args.threads},
        "per_kind": kinds,
        "used": {"null_mu": p.null_mu, "null_beta": p.null_beta,
                 "z_threshold": threshold(p.null_mu, p.null_beta, p.threshold)},
        "seconds": round(time.perf_counter() - start, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
