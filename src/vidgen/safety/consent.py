"""The consent registry: whose face may be used, for which tasks, until when.

A person is enrolled with reference photos (stored only as 128-d face
embeddings, never the pixels) and either a consent scope (tasks, expiry, who
granted it) or none. A person enrolled without consent is *protected*: a
deployment lists the politicians, celebrities or staff whose likeness it must
never generate or edit. Revoking consent keeps the embeddings, so the person's
face is refused from then on instead of silently becoming an unknown face;
``forget`` erases a person entirely.

One SQLite file (``$VIDGEN_CONSENT_DB``, else
``$XDG_DATA_HOME/vidgen/consent.sqlite3``), created 0600 in a 0700 directory,
WAL journaling, one ``BEGIN IMMEDIATE`` transaction per change and a
``schema_version`` table, like the manifest store. Matching reads an
in-memory copy of the embeddings that is refreshed when any process commits a
change (``PRAGMA data_version``), so a revocation takes effect on the next scan.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt

from vidgen.errors import ConfigurationError, StoreError
from vidgen.paths import user_data_file
from vidgen.sqlite_errors import SqliteErrors, file_schema_version, move_aside
from vidgen.types import Task

ENV_CONSENT_DB = "VIDGEN_CONSENT_DB"
REGISTRY_FILE = "consent.sqlite3"
SCHEMA_VERSION = 1
EMBEDDING_DIM = 128
EMBEDDING_MODEL = "dlib_face_recognition_resnet_model_v1"
# Euclidean distance below which two embeddings are taken as the same person, calibrated
# by benchmarks/likeness.py (benchmarks/results/likeness.json): the largest threshold up to
# dlib's published 0.6 that accepts at most 0.1% of labelled impostor pairs there.
DEFAULT_THRESHOLD = 0.51
MAX_REFERENCES = 64
DEFAULT_TIMEOUT_S = 30.0
TASK_NAMES = frozenset(t.value for t in Task)
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")

Embeddings = npt.NDArray[np.float32]


def default_registry_path() -> Path:
    """``$VIDGEN_CONSENT_DB``, else ``$XDG_DATA_HOME/vidgen/consent.sqlite3``."""
    return user_data_file(ENV_CONSENT_DB, REGISTRY_FILE)


# --- value types -----------------------------------------------------------------------


def _to_tasks(value: Iterable[str | Task]) -> frozenset[str]:
    if isinstance(value, str):  # one task name, not its characters
        value = (value,)
    try:
        tasks = frozenset(str(Task(t).value) if isinstance(t, Task) else str(t) for t in value)
    except TypeError as exc:
        raise ConfigurationError(f"consent tasks must be task names, got {value!r}") from exc
    unknown = sorted(tasks - TASK_NAMES)
    if unknown:
        raise ConfigurationError(
            f"unknown task(s) in consent scope: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(TASK_NAMES))}")
    if not tasks:
        raise ConfigurationError(
            "a consent scope needs at least one task; enrol with consent=None to protect a "
            "person instead")
    return tasks


def _check_until(_instance: object, _attribute: object, value: dt.datetime | None) -> None:
    if value is None:
        return
    if not isinstance(value, dt.datetime):
        raise ConfigurationError(f"consent 'until' must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError("consent 'until' must be timezone-aware (e.g. UTC)")


def _check_granted_by(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise ConfigurationError("consent 'granted_by' must say who granted it (1-256 chars)")


@attrs.frozen
class ConsentScope:
    """What a person agreed to: these tasks (``vidgen.types.Task`` values), until when."""

    tasks: frozenset[str] = attrs.field(converter=_to_tasks)
    until: dt.datetime | None = attrs.field(validator=_check_until)
    granted_by: str = attrs.field(validator=_check_granted_by)

    def refusal(self, task: str, now: dt.datetime) -> str | None:
        """Why this scope does not cover ``task`` at ``now`` ("expired" or "task"), or None."""
        if self.until is not None and now >= self.until:
            return "expired"
        if task not in self.tasks:
            return "task"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": sorted(self.tasks),
                "until": self.until.isoformat() if self.until else None,
                "granted_by": self.granted_by}


@attrs.frozen
class Person:
    """One enrolled person as the registry holds them (no images: embeddings only)."""

    person_id: str
    name: str
    consent: ConsentScope | None
    enrolled_at: dt.datetime
    revoked_at: dt.datetime | None
    references: int

    @property
    def protected(self) -> bool:
        """Enrolled without consent: their face is always refused."""
        return self.consent is None


@attrs.frozen
class Match:
    """A face within the match threshold of an enrolled person, with their consent state."""

    person_id: str
    distance: float
    consent: ConsentScope | None
    revoked: bool

    @property
    def protected(self) -> bool:
        return self.consent is None


class FaceEmbedder(Protocol):
    """What enrolment needs from a face analyzer (``vidgen.safety.likeness.FaceAnalyzer``)."""

    def detect(self, frame: npt.NDArray[np.uint8]) -> Sequence[Any]: ...

    def embed(self, frame: npt.NDArray[np.uint8], boxes: Sequence[Any]) -> Embeddings: ...


# --- schema ----------------------------------------------------------------------------


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE people (
            person_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            consent TEXT,            -- JSON ConsentScope; NULL = protected person
            enrolled_at TEXT NOT NULL,
            revoked_at TEXT
        )""")
    conn.execute(f"""
        CREATE TABLE face_references (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            person_id TEXT NOT NULL REFERENCES people (person_id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            embedding BLOB NOT NULL CHECK (length(embedding) = {EMBEDDING_DIM * 4}),
            added_at TEXT NOT NULL
        )""")
    conn.execute("CREATE INDEX face_references_by_person ON face_references (person_id)")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _migrate_0_to_1}


