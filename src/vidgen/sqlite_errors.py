"""sqlite3 errors as ``StoreError`` messages that say what to do (the manifest store and the
consent registry share this)."""

from __future__ import annotations

import contextlib
import datetime
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from vidgen.errors import StoreError


@attrs.frozen
class SqliteErrors:
    """How one database describes itself in errors."""

    where: str  # e.g. "manifest store /path/file.sqlite3"
    kind: str  # e.g. "manifest store", for "not a vidgen <kind>"
    timeout: float  # the busy timeout, seconds
    readonly_hint: str = ""  # appended to the read-only message
    corrupt_hint: str = "move it aside to start a new one"
    open_hint: str = "check that its directory exists and is accessible"

    @contextlib.contextmanager
    def translate(self, action: str) -> Iterator[None]:
        """Re-raise any ``sqlite3.Error`` inside the block as an explained ``StoreError``."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self.explain(exc, action) from exc

    def explain(self, exc: sqlite3.Error, action: str) -> StoreError:
        text = str(exc)
        low = text.lower()
        if "locked" in low or "busy" in low:
            return StoreError(f"{self.where} stayed locked by another process for more than "
                              f"{self.timeout:g} s ({text})")
        if "readonly" in low or "read-only" in low:
            return StoreError(f"cannot {action} {self.where}: the file or its directory is "
                              f"read-only ({text}){self.readonly_hint}")
        if any(w in low for w in ("not a database", "malformed", "corrupt", "not a vidgen")):
            return StoreError(f"{self.where} is corrupt or not a vidgen {self.kind} ({text}); "
                              f"{self.corrupt_hint}")
        if "unable to open" in low:
            return StoreError(f"cannot open {self.where} ({text}); {self.open_hint}")
        return StoreError(f"cannot {action} {self.where}: {text}")


__all__ = ["SqliteErrors"]


def file_schema_version(path: Path,
                        read_version: Callable[[sqlite3.Connection], int]) -> int | None:
    """The schema version ``read_version`` finds in a database file opened read-only; None
    when the file cannot be read as one (a damaged or foreign file)."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            return read_version(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def move_aside(path: Path, kind: str) -> Path:
    """Rename a damaged database (and its -wal/-shm journal, which holds committed rows too)
    to ``<name>.corrupt-<UTC time>``; ``kind`` names it in the error ("manifest store")."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        os.replace(path, target)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, target.with_name(target.name + suffix))
    except OSError as exc:
        raise StoreError(f"cannot move the {kind} {path} aside: "
                         f"{exc.strerror or exc}") from exc
    return target
