"""Verify-sweep throughput: files/s of `vidgen verify DIR` against a plain loop, in one run.

    python benchmarks/verify_sweep.py [--files 24] [--frames 16] [--size 1280x720]
        [--workers 1,2] [--ray] [--out FILE]

Makes ``--files`` clips (scene-language captions, seeds 0..files-1) through
``vidgen.Pipeline`` with the ``scene`` backend at ``--size`` (the scene renderer
draws at any size up to 3840x2160): each is watermarked with the ``vidgen`` method,
H.264-encoded, C2PA-signed by a throwaway dev CA and recorded in a temporary
manifest store. Then verifies the same files, in this order:

- ``loop``: ``vidgen.verify`` in a for loop in this process with torch's default
  threads (one per core), the baseline a script gets;
- ``loop-1thread``: the same loop with ``torch.set_num_threads(1)``, the threads
  each sweep worker uses (on a loaded machine OpenMP's spin-waiting makes more
  threads slower, unless ``OMP_WAIT_POLICY=PASSIVE``; it is recorded);
- ``pool-N`` for each ``--workers`` N: ``vidgen.provenance.sweep.sweep`` on the
  local process pool (what ``vidgen verify DIR --workers N`` runs; one torch thread
  per worker);
- ``ray-N`` with ``--ray`` (N = the largest ``--workers``): the same on a local Ray
  instance (what ``--ray`` runs; one CPU and one torch thread per actor). Ray is
  started before the clock starts (as a cluster already running would be); its
  start-up time is reported on its own. Actor start-up is inside the timing, as
  pool start-up is for the pool.

Every run verifies with the dev CA as trust anchor and the watermark key, and every
file must come out ``confirmed`` with its watermark detected (else the script
exits 1). One file is verified in this process before the clock starts (imports,
page cache). Each run's wall time covers the whole sweep; ``files_per_s`` is files /
wall seconds and the ratios are over each loop. The machine's load average
(``os.getloadavg()``) is recorded before and after each run: on a shared machine
the ratios say as much about the neighbours as about vidgen. Prints JSON;
``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import write_report

CAPTIONS = ["a red circle moving right", "a blue square moving left",
            "a green triangle moving up", "a yellow star moving down",
            "a white diamond moving right", "a purple circle falling",
            "an orange square bouncing", "a cyan triangle moving left"]


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _check(records: list[dict[str, Any]], label: str) -> None:
    bad = [r["file"] for r in records
           if r["verdict"] != "confirmed" or not (r.get("watermark") or {}).get("detected")]
    if bad:
        raise SystemExit(f"{label}: {len(bad)} file(s) not confirmed with a detected "
                         f"watermark, e.g. {bad[0]}")


def _timed(label: str, workers: int | None, threads: int, fn: Any, n: int) -> dict[str, Any]:
    before = _load()
    start = time.monotonic()
    records = fn()
    seconds = time.monotonic() - start
    _check(records, label)
    print(f"{label}: {n} files in {seconds:.1f} s", file=sys.stderr)
    return {"run": label, "workers": workers, "threads_per_worker": threads, "files": n,
            "seconds": round(seconds, 3), "files_per_s": round(n / seconds, 4),
            "load_average_before": before, "load_average_after": _load(),
            "_records": records}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=_size, default=(1280, 720), metavar="WxH")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--ray", action="store_true", help="also run on a local Ray instance")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    width, height = args.size
    worker_counts = [int(x) for x in args.workers.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="vidgen-verify-bench-"))
    os.environ["VIDGEN_KEYS_DIR"] = str(tmp / "keys")
    os.environ["VIDGEN_CONSENT_DB"] = str(tmp / "consent.sqlite3")
    os.environ["VIDGEN_STORE"] = str(tmp / "store.sqlite3")
    import torch

    import vidgen
    from vidgen.provenance.keys import init_dev_keys, load_trust_anchors
    from vidgen.provenance.sweep import SweepSettings, collect_files, sweep
    from vidgen.provenance.watermark import read_key_file

    keys = init_dev_keys(tmp / "keys")
    pipe = vidgen.Pipeline.from_backend("scene", signer=keys.signer(), watermark_method="vidgen",
                                        store=tmp / "store.sqlite3")
    folder = tmp / "clips"
    folder.mkdir()
    start = time.monotonic()
    for i in range(args.files):
        pipe.generate(CAPTIONS[i % len(CAPTIONS)], num_frames=args.frames, width=width,
                      height=height, seed=i, output=folder / f"clip-{i:04d}.mp4")
    made_s = time.monotonic() - start
    files, _ = collect_files([folder])
    sizes = [f.stat().st_size for f in files]
    anchors = load_trust_anchors(keys.ca_cert)
    key = read_key_file(keys.watermark_key)
    store = tmp / "store.sqlite3"
    settings = SweepSettings(trust_anchors_pem=anchors, key=key, store=store)
    n = len(files)

    def loop() -> list[dict[str, Any]]:
        from vidgen.provenance.store import ManifestStore

        lookup = ManifestStore(store)
        return [vidgen.verify(f, trust_anchors_pem=anchors, key=key, store=lookup).to_dict()
                for f in files]

    default_threads = torch.get_num_threads()
    vidgen.verify(files[0], trust_anchors_pem=anchors, key=key, store=store)  # warm-up
    runs = [_timed("loop", None, default_threads, loop, n)]
    torch.set_num_threads(1)
    runs.append(_timed("loop-1thread", None, 1, loop, n))
    torch.set_num_threads(default_threads)
    for w in worker_counts:
        runs.append(_timed(f"pool-{w}", w, 1,
                           lambda w=w: sweep(files, settings, workers=w).records, n))
    ray_info: dict[str, Any] | None = None
    if args.ray:
        import ray

        w = max(worker_counts)
        start = time.monotonic()
        ray.init(num_cpus=_cpus(), include_dashboard=False, configure_logging=False)
        ray_info = {"version": ray.__version__, "start_s": round(time.monotonic() - start, 3),
                    "num_cpus": _cpus()}
        try:
            runs.append(_timed(f"ray-{w}", w, 1, lambda: sweep(
                files, settings, workers=w, ray=True).records, n))
        finally:
            ray.shutdown()
    loop_rate, loop1_rate = runs[0]["files_per_s"], runs[1]["files_per_s"]
    for run in runs:
        if [r["verdict"] for r in run.pop("_records")] != ["confirmed"] * n:
            raise SystemExit(f"{run['run']}: verdicts differ from the loop's")
        run["ratio_over_loop"] = round(run["files_per_s"] / loop_rate, 3)
        run["ratio_over_loop_1thread"] = round(run["files_per_s"] / loop1_rate, 3)
    report = {
        "benchmark": "verify_sweep",
        "command": "python benchmarks/verify_sweep.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "clips": {"files": n, "frames": args.frames, "width": width, "height": height,
                  "backend": "scene", "watermark_method": "vidgen", "signed": "C2PA, dev CA",
                  "mean_bytes": round(sum(sizes) / len(sizes)), "made_in_s": round(made_s, 1)},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "usable_cpus": _cpus(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads_default": default_threads,
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
        "ray": ray_info,
        "runs": runs,
        "ratios_over_loop": {r["run"]: r["ratio_over_loop"] for r in runs[1:]},
        "ratios_over_loop_1thread": {r["run"]: r["ratio_over_loop_1thread"]
                                     for r in runs[2:]},
        "note": _note(runs),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_report(report, args.out)
    return report


def _note(runs: list[dict[str, Any]]) -> str:
    cpus = _cpus()
    peak = max(max(r["load_average_before"][0], r["load_average_after"][0]) for r in runs)
    if peak > cpus:
        return (f"1-minute load average up to {peak:g} on {cpus} CPUs: the machine was shared "
                "with other work while this ran, so the workers competed for the cores and "
                "the ratios measure the neighbours as much as vidgen; rerun on an idle machine")
    return "the machine was not otherwise loaded (1-minute load average at most the CPU count)"


if __name__ == "__main__":
    main()
