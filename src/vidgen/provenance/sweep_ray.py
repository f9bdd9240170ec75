"""Verification sweeps on Ray: ``vidgen verify DIR --ray [ADDRESS]`` (extra ``vidgen[ray]``).

:func:`run_on_ray` is the Ray counterpart of the local pool in :mod:`.sweep`: the
same tasks go in and the same results come out, into the same ``accept`` callback,
so the JSONL report, ``--resume``, the summary and the HTML report do not know which
executor ran. ``ray`` is imported only here, and this module only when ``--ray`` is
asked for.

- **Actors.** ``workers`` actors (default, and at most: one per CPU of the cluster), each
  reserving one CPU and holding one verifier (trust anchors, key, manifest store) for
  its life; one file in flight per actor. Each actor runs in the driver's working
  directory when that directory exists on its node, so a relative path means the
  same file it means to the driver (records name files exactly as the pool's do).
  On several nodes the files, the ``--key`` file and the manifest store must be at
  the same paths on every node.
- **Deaths.** An actor that dies while verifying a file (its process killed, a
  crash in a native parser, its node lost) is replaced and the file given to a
  fresh actor, up to ``max_attempts`` times in all; a file that keeps killing its
  actor gets one ``error`` record ("the verifier process died on this file"),
  exactly like a file that kills a pool worker. Every file ends with exactly one
  result.
- **Start-up.** With no address a local Ray instance is started and stopped at the
  end; ``"auto"`` or ``ray://host:10001`` joins a running cluster, which is left
  running. A Ray already initialised in this process (a notebook, a test) is used
  as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, Final

from vidgen.provenance import sweep as _sweep
from vidgen.provenance.sweep import (
    SweepSettings,
    WorkerInit,
    _crashed_record,
    _init_worker,
    _Result,
    _Task,
)
from vidgen.types import VerificationReport

__all__ = ["MAX_ATTEMPTS", "SweepActor", "run_on_ray"]

MAX_ATTEMPTS: Final = 3
"""How many actors a file may kill before it is recorded as an error."""


class SweepActor:
    """One verifier process (wrapped with ``ray.remote`` at run time)."""

    def __init__(self, settings: SweepSettings, cwd: str | None,
                 init: WorkerInit | None) -> None:
        if cwd is not None:
            with contextlib.suppress(OSError):  # absent on this node: absolute paths still work
                os.chdir(cwd)
        # torch: one thread (Ray also sets OMP_NUM_THREADS to the actor's one CPU)
        _init_worker(settings, 1, die_with_parent=False, init=init)

    def run(self, task: _Task) -> _Result:
        return _sweep._run_task(task)  # looked up at call time, as the pool's workers do




def run_on_ray(tasks: list[_Task], settings: SweepSettings, workers: int | None,
               address: str | None, accept: Callable[[_Result], None], *,
               max_attempts: int = MAX_ATTEMPTS, worker_init: WorkerInit | None = None
               ) -> int:
    """Verify ``tasks`` on Ray actors, calling ``accept`` in this process as each result
    arrives; returns how many files killed their actor ``max_attempts`` times."""
    from vidgen.batch.errors import RayUnavailable
    from vidgen.batch.ray_pool import import_ray

    if not tasks:
        return 0
    ray = import_ray()
    from vidgen.batch.ray_pool import connect_ray, release_ray

    started = connect_ray(ray, address)
    actor_class = ray.remote(num_cpus=1, max_restarts=0)(SweepActor)
    cwd = os.getcwd()
    actors: list[Any] = []
    crashed = 0
    try:
        # At most one actor per CPU of the cluster: an actor that cannot be placed would
        # hold the file given to it for as long as the others live (the whole sweep).
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        n = max(1, min(workers or cpus, cpus, len(tasks)))

        def new_actor() -> Any:
            return actor_class.remote(settings, cwd, worker_init)

        actors = [new_actor() for _ in range(n)]
        pending = [(task, 1) for task in reversed(tasks)]  # pop() from the end: input order
        inflight: dict[Any, tuple[int, _Task, int]] = {}
        idle = list(range(n))
        while pending or inflight:
            while idle and pending:
                slot = idle.pop(0)
                task, attempt = pending.pop()
                inflight[actors[slot].run.remote(task)] = (slot, task, attempt)
            done, _ = ray.wait(list(inflight), num_returns=1)
            slot, task, attempt = inflight.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayActorError:  # the actor died on this file
                with contextlib.suppress(Exception):
                    ray.kill(actors[slot])
                actors[slot] = new_actor()
                if attempt < max_attempts:
                    pending.append((task, attempt + 1))
                else:
                    crashed += 1
                    accept(_Result(task.index, _crashed_record(task.path, attempt)))
            except ray.exceptions.RayTaskError as exc:  # not an Exception _run_task catches
                accept(_Result(task.index, _error_record(task.path, exc)))
            else:
                accept(result)
            idle.append(slot)
    except (ray.exceptions.RayError, ConnectionError) as exc:
        raise RayUnavailable(f"the Ray cluster failed during the sweep: {exc}") from exc
    finally:
        release_ray(ray, actors, started)
    return crashed


def _error_record(path: str, exc: Exception) -> dict[str, Any]:
    text = str(exc).strip()
    first = (text.splitlines()[0] if text else type(exc).__name__)[:300]
    return VerificationReport(
        file=path, sha256=None, c2pa=None, watermark=None, recovered_manifest=None,
        verdict="error", error=f"internal error on the Ray worker: {first}").to_dict()
