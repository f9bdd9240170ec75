"""Evaluate a native latent backend's checkpoint on the held-out captions, and time it.

    python benchmarks/eval_dit.py --weights runs/dit/export/dit-tiny.safetensors \
        [--backend dit|stunet|keyframe] [--keyframe-weights FILE] \
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
from vidgen.backends.keyframe import KeyframeBackend
from vidgen.backends.latent_backend import LatentDiffusionBackend
from vidgen.backends.stunet import STUNetBackend
from vidgen.training.evaluate import evaluate_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--backend", default="dit", choices=["dit", "stunet", "keyframe"])
    parser.add_argument("--keyframe-weights", type=Path, default=None,
                        help="the keyframe model (--backend keyframe; --weights is then the "
                             "interpolation model)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"weights": args.weights, "steps": args.steps, "guidance": args.guidance}
    backend: LatentDiffusionBackend
    if args.backend == "keyframe":
        backend = KeyframeBackend(keyframe_weights=args.keyframe_weights, **options)
    else:
        backend = (DiTBackend if args.backend == "dit" else STUNetBackend)(**options)
    networks = [backend.model, *([backend.keyframe_model]
                                 if isinstance(backend, KeyframeBackend) else [])]
    start = time.monotonic()
    report = evaluate_backend(backend, n=args.limit, threads=args.threads).to_dict()
    result = {
        "benchmark": "eval_dit",
        "backend": args.backend,
        "weights": str(args.weights) if args.weights else "shipped",
        "sampling": {"steps": args.steps, "guidance": args.guidance, "sampler": backend.sampler},
        "parameters": sum(p.numel() for net in networks for p in net.parameters()),
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
