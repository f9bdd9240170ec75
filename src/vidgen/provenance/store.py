"""The manifest store: watermark id -> manifest, so a stripped file gets its credentials back.

C2PA metadata rarely survives an upload; the watermark does. The pipeline
records every output's manifest under its watermark id here, and ``verify``
looks the id up when it finds a mark in a file whose manifest is gone.

One SQLite file (default ``$VIDGEN_STORE``, else
``$XDG_DATA_HOME/vidgen/manifests.sqlite3``), created 0600. WAL journaling,
``synchronous=FULL`` (a record is as durable as the output file it describes),
a busy timeout, and one short ``BEGIN IMMEDIATE`` transaction per write make it
safe for several processes writing at once. Every call opens its own
connection, so one ``ManifestStore`` may be shared by threads and survives
``fork``.

Ids are random 32-bit numbers: after ~65,000 outputs two may share an id. All
records are kept; ``lookup`` answers the most recent and ``lookup_all`` lists
every one, so a caller can see the ambiguity.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from vidgen.errors import StoreError
from vidgen.paths import user_data_file
from vidgen.sqlite_errors import SqliteErrors, file_schema_version, move_aside

ENV_STORE = "VIDGEN_STORE"
STORE_FILE = "manifests.sqlite3"
SCHEMA_VERSION = 1
DEFAULT_TIMEOUT_S = 30.0
_MAX_ID = (1 << 32) - 1


def default_store_path() -> Path:
    """``$VIDGEN_STORE``, else ``$XDG_DATA_HOME/vidgen/manifests.sqlite3`` (``~/.local/share``)."""
    return user_data_file(ENV_STORE, STORE_FILE)


@attrs.frozen
class StoreRecord:
    """One recorded output: its watermark id, manifest, file hash and where it was written."""

    seq: int  # insertion order; larger is more recent
    watermark_id: int
    manifest: dict[str, Any]
    sha256: str
    path: str
    recorded_at: str  # ISO 8601, UTC


# --- schema and migrations -------------------------------------------------------------


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE records (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            watermark_id INTEGER NOT NULL CHECK (watermark_id BETWEEN 0 AND 4294967295),
            manifest TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        )""")
    conn.execute("CREATE INDEX records_by_id ON records (watermark_id, seq)")


# MIGRATIONS[n] takes a store from schema version n to n + 1. A future schema adds
# an entry here and bumps SCHEMA_VERSION; old stores are upgraded on first write.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _migrate_0_to_1}