def _schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                       "AND name = 'schema_version'").fetchone()
    if row is None:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise sqlite3.DatabaseError("not a vidgen consent registry (no schema_version)")
        return 0
    return int(conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = _schema_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(f"consent registry {path} has schema version {version}, newer than "
                         f"this vidgen understands ({SCHEMA_VERSION}); upgrade vidgen")
    if version == 0:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, "
                     "migrated_at TEXT NOT NULL)")
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, _iso(_now())))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _consent_json(consent: ConsentScope | None) -> str | None:
    return None if consent is None else json.dumps(consent.to_dict(), sort_keys=True)


def _consent_from_json(text: str | None) -> ConsentScope | None:
    if text is None:
        return None
    doc = json.loads(text)
    until = dt.datetime.fromisoformat(doc["until"]) if doc["until"] else None
    return ConsentScope(frozenset(doc["tasks"]), until, doc["granted_by"])


# --- the in-memory gallery ---------------------------------------------------------------


@attrs.frozen(eq=False)
class _Gallery:
    """Every reference embedding with the index of its owner in ``people``."""

    people: tuple[Person, ...]
    vectors: Embeddings  # (M, 128)
    owner: npt.NDArray[np.intp]  # (M,)


def _check_embeddings(embeddings: object) -> Embeddings:
    if not isinstance(embeddings, np.ndarray) or embeddings.ndim != 2 \
            or embeddings.shape[1] != EMBEDDING_DIM:
        shape = getattr(embeddings, "shape", type(embeddings).__name__)
        raise ConfigurationError(f"embeddings must be an (N, {EMBEDDING_DIM}) array, got {shape}")
    if not np.issubdtype(embeddings.dtype, np.floating):
        raise ConfigurationError(f"embeddings must be floating point, got {embeddings.dtype}")
    if not np.all(np.isfinite(embeddings)):
        raise ConfigurationError("embeddings contain NaN or infinity")
    return np.ascontiguousarray(embeddings, dtype=np.float32)


# --- the registry ----------------------------------------------------------------------


