"""``vidgen batch JOBS.jsonl --out DIR``: the command (hooked into ``vidgen.cli``).

Exit codes: 0 when every job is ``ok`` or ``refused`` (now or in an earlier run);
1 when any job ended in ``error``, or the batch stopped part way (the results log
could not be written); 2 when the batch could not start (invalid job file, the
directory is locked by another batch or not writable, Ray missing); 130 when
cancelled. Rerunning the same command resumes: finished jobs are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vidgen.batch.results import JobResult
from vidgen.errors import VidgenError

err = Console(stderr=True, emoji=False, soft_wrap=True)
out = Console(emoji=False, soft_wrap=True)


def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``batch`` to the ``vidgen`` command's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "batch", help="run a JSONL file of jobs into DIR (resumable; see docs/batch.md)",
        description="Run every job of JOBS.jsonl (one JSON object per line) into DIR/<id>.mp4, "
                    "recording each outcome in DIR/results.jsonl. Rerun to resume: finished "
                    "jobs are skipped. Exit 0: all jobs ok or refused; 1: some job failed; "
                    "2: the batch could not start.")
    p.add_argument("jobs", type=Path, metavar="JOBS.jsonl")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="output directory (created if missing)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default min(2, CPUs); 0: run in this process); "
                        "with --ray, actors (default one per cluster CPU)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads per worker (default 1)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray (extra vidgen[ray]); without ADDRESS a local Ray instance "
                        "is started; 'auto' or ray://HOST:PORT joins a cluster")
    p.add_argument("--backend", default=None,
                   help="backend of jobs that name none (default: dit)")
    p.add_argument("--max-attempts", type=int, default=3, metavar="N",
                   help="runs of a job whose worker dies before it is recorded as an error "
                        "(default 3)")
    p.add_argument("--keys", type=Path, default=None,
                   help="directory with dev keys (default: VIDGEN_SIGN_CERT/KEY or the user "
                        "data dir)")
    p.add_argument("--store", type=Path, default=None, metavar="PATH",
                   help="manifest store (default: $VIDGEN_STORE or the user data dir)")
    p.add_argument("--watermark-method", default=None, metavar="NAME",
                   help="watermarking method (default: $VIDGEN_WATERMARK_METHOD or vidgen)")
    p.add_argument("--policy", type=Path, default=None, help="prompt policy TOML")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (0-51)")
    p.add_argument("--disclose", default=None, metavar="LANG",
                   help="draw a visible AI-generated label: en, de, fr or ko")
    p.add_argument("--include-prompt", action="store_true",
                   help="write prompts into the manifests (results.jsonl never holds them)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_batch)
    return p


class _Bar:
    """The progress bar (stderr, only on a terminal) and the running counts."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.counts = {"ok": 0, "refused": 0, "error": 0}
        self.errors: list[JobResult] = []
        self.started = False

    def planned(self, total: int, todo: int) -> None:
        self.started = True
        self.task = self.progress.add_task("batch", total=todo, counts=self._text(),
                                           skipped=total - todo)

    def finished(self, result: JobResult) -> None:
        self.counts[result.status] += 1
        if result.status == "error":
            self.errors.append(result)
        if self.task is not None:
            self.progress.update(self.task, advance=1, counts=self._text())

    def _text(self) -> str:
        c = self.counts
        return (f"[green]{c['ok']} ok[/] [yellow]{c['refused']} refused[/] "
                f"[red]{c['error']} error[/]")


def cmd_batch(args: argparse.Namespace) -> int:
    from vidgen.batch.execute import PipelineConfig
    from vidgen.batch.runner import run_batch

    config = PipelineConfig(
        keys_dir=_str(args.keys), store=_str(args.store), watermark_method=args.watermark_method,
        policy=_str(args.policy), disclose=args.disclose, include_prompt=args.include_prompt,
        crf=args.crf)
    show = not args.json and err.is_terminal
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[counts]}"),
                  TextColumn("({task.fields[skipped]} done before)"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, disable=not show) as progress:
        bar = _Bar(progress)
        try:
            summary = run_batch(args.jobs, args.out, workers=args.workers, threads=args.threads,
                                config=config, ray=args.ray is not None,
                                ray_address=args.ray or None, max_attempts=args.max_attempts,
                                observer=bar, default_backend=args.backend)
        except VidgenError as exc:  # the batch as a whole; a job's own errors are recorded
            progress.stop()
            err.print(f"vidgen: [{exc.stage}] {exc.message}", markup=False, highlight=False)
            return 1 if bar.started else 2
    if args.json:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")
        sys.stdout.flush()
        return summary.exit_code
    out.print(f"batch: {summary.total} jobs: [green]{summary.ok} ok[/], "
              f"[yellow]{summary.refused} refused[/], [red]{summary.error} error[/], "
              f"{summary.skipped} finished before; {summary.seconds:.1f} s, "
              f"{summary.clips_per_s:.2f} clips/s on {summary.workers} {summary.executor} "
              f"worker(s) x {summary.threads} thread(s)", highlight=False)
    if summary.temporaries_removed or summary.records_dropped:
        out.print(f"  resumed: removed {summary.temporaries_removed} stale temporaries, "
                  f"repaired {summary.records_dropped} torn results line(s)", highlight=False)
    for result in bar.errors[:10]:
        message = (result.error_message or "").strip().splitlines() or [""]
        out.print(f"  [red]error[/] {escape(result.id)}: {escape(str(result.error_type))}: "
                  f"{escape(message[0])}", highlight=False)
    if len(bar.errors) > 10:
        out.print(f"  ... and {len(bar.errors) - 10} more errors", highlight=False)
    out.print(f"  results: {escape(summary.results)}", highlight=False)
    return summary.exit_code


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


__all__ = ["add_batch_parser", "cmd_batch"]
