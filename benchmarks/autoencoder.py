"""Reconstruction quality and speed of the shipped video autoencoder on held-out clips.

    python benchmarks/autoencoder.py [--clips 64] [--seed 2] \
        [--out benchmarks/results/autoencoder.json]

Clips come from ``SceneDataset(split="heldout", seed=...)``: captions whose (color, shape,
motion) combinations never occur in training, rendered with a seed the training run never
used. Reports PSNR (dB, peak-to-peak of [-1, 1], decoder output clamped) per clip (mean, min,
median), per frame index (frame 0 is encoded alone by the causal encoder), for the first
frame encoded as a single image, and encode / decode wall time per 16x64x64 clip (median of
``--repeats``, batch 1) with 1 and 2 torch threads. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from vidgen.training.autoencoder import (
    load_autoencoder,
    num_parameters,
    psnr,
    read_metadata,
    shipped_weights,
)
from vidgen.training.train_autoencoder import render_clips, to_model_input


def timed(fn: object, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after one warm-up call."""
    assert callable(fn)
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None,
                        help="safetensors file (default: the shipped vae-tiny)")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seed", type=int, default=2, help="held-out render seed")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)

    path = args.weights or shipped_weights("tiny")
    model = load_autoencoder(path)
    metadata = read_metadata(path)
    clips = render_clips("heldout", args.clips, seed=args.seed)  # (N, 16, 64, 64, 3) uint8

    per_clip, per_frame, image_first = [], [], []
    with torch.no_grad():
        for i in range(0, args.clips, 4):
            x = to_model_input(clips[i:i + 4])  # (b, 3, 16, 64, 64)
            x_hat = model.decode(model.encode_latents(x), num_frames=x.shape[2])
            per_clip.append(psnr(x_hat, x, dims=(1, 2, 3, 4)))
            per_frame.append(psnr(x_hat, x, dims=(1, 3, 4)))  # (b, T)
            image = x[:, :, :1]  # the first frame alone, as image-to-video would encode it
            image_hat = model.decode(model.encode_latents(image), num_frames=1)
            image_first.append(psnr(image_hat, image, dims=(1, 2, 3, 4)))
    clip_psnr = torch.cat(per_clip)
    frame_psnr = torch.cat(per_frame).mean(dim=0)  # (T,)
    first_alone = torch.cat(image_first)

    timings: dict[str, dict[str, float]] = {}
    x = to_model_input(clips[:1])
    with torch.no_grad():
        z = model.encode_latents(x)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            timings[f"threads_{threads}"] = {
                "encode_ms_per_clip": round(timed(lambda: model.encode_latents(x),
                                                  args.repeats), 1),
                "decode_ms_per_clip": round(timed(lambda: model.decode(z, num_frames=16),
                                                  args.repeats), 1),
            }
    torch.set_num_threads(1)

    latent_shape = list(model.config.latent_shape(16, 64, 64))
    result = {
        "weights": str(path),
        "file_bytes": os.path.getsize(path),
        "dtype": metadata.get("dtype"),
        "parameters": num_parameters(model),
        "config": model.config.to_dict(),
        "scaling_factor": float(model.scaling_factor),
        "shift_factor": float(model.shift_factor),
        "clip_shape": [3, 16, 64, 64],
        "latent_shape": latent_shape,
        "compression": round(3 * 16 * 64 * 64 / (latent_shape[0] * latent_shape[1]
                                                 * latent_shape[2] * latent_shape[3]), 2),
        "clips": args.clips,
        "split": "heldout",
        "seed": args.seed,
        "psnr_db": {
            "mean": round(float(clip_psnr.mean()), 2),
            "min": round(float(clip_psnr.min()), 2),
            "median": round(float(clip_psnr.median()), 2),
            "first_frame": round(float(frame_psnr[0]), 2),
            "other_frames": round(float(frame_psnr[1:].mean()), 2),
            "first_frame_encoded_alone": round(float(first_alone.mean()), 2),
            "per_frame": [round(float(v), 2) for v in frame_psnr],
        },
        "speed": timings,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "cpu_count": os.cpu_count()},
    }
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
