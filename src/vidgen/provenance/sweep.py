"""Verification sweeps: many files and directories, a process pool, resumable reports.

``vidgen verify DIR_OR_FILE... [--jsonl REPORT.jsonl [--resume]] [--html REPORT.html]
[--workers N] [--ray [ADDRESS]] [--quiet]`` runs :func:`vidgen.verify` over every file
named and every video file under the directories named:

- **Which files.** A file named on the command line is verified whatever its name. A
  directory is walked recursively, in sorted order, for regular files whose suffix is
  one ``verify`` supports (``.mp4``, ``.mov``, ``.m4v``, any case); symbolic links
  inside it are not followed (a sweep of an upload folder must not be steered
  elsewhere). Each path is verified once.
- **Parallel.** Files are verified on a local process pool (default ``min(2, cpus)``
  workers, one torch thread each; ``--workers 0`` runs in-process). A worker process
  that dies on a file (a crash in a native parser) does not stop the sweep: the files
  it held are re-run one at a time, and the one that kills its worker gets an
  ``error`` record.
  ``--ray [ADDRESS]`` runs the files on Ray actors instead (:mod:`.sweep_ray`); the
  records, the JSONL report, resume, the summary and the HTML report are the same.
- **JSONL report.** One line per file, the same JSON object ``--json`` prints for one
  file, appended and flushed as each result arrives, so a sweep that is killed leaves
  a valid prefix. Without ``--resume`` the file is replaced.
- **Resume.** ``--resume`` keeps a record when a file of the sweep has one with the
  same path (as the sweep names it: rerun with the same arguments from the same
  directory) and the same ``sha256`` (checked in the pool, one read of the file,
  cheaper than verifying it; a copied or touched file whose bytes did not change is
  not verified again, a changed one is). Records without a ``sha256`` (the file could
  not be read) are retried. A torn last line is dropped. Afterwards every file has
  exactly one record, the last one written for it. The options (trust anchors,
  watermark key, manifest store) are assumed unchanged between the runs.
- **Exit code.** 0 if every file is confirmed, 2 if any file could not be processed
  (or a directory held no video file), else 1. For one file this is the exit code of
  the ``vidgen verify`` contract.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import multiprocessing
import os
import stat
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Final

import attrs

from vidgen.errors import ConfigurationError, OutputError, VidgenError
from vidgen.types import C2paReport, VerificationReport, WatermarkReport

__all__ = [
    "VIDEO_SUFFIXES",
    "SweepOutcome",
    "SweepSettings",
    "collect_files",
    "load_jsonl",
    "make_thumbnail",
    "report_from_dict",
    "sweep",
]

VIDEO_SUFFIXES: Final = frozenset({".mp4", ".mov", ".m4v"})
VERDICTS: Final = ("confirmed", "unconfirmed", "tampered", "error")
THUMBNAIL_SIDE: Final = 160


# ------------------------------------------------------------------------ inputs


def collect_files(inputs: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """Files to verify, in order, and the directories that held none.

    Files named are kept as named (even if missing: their record says so);
    directories are walked in sorted order for regular files with a
    :data:`VIDEO_SUFFIXES` suffix, without following symbolic links.
    """
    files: list[Path] = []
    empty: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.normpath(str(path))
        if key not in seen:
            seen.add(key)
            files.append(path)

    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            add(path)
            continue
        found = 0
        for file in _walk(path):
            add(file)
            found += 1
        if not found:
            empty.append(path)
    return files, empty


def _walk(directory: Path) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(Path(entry.path))
            elif (entry.is_file(follow_symlinks=False)
                  and os.path.splitext(entry.name)[1].lower() in VIDEO_SUFFIXES):
                yield Path(entry.path)
        except OSError:
            continue


# ------------------------------------------------------------------- the JSONL file


def load_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The records of a JSONL report and whether a torn last line was dropped.

    Only the last line may be incomplete (a sweep killed mid-write); any other line
    that is not a JSON object with a ``file`` field means this is not a verify report,
    and it is refused rather than overwritten.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], False
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    lines = raw.split(b"\n")
    records: list[dict[str, Any]] = []
    torn = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: possibly cut short
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("file"), str):
                raise ValueError("not a verify record")
        except ValueError as exc:
            if last:
                torn = True
                continue
            raise ConfigurationError(
                f"{path}: line {number} is not a vidgen verify record ({exc}); "
                "refusing to resume from it") from exc
        records.append(record)
    return records, torn


def _atomic_write_lines(path: Path, records: Iterable[dict[str, Any]]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for record in records:
                f.write(_line(record))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _line(record: dict[str, Any]) -> str:
    # ASCII: a file name that is not UTF-8 (surrogate escapes) still makes a valid line.
    return json.dumps(record, default=str) + "\n"


def _latest_by_file(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest.pop(record["file"], None)  # re-insert: the order of last writing
        latest[record["file"]] = record
    return latest


# ----------------------------------------------------------------------- settings


@attrs.frozen
class SweepSettings:
    """What every worker verifies with (loaded once, in the parent)."""

    trust_anchors_pem: str | None = None
    key: bytes | None = None
    store: Path | None = None
    watermark_method: str | None = None
    max_frames: int = 64
    thumbnails: bool = False
    key_file: str | None = None  # read by each worker when ``key`` is None (Ray: no key
    #                              bytes in the cluster's object store)


@attrs.frozen
class _Task:
    index: int
    path: str
    expected_sha256: str | None = None  # resume: skip if the file still has this hash


@attrs.frozen
class _Result:
    index: int
    record: dict[str, Any] | None  # None: reused (resume, unchanged file)
    thumbnail: tuple[str, bytes] | None = None
    fatal: tuple[str, str] | None = None  # (stage, message): the caller's mistake


_STATE: dict[str, Any] = {}


WorkerInit = Callable[[], None]
"""A picklable callable each verifier process runs once before its first file (tests
register watermark doubles with it; deployments could set up logging)."""


def _init_worker(settings: SweepSettings, threads: int | None, die_with_parent: bool,
                 init: WorkerInit | None = None) -> None:
    """Set up a verifier process (or this one, for ``--workers 0``). A failure is kept
    and answered for every file (:func:`_run_task`), so it ends the sweep like a bad key
    instead of looking like a worker that crashed."""
    if die_with_parent:  # a pool worker: the parent handles Ctrl-C, and its death ends us
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with_parent()
    if threads is not None:
        with contextlib.suppress(Exception):
            import torch

            torch.set_num_threads(threads)
    _STATE.clear()
    try:
        if init is not None:
            init()
        key = settings.key
        if key is None and settings.key_file is not None:
            from vidgen.provenance.watermark import read_key_file

            key = read_key_file(settings.key_file)
        from vidgen.provenance.store import ManifestStore

        _STATE["settings"] = settings
        _STATE["key"] = key
        _STATE["store"] = ManifestStore(settings.store)
    except VidgenError as exc:
        _STATE["fatal"] = (exc.stage, exc.message)
    except Exception as exc:
        _STATE["fatal"] = ("verify", f"the verifier could not start: "
                                     f"{type(exc).__name__}: {exc}")


def _die_with_parent() -> None:
    """Linux: end this worker when the sweep process dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def _run_task(task: _Task) -> _Result:
    from vidgen.provenance.verify import sha256_file, verify

    if "fatal" in _STATE:
        return _Result(task.index, None, None, _STATE["fatal"])
    settings: SweepSettings = _STATE["settings"]
    path = Path(task.path)
    if task.expected_sha256 is not None:
        try:
            same = path.is_file() and sha256_file(path) == task.expected_sha256
        except OSError:
            same = False
        if same:
            return _Result(task.index, None, _thumbnail(path, settings))
    try:
        report = verify(path, trust_anchors_pem=settings.trust_anchors_pem, key=_STATE["key"],
                        store=_STATE["store"], watermark_method=settings.watermark_method,
                        max_frames=settings.max_frames)
    except VidgenError as exc:  # bad key, store or method: the same for every file
        return _Result(task.index, None, None, (exc.stage, exc.message))
    except Exception as exc:  # a bug must not end a sweep of thousands of files
        report = VerificationReport(
            file=str(path), sha256=None, c2pa=None, watermark=None, recovered_manifest=None,
            verdict="error", error=f"internal error: {type(exc).__name__}: {exc}")
    thumb = _thumbnail(path, settings) if report.verdict != "error" else None
    return _Result(task.index, report.to_dict(), thumb)


