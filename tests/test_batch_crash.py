"""kill -9 a running `vidgen batch` (its parent, its whole process group, or one worker) at
random points, resume, and check that nothing was lost or duplicated."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidgen.batch import BatchSummary, PipelineConfig, run_batch
from vidgen.provenance.keys import DevKeys

from .batch_helpers import alive, assert_complete, batch_workers, write_jobs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc to find the batch's worker processes")

N_JOBS = 12


def _records(out: Path) -> int:
    try:
        return (out / "results.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _crash_and_resume(seed: int, target: str, tmp_path: Path, dev_keys: DevKeys) -> None:
    rng = random.Random(seed)
    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, N_JOBS, frames=rng.choice([16, 24]), size=48)
    out = tmp_path / "out"
    store = tmp_path / "store.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidgen.cli", "batch", str(jobs_file), "--out", str(out),
         "--workers", "2", "--keys", str(dev_keys.directory), "--watermark-method", "vidgen",
         "--store", str(store), "--crf", "23"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    # kill once k records are in (k may be 0: mid-startup or mid-first-jobs), plus a random
    # moment more, so kills land anywhere in sampling, encoding, signing, commit, or append
    # (at most a third of the jobs in, and at most 0.1 s more: on an idle machine the scene jobs
    # are fast enough that a later kill could miss the batch)
    k = rng.randrange(1, 4) if target == "worker" else rng.randrange(0, N_JOBS // 3)
    deadline = time.monotonic() + 240
    workers: list[int] = []
    while _records(out) < k and proc.poll() is None:
        assert time.monotonic() < deadline, "the batch made no progress"
        workers = batch_workers(proc.pid) or workers
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.1))
    workers = batch_workers(proc.pid) or workers
    if proc.poll() is not None or _records(out) >= N_JOBS:
        pytest.fail(f"the batch finished before the kill (seed {seed}); "
                    f"stderr: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    if target == "parent":
        os.kill(proc.pid, signal.SIGKILL)
    elif target == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        assert workers, "no worker processes found"
        os.kill(rng.choice(workers), signal.SIGKILL)
    code = proc.wait(timeout=240)
    if target == "worker":  # the batch replaces the worker and finishes on its own
        assert code == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    else:
        assert code == -signal.SIGKILL
        # no orphan keeps writing: workers die with their parent (PR_SET_PDEATHSIG)
        until = time.monotonic() + 30
        while any(alive(p) for p in workers) and time.monotonic() < until:
            time.sleep(0.05)
        assert not any(alive(p) for p in workers)
    before = _records(out)
    summary = run_batch(jobs_file, out, workers=2,
                        config=PipelineConfig(keys_dir=str(dev_keys.directory),
                                              watermark_method="vidgen", store=str(store),
                                              crf=23))
    assert summary.error == 0 and summary.refused == 0
    assert summary.skipped + summary.ok == N_JOBS
    assert summary.skipped <= before <= N_JOBS + 1  # a torn line may be one more
    assert_complete(out, [f"clip-{i:03d}" for i in range(N_JOBS)], verify_with=dev_keys)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(r["attempts"] >= 1 for r in records)


@pytest.mark.parametrize(("seed", "target"), [(0, "parent"), (1, "group"), (2, "worker")])
def test_kill9_then_resume(seed: int, target: str, tmp_path: Path, dev_keys: DevKeys) -> None:
    _crash_and_resume(seed, target, tmp_path, dev_keys)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 12))
def test_kill9_then_resume_more_seeds(seed: int, tmp_path: Path, dev_keys: DevKeys) -> None:
    _crash_and_resume(seed, ("parent", "group", "worker")[seed % 3], tmp_path, dev_keys)




@pytest.mark.slow
def test_ray_worker_killed_mid_job_is_redone(tmp_path: Path, dev_keys: DevKeys) -> None:
    pytest.importorskip("ray")
    from vidgen.batch import load_results

    from .batch_helpers import register_test_backends

    markers = tmp_path / "markers"
    markers.mkdir()
    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 4, backend="slow-scene",
               extra={"backend_options": {"delay": 1.0, "markers": str(markers)}})
    out = tmp_path / "out"
    import threading

    result: dict[str, BatchSummary] = {}
    config = PipelineConfig(keys_dir=str(dev_keys.directory), watermark_method="vidgen",
                            store=str(tmp_path / "store.sqlite3"), crf=23)
    thread = threading.Thread(target=lambda: result.update(summary=run_batch(
        jobs_file, out, workers=2, ray=True, config=config,
        worker_init=register_test_backends)))
    thread.start()
    deadline = time.monotonic() + 300
    while not list(markers.glob("2.*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = int(next(markers.glob("2.*")).suffix[1:])
    os.kill(victim, signal.SIGKILL)  # the Ray actor process running clip-002
    thread.join(timeout=300)
    summary = result["summary"]
    assert summary.ok == 4 and summary.executor == "ray"
    records = load_results(out / "results.jsonl").results
    assert records["clip-002"].attempts == 2
    assert len(list(markers.glob("2.*"))) == 2
    assert_complete(out, [f"clip-{i:03d}" for i in range(4)], verify_with=dev_keys)