def _schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if tables:
            raise sqlite3.DatabaseError("not a vidgen manifest store (no schema_version table)")
        return 0
    version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    return int(version or 0)


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Bring the schema up to ``target`` (default ``SCHEMA_VERSION``) inside the caller's
    write transaction; returns the version reached."""
    target = SCHEMA_VERSION if target is None else target
    version = _schema_version(conn)
    if version > target:
        raise StoreError(
            f"the manifest store has schema version {version}, newer than this vidgen "
            f"understands ({target}); upgrade vidgen")
    if version == 0:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                     "version INTEGER NOT NULL, migrated_at TEXT NOT NULL)")
    while version < target:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute("INSERT INTO schema_version (version, migrated_at) VALUES (?, ?)",
                     (version, _now()))
    return version


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


# --- the store -------------------------------------------------------------------------


class ManifestStore:
    """SQLite map from watermark id to manifest (the ``ManifestStore`` slot of the chain)."""

    def __init__(self, path: str | Path | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """``path`` defaults to ``default_store_path()``; the file is made on first write.

        ``timeout`` is how long a write waits for another process's lock before
        failing with ``StoreError``.
        """
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.timeout = float(timeout)
        self._ready = False

    def __repr__(self) -> str:
        return f"ManifestStore({str(self.path)!r})"

    # --- writing ---------------------------------------------------------------------

    def record(self, watermark_id: int, manifest: dict[str, Any], sha256: str,
               path: str) -> None:
        """Add one output's record (several records may share an id: nothing is replaced)."""
        if isinstance(watermark_id, bool) or not isinstance(watermark_id, int) \
                or not 0 <= watermark_id <= _MAX_ID:
            raise StoreError(f"watermark id must be a 32-bit unsigned integer, got "
                             f"{watermark_id!r}")
        try:
            document = json.dumps(manifest, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"the manifest cannot be stored as JSON: {exc}") from exc
        with self._write() as conn:
            conn.execute(
                "INSERT INTO records (watermark_id, manifest, sha256, path, recorded_at) "
                "VALUES (?, ?, ?, ?, ?)", (watermark_id, document, sha256, path, _now()))

    # --- reading ---------------------------------------------------------------------

    def lookup(self, watermark_id: int) -> dict[str, Any] | None:
        """The manifest most recently recorded under ``watermark_id``, or None."""
        record = self.lookup_record(watermark_id)
        return record.manifest if record is not None else None

    def lookup_record(self, watermark_id: int) -> StoreRecord | None:
        """The most recent record for ``watermark_id``, or None."""
        records = self._select(watermark_id, limit=1)
        return records[0] if records else None

    def lookup_all(self, watermark_id: int) -> list[StoreRecord]:
        """Every record for ``watermark_id``, most recent first (more than one = id collision)."""
        return self._select(watermark_id, limit=None)

    def contains(self, watermark_id: int) -> bool:
        """Whether any output was recorded under ``watermark_id`` (used to avoid reusing ids)."""
        with self._read() as conn:
            if conn is None:
                return False
            row = conn.execute("SELECT 1 FROM records WHERE watermark_id = ? LIMIT 1",
                               (watermark_id,)).fetchone()
        return row is not None

    def count(self) -> int:
        """How many records the store holds."""
        with self._read() as conn:
            if conn is None:
                return 0
            return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def integrity_check(self) -> None:
        """Run SQLite's full integrity check and the schema check; raise ``StoreError`` if bad.

        A missing store file is fine (an empty store).
        """
        with self._read() as conn:
            if conn is None:
                return
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
            if rows != ["ok"]:
                raise StoreError(f"manifest store {self.path} is damaged: "
                                 + "; ".join(rows[:5]) + "; " + _recover_hint(self.path))
            bad = conn.execute(
                "SELECT count(*) FROM records WHERE json_valid(manifest) = 0").fetchone()[0]
            if bad:
                raise StoreError(f"manifest store {self.path}: {bad} records hold invalid JSON")

    def _select(self, watermark_id: int, limit: int | None) -> list[StoreRecord]:
        sql = ("SELECT seq, watermark_id, manifest, sha256, path, recorded_at FROM records "
               "WHERE watermark_id = ? ORDER BY seq DESC")
        args: tuple[int, ...] = (watermark_id,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (watermark_id, limit)
        with self._read() as conn:
            if conn is None:
                return []
            rows = conn.execute(sql, args).fetchall()
        out = []
        for seq, wid, manifest, sha256, path, recorded_at in rows:
            try:
                document = json.loads(manifest)
            except ValueError as exc:
                raise StoreError(f"manifest store {self.path}: record {seq} holds invalid "
                                 f"JSON: {exc}") from exc
            out.append(StoreRecord(int(seq), int(wid), document, str(sha256), str(path),
                                   str(recorded_at)))
        return out

    # --- connections -----------------------------------------------------------------

    def _create_file(self) -> None:
        """Make the parent directories (0700) and an empty 0600 database file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return
            os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot create the manifest store {self.path}: "
                             f"{exc.strerror or exc}") from exc

    def _connect(self, *, readonly: bool) -> sqlite3.Connection:
        if readonly:
            uri = f"{self.path.absolute().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        else:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if not readonly:
                self._ensure_wal(conn)
                conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL (persistent in the file). SQLite answers a racing switch with an
        immediate "locked", without its busy handler, so retry until the timeout."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.005 + 0.02 * random.random())

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``: committed on success, rolled back on error."""
        if not self.path.exists():
            self._create_file()
        with self._errors("write to"):
            conn = self._connect(readonly=False)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if not self._ready:
                        migrate(conn)
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                self._ready = True
            finally:
                conn.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection | None]:
        """A read-only connection, or None when there is no store (yet) or no schema."""
        if not self.path.exists():
            yield None
            return
        with self._errors("read"):
            conn = self._connect(readonly=True)
            try:
                version = _schema_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"the manifest store {self.path} has schema version {version}, newer "
                        f"than this vidgen understands ({SCHEMA_VERSION}); upgrade vidgen")
                yield conn if version else None
            finally:
                conn.close()

    def _insert_rows(self, rows: list[tuple[int, str, str, str, str]]) -> None:
        """Insert (watermark_id, manifest JSON, sha256, path, recorded_at) rows as they are
        (used by ``recover_store``; ``record`` is the normal way in)."""
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO records (watermark_id, manifest, sha256, path, recorded_at) "
                "VALUES (?, ?, ?, ?, ?)", rows)

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        """Turn sqlite3 errors into ``StoreError`` with a message that says what to do."""
        return SqliteErrors(
            f"manifest store {self.path}", "manifest store", self.timeout,
            readonly_hint=f"; set {ENV_STORE} to a writable path",
            corrupt_hint=_recover_hint(self.path),
            open_hint=f"check that its directory exists and is accessible, or set {ENV_STORE}",
        ).translate(action)


