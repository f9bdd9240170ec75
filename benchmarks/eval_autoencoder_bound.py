"""The ceiling an autoencoder puts on every latent model: scene clips round-tripped and scored.

Renders the evaluation captions with the scene backend, encodes and decodes
them with the autoencoder (posterior mean), and runs the same evaluation as
``vidgen eval``. A latent diffusion model that is perfect in latent space
scores this; the shape score of the first GPU-trained DiT stopped at it.

    python benchmarks/eval_autoencoder_bound.py --weights vae-tiny-2.safetensors \
        --out benchmarks/results/vae_bound_tiny_2.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidgen.backends.base import ProgressCallback
from vidgen.backends.scene.backend import SceneBackend
from vidgen.training.autoencoder import VideoAutoencoder, load_autoencoder, read_metadata
from vidgen.training.evaluate import evaluate_backend
from vidgen.training.train import resolve_weights
from vidgen.types import GenerationRequest, Video


class RoundTrip(SceneBackend):
    """The scene renderer seen through an autoencoder."""

    def __init__(self, autoencoder: VideoAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder.eval()

    @torch.no_grad()
    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None
               ) -> Video:
        video = super().sample(request, progress)
        x = torch.from_numpy(np.ascontiguousarray(video.frames)).permute(3, 0, 1, 2)  # (3,T,H,W)
        x = x.float()[None] / 127.5 - 1.0  # (1, 3, T, H, W)
        y = self.autoencoder.decode(self.autoencoder.encode_latents(x), num_frames=x.shape[2])
        frames = ((y[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (3, T, H, W)
        return Video(frames=frames.permute(1, 2, 3, 0).numpy(), fps=video.fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="vae-tiny-2.safetensors")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = resolve_weights(args.weights)
    report = evaluate_backend(RoundTrip(load_autoencoder(path)), threads=args.threads).to_dict()
    metadata = {k: v for k, v in read_metadata(path).items() if k != "config"}
    result: dict[str, Any] = {"benchmark": "eval_autoencoder_bound", "weights": path.name,
                              "weights_metadata": metadata, "threads": args.threads,
                              "metrics": {m["name"]: m["value"] for m in report["metrics"]},
                              "report": report}
    text = json.dumps(result, indent=1)
    print(json.dumps(result["metrics"], indent=1))
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
