"""The evaluation harness's bounds: the scene renderer (upper) and untrained-model floors.

    python benchmarks/eval_scene.py                      # scene + floor -> benchmarks/results/
    python benchmarks/eval_scene.py --floors noise blank # also the other floors (printed)
    python benchmarks/eval_scene.py --calibrate-shapes   # re-derive SHAPE_RULES, held-out accuracy
    python benchmarks/eval_scene.py --robustness         # degraded renders (blur, noise, colour)

The scene run is the same as ``vidgen eval --backend scene --json``. The floor
stands in for an untrained generator: every frame is independent Gaussian noise
at 1/8 resolution, upsampled bicubically (what an untrained latent decoder
emits). ``noise`` (i.i.d. uniform pixels) and ``blank`` (black frames) are the
other extremes; ``blobs`` (three squares of random colour at random places in
every frame, on black) has objects to measure, so it shows chance level rather
than nothing. Everything runs on one CPU thread and is deterministic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from vidgen.backends.base import Capabilities, ProgressCallback, load_backend
from vidgen.backends.scene import ObjectSpec, SceneSpec, render_scene
from vidgen.backends.scene.grammar import SIZES
from vidgen.backends.scene.motion import object_size
from vidgen.training.data import split_combinations
from vidgen.training.evaluate import EvalReport, evaluate_backend
from vidgen.training.measure import (
    MIN_SHAPE_SIZE,
    SHAPE_RULES,
    ShapeFeatures,
    ShapeRules,
    calibrate_shape_rules,
    classify_shape,
    find_blobs,
)
from vidgen.types import GenerationRequest, Task, Video

RESULTS = Path(__file__).parent / "results"
CALIBRATION_RESOLUTIONS = (32, 48, 64, 96)


class FloorBackend:
    """Frames with nothing the caption asked for: ``smooth`` noise, ``noise``, ``blank``
    or ``blobs``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"floor-{kind}"

    def capabilities(self) -> Capabilities:
        return Capabilities(tasks=frozenset({Task.TEXT_TO_VIDEO}), model_id=self.name)

    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> Video:
        t, h, w = request.num_frames or 16, request.height or 64, request.width or 64
        rng = np.random.default_rng(request.seed)
        if self.kind == "blank":
            return Video(frames=np.zeros((t, h, w, 3), dtype=np.uint8))
        if self.kind == "noise":
            return Video(frames=rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8))
        if self.kind == "blobs":
            frames = np.zeros((t, h, w, 3), dtype=np.uint8)
            side = max(h // 6, 2)
            for frame in frames:
                for _ in range(3):
                    y, x = rng.integers(0, h - side), rng.integers(0, w - side)
                    frame[y:y + side, x:x + side] = rng.integers(0, 256, 3)
            return Video(frames=frames)
        coarse = rng.normal(size=(t, 3, max(h // 8, 1), max(w // 8, 1))).astype(np.float32)
        up = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(h, w),
                                             mode="bicubic", align_corners=False)
        smooth = ((up * 0.5 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        return Video(frames=np.ascontiguousarray(smooth.permute(0, 2, 3, 1).numpy()))


class DegradedScene:
    """Scene renders blurred (Gaussian, sigma in pixels), noised and colour-shifted: a stand-in
    for the ways learned models fall short, to show which measurements survive them."""

    name = "scene-degraded"

    def __init__(self, sigma: float, noise: float, shift: tuple[float, float, float]) -> None:
        self.scene = load_backend("scene")
        self.sigma, self.noise, self.shift = sigma, noise, shift

    def capabilities(self) -> Capabilities:
        return self.scene.capabilities()

    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> Video:
        video = self.scene.sample(request)
        x = torch.from_numpy(video.frames.astype(np.float32)).permute(0, 3, 1, 2)
        if self.sigma > 0:
            r = int(np.ceil(3 * self.sigma))
            k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / self.sigma) ** 2)
            k = (k / k.sum()).repeat(3, 1, 1, 1)
            x = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
            x = torch.nn.functional.conv2d(x, k.view(3, 1, 1, -1), groups=3)
            x = torch.nn.functional.conv2d(x, k.view(3, 1, -1, 1), groups=3)
        out = x.permute(0, 2, 3, 1).numpy()
        rng = np.random.default_rng(request.seed)
        out = out + rng.normal(0.0, self.noise, out.shape) + np.asarray(self.shift)
        return Video(frames=np.clip(np.rint(out), 0, 255).astype(np.uint8), fps=video.fps)


def summary(report: EvalReport) -> dict[str, Any]:
    return {m.name: (None if m.value is None else round(m.value, 4)) for m in report.metrics}


def run_bounds(floors: list[str], n: int | None) -> None:
    RESULTS.mkdir(exist_ok=True)
    runs: list[tuple[str, Any, Path | None]] = [
        ("scene", load_backend("scene"), RESULTS / "eval_scene.json"),
        ("floor-smooth", FloorBackend("smooth"), RESULTS / "eval_floor.json"),
    ]
    runs += [(f"floor-{k}", FloorBackend(k), None) for k in floors if k != "smooth"]
    out: dict[str, Any] = {}
    for label, backend, path in runs:
        report = evaluate_backend(backend, n=n, threads=1)
        if path is not None:
            path.write_text(report.to_json() + "\n")
        out[label] = {"metrics": summary(report), "timing": attrs.asdict(report.timing)}
        print(f"{label}: {report.n} captions, {report.timing.total_seconds:.1f} s",
              file=sys.stderr)
    print(json.dumps(out, indent=2, default=str))


def shape_samples(split: str, seed: int, stride: int) -> list[tuple[ShapeFeatures, str, int, str]]:
    """Per-frame features of single-object renders: the split's combinations (every
    ``stride``-th), each at every calibration resolution with a size cycling over the three
    (medium instead where the object would be under ``MIN_SHAPE_SIZE``)."""
    out = []
    combos = split_combinations(split)[::stride]  # type: ignore[arg-type]
    for i, (color, shape, motion) in enumerate(combos):
        for res in CALIBRATION_RESOLUTIONS:
            obj = ObjectSpec(color=color, shape=shape, motion=motion,
                             size=SIZES[(i + res) % len(SIZES)])
            if object_size(obj, res, res) < MIN_SHAPE_SIZE:
                obj = ObjectSpec(color=color, shape=shape, motion=motion, size="medium")
            clip = render_scene(SceneSpec((obj,)), num_frames=16, height=res, width=res,
                                seed=seed + i)
            for frame_blobs in find_blobs(clip.frames):
                if frame_blobs and not frame_blobs[0].touches_border:
                    out.append((frame_blobs[0].features, shape, res, obj.size))
    return out


def accuracy(samples: list[tuple[ShapeFeatures, str, int, str]], rules: ShapeRules) -> float:
    return float(np.mean([classify_shape(f, rules) == s for f, s, _, _ in samples]))


def calibrate() -> None:
    start = time.perf_counter()
    train = shape_samples("train", 0, 3)
    rules = calibrate_shape_rules([(f, s) for f, s, _, _ in train])
    heldout = shape_samples("heldout", 1000, 1)
    errors = Counter(f"{s}->{classify_shape(f, rules)}" for f, s, _, _ in heldout
                     if classify_shape(f, rules) != s)
    print(json.dumps({
        "rules": {"elongation_cut": rules.elongation_cut,
                  "scale": [round(v, 3) for v in rules.scale], "circle_cut": rules.circle_cut},
        "in_use": {"elongation_cut": SHAPE_RULES.elongation_cut, "scale": SHAPE_RULES.scale,
                   "circle_cut": SHAPE_RULES.circle_cut},
        "train_frames": len(train), "train_accuracy": round(accuracy(train, rules), 4),
        "heldout_frames": len(heldout), "heldout_accuracy": round(accuracy(heldout, rules), 4),
        "heldout_accuracy_in_use": round(accuracy(heldout, SHAPE_RULES), 4),
        "heldout_by_resolution": {
            res: round(accuracy([x for x in heldout if x[2] == res], rules), 4)
            for res in CALIBRATION_RESOLUTIONS},
        "heldout_errors": dict(errors.most_common()),
        "seconds": round(time.perf_counter() - start, 1),
    }, indent=2))


def robustness(n: int | None) -> None:
    conditions = [(0.0, 0.0, (0.0, 0.0, 0.0)), (1.0, 0.0, (0.0, 0.0, 0.0)),
                  (1.5, 6.0, (0.0, 0.0, 0.0)), (1.0, 6.0, (15.0, -10.0, 10.0)),
                  (2.0, 8.0, (10.0, 10.0, -10.0))]
    out = []
    for res in (64, 32):
        for sigma, noise, shift in conditions:
            sigma_px = sigma * res / 64  # the same blur relative to the frame
            report = evaluate_backend(DegradedScene(sigma_px, noise, shift), n=n, height=res,
                                      width=res, threads=1)
            out.append({"size": f"{res}x{res}", "blur_sigma_px": sigma_px, "noise_std": noise,
                        "color_shift": shift, "metrics": summary(report)})
            print(f"{res} {sigma_px} {noise} {shift}: done", file=sys.stderr)
    print(json.dumps(out, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floors", nargs="*", default=[],
                        choices=["smooth", "noise", "blank", "blobs"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--calibrate-shapes", action="store_true")
    parser.add_argument("--robustness", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.calibrate_shapes:
        calibrate()
    elif args.robustness:
        robustness(args.limit)
    else:
        run_bounds(args.floors, args.limit)


if __name__ == "__main__":
    main()