def _thumbnail(path: Path, settings: SweepSettings) -> tuple[str, bytes] | None:
    if not settings.thumbnails:
        return None
    try:
        return make_thumbnail(path)
    except Exception:  # a thumbnail is decoration: never lose the file's record over it
        return None


def _crashed_record(path: str, times: int = 1) -> dict[str, Any]:
    from vidgen.provenance.verify import sha256_file

    digest = None
    with contextlib.suppress(OSError):
        digest = sha256_file(Path(path))
    again = f", {times} times" if times > 1 else ""
    return VerificationReport(
        file=path, sha256=digest, c2pa=None, watermark=None, recovered_manifest=None,
        verdict="error",
        error=f"{path}: the verifier process died on this file{again} (a crash in a "
              "native parser, or killed for memory)").to_dict()


# ---------------------------------------------------------------------- thumbnails


def make_thumbnail(path: Path, max_side: int = THUMBNAIL_SIDE) -> tuple[str, bytes] | None:
    """A JPEG (PNG if no JPEG encoder) of the middle frame, at most ``max_side`` pixels.

    Decoded under ``video_io``'s hostile-input limits with a 10 s budget; None
    when the file gives no frame.
    """
    from vidgen.errors import MediaError
    from vidgen.video_io import ReadLimits, probe_video, read_video

    limits = ReadLimits(max_seconds=10.0, max_decoded_bytes=1 << 27)
    try:
        info = probe_video(path, limits=limits)
        middle = (info.num_frames or 1) // 2
        try:
            frame = read_video(path, limits=limits, start_frame=middle, max_frames=1).frames[0]
        except MediaError:
            frame = read_video(path, limits=limits, max_frames=1).frames[0]
    except (MediaError, ConfigurationError):
        return None
    small = _shrink(frame, max_side)
    jpeg = _encode_jpeg(small)
    if jpeg is not None:
        return "image/jpeg", jpeg
    from vidgen.video_io import encode_png

    return "image/png", encode_png(small)


