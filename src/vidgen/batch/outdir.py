"""The output directory: its lock, its temporaries, and file hashes.

``DIR/.vidgen-batch.lock`` is locked with POSIX record locks: byte 0 exclusively by
the running batch (a second batch on the same directory gets ``BatchLocked``),
byte 1 shared by each of its local worker processes. A new batch waits for byte 1
to be free before it cleans temporaries, so a worker orphaned by a killed parent
(which also dies by itself: see ``vidgen.batch.pool``) can never write into a
directory a resumed batch is cleaning.

Temporaries that a killed run can leave, and that the next run removes:

- ``.<id>.mp4.<12 hex>.<stage>.mp4``: the pipeline's encode/sign temporaries beside
  ``<id>.mp4`` (``vidgen.stages.Job.temp_path``);
- ``.vidgen-batch-*.tmp``: the batch's own (results rewrite, write probe).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Final

from vidgen.batch.errors import BatchLocked, BatchOutputError
from vidgen.batch.results import TEMP_PREFIX

LOCK_FILE: Final = ".vidgen-batch.lock"
_PIPELINE_TEMP = re.compile(r"\.(?P<name>.+\.mp4)\.[0-9a-f]{12}\.[a-z]+\.mp4")
_BATCH_TEMP = re.compile(re.escape(TEMP_PREFIX) + r".*\.tmp")


def prepare_directory(path: str | Path) -> Path:
    """Create ``path`` if needed and prove it is writable (no file is left behind)."""
    directory = Path(path).expanduser().absolute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchOutputError(f"cannot create the output directory {directory}: "
                               f"{exc.strerror or exc}") from exc
    if not directory.is_dir():
        raise BatchOutputError(f"output {directory} is not a directory")
    probe = directory / f"{TEMP_PREFIX}probe.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"vidgen")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        why = {errno.EROFS: "it is on a read-only file system",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ENOSPC: "no space left on the device",
               errno.EDQUOT: "disk quota exceeded"}.get(exc.errno or 0, exc.strerror or str(exc))
        raise BatchOutputError(f"the output directory {directory} is not writable: {why}"
                               ) from exc
    try:
        probe.unlink()
    except OSError as exc:
        raise BatchOutputError(f"cannot remove {probe}: {exc.strerror or exc}") from exc
    return directory


class DirectoryLock:
    """The running batch's exclusive hold on the output directory (see the module doc)."""

    def __init__(self, directory: Path, *, orphan_wait_s: float = 30.0) -> None:
        self.path = directory / LOCK_FILE
        self.orphan_wait_s = orphan_wait_s
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BatchOutputError(f"cannot open the lock {self.path}: {exc.strerror or exc}"
                                   ) from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
        except OSError as exc:
            os.close(fd)
            raise BatchLocked(f"another vidgen batch is running on {self.path.parent} "
                              f"(it holds {self.path.name})") from exc
        deadline = time.monotonic() + self.orphan_wait_s
        while True:  # workers of a killed run still alive? They die with it; wait.
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1)
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, 1)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise BatchLocked(
                        f"worker processes of an earlier batch on {self.path.parent} are "
                        f"still running after {self.orphan_wait_s:g} s; stop them first"
                    ) from exc
                time.sleep(0.1)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops every record lock this process holds
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold_worker_lock(directory: Path) -> int | None:
    """In a worker: take the shared byte of the directory's lock for the process's life."""
    import fcntl

    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY)
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 1)
    except OSError:
        return None  # no lock to share (e.g. another host on a shared file system)
    return fd


def is_temporary(name: str, ids: Collection[str] | None = None) -> bool:
    """Whether ``name`` is a batch or pipeline temporary (of one of ``ids``, if given)."""
    if _BATCH_TEMP.fullmatch(name):
        return True
    match = _PIPELINE_TEMP.fullmatch(name)
    return match is not None and (ids is None or match["name"][:-4] in ids)


def temporaries(directory: Path, ids: Collection[str] | None = None) -> list[Path]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(p for p in directory.iterdir()
                      if p.name.startswith(".") and is_temporary(p.name, ids))
    return []


def clean_temporaries(directory: Path, ids: Collection[str]) -> list[Path]:
    """Remove what killed runs left (call only while holding ``DirectoryLock``)."""
    removed = []
    for path in temporaries(directory, ids):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise BatchOutputError(f"cannot remove the stale temporary {path}: "
                                   f"{exc.strerror or exc}") from exc
        removed.append(path)
    if removed:
        from vidgen.paths import fsync_directory

        fsync_directory(directory)
    return removed


def sha256_file(path: Path) -> str | None:
    """The file's SHA-256, or None if it does not exist or cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def iter_outputs(directory: Path) -> Iterator[Path]:
    yield from sorted(directory.glob("*.mp4"))


__all__ = ["LOCK_FILE", "DirectoryLock", "clean_temporaries", "hold_worker_lock",
           "is_temporary", "prepare_directory", "sha256_file", "temporaries"]
