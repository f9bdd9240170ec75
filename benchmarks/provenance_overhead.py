"""What the provenance chain costs next to generation, at 480p and above, per backend.

For each backend and frame size, two measurements through ``vidgen.Pipeline``
(the real chain: packaged prompt policy, the face likeness scanner on the
output, the default ``vidgen`` watermark, libx264 MP4 encode, C2PA signing with
dev keys, atomic write, SQLite manifest store; keys, consent registry and store
in a temporary directory):

1. one ``generate`` with the real backend. The native backends' Capabilities
   cap frames at 256x256; this benchmark raises that cap on the backend
   instance (``capabilities`` is replaced by one with ``max_height`` /
   ``max_width`` = the benchmark's size, everything else unchanged), so the
   whole request — generation included — runs through the pipeline at the
   benchmark size. ``generation_s`` is the pipeline's own ``sample`` stage
   timing (``GenerationResult.timings``).
2. ``--chain-repeats`` more ``generate`` calls whose backend replays the frames
   of run 1 (same name and Capabilities, ``sample`` returns the stored frames):
   every chain stage again on the same frames, so the chain figures are medians,
   not one noisy run. The first of these warm-up calls is dropped.

``fraction = chain / (generation + chain)``, chain = the sum of every stage's
median except ``sample``. The native models on CPU are slow at these sizes, so
``--steps`` may be lower than a backend's default (20); fewer steps only shorten
generation, so the fraction measured is then an upper bound of the default's.

    python benchmarks/provenance_overhead.py --threads 1 \
        --stunet-weights runs/stunet-small-cpu.safetensors \
        --interp-weights runs/interp-small.safetensors \
        --keyframe-weights runs/keyframe-small.safetensors \
        --out benchmarks/results/provenance_overhead_cpu1.json

Prints one JSON object (and writes it to --out).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spin-waiting on 2 busy cores

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import torch
from machine import cpu_model, write_report

from vidgen.backends.base import Backend, Capabilities, ProgressCallback
from vidgen.pipeline import Pipeline
from vidgen.provenance.keys import init_dev_keys
from vidgen.provenance.watermark import DEFAULT_METHOD
from vidgen.safety.consent import ConsentRegistry
from vidgen.stages import Job, Stage
from vidgen.types import GenerationRequest, Video

PROMPT = "a red circle moving right"  # in the caption language the native models read
CHAIN_STAGES = ("capabilities", "prompt_policy", "likeness_inputs", "likeness_output",
                "disclosure", "watermark", "encode", "sign", "commit", "record")


class ReplayBackend:
    """Returns the frames of an earlier run; the chain stages then cost what they cost."""

    def __init__(self, name: str, caps: Capabilities, video: Video) -> None:
        self.name = name
        self._caps = caps
        self._video = video

    def capabilities(self) -> Capabilities:
        return self._caps

    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None
               ) -> Video:
        return Video(self._video.frames.copy(), fps=self._video.fps)


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (x264's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def uncap(backend: Backend, height: int, width: int) -> bool:
    """Let ``backend`` serve ``height`` x ``width`` (the instance only; nothing else changes).

    Returns whether the cap had to be raised."""
    original = backend.capabilities()
    if original.max_height >= height and original.max_width >= width:
        return False
    caps = attrs.evolve(original, max_height=max(height, original.max_height),
                        max_width=max(width, original.max_width))
    backend.capabilities = lambda: caps  # type: ignore[method-assign]
    return True


def load(name: str, args: argparse.Namespace) -> Backend:
    if name.startswith("diffusers-tiny:"):  # a tiny random pipeline of the adapter's tests
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from diffusers_tiny import TINY  # type: ignore[import-not-found]
        from vidgen.backends.diffusers import DiffusersBackend

        tiny = TINY[name.split(":", 1)[1]]
        backend: Backend = DiffusersBackend.from_pipeline(
            tiny.build(), family=tiny.family, model_id=f"tiny/{name}", model_version="tiny",
            call_kwargs=tiny.call_kwargs, steps=args.diffusers_steps)
        return backend
    if name == "scene":
        from vidgen.backends.scene.backend import SceneBackend

        return SceneBackend()
    options: dict[str, Any] = {"device": "cpu"}
    if name == "dit":
        from vidgen.backends.dit import DiTBackend

        return DiTBackend(weights=args.dit_weights, **options)
    if name == "stunet":
        from vidgen.backends.stunet import STUNetBackend

        return STUNetBackend(weights=args.stunet_weights, **options)
    if name == "keyframe":
        from vidgen.backends.keyframe import KeyframeBackend

        return KeyframeBackend(weights=args.interp_weights,
                               keyframe_weights=args.keyframe_weights, **options)
    raise ValueError(f"unknown backend {name!r}")


class CpuMetered:
    """A chain stage as it is, plus the CPU seconds its ``run`` took (all threads)."""

    def __init__(self, stage: Stage, into: dict[str, float]) -> None:
        self.stage, self.into = stage, into
        self.name, self.error = stage.name, stage.error

    def run(self, job: Job) -> None:
        start = cpu_seconds()
        try:
            self.stage.run(job)
        finally:
            self.into[self.name] = cpu_seconds() - start


class MeteredPipeline(Pipeline):
    """The real ``Pipeline``; its stages also record their CPU seconds in ``cpu_timings``."""

    cpu_timings: dict[str, float]

    def stages(self, request: GenerationRequest) -> list[Stage]:
        self.cpu_timings = {}
        return [CpuMetered(stage, self.cpu_timings)  # type: ignore[misc]
                for stage in super().stages(request)]


def make_pipeline(backend: Backend, work: Path, args: argparse.Namespace) -> MeteredPipeline:
    return MeteredPipeline(backend, keys_dir=work / "keys", watermark_method=DEFAULT_METHOD,
                           consent_registry=ConsentRegistry(work / "consent.sqlite3"),
                           store=work / "manifests.sqlite3", crf=args.crf, preset=args.preset)


def generate(pipe: MeteredPipeline, out: Path, height: int, width: int, frames: int,
             steps: int | None) -> Any:
    return pipe.generate(PROMPT, output=out, num_frames=frames, height=height, width=width,
                         seed=0, num_steps=steps)


def run_one(name: str, height: int, width: int, args: argparse.Namespace, work: Path
            ) -> dict[str, Any]:
    backend = load(name, args)
    raised = uncap(backend, height, width)
    caps = backend.capabilities()
    steps = (None if name == "scene" else args.diffusers_steps
             if name.startswith("diffusers") else args.steps)
    frames = args.diffusers_frames if name.startswith("diffusers") else args.frames
    pipe = make_pipeline(backend, work, args)
    out = work / f"{name}-{width}x{height}.mp4"
    print(f"[{name} {width}x{height}] generating (steps={steps})...", file=sys.stderr, flush=True)
    first = generate(pipe, out, height, width, frames, steps)
    replay = make_pipeline(ReplayBackend(backend.name, caps, first.video), work, args)
    generation_cpu = pipe.cpu_timings["sample"]
    first_cpu = dict(pipe.cpu_timings)
    runs: list[dict[str, float]] = []
    cpu_runs: list[dict[str, float]] = []
    for i in range(args.chain_repeats + 1):  # the first is a warm-up, dropped
        result = generate(replay, work / f"replay-{i}.mp4", height, width, frames, steps)
        if i:
            runs.append(result.timings)
            cpu_runs.append(dict(replay.cpu_timings))
    medians = {stage: round(statistics.median(r[stage] for r in runs), 4)
               for stage in runs[0] if stage != "sample"}
    cpu_medians = {stage: round(statistics.median(r[stage] for r in cpu_runs), 4)
                   for stage in cpu_runs[0] if stage != "sample"}
    chain = sum(medians.values())
    generation = first.timings["sample"]
    chain_cpu_s = sum(cpu_medians.values())
    dominant = max(medians, key=lambda s: medians[s])
    return {
        "backend": name, "width": width, "height": height, "frames": frames,
        "fps": first.video.fps,
        "steps": steps if steps is not None else getattr(backend, "steps", None),
        "default_steps": getattr(backend, "steps", None),
        "guidance": getattr(backend, "guidance", None),
        "generation_s": round(generation, 3),
        "chain_s": round(chain, 3),
        "chain_stages_s": medians,
        "chain_first_run_s": {k: round(v, 4) for k, v in first.timings.items()
                              if k != "sample"},
        "fraction": round(chain / (generation + chain), 4),
        "generation_cpu_s": round(generation_cpu, 3),
        "chain_cpu_s": round(chain_cpu_s, 3),
        "chain_stages_cpu_s": cpu_medians,
        "chain_first_run_cpu_s": {k: round(v, 4) for k, v in first_cpu.items()
                                  if k != "sample"},
        "fraction_cpu": round(chain_cpu_s / (generation_cpu + chain_cpu_s), 4),
        "dominant_stage": dominant,
        "dominant_share_of_chain": round(medians[dominant] / chain, 3),
        "output_bytes": out.stat().st_size,
        "model_id": caps.model_id,
        "capabilities_raised": raised,
    }


def machine(threads: int, work: Path) -> dict[str, Any]:
    cpu = cpu_model()
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(work)], capture_output=True,
                        text=True, check=False).stdout.strip()
    import av
    import c2pa

    return {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": threads, "av": av.__version__,
            "c2pa": getattr(c2pa, "__version__", None),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "x264_threads": "libx264 default (auto, all cores): the encode stage sets none",
            "work_dir_filesystem": fs, "loadavg_at_end": os.getloadavg(),
            "note": "shared machine: other workers may use the cores"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backends", default="scene,dit,stunet,keyframe",
                        help="also diffusers-tiny:NAME, NAME a tests/diffusers_tiny.py pipeline "
                             "(e.g. diffusers-tiny:cogvideox-t2v)")
    parser.add_argument("--sizes", default="848x480,1280x720", help="WxH,...")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None,
                        help="sampling steps for the learned backends (default: theirs)")
    parser.add_argument("--chain-repeats", type=int, default=3)
    parser.add_argument("--crf", type=int, default=18, help="the Pipeline's (default 18)")
    parser.add_argument("--preset", default="medium", help="x264 preset, the Pipeline's "
                        "(default medium)")
    parser.add_argument("--diffusers-steps", type=int, default=2,
                        help="steps for diffusers-tiny:NAME backends")
    parser.add_argument("--diffusers-frames", type=int, default=17,
                        help="frames for diffusers-tiny:NAME backends (CogVideoX: 8k+1)")
    parser.add_argument("--dit-weights", type=Path, default=None)
    parser.add_argument("--stunet-weights", type=Path, default=None)
    parser.add_argument("--interp-weights", type=Path, default=None)
    parser.add_argument("--keyframe-weights", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    results: list[dict[str, Any]] = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vidgen-prov-") as tmp:
        work = Path(tmp)
        init_dev_keys(work / "keys")
        for name in args.backends.split(","):
            for width, height in sizes:
                record = run_one(name, height, width, args, work)
                print(json.dumps(record), file=sys.stderr, flush=True)
                results.append(record)
        report = {
            "benchmark": "provenance_overhead", "machine": machine(args.threads, work),
            "prompt": PROMPT, "chain_repeats": args.chain_repeats,
            "watermark_method": DEFAULT_METHOD, "crf": args.crf, "x264_preset": args.preset,
            "method": ("generation_s: the pipeline's 'sample' stage timing of one generate "
                       "with the real backend (native backends' max_height/max_width raised "
                       "on the instance); chain stages: median over chain_repeats generate "
                       "calls replaying those frames (after one warm-up call); fraction = "
                       "chain / (generation + chain) in wall seconds; *_cpu_s: process user+sys "
                       "CPU seconds (all threads, x264's included) of each stage, the same "
                       "way; fraction_cpu from those. The first run's chain includes one-time "
                       "loading (face models), the medians do not"),
            "seconds": round(time.monotonic() - start, 1),
            "results": results,
        }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
