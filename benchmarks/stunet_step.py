"""STUNet vs DiT training step on CPU at equal parameters, and the (2+1)D convolution as
two Conv3d calls vs the 2-D form ``Conv2Plus1d`` runs (same weights, same result).

Why: the STUNet trained 8x slower per step than the DiT on an H200; this says whether
that gap is in the FLOPs (it is not on CPU) and what the 2-D form of its convolutions
saves.

    python benchmarks/stunet_step.py --threads 1 --out benchmarks/results/stunet_step_cpu1.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from machine import cpu_model, write_report

from vidgen.backends.latent import ModelSpec, TextConditionedDenoiser
from vidgen.backends.stunet.model import Conv2Plus1d


def median_seconds(step: Callable[[], None], repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_seconds(architecture: str, batch: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = TextConditionedDenoiser(ModelSpec(architecture=architecture, preset="small"))
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(batch, 4, 8, 16, 16)  # 16 frames of 64x64 through vae-tiny-2
    t = torch.rand(batch)
    captions = ["a red circle moving right"] * batch

    def step() -> None:
        loss = model(x, t, captions).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return {"parameters": sum(p.numel() for p in model.parameters()),
            "train_step_s": round(median_seconds(step, repeats), 4)}


def conv_seconds(shape: tuple[int, int, int, int, int], repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    conv = Conv2Plus1d(shape[1], shape[1])
    x = torch.randn(*shape, requires_grad=True)

    def as_conv3d(inp: torch.Tensor) -> torch.Tensor:
        return conv[1](conv[0](inp))  # the Sequential's own Conv3d forwards

    def run(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        return lambda: f(x).sum().backward()

    with torch.no_grad():
        diff = (as_conv3d(x) - conv(x)).abs().max().item()
    return {"shape": list(shape), "max_abs_difference": diff,
            "conv3d_fwd_bwd_ms": round(1e3 * median_seconds(run(as_conv3d), repeats), 2),
            "conv2d_form_fwd_bwd_ms": round(1e3 * median_seconds(run(conv), repeats), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {arch: train_step_seconds(arch, args.batch, args.repeats)
              for arch in ("dit", "stunet")}
    convs = [conv_seconds(shape, args.repeats)
             for shape in ((8, 48, 8, 16, 16), (8, 80, 4, 8, 8), (8, 144, 2, 4, 4))]
    report = {
        "benchmark": "stunet_step",
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "threads": args.threads, "loadavg_at_end": os.getloadavg()},
        "method": "median of repeats after one warm-up; train step = forward, MSE loss, "
                  "backward, AdamW step, preset small, latent (4, 8, 16, 16), float32",
        "batch": args.batch,
        "models": models,
        "stunet_over_dit_train_step": round(models["stunet"]["train_step_s"]
                                            / models["dit"]["train_step_s"], 3),
        "conv2plus1d": convs,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