def _recover_hint(path: Path) -> str:
    return (f"move it aside to start a new one: `vidgen store recover {path}` does that and "
            "keeps every record it can still read")


# --- checking and recovering a damaged store ---------------------------------------------


@attrs.frozen
class StoreRecovery:
    """What ``recover_store`` did."""

    path: Path  # the store, now a new healthy file
    moved_to: Path | None  # where the damaged file went (None: there was no file)
    salvaged: int  # records copied over from the damaged file
    rebuilt: int  # records re-created from the C2PA manifests of signed files
    skipped: tuple[str, ...] = ()  # files under rebuild_from not used, and why

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path),
                "moved_to": str(self.moved_to) if self.moved_to else None,
                "salvaged": self.salvaged, "rebuilt": self.rebuilt,
                "skipped": list(self.skipped)}


def check_store(path: str | Path | None = None) -> int:
    """Run the full integrity check on the store at ``path``; return its record count.

    Raises ``StoreError`` (naming the file and ``vidgen store recover``) when it is
    damaged, not a vidgen store, or written by a newer vidgen.
    """
    store = ManifestStore(path)
    store.integrity_check()
    return store.count()


def recover_store(path: str | Path | None = None, *, rebuild_from: str | Path | None = None,
                  trust_anchors: str | None = None, force: bool = False) -> StoreRecovery:
    """Move a damaged store aside (to ``PATH.corrupt-<UTC time>``) and start a new one.

    Every record still readable in the damaged file is copied over (a damaged
    page ends the salvage; what came before it is kept). ``rebuild_from`` is a
    directory of vidgen outputs: each signed MP4/MOV whose C2PA manifest is intact
    (``trusted`` when ``trust_anchors`` is given, else ``valid`` or ``trusted``) and
    carries a vidgen soft binding is recorded again under its watermark id.

    A store that passes the integrity check is left alone unless ``force``; one
    written by a newer vidgen is never moved (upgrade vidgen instead). Stop the
    processes that write to the store first: a writer that still has the old file
    open keeps writing to the moved file.
    """
    store_path = Path(path).expanduser() if path is not None else default_store_path()
    moved_to: Path | None = None
    rows: list[tuple[int, str, str, str, str]] = []
    if store_path.exists():
        version = file_schema_version(store_path, _schema_version)
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(f"manifest store {store_path} has schema version {version}, newer "
                             f"than this vidgen understands ({SCHEMA_VERSION}); upgrade vidgen "
                             "(the file is not damaged, so it is not recovered)")
        if not force:
            try:
                check_store(store_path)
            except StoreError:
                pass
            else:
                raise StoreError(f"manifest store {store_path} passes the integrity check; "
                                 "nothing to recover (pass force=True / --force to start a "
                                 "new store anyway)")
        moved_to = move_aside(store_path, "manifest store")
        rows = _salvage(moved_to)
    new = ManifestStore(store_path)
    new._insert_rows(rows)  # also creates the new file and its schema
    rebuilt, skipped = (0, ()) if rebuild_from is None else _rebuild(
        new, Path(rebuild_from), trust_anchors, {(r[0], r[2]) for r in rows})
    return StoreRecovery(store_path, moved_to, len(rows), rebuilt, skipped)


