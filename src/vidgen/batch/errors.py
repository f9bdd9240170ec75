"""Typed errors of ``vidgen batch``; all are ``VidgenError``s with stage ``batch``.

A ``JobFormatError`` (and its ``UnsafeJobId``/``DuplicateJobId``) carries the
1-based ``line`` of the job file it is about. Errors about the output directory
are ``BatchOutputError``s, which are also ``OutputError``s.
"""

from __future__ import annotations

from vidgen.errors import ConfigurationError, OutputError, VidgenError


class BatchError(VidgenError):
    """The batch as a whole cannot start or go on (not one job's failure)."""

    stage = "batch"


class JobFormatError(BatchError, ConfigurationError):
    """A line of the job file is not a valid job; ``line`` is its 1-based number."""

    stage = "batch"

    def __init__(self, message: str, *, line: int | None = None, path: str | None = None
                 ) -> None:
        where = f"{path or 'jobs'}:{line}: " if line is not None else ""
        super().__init__(where + message)
        self.line = line
        self.path = path


class UnsafeJobId(JobFormatError):
    """A job ``id`` that is not a safe file stem (path traversal, separators, reserved...)."""


class DuplicateJobId(JobFormatError):
    """Two jobs share an ``id`` (compared case-insensitively: one output file each)."""


class BatchLocked(BatchError):
    """Another ``vidgen batch`` holds the output directory's lock."""


class BatchOutputError(BatchError, OutputError):
    """The output directory or the results log cannot be written (read-only, disk full...)."""

    stage = "batch"


class RayUnavailable(BatchError, ConfigurationError):
    """``--ray`` was asked for but the ``ray`` package is not installed or cannot connect."""

    stage = "batch"


class WorkerDied(BatchError):
    """A worker process died while running a job (killed, out of memory, crashed);
    recorded as the job's error once its attempts are used up."""


__all__ = ["BatchError", "BatchLocked", "BatchOutputError", "DuplicateJobId", "JobFormatError",
           "RayUnavailable", "UnsafeJobId", "WorkerDied"]
