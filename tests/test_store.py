"""The SQLite manifest store: records, collisions, concurrency, permissions, clear errors."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from vidgen.errors import StoreError
from vidgen.provenance import store as store_module
from vidgen.provenance.store import (
    SCHEMA_VERSION,
    ManifestStore,
    default_store_path,
)


def _manifest(i: int) -> dict[str, object]:
    return {"title": f"clip-{i}.mp4", "assertions": [{"label": "x", "data": {"i": i}}]}


def test_record_and_lookup(tmp_path: Path) -> None:
    s = ManifestStore(tmp_path / "m.sqlite3")
    assert s.lookup(7) is None and s.lookup_all(7) == [] and s.count() == 0
    assert not s.path.exists()  # reading never creates the store
    s.record(7, _manifest(1), "a" * 64, "/out/1.mp4")
    s.record(8, _manifest(2), "b" * 64, "/out/2.mp4")
    assert s.lookup(7) == _manifest(1) and s.lookup(8) == _manifest(2)
    assert s.lookup(9) is None
    record = s.lookup_record(7)
    assert record is not None and record.sha256 == "a" * 64 and record.path == "/out/1.mp4"
    assert record.recorded_at.endswith("+00:00")
    assert s.contains(8) and not s.contains(9)
    assert s.count() == 2
    s.integrity_check()
    # a new instance (another process, later) sees the same records
    assert ManifestStore(s.path).lookup(8) == _manifest(2)


def test_collision_keeps_every_record_and_answers_the_latest(tmp_path: Path) -> None:
    s = ManifestStore(tmp_path / "m.sqlite3")
    for i in range(3):
        s.record(2**32 - 1, _manifest(i), f"{i}" * 64, f"/out/{i}.mp4")
    assert s.lookup(2**32 - 1) == _manifest(2)
    assert [r.manifest["title"] for r in s.lookup_all(2**32 - 1)] == [
        "clip-2.mp4", "clip-1.mp4", "clip-0.mp4"]


@pytest.mark.parametrize("bad", [-1, 2**32, True, 1.0])
def test_rejects_ids_outside_32_bits(tmp_path: Path, bad: object) -> None:
    with pytest.raises(StoreError, match="32-bit"):
        ManifestStore(tmp_path / "m.sqlite3").record(bad, {}, "", "")  # type: ignore[arg-type]


def test_rejects_manifests_that_are_not_json(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="JSON"):
        ManifestStore(tmp_path / "m.sqlite3").record(1, {"x": object()}, "", "")
    with pytest.raises(StoreError, match="JSON"):
        ManifestStore(tmp_path / "m.sqlite3").record(1, {"x": float("nan")}, "", "")


def test_created_private_with_parent_dirs_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "manifests.sqlite3"
    s = ManifestStore(path)
    s.record(1, _manifest(1), "", "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for sidecar in path.parent.iterdir():  # -wal / -shm take the database's mode
        assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0, sidecar
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == \
            SCHEMA_VERSION


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIDGEN_STORE", str(tmp_path / "x.db"))
    assert default_store_path() == tmp_path / "x.db"
    assert ManifestStore().path == tmp_path / "x.db"
    monkeypatch.delenv("VIDGEN_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "vidgen" / "manifests.sqlite3"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_store_path() == Path.home() / ".local/share/vidgen/manifests.sqlite3"


# --- concurrency ---------------------------------------------------------------------------


def _writer(path: str, worker: int, count: int) -> None:
    s = ManifestStore(path, timeout=60)
    for i in range(count):
        s.record(worker * 1000 + i, _manifest(worker * 1000 + i), f"{worker:064d}", f"/{i}")


def test_concurrent_writers_from_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"  # not created yet: the writers race to make it too
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    workers, count = 6, 40
    procs = [ctx.Process(target=_writer, args=(str(path), w, count)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    s = ManifestStore(path)
    assert s.count() == workers * count
    for w in range(workers):
        for i in range(count):
            assert s.lookup(w * 1000 + i) == _manifest(w * 1000 + i)
    s.integrity_check()
    with sqlite3.connect(path) as conn:  # the schema was made exactly once
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_shared_instance_across_threads(tmp_path: Path) -> None:
    import threading

    s = ManifestStore(tmp_path / "m.sqlite3")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(20):
                s.record(t * 100 + i, _manifest(i), "", "")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and s.count() == 80


# --- errors --------------------------------------------------------------------------------


def test_locked_too_long_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    ManifestStore(path).record(1, _manifest(1), "", "")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=r"locked by another process for more than 0\.2 s"):
            ManifestStore(path, timeout=0.2).record(2, _manifest(2), "", "")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ManifestStore(path).record(2, _manifest(2), "", "")  # fine once the lock is gone


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    s = ManifestStore(path)
    with pytest.raises(StoreError, match="corrupt or not a vidgen manifest store"):
        s.lookup(1)
    with pytest.raises(StoreError, match="move it aside"):
        s.record(1, _manifest(1), "", "")


def test_damaged_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    s = ManifestStore(path)
    for i in range(300):
        s.record(i, _manifest(i), "x" * 64, "/p" * 50)
    with sqlite3.connect(path) as conn:  # fold the WAL into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    for start in range(2 * page, len(data) - page, 3 * page):  # scribble over b-tree pages
        data[start:start + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError):
        s.integrity_check()


def test_other_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(StoreError, match="not a vidgen manifest store"):
        ManifestStore(path).record(1, _manifest(1), "", "")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    ManifestStore(path).record(1, _manifest(1), "", "")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'future')", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="upgrade vidgen"):
        ManifestStore(path).lookup(1)
    with pytest.raises(StoreError, match="upgrade vidgen"):
        ManifestStore(path).record(2, _manifest(2), "", "")


def test_migration_to_a_future_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.sqlite3"
    ManifestStore(path).record(1, _manifest(1), "", "")

    def add_note(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE records ADD COLUMN note TEXT")

    monkeypatch.setitem(store_module.MIGRATIONS, SCHEMA_VERSION, add_note)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    s = ManifestStore(path)
    s.record(2, _manifest(2), "", "")  # the first write migrates
    assert s.lookup(1) == _manifest(1) and s.lookup(2) == _manifest(2)
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(records)")]
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    assert "note" in columns and versions == [1, 2]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs file permissions that bind the current user")
def test_read_only_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    ManifestStore(path).record(1, _manifest(1), "", "")
    for p in tmp_path.iterdir():
        p.chmod(0o400)
    tmp_path.chmod(0o500)
    try:
        assert ManifestStore(path).lookup(1) == _manifest(1)  # reading still works
        with pytest.raises(StoreError, match="read-only"):
            ManifestStore(path).record(2, _manifest(2), "", "")
    finally:
        tmp_path.chmod(0o700)


def test_error_messages_name_the_cause(tmp_path: Path) -> None:
    s = ManifestStore(tmp_path / "m.sqlite3", timeout=3)
    cases = {
        "attempt to write a readonly database": "read-only",
        "database is locked": "locked by another process for more than 3 s",
        "file is not a database": "corrupt",
        "unable to open database file": "cannot open",
    }
    for text, expected in cases.items():
        with pytest.raises(StoreError) as info, s._errors("write to"):
            raise sqlite3.OperationalError(text)
        assert expected in info.value.message


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the manifest store"):
        ManifestStore(blocker / "m.sqlite3").record(1, _manifest(1), "", "")