def _shrink(frame: Any, max_side: int) -> Any:
    import numpy as np

    h, w = frame.shape[:2]
    factor = max(1, math.ceil(max(h, w) / max_side))
    if factor > 1:  # box filter over factor x factor blocks, then crop to even
        hh, ww = (h // factor) * factor, (w // factor) * factor
        if hh and ww:
            block = frame[:hh, :ww].reshape(hh // factor, factor, ww // factor, factor, 3)
            frame = block.mean(axis=(1, 3)).round().astype(np.uint8)
        else:
            frame = frame[::factor, ::factor]
    h, w = frame.shape[:2]
    frame = frame[: max(2, h - h % 2), : max(2, w - w % 2)]
    return np.ascontiguousarray(frame)


def _encode_jpeg(image: Any) -> bytes | None:
    from fractions import Fraction

    import av

    try:
        context = av.CodecContext.create("mjpeg", "w")
        context.width, context.height = int(image.shape[1]), int(image.shape[0])
        context.pix_fmt = "yuvj420p"
        context.time_base = Fraction(1, 25)
        context.options = {"qscale": "4"}
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
        packets = [*context.encode(frame), *context.encode(None)]
        data = b"".join(bytes(p) for p in packets)
    except Exception:
        return None
    return data if data.startswith(b"\xff\xd8") else None


# -------------------------------------------------------------------------- sweep


@attrs.define
class SweepOutcome:
    """What a sweep did: every file's record (input order), counts, timing."""

    records: list[dict[str, Any]]
    thumbnails: dict[str, tuple[str, bytes]]
    reused: int
    verified: int
    crashed: int
    seconds: float
    empty_dirs: list[Path] = attrs.Factory(list)

    @property
    def counts(self) -> dict[str, int]:
        tally = Counter(r.get("verdict", "error") for r in self.records)
        return {v: tally.get(v, 0) for v in VERDICTS}

    @property
    def exit_code(self) -> int:
        counts = self.counts
        if counts["error"] or self.empty_dirs:
            return 2
        if counts["unconfirmed"] or counts["tampered"]:
            return 1
        return 0


def sweep(
    files: Sequence[Path],
    settings: SweepSettings,
    *,
    workers: int | None = None,
    jsonl: Path | None = None,
    resume: bool = False,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    worker_init: WorkerInit | None = None,
) -> SweepOutcome:
    """Verify ``files`` on ``workers`` processes, appending records to ``jsonl``.

    ``on_record`` sees each new record as it arrives (not the reused ones);
    ``on_progress(done, total)`` after each file. ``ray=True`` verifies on Ray actors
    (``workers`` of them; None or 0: one per CPU of the cluster) of the cluster at
    ``ray_address`` (None: a new local instance, stopped at the end); without the
    ``ray`` package it raises ``RayUnavailable`` before the report is touched.
    ``worker_init`` runs once in each verifier process.
    """
    start = time.monotonic()
    if workers is not None and workers < 0:
        raise ConfigurationError(f"--workers must be >= 0, got {workers}")
    if ray:
        from vidgen.batch.ray_pool import import_ray

        import_ray()  # a missing extra is a usage error: before touching the report
    elif workers is None:
        workers = default_workers()
    names = [str(f) for f in files]
    previous: dict[str, dict[str, Any]] = {}
    if jsonl is not None:
        previous = _open_report(jsonl, resume)
    tasks = [_Task(i, name, (previous.get(name) or {}).get("sha256") if resume else None)
             for i, name in enumerate(names)]
    records: dict[int, dict[str, Any]] = {}
    thumbs: dict[str, tuple[str, bytes]] = {}
    counters = Counter[str]()
    try:
        handle = open(jsonl, "a", encoding="utf-8") if jsonl is not None else None  # noqa: SIM115
    except OSError as exc:
        raise OutputError(f"cannot write {jsonl}: {exc.strerror or exc}") from exc
    try:
        def accept(result: _Result) -> None:
            name = names[result.index]
            if result.record is None:
                records[result.index] = previous[name]
                counters["reused"] += 1
            else:
                records[result.index] = result.record
                counters["verified"] += 1
                if handle is not None:
                    handle.write(_line(result.record))
                    handle.flush()
                if on_record is not None:
                    on_record(result.record)
            if result.thumbnail is not None:
                thumbs[name] = result.thumbnail
            if on_progress is not None:
                on_progress(len(records), len(tasks))

        if ray and tasks:
            from vidgen.provenance.sweep_ray import run_on_ray

            counters["crashed"] = run_on_ray(tasks, settings, workers or None, ray_address,
                                             lambda r: _check_fatal(r, accept),
                                             worker_init=worker_init)
        else:
            counters["crashed"] = _execute(tasks, settings, workers or 0, accept,
                                           worker_init)
    finally:
        if handle is not None:
            handle.close()
    if jsonl is not None and resume:
        _compact(jsonl)
    return SweepOutcome(
        records=[records[i] for i in range(len(tasks))], thumbnails=thumbs,
        reused=counters["reused"], verified=counters["verified"],
        crashed=counters["crashed"], seconds=time.monotonic() - start)


def default_workers() -> int:
    """``min(2, cpus)``: verification is I/O- and decode-bound, and machines are shared."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def _open_report(jsonl: Path, resume: bool) -> dict[str, dict[str, Any]]:
    """Prepare the JSONL file; with ``resume`` return its reusable records by file."""
    if jsonl.exists() and not stat.S_ISREG(jsonl.stat().st_mode):
        raise ConfigurationError(f"{jsonl}: the JSONL report must be a regular file")
    if not resume:
        try:
            jsonl.write_text("", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {jsonl}: {exc.strerror or exc}") from exc
        return {}
    records, torn = load_jsonl(jsonl)
    latest = _latest_by_file(records)
    if torn or len(latest) != len(records):  # repair: drop the torn line and duplicates
        _atomic_write_lines(jsonl, latest.values())
    elif records and not jsonl.read_bytes().endswith(b"\n"):
        with open(jsonl, "a", encoding="utf-8") as f:
            f.write("\n")
    return {name: r for name, r in latest.items() if isinstance(r.get("sha256"), str)}


def _compact(jsonl: Path) -> None:
    """One record per file (the last written), if a changed file left two."""
    records, _torn = load_jsonl(jsonl)
    latest = _latest_by_file(records)
    if len(latest) != len(records):
        _atomic_write_lines(jsonl, latest.values())


def _context() -> Any:
    # fork: workers start in milliseconds and inherit the loaded settings (see _execute
    # for OpenMP in a forked worker).
    # (Linux only: fork is unsafe with macOS system frameworks.)
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _execute(tasks: list[_Task], settings: SweepSettings, workers: int,
             accept: Callable[[_Result], None], init: WorkerInit | None = None) -> int:
    """Run ``tasks``; returns how many files crashed their worker."""
    if workers == 0 or len(tasks) <= 1:
        _init_worker(settings, None, die_with_parent=False, init=init)
        for task in tasks:
            _check_fatal(_run_task(task), accept)
        return 0
    # One torch thread per worker: verification's torch work is small per-frame ops
    # (two threads were no faster than one on 720p clips, and 5-7x slower on a loaded
    # machine without OMP_WAIT_POLICY=PASSIVE), and libgomp is not fork-safe: a forked
    # worker that opens a parallel region of more than one thread hangs for good when
    # this process has run OpenMP work before (a library caller that verified a file
    # in-process first). One thread never forms an OpenMP team. Scale with workers.
    threads = 1
    pending = list(reversed(tasks))
    crashed = 0
    while pending:
        suspects = _pool_run(pending, settings, workers, threads, accept, init)
        for task in suspects:  # one at a time, to find the file that kills its worker
            if not _pool_run([task], settings, 1, threads, accept, init):
                continue
            record = _crashed_record(task.path)
            accept(_Result(task.index, record))
            crashed += 1
    return crashed


def _pool_run(pending: list[_Task], settings: SweepSettings, workers: int, threads: int,
              accept: Callable[[_Result], None], init: WorkerInit | None) -> list[_Task]:
    """Run tasks from ``pending`` (popped from its end) until it is empty or the pool
    breaks; returns the tasks that were in flight when it broke."""
    window = 4 * workers
    in_flight: dict[Future[_Result], _Task] = {}
    pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_init_worker,
                               initargs=(settings, threads, True, init))
    finished = False
    try:
        while pending or in_flight:
            while pending and len(in_flight) < window:
                task = pending.pop()
                in_flight[pool.submit(_run_task, task)] = task
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                task = in_flight.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    finished = True
                    return [task, *in_flight.values()]
                _check_fatal(result, accept)
        finished = True
        return []
    finally:  # on an error or Ctrl-C, do not wait for the files still being verified
        pool.shutdown(wait=finished, cancel_futures=True)


def _check_fatal(result: _Result, accept: Callable[[_Result], None]) -> None:
    if result.fatal is not None:
        stage, message = result.fatal
        raise VidgenError(message, stage=stage)
    accept(result)


# ----------------------------------------------------------------------- reports


def report_from_dict(data: dict[str, Any]) -> VerificationReport:
    """A :class:`VerificationReport` back from its JSON (the manifest itself is not in it)."""
    c2pa = data.get("c2pa")
    watermark = data.get("watermark")
    c2pa_fields = {f.name for f in attrs.fields(C2paReport)} - {"manifest"}
    wm_fields = {f.name for f in attrs.fields(WatermarkReport)}
    return VerificationReport(
        file=data["file"], sha256=data.get("sha256"),
        c2pa=C2paReport(**_fields(c2pa, c2pa_fields)) if c2pa else None,
        watermark=WatermarkReport(**{k: v for k, v in watermark.items() if k in wm_fields})
        if watermark else None,
        recovered_manifest=data.get("recovered_manifest"), verdict=data["verdict"],
        error=data.get("error"))


def _fields(data: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: tuple(v) if k == "codes" else v for k, v in data.items() if k in names}


def thumbnail_data_uri(thumb: tuple[str, bytes]) -> str:
    mime, data = thumb
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# ------------------------------------------------------------------- CLI glue


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep options of ``vidgen verify``."""
    parser.add_argument("--jsonl", type=Path, default=None, metavar="REPORT.jsonl",
                        help="append one JSON record per file as results arrive")
    parser.add_argument("--resume", action="store_true",
                        help="with --jsonl: skip files whose record (same path and sha256) "
                             "is already there; repair a torn last line")
    parser.add_argument("--html", type=Path, default=None, metavar="REPORT.html",
                        help="write a self-contained HTML report with thumbnails")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="verifier processes for several files (default min(2, cpus); "
                             "0: in this process); with --ray, actors (default one per "
                             "cluster CPU)")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="verify on Ray (extra vidgen[ray]); without ADDRESS a local Ray "
                             "instance is started; 'auto' or ray://HOST:PORT joins a cluster. "
                             "Write it after the files, or as --ray=ADDRESS")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="with several files: print only the summary table")


