"""``vidgen batch``: many jobs, one signed MP4 each, resumable after any crash.

See ``docs/batch.md``. ``parse_jobs`` reads a JSONL job file into ``Job``s;
``run_batch`` runs the unfinished ones on a local process pool (or Ray) and
records each outcome in ``DIR/results.jsonl``.
"""

from vidgen.batch.errors import (
    BatchError,
    BatchLocked,
    BatchOutputError,
    DuplicateJobId,
    JobFormatError,
    RayUnavailable,
    UnsafeJobId,
    WorkerDied,
)
from vidgen.batch.execute import JobRunner, PipelineConfig
from vidgen.batch.ids import MAX_ID_LENGTH, check_job_id
from vidgen.batch.jobs import Job, parse_job, parse_job_lines, parse_jobs
from vidgen.batch.results import RESULTS_FILE, JobResult, load_results
from vidgen.batch.runner import BatchObserver, BatchSummary, run_batch

__all__ = [
    "MAX_ID_LENGTH",
    "RESULTS_FILE",
    "BatchError",
    "BatchLocked",
    "BatchObserver",
    "BatchOutputError",
    "BatchSummary",
    "DuplicateJobId",
    "Job",
    "JobFormatError",
    "JobResult",
    "JobRunner",
    "PipelineConfig",
    "RayUnavailable",
    "UnsafeJobId",
    "WorkerDied",
    "check_job_id",
    "load_results",
    "parse_job",
    "parse_job_lines",
    "parse_jobs",
    "run_batch",
]