class ConsentRegistry:
    """SQLite registry of enrolled people and their consent; ``match`` answers scans."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Open (and create, unless ``readonly``) the registry at ``path``.

        ``readonly`` opens an existing registry without write access, for scanners
        deployed next to a registry that an administrator maintains elsewhere.
        Raises ``StoreError`` if the file is corrupt, not a registry, or inaccessible.
        """
        self.path = Path(path).expanduser() if path is not None else default_registry_path()
        self.readonly = readonly
        self.timeout = float(timeout)
        self._lock = threading.RLock()
        self._gallery: _Gallery | None = None
        self._seen_version: int | None = None
        self._conn: sqlite3.Connection | None = self._open()

    def __repr__(self) -> str:
        return f"ConsentRegistry({str(self.path)!r})"

    def __enter__(self) -> ConsentRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the registry cannot be used afterwards."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
                self._gallery = None

    # --- changes -----------------------------------------------------------------------

    def enrol(self, person_id: str, name: str, images: Sequence[npt.NDArray[np.uint8]],
              consent: ConsentScope | None, analyzer: FaceEmbedder, *,
              threshold: float = DEFAULT_THRESHOLD) -> None:
        """Add a person from reference photos, each showing exactly one face.

        ``consent=None`` enrols a protected person. Refuses (``ConfigurationError``)
        an id already in use, a photo with zero or several faces, photos that do
        not look like one person, and photos that match someone already enrolled
        (so a protected face cannot be re-enrolled as "consenting").
        """
        _check_person_id(person_id)
        if not isinstance(name, str) or not name.strip() or len(name) > 256:
            raise ConfigurationError("name must be a non-empty string of at most 256 chars")
        if consent is not None and not isinstance(consent, ConsentScope):
            raise ConfigurationError("consent must be a ConsentScope or None (protected)")
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        if not 1 <= len(images) <= MAX_REFERENCES:
            raise ConfigurationError(
                f"enrolment needs 1 to {MAX_REFERENCES} reference images, got {len(images)}")
        vectors = np.concatenate([_one_face(analyzer, i, img) for i, img in enumerate(images)])
        _check_consistent(vectors, threshold)
        for i, found in enumerate(self.match(vectors, threshold=threshold)):
            if found is not None and found.person_id != person_id:
                raise ConfigurationError(
                    f"reference image {i} matches already enrolled person "
                    f"{found.person_id!r} (distance {found.distance:.3f} < {threshold:g})")
        now = _iso(_now())
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM people WHERE person_id = ?",
                            (person_id,)).fetchone():
                raise ConfigurationError(
                    f"person {person_id!r} is already enrolled; forget() them first to "
                    "re-enrol")
            conn.execute("INSERT INTO people VALUES (?, ?, ?, ?, NULL)",
                          (person_id, name, _consent_json(consent), now))
            conn.executemany(
                "INSERT INTO face_references (person_id, model, embedding, added_at) "
                "VALUES (?, ?, ?, ?)",
                [(person_id, EMBEDDING_MODEL, v.astype("<f4").tobytes(), now) for v in vectors])

    def revoke(self, person_id: str) -> None:
        """Withdraw a person's consent: from now on their face is refused, not allowed."""
        with self._write() as conn:
            row = conn.execute("SELECT consent, revoked_at FROM people WHERE person_id = ?",
                               (person_id,)).fetchone()
            if row is None:
                raise ConfigurationError(f"no enrolled person {person_id!r}")
            if row[0] is None:
                raise ConfigurationError(
                    f"person {person_id!r} is protected (enrolled without consent); there is "
                    "no consent to revoke")
            if row[1] is None:
                conn.execute("UPDATE people SET revoked_at = ? WHERE person_id = ?",
                             (_iso(_now()), person_id))

    def forget(self, person_id: str) -> None:
        """Erase a person and their embeddings (their face becomes an unknown face).

        The rows are overwritten, not just unlinked (``secure_delete``), and the
        write-ahead log is checkpointed and truncated so no older copy of the pages
        stays in it; a reader holding an old snapshot open can delay that until the
        next change. Backups and moved-aside files are not touched.
        """
        with self._write() as conn:
            if conn.execute("DELETE FROM people WHERE person_id = ?",
                            (person_id,)).rowcount == 0:
                raise ConfigurationError(f"no enrolled person {person_id!r}")
        with self._locked() as conn, contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- reading -----------------------------------------------------------------------

    def people(self) -> list[Person]:
        """Everyone enrolled, by id."""
        return list(self._load().people)

    def match(self, embeddings: Embeddings, *,
              threshold: float = DEFAULT_THRESHOLD) -> list[Match | None]:
        """For each embedding, the nearest enrolled person closer than ``threshold``."""
        return [found[0] if found else None
                for found in self.match_all(embeddings, threshold=threshold)]

    def match_all(self, embeddings: Embeddings, *,
                  threshold: float = DEFAULT_THRESHOLD) -> list[list[Match]]:
        """For each embedding, every enrolled person closer than ``threshold``, nearest first.

        A person's distance is the smallest over their reference embeddings.
        """
        probes = _check_embeddings(embeddings)
        if not (isinstance(threshold, int | float) and 0.0 < threshold < 2.0):
            raise ConfigurationError(f"threshold must be in (0, 2), got {threshold!r}")
        gallery = self._load()
        if not len(gallery.people) or not len(probes):
            return [[] for _ in range(len(probes))]
        distances = np.linalg.norm(probes[:, None, :] - gallery.vectors[None], axis=2)
        per_person = np.full((len(probes), len(gallery.people)), np.inf)
        for k in range(len(probes)):
            np.minimum.at(per_person[k], gallery.owner, distances[k])
        out: list[list[Match]] = []
        for nearest in per_person:
            hits = np.flatnonzero(nearest < threshold)
            hits = hits[np.argsort(nearest[hits], kind="stable")]
            out.append([self._match(gallery.people[k], float(nearest[k])) for k in hits])
        return out

    @staticmethod
    def _match(person: Person, distance: float) -> Match:
        return Match(person.person_id, distance, person.consent, person.revoked_at is not None)

    def schema_version(self) -> int:
        """The registry file's schema version."""
        with self._locked() as conn, self._errors("read"):
            return _schema_version(conn)

    def journal_mode(self) -> str:
        """SQLite's journal mode for the file ("wal" for a writable registry)."""
        with self._locked() as conn, self._errors("read"):
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # --- internals ---------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.readonly and not self.path.exists():
            raise StoreError(f"consent registry {self.path} does not exist")
        if not self.readonly:
            self._create_file()
        with self._errors("open"):
            if self.readonly:
                uri = f"{self.path.absolute().as_uri()}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=self.timeout,
                                       isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, timeout=self.timeout,
                                       isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA secure_delete = ON")  # forget() overwrites, not unlinks
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {check}")
                if self.readonly:
                    version = _schema_version(conn)
                    if version != SCHEMA_VERSION:
                        raise StoreError(
                            f"consent registry {self.path} has schema version {version}; "
                            f"this vidgen reads version {SCHEMA_VERSION}")
                else:
                    if str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() \
                            != "wal":
                        raise StoreError(f"consent registry {self.path}: cannot enable WAL")
                    conn.execute("PRAGMA synchronous = FULL")
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        _migrate(conn, self.path)
                        conn.execute("COMMIT")
                    except BaseException:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                        raise
            except BaseException:
                conn.close()
                raise
        return conn

    def _create_file(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot create consent registry {self.path}: "
                             f"{exc.strerror or exc}; set {ENV_CONSENT_DB} to a writable "
                             "path") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"consent registry {self.path} is closed")
            yield self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error."""
        if self.readonly:
            raise StoreError(f"consent registry {self.path} was opened read-only")
        with self._locked() as conn, self._errors("write to"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._gallery = None

    def _load(self) -> _Gallery:
        """The cached gallery, re-read when any connection has committed since."""
        with self._locked() as conn, self._errors("read"):
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if self._gallery is not None and version == self._seen_version:
                return self._gallery
            conn.execute("BEGIN")  # one consistent snapshot of both tables
            try:
                people_rows = conn.execute(
                    "SELECT p.person_id, p.name, p.consent, p.enrolled_at, p.revoked_at, "
                    "count(r.id) FROM people p LEFT JOIN face_references r "
                    "ON r.person_id = p.person_id GROUP BY p.person_id "
                    "ORDER BY p.person_id").fetchall()
                ref_rows = conn.execute("SELECT person_id, embedding FROM face_references "
                                        "ORDER BY id").fetchall()
            finally:
                conn.execute("COMMIT")
            self._gallery = self._build(people_rows, ref_rows)
            self._seen_version = version
            return self._gallery

    def _build(self, people_rows: list[Any], ref_rows: list[Any]) -> _Gallery:
        try:
            people = tuple(
                Person(str(pid), str(name), _consent_from_json(consent),
                       dt.datetime.fromisoformat(enrolled),
                       dt.datetime.fromisoformat(revoked) if revoked else None, int(n))
                for pid, name, consent, enrolled, revoked, n in people_rows)
            index = {p.person_id: k for k, p in enumerate(people)}
            vectors = np.zeros((len(ref_rows), EMBEDDING_DIM), np.float32)
            owner = np.zeros(len(ref_rows), np.intp)
            for k, (pid, blob) in enumerate(ref_rows):
                vectors[k] = np.frombuffer(blob, "<f4", EMBEDDING_DIM)
                owner[k] = index[pid]
        except (ValueError, KeyError, TypeError, ConfigurationError) as exc:
            raise StoreError(f"consent registry {self.path} holds a damaged record ({exc}); "
                             "restore it from a backup") from exc
        if not np.all(np.isfinite(vectors)):
            raise StoreError(f"consent registry {self.path} holds non-finite embeddings")
        return _Gallery(people, vectors, owner)

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return SqliteErrors(f"consent registry {self.path}", "consent registry", self.timeout,
                            corrupt_hint=_recover_hint(self.path),
                            ).translate(action)

    def integrity_check(self) -> int:
        """SQLite's full integrity check plus a parse of every record; returns the number of
        people. Raises ``StoreError`` naming the file and the way to recover it."""
        with self._locked() as conn, self._errors("check"):
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
            problems = [str(r) for r in conn.execute("PRAGMA foreign_key_check").fetchall()]
        if rows != ["ok"] or problems:
            raise StoreError(f"consent registry {self.path} is damaged: "
                             + "; ".join((rows if rows != ["ok"] else problems)[:5])
                             + "; " + _recover_hint(self.path))
        return len(self._load().people)


def _recover_hint(path: Path) -> str:
    return (f"restore it from a backup, or run `vidgen consent recover --registry {path}`, "
            "which moves it aside and keeps every person it can still read (re-enrol the "
            "rest: a protected person who is lost is no longer refused)")


# --- checking and recovering a damaged registry ------------------------------------------


@attrs.frozen
class RegistryRecovery:
    """What ``recover_registry`` did."""

    path: Path
    moved_to: Path | None
    people: int  # people copied over from the damaged file
    references: int  # their reference embeddings copied over
    dropped: tuple[str, ...] = ()  # what could not be read, in words

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path),
                "moved_to": str(self.moved_to) if self.moved_to else None,
                "people": self.people, "references": self.references,
                "dropped": list(self.dropped)}


def check_registry(path: str | Path | None = None) -> int:
    """Open the registry at ``path`` read-only, run the full check; return how many people
    it holds. ``StoreError`` when it is missing, damaged, foreign or newer."""
    with ConsentRegistry(path, readonly=True) as registry:
        return registry.integrity_check()


def recover_registry(path: str | Path | None = None, *, force: bool = False
                     ) -> RegistryRecovery:
    """Move a damaged registry aside (``PATH.corrupt-<UTC time>``), start a new one and copy
    over every person and reference embedding that can still be read and validated.

    A healthy registry is left alone unless ``force``; a newer one is never moved. People
    who are lost must be enrolled again: until then a lost *protected* person's face is
    an unknown face. Prefer restoring a backup when there is one.
    """
    reg_path = Path(path).expanduser() if path is not None else default_registry_path()
    moved_to: Path | None = None
    people: list[tuple[str, str, str | None, str, str | None]] = []
    refs: list[tuple[str, str, bytes, str]] = []
    dropped: list[str] = []
    if reg_path.exists():
        version = file_schema_version(reg_path, _schema_version)
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(f"consent registry {reg_path} has schema version {version}, newer "
                             f"than this vidgen understands ({SCHEMA_VERSION}); upgrade vidgen "
                             "(the file is not damaged, so it is not recovered)")
        if not force:
            try:
                check_registry(reg_path)
            except StoreError:
                pass
            else:
                raise StoreError(f"consent registry {reg_path} passes the integrity check; "
                                 "nothing to recover (pass force=True / --force to start "
                                 "a new registry anyway)")
        moved_to = move_aside(reg_path, "consent registry")
        people, refs, dropped = _salvage(moved_to)
    with ConsentRegistry(reg_path) as registry, registry._write() as conn:
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)", people)
        conn.executemany("INSERT INTO face_references (person_id, model, embedding, added_at) "
                         "VALUES (?, ?, ?, ?)", refs)
    return RegistryRecovery(reg_path, moved_to, len(people), len(refs), tuple(dropped))


def _salvage(path: Path) -> tuple[list[Any], list[Any], list[str]]:
    """People and references still readable and valid in a damaged registry file."""
    people: list[tuple[str, str, str | None, str, str | None]] = []
    refs: list[tuple[str, str, bytes, str]] = []
    dropped: list[str] = []
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                               isolation_level=None)
    except sqlite3.Error:
        return people, refs, ["the damaged file could not be opened"]
    try:
        for table, sql, keep in (
            ("people", "SELECT person_id, name, consent, enrolled_at, revoked_at FROM people",
             _valid_person),
            ("face_references", "SELECT person_id, model, embedding, added_at FROM "
             "face_references ORDER BY id", _valid_reference),
        ):
            out: list[Any] = people if table == "people" else refs
            try:
                cursor = conn.execute(sql)
            except sqlite3.Error as exc:
                dropped.append(f"{table}: unreadable ({exc})")
                continue
            bad = 0
            while True:
                try:
                    row = cursor.fetchone()
                except sqlite3.Error as exc:
                    dropped.append(f"{table}: the rest after a damaged page ({exc})")
                    break
                if row is None:
                    break
                if keep(row):
                    out.append(tuple(row))
                else:
                    bad += 1
            if bad:
                dropped.append(f"{table}: {bad} invalid row(s)")
    finally:
        conn.close()
    ids = {p[0] for p in people}
    orphans = [r for r in refs if r[0] not in ids]
    if orphans:
        dropped.append(f"face_references: {len(orphans)} of people whose record was lost")
        refs = [r for r in refs if r[0] in ids]
    return people, refs, dropped


def _valid_person(row: Any) -> bool:
    try:
        person_id, name, consent, enrolled, revoked = row
        _check_person_id(person_id)
        if not isinstance(name, str) or not name:
            return False
        _consent_from_json(consent)
        dt.datetime.fromisoformat(enrolled)
        if revoked is not None:
            dt.datetime.fromisoformat(revoked)
    except (ValueError, TypeError, KeyError, ConfigurationError):
        return False
    return True


def _valid_reference(row: Any) -> bool:
    person_id, model, blob, added = row
    if not isinstance(blob, bytes) or len(blob) != EMBEDDING_DIM * 4 or not isinstance(
            person_id, str) or not isinstance(model, str) or not isinstance(added, str):
        return False
    return bool(np.all(np.isfinite(np.frombuffer(blob, "<f4"))))


def _check_person_id(person_id: object) -> None:
    if not isinstance(person_id, str) or not _ID_RE.fullmatch(person_id):
        raise ConfigurationError(
            f"person id must be 1-128 chars of letters, digits and ._:@- (starting with a "
            f"letter or digit), got {person_id!r}")


def _one_face(analyzer: FaceEmbedder, index: int, image: npt.NDArray[np.uint8]) -> Embeddings:
    boxes = analyzer.detect(image)
    if len(boxes) != 1:
        raise ConfigurationError(
            f"reference image {index} shows {len(boxes)} faces; enrolment needs exactly one "
            "clear, frontal face per image")
    vectors = _check_embeddings(analyzer.embed(image, boxes))
    if len(vectors) != 1:
        raise ConfigurationError(f"reference image {index}: the analyzer returned "
                                 f"{len(vectors)} embeddings for one face")
    return vectors


def _check_consistent(vectors: Embeddings, threshold: float) -> None:
    """Refuse reference photos that do not look like one person (a mix-up or an attack)."""
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            distance = float(np.linalg.norm(vectors[i] - vectors[j]))
            if distance >= threshold:
                raise ConfigurationError(
                    f"reference images {i} and {j} do not look like the same person "
                    f"(distance {distance:.3f} >= {threshold:g})")


__all__ = [
    "DEFAULT_THRESHOLD",
    "EMBEDDING_DIM",
    "EMBEDDING_MODEL",
    "ENV_CONSENT_DB",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TASK_NAMES",
    "ConsentRegistry",
    "ConsentScope",
    "FaceEmbedder",
    "Match",
    "Person",
    "RegistryRecovery",
    "check_registry",
    "default_registry_path",
    "recover_registry",
]
