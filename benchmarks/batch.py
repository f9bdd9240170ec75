"""Batch throughput: clips/s of `vidgen batch` with 1 and 2 local workers, in one run.

    python benchmarks/batch.py [--backend dit] [--clips 12] [--frames 16] [--size 64]
        [--workers 1,2] [--threads 1] [--out FILE]

Each worker count gets a fresh output directory and the same jobs (scene-language
captions, seeds 0..clips-1) through ``vidgen.batch.run_batch``: the whole chain per
clip (prompt policy, likeness scans, sampling, watermark, H.264 encode, C2PA sign,
atomic commit, manifest store record), torch held to ``--threads`` threads per
worker. Two figures per worker count:

- ``clips_per_s``: clips / wall seconds of the whole batch, worker start-up and
  model loading included (what a user waits for);
- ``steady_clips_per_s``: clips finished after every worker had finished its
  first clip, over the time they took (start-up excluded), from the results'
  ``finished_at`` stamps.

The goal for 2 workers on 2 cores is >= 1.8x the 1-worker figure. The machine's
load average is recorded before and after: on a shared machine the ratio says
more about the neighbours than about vidgen. Keys, manifest store and consent
registry live in a temporary directory. Prints JSON; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from machine import write_report

CAPTIONS = ["a red circle moving right", "a blue square moving left",
            "a green triangle moving up", "a yellow star moving down",
            "a white diamond moving right", "a purple circle falling",
            "an orange square bouncing", "a cyan triangle moving left"]


def _stamp(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.UTC).timestamp()


def measure(jobs: Path, out: Path, workers: int, threads: int, config: Any) -> dict[str, Any]:
    from vidgen.batch import load_results, run_batch

    load_before = os.getloadavg()[0]
    summary = run_batch(jobs, out, workers=workers, threads=threads, config=config)
    if summary.ok != summary.total:
        raise SystemExit(f"{summary.error} clips failed; see {summary.results}")
    done = sorted(_stamp(r.finished_at) for r in load_results(out / "results.jsonl")
                  .results.values())
    warm = done[workers - 1:]  # after each worker finished one clip
    steady = (len(warm) - 1) / (warm[-1] - warm[0]) if len(warm) > 1 and warm[-1] > warm[0] \
        else None
    return {"workers": workers, "threads_per_worker": threads, "clips": summary.ok,
            "seconds": round(summary.seconds, 3),
            "clips_per_s": round(summary.ok / summary.seconds, 4),
            "steady_clips_per_s": None if steady is None else round(steady, 4),
            "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2)}


def _note(runs: list[dict[str, Any]]) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    peak = max(max(r["load_average_before"], r["load_average_after"]) for r in runs)
    if cpus and peak > cpus:
        return (f"load average up to {peak:g} on {cpus} CPUs: the machine was shared with "
                "other work while this ran, so the workers competed for the cores and the "
                "2w/1w ratio measures the neighbours more than vidgen; rerun on an idle "
                "machine")
    return "the machine was not otherwise loaded (load average at most the CPU count)"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="dit")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="vidgen-batch-bench-"))
    os.environ["VIDGEN_KEYS_DIR"] = str(tmp / "keys")
    os.environ["VIDGEN_CONSENT_DB"] = str(tmp / "consent.sqlite3")
    os.environ["VIDGEN_STORE"] = str(tmp / "store.sqlite3")
    import torch

    from vidgen.batch import PipelineConfig
    from vidgen.provenance.keys import init_dev_keys

    init_dev_keys(tmp / "keys")
    config = PipelineConfig(keys_dir=str(tmp / "keys"), store=str(tmp / "store.sqlite3"),
                            watermark_method="vidgen")
    jobs = tmp / "jobs.jsonl"
    jobs.write_text("".join(
        json.dumps({"id": f"clip-{i:04d}", "prompt": CAPTIONS[i % len(CAPTIONS)],
                    "backend": args.backend, "seed": i, "num_frames": args.frames,
                    "height": args.size, "width": args.size}) + "\n"
        for i in range(args.clips)))
    runs = [measure(jobs, tmp / f"out-{w}", w, args.threads, config)
            for w in (int(x) for x in args.workers.split(","))]
    by_workers = {r["workers"]: r for r in runs}
    ratio: dict[str, Any] = {}
    if 1 in by_workers and 2 in by_workers:
        one, two = by_workers[1], by_workers[2]
        ratio = {"clips_per_s_2w_over_1w": round(two["clips_per_s"] / one["clips_per_s"], 3)}
        if one["steady_clips_per_s"] and two["steady_clips_per_s"]:
            ratio["steady_2w_over_1w"] = round(
                two["steady_clips_per_s"] / one["steady_clips_per_s"], 3)
    report = {
        "benchmark": "batch",
        "command": "python benchmarks/batch.py " + " ".join(argv if argv is not None
                                                            else sys.argv[1:]),
        "backend": args.backend,
        "clip": {"frames": args.frames, "height": args.size, "width": args.size},
        "clips": args.clips,
        "executor": "local (multiprocessing forkserver)",
        "threads_per_worker": args.threads,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0))
                    if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "runs": runs,
        "ratio": ratio,
        "goal": "2 workers >= 1.8x 1 worker on 2 cores",
        "note": _note(runs),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_report(report, args.out)
    return report


if __name__ == "__main__":
    main()
