"""``DIR/results.jsonl``: one line per job outcome, appended durably by the batch's parent.

Each line is one JSON object (schema ``v`` 1)::

    {"v": 1, "id": "shot-001", "status": "ok", "path": "/abs/DIR/shot-001.mp4",
     "sha256": "...", "watermark_id": 123, "backend": "dit", "task": "text_to_video",
     "seconds": 1.8, "attempts": 1, "prompt_sha256": "...", "job_sha256": "...",
     "error_type": null, "error_stage": null, "error_message": null,
     "finished_at": "2026-01-01T00:00:00Z"}

``status`` is ``ok`` (the output is committed), ``refused`` (a safety stage refused:
prompt policy or likeness; not an error) or ``error`` (anything else; the job is
redone on the next run). Prompts are never written: ``prompt_sha256`` (the first
prompt, as in the C2PA manifest) and ``job_sha256`` (the whole normalised job)
identify them.

Each append is one ``write`` of a whole line to an ``O_APPEND`` descriptor followed by
``fsync``. A line torn by a crash (no final newline, or not valid JSON) is dropped
when the log is next opened by a batch, which rewrites it atomically.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs

from vidgen.batch.errors import BatchOutputError
from vidgen.batch.jobs import Job
from vidgen.paths import fsync_directory

RESULTS_FILE: Final = "results.jsonl"
SCHEMA_VERSION: Final = 1
STATUSES: Final = ("ok", "refused", "error")
TEMP_PREFIX: Final = ".vidgen-batch-"
"""Prefix of the batch's own temporaries in the output directory (``*.tmp``)."""


@attrs.frozen
class JobResult:
    """The outcome of one job, as recorded in ``results.jsonl``."""

    id: str
    status: str
    backend: str
    task: str
    prompt_sha256: str
    job_sha256: str
    seconds: float = 0.0
    path: str | None = None
    sha256: str | None = None
    watermark_id: int | None = None
    attempts: int = 1
    error_type: str | None = None
    error_stage: str | None = None
    error_message: str | None = None
    finished_at: str = attrs.field(factory=lambda: _now())

    def __attrs_post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @classmethod
    def for_job(cls, job: Job, status: str, *, attempts: int = 1, **fields: Any) -> JobResult:
        """A result of ``job`` (its id, backend, task and hashes filled in)."""
        return cls(id=job.id, status=status, backend=job.backend, task=job.task.value,
                   prompt_sha256=job.prompt_sha256, job_sha256=job.spec_sha256,
                   attempts=attempts, **fields)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_record(self) -> dict[str, Any]:
        return {"v": SCHEMA_VERSION, **attrs.asdict(self)}

    def to_line(self) -> bytes:
        return (json.dumps(self.to_record(), ensure_ascii=True, separators=(",", ":"))
                + "\n").encode("ascii")

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JobResult:
        """A result from a parsed line; ``ValueError``/``TypeError`` if it is not one."""
        if record.get("v") != SCHEMA_VERSION:
            raise ValueError(f"unknown results schema {record.get('v')!r}")
        fields = {f.name for f in attrs.fields(cls)}
        data = {k: v for k, v in record.items() if k in fields}
        result = cls(**data)
        if not isinstance(result.id, str) or not isinstance(result.job_sha256, str):
            raise TypeError("id and job_sha256 must be strings")
        if result.ok and not (isinstance(result.sha256, str) and len(result.sha256) == 64):
            raise ValueError("an ok record needs the output's sha256")
        return result


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@attrs.frozen
class LoadedResults:
    """What ``load_results`` found: the last record per id, in file order."""

    results: dict[str, JobResult]
    lines: int  # complete, valid lines
    dropped: int  # torn or invalid lines dropped
    superseded: int  # valid lines replaced by a later record of the same id


def load_results(path: Path) -> LoadedResults:
    """Parse the log; torn/invalid lines are counted and skipped, never fatal."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LoadedResults({}, 0, 0, 0)
    except OSError as exc:
        raise BatchOutputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    results: dict[str, JobResult] = {}
    lines = dropped = superseded = 0
    chunks = data.split(b"\n")
    tail = chunks.pop()  # b"" when the file ends with a newline; else a torn line
    if tail:
        dropped += 1
    for chunk in chunks:
        if not chunk.strip():
            continue
        try:
            record = json.loads(chunk.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not an object")
            result = JobResult.from_record(record)
        except (ValueError, TypeError, UnicodeDecodeError):
            dropped += 1
            continue
        lines += 1
        if result.id in results:
            superseded += 1
            del results[result.id]  # keep file order of the latest record
        results[result.id] = result
    return LoadedResults(results, lines, dropped, superseded)


class ResultsLog:
    """Appends results durably; one writer (the batch's parent process) at a time."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / RESULTS_FILE
        self._fd: int | None = None

    def rewrite(self, results: Iterable[JobResult]) -> None:
        """Replace the log with ``results`` atomically (temp + fsync + rename + dir fsync)."""
        tmp = self.path.with_name(f"{TEMP_PREFIX}results.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _write_all(fd, b"".join(r.to_line() for r in results))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_directory(self.path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise BatchOutputError(f"cannot rewrite {self.path}: {exc.strerror or exc}") from exc

    def append(self, result: JobResult) -> None:
        """One line, written whole and fsynced before this returns."""
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                fsync_directory(self.path.parent)
            _write_all(self._fd, result.to_line())
            os.fsync(self._fd)
        except OSError as exc:
            self.close()
            raise BatchOutputError(
                f"cannot record job {result.id!r} in {self.path}: {exc.strerror or exc}; "
                "the batch stops (rerun it to resume: unrecorded jobs are redone)") from exc

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


__all__ = ["RESULTS_FILE", "STATUSES", "TEMP_PREFIX", "JobResult", "LoadedResults",
           "ResultsLog", "load_results"]
