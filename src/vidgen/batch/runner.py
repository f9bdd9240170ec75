"""``run_batch``: plan (what is finished), clean up, run the rest, record every outcome.

The finished rule, checked for every job when a batch starts:

- a job is **finished** when ``results.jsonl`` holds a complete record for its ``id``
  whose ``job_sha256`` matches the job as it is now, and either its ``status`` is
  ``refused`` (safety refusals are final; no file exists), or its ``status`` is
  ``ok`` and ``DIR/<id>.mp4`` exists with exactly the recorded ``sha256``;
- everything else is **unfinished** and runs again: no record (the run died
  before recording it), an ``error`` record, a changed job, a missing or altered
  output. Its new output replaces any old ``DIR/<id>.mp4`` atomically.

Before running, the batch takes the directory lock, drops torn and superseded
lines from ``results.jsonl`` (rewritten atomically, keeping one record per id:
the finished jobs' own, and any record of an id not in this job file) and
removes the temporaries killed runs left. A job that ends ``refused`` or
``error`` has any stale ``DIR/<id>.mp4`` removed before its record is written,
so after a batch finishes ``DIR/<id>.mp4`` exists exactly for the jobs whose
record is ``ok``, and the log has exactly one record per job.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import attrs

from vidgen.batch.errors import BatchError, BatchOutputError
from vidgen.batch.execute import JobRunner, PipelineConfig, prepare_credentials
from vidgen.batch.jobs import Job, parse_jobs
from vidgen.batch.outdir import DirectoryLock, clean_temporaries, prepare_directory, sha256_file
from vidgen.batch.pool import LocalPool, WorkerInit, default_workers, limit_threads
from vidgen.batch.results import JobResult, ResultsLog, load_results


class BatchObserver(Protocol):
    """Progress callbacks (the CLI's progress bar); both run in the calling process."""

    def planned(self, total: int, todo: int) -> None: ...

    def finished(self, result: JobResult) -> None: ...


@attrs.frozen
class BatchSummary:
    """What one ``run_batch`` call did."""

    out_dir: str
    results: str
    total: int  # jobs in the file
    skipped: int  # finished by an earlier run
    ok: int  # run now
    refused: int
    error: int
    seconds: float
    workers: int
    executor: str  # "local", "inline" or "ray"
    threads: int
    temporaries_removed: int
    records_dropped: int  # torn or invalid lines repaired in results.jsonl

    @property
    def ran(self) -> int:
        return self.ok + self.refused + self.error

    @property
    def clips_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every job is ok or refused (now or before), 1 when any ended in error."""
        return 1 if self.error else 0

    def to_dict(self) -> dict[str, object]:
        return {**attrs.asdict(self), "ran": self.ran,
                "clips_per_s": round(self.clips_per_s, 4), "exit_code": self.exit_code}


def plan(jobs: Sequence[Job], out_dir: Path) -> tuple[list[Job], dict[str, JobResult], int,
                                                     list[JobResult], bool]:
    """(unfinished jobs, finished records, dropped lines, records to keep, rewrite needed)."""
    loaded = load_results(out_dir / "results.jsonl")
    ids = {job.id for job in jobs}
    finished: dict[str, JobResult] = {}
    todo: list[Job] = []
    for job in jobs:
        record = loaded.results.get(job.id)
        if record is not None and record.job_sha256 == job.spec_sha256 and (
                record.status == "refused" or (
                    record.ok and sha256_file(out_dir / job.output_name) == record.sha256)):
            finished[job.id] = record
        else:
            todo.append(job)
    keep = [r for r in loaded.results.values() if r.id not in ids or r.id in finished]
    rewrite = bool(loaded.dropped or loaded.superseded or len(keep) != len(loaded.results))
    return todo, finished, loaded.dropped, keep, rewrite


def run_batch(
    jobs: Sequence[Job] | str | Path, out_dir: str | Path, *,
    workers: int | None = None, threads: int | None = None,
    config: PipelineConfig | None = None, ray: bool = False, ray_address: str | None = None,
    max_attempts: int = 3, worker_init: WorkerInit | None = None,
    observer: BatchObserver | None = None, default_backend: str | None = None,
    start_method: str | None = None,
) -> BatchSummary:
    """Run every unfinished job of ``jobs`` (a job file or parsed jobs) into ``out_dir``.

    ``workers``: local worker processes (default ``min(2, CPUs)``; 0 runs the jobs in
    this process), or Ray actors with ``ray=True`` (default one per cluster CPU).
    ``threads``: torch threads per worker (default 1). Raises ``BatchError``s for the
    batch as a whole (bad job file, locked or unwritable directory, results log not
    writable); a job's own failure is recorded and the batch goes on.
    """
    if not isinstance(jobs, Sequence) or isinstance(jobs, str):
        jobs = parse_jobs(jobs, default_backend=default_backend)
    config = config or PipelineConfig()
    threads = 1 if threads is None else threads
    if threads < 1:
        raise BatchError(f"threads must be >= 1, got {threads}")
    if workers is not None and workers < 0:
        raise BatchError(f"workers must be >= 0, got {workers}")
    if ray:  # before touching the directory: a missing extra is a usage error
        from vidgen.batch.ray_pool import import_ray

        import_ray()
    directory = prepare_directory(out_dir)
    log = ResultsLog(directory)
    counts = {"ok": 0, "refused": 0, "error": 0}
    start = time.perf_counter()
    with DirectoryLock(directory):
        todo, finished, dropped, keep, rewrite = plan(jobs, directory)
        if rewrite:
            log.rewrite(keep)
        removed = clean_temporaries(directory, {job.id for job in jobs})
        if observer is not None:
            observer.planned(len(jobs), len(todo))

        def record(result: JobResult) -> None:
            if not result.ok:  # no stale file may stand for a job that did not succeed
                stale = directory / f"{result.id}.mp4"
                try:
                    stale.unlink(missing_ok=True)
                except OSError as exc:
                    raise BatchOutputError(f"cannot remove the stale output {stale}: "
                                           f"{exc.strerror or exc}") from exc
            log.append(result)
            counts[result.status] += 1
            if observer is not None:
                observer.finished(result)

        if todo:
            prepare_credentials(config)
        try:
            executor, used = _execute(todo, directory, record, workers=workers,
                                      threads=threads, config=config, ray=ray,
                                      ray_address=ray_address, max_attempts=max_attempts,
                                      worker_init=worker_init, start_method=start_method)
        finally:
            log.close()
    return BatchSummary(
        out_dir=str(directory), results=str(log.path), total=len(jobs), skipped=len(finished),
        ok=counts["ok"], refused=counts["refused"], error=counts["error"],
        seconds=time.perf_counter() - start, workers=used, executor=executor, threads=threads,
        temporaries_removed=len(removed), records_dropped=dropped)


def _execute(todo: list[Job], directory: Path, record: Callable[[JobResult], None], *,
             workers: int | None, threads: int, config: PipelineConfig, ray: bool,
             ray_address: str | None, max_attempts: int, worker_init: WorkerInit | None,
             start_method: str | None) -> tuple[str, int]:
    if ray:
        from vidgen.batch.ray_pool import RayPool

        pool = RayPool(ray_address, workers or None, config, directory, threads=threads,
                       max_attempts=max_attempts, init=worker_init)
        if todo:
            pool.run(todo, record)
        return "ray", workers or 0
    n = default_workers() if workers is None else workers
    if n == 0:
        _inline(todo, directory, record, threads=threads, config=config, init=worker_init)
        return "inline", 0
    if todo:
        LocalPool(n, config, directory, threads=threads, max_attempts=max_attempts,
                  init=worker_init, start_method=start_method).run(todo, record)
    return "local", n


def _inline(todo: list[Job], directory: Path, record: Callable[[JobResult], None], *,
            threads: int, config: PipelineConfig, init: WorkerInit | None) -> None:
    """Jobs in this process, one after another (``workers=0``: debugging, tests)."""
    import torch

    before = torch.get_num_threads()
    limit_threads(threads)
    try:
        if init is not None and todo:
            init()
        runner = JobRunner(config, directory)
        for job in todo:
            record(runner.run(job))
    finally:
        with contextlib.suppress(RuntimeError):
            torch.set_num_threads(before)


__all__ = ["BatchObserver", "BatchSummary", "plan", "run_batch"]
