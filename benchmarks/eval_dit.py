"""Evaluate a DiT checkpoint (shipped or from a run) on the held-out captions, and time it.

    python benchmarks/eval_dit.py --weights runs/dit/export/dit-tiny.safetensors \
        [--steps 20] [--guidance 3] [--limit N] [--threads 1] [--out FILE]

Prints the evaluation report (``vidgen.training.evaluate``) as JSON, plus the
sampling settings, the parameter count and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from vidgen.backends.dit import DiTBackend
from vidgen.training.evaluate import evaluate_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend = DiTBackend(weights=args.weights, steps=args.steps, guidance=args.guidance)
    start = time.monotonic()
    report = evaluate_backend(backend, n=args.limit, threads=args.threads).to_dict()
    result = {
        "benchmark": "eval_dit",
        "weights": str(args.weights) if args.weights else "shipped",
        "sampling": {"steps": args.steps, "guidance": args.guidance, "sampler": backend.sampler},
        "parameters": sum(p.numel() for p in backend.model.parameters()),
        "autoencoder_parameters": sum(p.numel() for p in backend.vae.parameters()),
        "threads": args.threads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__},
        "seconds": round(time.monotonic() - start, 1),
        "report": report,
    }
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
