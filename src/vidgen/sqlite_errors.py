"""sqlite3 errors as ``StoreError`` messages that say what to do (the manifest store and the
consent registry share this)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

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
