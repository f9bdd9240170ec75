"""The local worker pool: N processes, each running jobs with its own ``JobRunner``.

Processes start through ``multiprocessing``'s ``forkserver`` (``spawn`` where there is
none); the fork server preloads vidgen and torch once, so a replacement worker
starts in well under a second. Each worker limits torch to ``threads`` threads,
takes the shared byte of the directory lock, and on Linux asks the kernel to
kill it when its parent dies (``PR_SET_PDEATHSIG``): a ``kill -9`` of the batch
leaves no worker writing behind it.

The parent hands one job at a time to each worker over a pipe and watches the
process sentinels. A worker that dies (killed, out of memory, crashed in native
code) is replaced and its job is given again, up to ``max_attempts`` times; then
the job is recorded as a ``WorkerDied`` error. Jobs never share a worker's state
other than its loaded pipelines.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import attrs

from vidgen.batch.errors import BatchError
from vidgen.batch.execute import JobRunner, PipelineConfig
from vidgen.batch.jobs import Job
from vidgen.batch.outdir import hold_worker_lock
from vidgen.batch.results import JobResult

WorkerInit = Callable[[], None]
"""A picklable callable each worker runs once before its first job (tests use it to
register backends or inject faults; deployments to set up logging)."""

_PRELOAD = ["vidgen.batch.pool", "vidgen.batch.warm"]


def default_workers() -> int:
    """``min(2, usable CPUs)``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def limit_threads(threads: int) -> None:
    """torch intra-op (and, where still possible, inter-op) threads for this process."""
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


def die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent exits (no orphan keeps writing)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)  # unwinds the chain, which removes the job's temporaries


def worker_main(conn: Connection, config: PipelineConfig, out_dir: str, threads: int,
                init: WorkerInit | None) -> None:
    """A worker process: run the jobs the parent sends until it sends None or goes away."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, _on_sigterm)
    lock_fd = hold_worker_lock(Path(out_dir))
    try:
        limit_threads(threads)
        if init is not None:
            init()
        runner = JobRunner(config, out_dir)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(("init-error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message is None:
                return
            job, attempts = message
            conn.send(("result", runner.run(job, attempts=attempts)))
    except SystemExit:
        return
    finally:
        if lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(lock_fd)


@attrs.define
class _Slot:
    process: Any
    conn: Connection
    job: Job | None = None
    attempts: int = 0
    results: int = 0


class LocalPool:
    """Runs jobs on ``workers`` local processes; calls ``on_result`` in the parent."""

    def __init__(self, workers: int, config: PipelineConfig, out_dir: Path, *,
                 threads: int = 1, max_attempts: int = 3, init: WorkerInit | None = None,
                 start_method: str | None = None) -> None:
        if workers < 1:
            raise BatchError(f"workers must be >= 1, got {workers}")
        if max_attempts < 1:
            raise BatchError(f"max_attempts must be >= 1, got {max_attempts}")
        self.workers = workers
        self.config = config
        self.out_dir = out_dir
        self.threads = threads
        self.max_attempts = max_attempts
        self.init = init
        methods = multiprocessing.get_all_start_methods()
        method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        self.context: Any = multiprocessing.get_context(method)
        if method == "forkserver":
            self.context.set_forkserver_preload(_PRELOAD)
        self.pids: list[int] = []  # every worker started, for tests and diagnostics

    def _start(self) -> _Slot:
        parent, child = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=worker_main, name="vidgen-batch-worker", daemon=True,
            args=(child, self.config, str(self.out_dir), self.threads, self.init))
        process.start()
        child.close()
        if process.pid is not None:
            self.pids.append(process.pid)
        return _Slot(process=process, conn=parent)

    def run(self, jobs: Sequence[Job], on_result: Callable[[JobResult], None]) -> None:
        pending: collections.deque[tuple[Job, int]] = collections.deque((j, 1) for j in jobs)
        slots: list[_Slot] = []
        deaths = 0  # worker deaths since a worker last returned a result
        limit = self.workers * self.max_attempts + 2  # then the setup is broken: stop

        def finished(result: JobResult) -> None:
            nonlocal deaths
            deaths = 0
            on_result(result)

        try:
            for _ in range(min(self.workers, len(pending))):
                slots.append(self._start())
            while pending or any(s.job is not None for s in slots):
                for slot in slots:
                    if slot.job is None and pending:
                        slot.job, slot.attempts = pending.popleft()
                        with contextlib.suppress(OSError):  # if it died, its sentinel says so
                            slot.conn.send((slot.job, slot.attempts))
                ready = set(wait([s.conn for s in slots] + [s.process.sentinel for s in slots]))
                for slot in list(slots):
                    gone = slot.conn in ready and not self._receive(slot, finished)
                    if not gone and slot.process.sentinel in ready:
                        while slot.conn.poll() and self._receive(slot, finished):
                            pass  # a last result sent just before it exited
                        gone = True
                    if not gone:
                        continue
                    slots.remove(slot)
                    deaths += 1
                    if deaths > limit:
                        raise BatchError(
                            f"{deaths} worker processes died in a row without returning a "
                            f"result (last exit code {slot.process.exitcode}); the workers "
                            "cannot run here (see the messages above)")
                    self._bury(slot, pending, on_result)
                    if pending:
                        slots.append(self._start())
        finally:
            self._shutdown(slots)

    def _receive(self, slot: _Slot, on_result: Callable[[JobResult], None]) -> bool:
        """Read one message; False when the worker is gone."""
        try:
            kind, payload = slot.conn.recv()
        except Exception:  # EOF, or a torn message from a dying worker
            return False
        if kind == "init-error":
            raise BatchError(f"a worker could not start: {payload}")
        slot.job = None
        slot.results += 1
        on_result(payload)
        return True

    def _bury(self, slot: _Slot, pending: collections.deque[tuple[Job, int]],
              on_result: Callable[[JobResult], None]) -> None:
        """A worker died: give its job again, or record it once its attempts are used."""
        slot.process.join(timeout=5)
        with contextlib.suppress(OSError):
            slot.conn.close()
        job, attempts = slot.job, slot.attempts
        slot.job = None
        if job is None:
            return
        if attempts < self.max_attempts:
            pending.appendleft((job, attempts + 1))
            return
        code = slot.process.exitcode
        how = (f"signal {-code} ({signal.Signals(-code).name})" if code is not None and code < 0
               else f"exit code {code}")
        on_result(JobResult.for_job(
            job, "error", attempts=attempts, error_type="WorkerDied", error_stage="batch",
            error_message=f"the worker process died ({how}) while running this job, "
                          f"{attempts} time(s)"))

    def _shutdown(self, slots: list[_Slot]) -> None:
        for slot in slots:
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        for slot in slots:
            if slot.job is not None and slot.process.is_alive():
                slot.process.terminate()  # a cancelled batch: SIGTERM unwinds the chain
        for slot in slots:
            slot.process.join(timeout=10)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
            with contextlib.suppress(OSError):
                slot.conn.close()


__all__ = ["LocalPool", "WorkerInit", "default_workers", "die_with_parent", "limit_threads",
           "worker_main"]
