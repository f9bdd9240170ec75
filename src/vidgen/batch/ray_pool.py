"""Running a batch on Ray (``pip install 'vidgen[ray]'``; imported only when asked for).

``RayPool`` starts ``workers`` actors (default: one per CPU the cluster has, over
``threads``), each holding a ``JobRunner`` for its life, and keeps one job in
flight per actor. The driver (the ``vidgen batch`` process) keeps the results
log; actors write outputs straight into the output directory, so on a
multi-node cluster that directory must be on a file system every node mounts at
the same path. An actor that dies (its process killed, its node lost) is
replaced and its job given again, up to ``max_attempts`` times, exactly as in the
local pool; the output is committed atomically, so a job redone after a death
still ends with one file.

With no ``address`` a local Ray instance is started (and stopped at the end);
``"auto"`` or ``ray://host:10001`` joins a running cluster.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidgen.batch.errors import BatchError, RayUnavailable
from vidgen.batch.execute import JobRunner, PipelineConfig
from vidgen.batch.jobs import Job
from vidgen.batch.pool import WorkerInit, limit_threads
from vidgen.batch.results import JobResult


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            "--ray needs the ray package: pip install 'vidgen[ray]' (or pip install ray)"
        ) from exc
    return ray


class RayWorker:
    """The actor: one per worker slot (wrapped with ``ray.remote`` at run time)."""

    def __init__(self, config: PipelineConfig, out_dir: str, threads: int,
                 init: WorkerInit | None) -> None:
        limit_threads(threads)
        if init is not None:
            init()
        self.runner = JobRunner(config, out_dir)

    def pid(self) -> int:
        return os.getpid()

    def run(self, job: Job, attempts: int) -> JobResult:
        return self.runner.run(job, attempts=attempts)


def connect_ray(ray: Any, address: str | None) -> bool:
    """``ray.init`` unless already connected (to ``address``, or a new local instance);
    True when this call started Ray, so the caller knows to shut it down."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=True,
                 configure_logging=False)
    except Exception as exc:
        raise RayUnavailable(f"cannot start or join Ray at "
                             f"{address or 'a new local instance'}: {exc}") from exc
    return True


def release_ray(ray: Any, actors: Sequence[Any], started: bool) -> None:
    """Kill the actors and, when this process started Ray, shut it down."""
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)
    if started:
        ray.shutdown()


class RayPool:
    """Runs jobs on Ray actors; calls ``on_result`` in the driver."""

    def __init__(self, address: str | None, workers: int | None, config: PipelineConfig,
                 out_dir: Path, *, threads: int = 1, max_attempts: int = 3,
                 init: WorkerInit | None = None) -> None:
        self.ray = import_ray()
        self.address = address
        self.workers = workers
        self.config = config
        self.out_dir = out_dir
        self.threads = threads
        self.max_attempts = max_attempts
        self.init = init
        self.actor_pids: list[int] = []

    def run(self, jobs: Sequence[Job], on_result: Callable[[JobResult], None]) -> None:
        ray = self.ray
        started = connect_ray(ray, self.address)
        actor_class = ray.remote(num_cpus=self.threads, max_restarts=0)(RayWorker)
        actors: list[Any] = []
        try:
            # At most as many actors as the cluster can place: an actor that cannot be placed
            # would hold the job given to it for as long as the others live.
            slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // self.threads)
            n = min(self.workers or slots, slots, len(jobs)) or 1

            def new_actor() -> Any:
                return actor_class.remote(self.config, str(self.out_dir), self.threads,
                                          self.init)

            actors = [new_actor() for _ in range(n)]
            pending = [(job, 1) for job in reversed(jobs)]  # pop() from the end: file order
            inflight: dict[Any, tuple[int, Job, int]] = {}
            idle = list(range(n))
            while pending or inflight:
                while idle and pending:
                    slot = idle.pop(0)
                    job, attempts = pending.pop()
                    inflight[actors[slot].run.remote(job, attempts)] = (slot, job, attempts)
                done, _ = ray.wait(list(inflight), num_returns=1)
                ref = done[0]
                slot, job, attempts = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    with contextlib.suppress(Exception):
                        ray.kill(actors[slot])
                    actors[slot] = new_actor()
                    if attempts < self.max_attempts:
                        pending.append((job, attempts + 1))
                    else:
                        on_result(_died(job, attempts, exc))
                except ray.exceptions.RayError as exc:
                    on_result(JobResult.for_job(
                        job, "error", attempts=attempts, error_type=type(exc).__name__,
                        error_stage="batch", error_message=_first_line(exc)))
                else:
                    on_result(result)
                idle.append(slot)
        except (ray.exceptions.RayError, ConnectionError) as exc:
            raise BatchError(f"the Ray cluster failed: {exc}") from exc
        finally:
            release_ray(ray, actors, started)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _died(job: Job, attempts: int, exc: Exception) -> JobResult:
    return JobResult.for_job(
        job, "error", attempts=attempts, error_type="WorkerDied", error_stage="batch",
        error_message=f"the Ray actor died while running this job, {attempts} time(s): "
                      f"{_first_line(exc)}")


__all__ = ["RayPool", "RayWorker", "import_ray"]
