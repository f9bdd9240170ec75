"""Watch what a backend does to the file system while it samples.

Python's audit hooks (PEP 578) report every ``open`` and every file-system
change made through Python (``open``, ``os.open``, ``os.mkdir``, ``os.rename``,
``shutil``, ``tempfile``, ``sqlite3``, ...). One hook is installed for the
process the first time a watch starts (audit hooks cannot be removed); it costs
one flag test per audited event while no watch is active.

Writes made by native code that bypasses Python (``fopen`` in a C extension)
are not seen by the hook: the conformance suite also runs ``sample`` in an empty
working directory with ``$TMPDIR`` pointed at an empty directory and looks for
anything that appeared there.

``watch_environ`` records which named variables are read from ``os.environ``
(by swapping the class of the ``os.environ`` object for a recording subclass
for the duration of the block).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

# Audit events that create, change or remove files; the first argument is the path.
_MUTATING_EVENTS = frozenset({
    "os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.truncate", "os.symlink", "os.link",
    "os.chmod", "os.chown", "os.utime", "shutil.copyfile", "shutil.copymode",
    "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.rmtree",
    "shutil.make_archive", "shutil.unpack_archive", "tempfile.mkstemp", "tempfile.mkdtemp",
    "sqlite3.connect",
})
# Audit events that read a path (besides ``open``), for the key-access watch.
_READING_EVENTS = frozenset({"os.listdir", "os.scandir"})


@attrs.frozen
class FileEvent:
    """One audited file-system operation: the event name and the absolute path."""

    event: str
    path: str

    def __str__(self) -> str:
        return f"{self.event} {self.path}"


@attrs.define
class _Recorder:
    protected: tuple[str, ...]  # absolute path prefixes whose every access is recorded
    writes: list[FileEvent] = attrs.field(factory=list)
    reads: list[FileEvent] = attrs.field(factory=list)


_lock = threading.Lock()
_active: list[_Recorder] = []
_installed = False


def _path_of(arg: object) -> str | None:
    if isinstance(arg, int | bool) or arg is None:
        return None  # a file descriptor opened before the watch, or no path
    try:
        raw = os.fspath(arg)  # type: ignore[call-overload]
    except TypeError:
        return None
    path = os.fsdecode(raw)
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return os.path.abspath(path)


def _ignored(path: str) -> bool:
    # Bytecode written by a lazy import and writes to devices (/dev/null) are not files
    # the backend made.
    return "__pycache__" in Path(path).parts or path.startswith("/dev/")


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _active:
        return
    try:
        if event == "open":
            path = _path_of(args[0]) if args else None
            if path is None:
                return
            mode = args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 else 0
            writing = ((isinstance(mode, str) and any(c in mode for c in "wax+"))
                       or (isinstance(flags, int) and bool(flags & _WRITE_FLAGS)))
            _record(FileEvent("open for writing" if writing else "open", path), writing)
        elif event in _MUTATING_EVENTS or event in _READING_EVENTS:
            for arg in args[:2] if event in {"os.rename", "os.symlink", "os.link",
                                             "shutil.copyfile", "shutil.copytree",
                                             "shutil.move"} else args[:1]:
                path = _path_of(arg)
                if path is not None:
                    _record(FileEvent(event, path), event in _MUTATING_EVENTS)
    except Exception:  # an audit hook must never break the audited call
        return


def _record(ev: FileEvent, writing: bool) -> None:
    with _lock:
        for rec in _active:
            if writing and not _ignored(ev.path):
                rec.writes.append(ev)
            if rec.protected and _under(ev.path, rec.protected):
                rec.reads.append(ev)


def _install() -> None:
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


@attrs.frozen
class WatchResult:
    """What a watch saw: writes anywhere, accesses to protected paths, new files in the
    sandbox directories."""

    writes: tuple[FileEvent, ...]
    protected_access: tuple[FileEvent, ...]
    created: tuple[str, ...]


class Watch:
    """Filled in when the ``watch`` block ends."""

    result: WatchResult | None = None


def _snapshot(directory: Path) -> set[str]:
    return {str(p) for p in directory.rglob("*")}


@contextlib.contextmanager
def watch(sandbox: Path, protected: Sequence[str | Path] = ()) -> Iterator[Watch]:
    """Record file-system activity of the block, run with ``sandbox/cwd`` as the working
    directory and ``sandbox/tmp`` as the temporary directory (both made empty here).

    ``protected`` paths are recorded on any access (reads too). Not thread-safe with
    respect to the working directory: the block runs with a changed ``os.getcwd()``.
    """
    _install()
    cwd_dir, tmp_dir = sandbox / "cwd", sandbox / "tmp"
    for d in (cwd_dir, tmp_dir):
        d.mkdir(parents=True, exist_ok=False)
    prefixes: list[str] = []
    for p in protected:
        for form in (os.path.abspath(p), os.path.realpath(p)):
            if form not in prefixes:
                prefixes.append(form)
    rec = _Recorder(tuple(prefixes))
    handle = Watch()
    old_cwd = os.getcwd()
    old_tmpdir, old_env = tempfile.tempdir, os.environ.get("TMPDIR")
    os.chdir(cwd_dir)
    tempfile.tempdir = str(tmp_dir)
    os.environ["TMPDIR"] = str(tmp_dir)
    with _lock:
        _active.append(rec)
    try:
        yield handle
    finally:
        with _lock:
            _active.remove(rec)
        os.chdir(old_cwd)
        tempfile.tempdir = old_tmpdir
        if old_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_env
        created = sorted(_snapshot(cwd_dir) | _snapshot(tmp_dir))
        handle.result = WatchResult(writes=tuple(dict.fromkeys(rec.writes)),
                                    protected_access=tuple(dict.fromkeys(rec.reads)),
                                    created=tuple(created))


class _RecordingEnviron(os._Environ[str]):
    """``os.environ`` while ``watch_environ`` runs: records reads of the watched names."""

    def __getitem__(self, key: str) -> str:
        reads = _env_reads
        if reads is not None and key in reads[0]:
            reads[1].append(key)
        return super().__getitem__(key)


_env_reads: tuple[frozenset[str], list[str]] | None = None


@contextlib.contextmanager
def watch_environ(names: Iterable[str]) -> Iterator[list[str]]:
    """Record which of ``names`` are read from ``os.environ`` in the block (``os.getenv``,
    ``os.environ.get``/``[]``/``in``, copies of the environment). Reads from C code are
    not seen."""
    global _env_reads
    seen: list[str] = []
    environ = os.environ
    with _lock:
        if _env_reads is not None:
            raise RuntimeError("watch_environ does not nest")
        _env_reads = (frozenset(names), seen)
        environ.__class__ = _RecordingEnviron
    try:
        yield seen
    finally:
        with _lock:
            environ.__class__ = os._Environ
            _env_reads = None