def is_sweep(args: argparse.Namespace) -> bool:
    """Whether ``vidgen verify`` was given more than one plain file's work."""
    return bool(len(args.files) != 1 or args.files[0].is_dir() or args.jsonl or args.html
                or args.resume or args.workers is not None
                or getattr(args, "ray", None) is not None)


def run_sweep_command(args: argparse.Namespace, *, out: Any, err: Any,
                      print_report: Callable[[VerificationReport], None]) -> int:
    """``vidgen verify`` over many files: per-file output, the reports, a summary table."""
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vidgen.provenance.keys import load_trust_anchors
    from vidgen.provenance.watermark import read_key_file

    if args.resume and args.jsonl is None:
        raise ConfigurationError("--resume needs --jsonl REPORT.jsonl (the report to resume)")
    ray_address: str | None = getattr(args, "ray", None)
    if ray_address and Path(ray_address).exists():  # `--ray FILE`: argparse took a file
        raise ConfigurationError(
            f"--ray {ray_address}: that is a file or folder, not a Ray address; write --ray "
            "after the files, or --ray=ADDRESS")
    key = read_key_file(args.key) if args.key is not None else None  # refused early if bad
    settings = SweepSettings(
        trust_anchors_pem=load_trust_anchors(args.trust),
        # Ray: each worker reads the key file itself, so the key is not sent through
        # the cluster's object store (the file must be at the same path on every node)
        key=key if ray_address is None else None,
        key_file=str(args.key.expanduser().absolute())
        if ray_address is not None and args.key is not None else None,
        store=args.store, watermark_method=args.watermark_method,
        max_frames=args.max_frames, thumbnails=args.html is not None)
    files, empty = collect_files(args.files)
    for directory in empty:
        err.print(f"vidgen: no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) under "
                  f"{directory}", markup=False, highlight=False)
    show_each = not args.json and not args.quiet
    bar = Progress(TextColumn("[bold]verifying"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                   console=err, disable=not err.is_terminal, transient=True)
    task = bar.add_task("verify", total=len(files))

    def on_record(record: dict[str, Any]) -> None:
        if show_each:
            print_report(report_from_dict(record))

    def on_progress(done: int, total: int) -> None:
        if not bar.live.is_started and not bar.disable:
            bar.start()  # after the pool has forked its workers: no thread in them
        bar.update(task, completed=done, total=total)

    try:
        outcome = sweep(files, settings, workers=args.workers, jsonl=args.jsonl,
                        resume=args.resume, on_record=on_record, on_progress=on_progress,
                        ray=ray_address is not None, ray_address=ray_address or None)
    finally:
        bar.stop()
    outcome.empty_dirs = empty
    if args.html is not None:
        from vidgen.provenance.report_html import write_html

        write_html(args.html, outcome)
    if args.json:
        data: Any = outcome.records[0] if len(outcome.records) == 1 else outcome.records
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        sys.stdout.flush()
    console = err if args.json else out
    if outcome.records or empty:
        console.print(summary_table(outcome))
    if args.jsonl is not None:
        console.print(f"JSONL report: {escape(str(args.jsonl))}", highlight=False)
    if args.html is not None:
        console.print(f"HTML report: {escape(str(args.html))}", highlight=False)
    return outcome.exit_code


def summary_table(outcome: SweepOutcome) -> Any:
    from rich.table import Table

    counts = outcome.counts
    total = len(outcome.records)
    rate = f", {outcome.verified / outcome.seconds:.1f} files/s" \
        if outcome.verified and outcome.seconds > 0 else ""
    caption = f"{total} files in {outcome.seconds:.1f} s{rate}"
    if outcome.reused:
        caption += f"; {outcome.reused} reused from the JSONL report (--resume)"
    if outcome.crashed:
        caption += f"; {outcome.crashed} crashed the verifier"
    table = Table(title="vidgen verify: summary", caption=caption)
    table.add_column("verdict")
    table.add_column("files", justify="right")
    styles = {"confirmed": "green", "unconfirmed": "yellow", "tampered": "red", "error": "red"}
    for verdict in VERDICTS:
        table.add_row(f"[{styles[verdict]}]{verdict}[/]", str(counts[verdict]))
    table.add_row("[bold]total[/]", f"[bold]{total}[/]")
    return table