def _salvage(path: Path) -> list[tuple[int, str, str, str, str]]:
    """The records still readable in a damaged store file, in insertion order."""
    rows: list[tuple[int, str, str, str, str]] = []
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                               isolation_level=None)
    except sqlite3.Error:
        return rows
    try:
        cursor = conn.execute("SELECT watermark_id, manifest, sha256, path, recorded_at "
                              "FROM records ORDER BY seq")
        while True:
            try:
                row = cursor.fetchone()
            except sqlite3.Error:
                break  # a damaged page: keep what came before it
            if row is None:
                break
            wid, manifest, sha256, out_path, recorded_at = row
            try:
                if not 0 <= int(wid) <= _MAX_ID or not isinstance(json.loads(manifest), dict):
                    continue
            except (TypeError, ValueError):
                continue
            rows.append((int(wid), str(manifest), str(sha256), str(out_path), str(recorded_at)))
    except sqlite3.Error:
        pass  # not a vidgen store, or unreadable from the start: nothing to salvage
    finally:
        conn.close()
    return rows


_MEDIA_SUFFIXES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime"}


def _rebuild(store: ManifestStore, directory: Path, trust_anchors: str | None,
             known: set[tuple[int, str]]) -> tuple[int, tuple[str, ...]]:
    """Record again the signed vidgen outputs under ``directory``."""
    import hashlib

    from vidgen.errors import VidgenError
    from vidgen.provenance.c2pa import read_c2pa, read_soft_binding

    if not directory.is_dir():
        raise StoreError(f"cannot rebuild from {directory}: not a directory")
    accepted = {"trusted"} if trust_anchors else {"valid", "trusted"}
    rows: list[tuple[int, str, str, str, str]] = []
    skipped: list[str] = []
    for file in sorted(directory.rglob("*")):
        mime = _MEDIA_SUFFIXES.get(file.suffix.lower())
        if mime is None or not file.is_file():
            continue
        try:
            report = read_c2pa(file, mime, trust_anchors)
        except VidgenError as exc:
            skipped.append(f"{file}: {exc.message}")
            continue
        if report.state not in accepted or report.manifest is None:
            skipped.append(f"{file}: C2PA manifest {report.state}")
            continue
        binding = read_soft_binding(report.manifest)
        if binding is None or binding.watermark_id is None:
            skipped.append(f"{file}: no vidgen watermark id in the manifest")
            continue
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        key = (binding.watermark_id, digest.hexdigest())
        if key in known:
            continue
        known.add(key)
        rows.append((binding.watermark_id, json.dumps(report.manifest, sort_keys=True),
                     key[1], str(file.absolute()), _now()))
    if rows:
        store._insert_rows(rows)
    return len(rows), tuple(skipped)


__all__ = [
    "ENV_STORE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ManifestStore",
    "StoreRecord",
    "StoreRecovery",
    "check_store",
    "default_store_path",
    "migrate",
    "recover_store",
]
