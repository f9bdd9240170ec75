"""Faults in the files vidgen keeps and writes: damaged manifest stores and consent
registries (typed errors that name the file and the way out, check and recover), a
read-only output directory and a full disk during the atomic write."""

from __future__ import annotations

import builtins
import errno
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidgen import errors
from vidgen.cli import main
from vidgen.errors import StoreError
from vidgen.pipeline import Pipeline
from vidgen.provenance.c2pa import read_soft_binding
from vidgen.provenance.keys import DevKeys
from vidgen.provenance.store import (
    SCHEMA_VERSION,
    ManifestStore,
    check_store,
    recover_store,
)
from vidgen.safety.consent import (
    ConsentRegistry,
    ConsentScope,
    check_registry,
    recover_registry,
)

from .conftest import GradientBackend


def _manifest(i: int) -> dict[str, Any]:
    return {"title": f"clip {i}", "assertions": [{"label": "x", "data": {"i": i}}]}


def _filled_store(path: Path, n: int = 40) -> ManifestStore:
    store = ManifestStore(path)
    store.record(0, _manifest(0), f"{0:064x}", "/out/0.mp4")
    store._insert_rows([(i, json.dumps(_manifest(i), sort_keys=True), f"{i:064x}",
                         f"/out/{i}.mp4", "2026-01-01T00:00:00+00:00") for i in range(1, n)])
    with sqlite3.connect(path) as conn:  # fold the WAL into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return store


# --- how a file gets damaged --------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(16384))


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _header_only(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def _foreign(path: Path) -> None:
    path.unlink()
    for side in ("-wal", "-shm"):
        Path(str(path) + side).unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER, total REAL)")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage": _garbage, "truncated": _truncated, "header-only": _header_only,
    "foreign": _foreign,
}


# --- the manifest store ---------------------------------------------------------------------


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_store_is_a_typed_error_naming_path_and_recovery(tmp_path: Path,
                                                                  damage: str) -> None:
    path = tmp_path / "manifests.sqlite3"
    _filled_store(path)
    DAMAGE[damage](path)
    for call in (lambda: ManifestStore(path).lookup(3),
                 lambda: ManifestStore(path).record(99, _manifest(99), "", ""),
                 lambda: check_store(path)):
        with pytest.raises(StoreError) as info:
            call()
        message = info.value.message
        assert str(path) in message, message
        assert f"vidgen store recover {path}" in message, message
        assert info.value.stage == "store"


def test_newer_store_is_refused_and_never_recovered(tmp_path: Path) -> None:
    path = tmp_path / "manifests.sqlite3"
    _filled_store(path, 3)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'future')", (SCHEMA_VERSION + 1,))
    before = path.read_bytes()
    with pytest.raises(StoreError, match="upgrade vidgen"):
        check_store(path)
    with pytest.raises(StoreError, match="not damaged, so it is not recovered"):
        recover_store(path, force=True)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_recover_moves_the_file_aside_and_starts_a_new_store(tmp_path: Path,
                                                             damage: str) -> None:
    path = tmp_path / "manifests.sqlite3"
    _filled_store(path)
    DAMAGE[damage](path)
    damaged = path.read_bytes()
    result = recover_store(path)
    assert result.moved_to is not None and result.moved_to.read_bytes() == damaged
    assert result.moved_to.name.startswith("manifests.sqlite3.corrupt-")
    assert check_store(path) == result.salvaged
    ManifestStore(path).record(7, _manifest(7), "", "")  # usable again
    assert ManifestStore(path).lookup(7) == _manifest(7)


def test_recover_salvages_records_before_a_damaged_page(tmp_path: Path) -> None:
    path = tmp_path / "manifests.sqlite3"
    _filled_store(path, 300)
    data = bytearray(path.read_bytes())
    page = 4096
    data[-3 * page:] = os.urandom(3 * page)  # the last pages are garbage
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError):
        check_store(path)
    result = recover_store(path)
    assert 0 < result.salvaged < 300
    store = ManifestStore(path)
    kept = [i for i in range(300) if store.lookup(i) is not None]
    assert len(kept) == result.salvaged
    assert all(store.lookup(i) == _manifest(i) for i in kept)  # what is kept is intact
    assert store.lookup_record(kept[0]).path == f"/out/{kept[0]}.mp4"  # type: ignore[union-attr]


def test_recover_refuses_a_healthy_store_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "manifests.sqlite3"
    _filled_store(path, 5)
    with pytest.raises(StoreError, match="passes the integrity check"):
        recover_store(path)
    result = recover_store(path, force=True)
    assert result.salvaged == 5 and result.moved_to is not None
    assert ManifestStore(path).count() == 5


def test_recover_rebuilds_from_signed_outputs(dev_keys: DevKeys, anchors: Path,
                                              tmp_path: Path) -> None:
    path = tmp_path / "manifests.sqlite3"
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=path)
    made = [pipe.generate("x", seed=i, num_frames=4, output=outputs / f"{i}.mp4")
            for i in range(2)]
    tampered = outputs / "tampered.mp4"
    data = bytearray(made[0].path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the media data: the hard binding fails
    tampered.write_bytes(bytes(data))
    (outputs / "notes.txt").write_text("not media")
    _garbage(path)
    result = recover_store(path, rebuild_from=outputs,
                           trust_anchors=anchors.read_text())
    assert result.salvaged == 0 and result.rebuilt == 2
    assert len(result.skipped) == 1 and "tampered.mp4" in result.skipped[0]
    store = ManifestStore(path)
    for res in made:
        record = store.lookup_record(res.watermark_id)  # type: ignore[arg-type]
        assert record is not None and record.sha256 == res.sha256
        binding = read_soft_binding(record.manifest)
        assert binding is not None and binding.watermark_id == res.watermark_id


def test_cli_store_check_and_recover(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "manifests.sqlite3"
    _filled_store(path, 3)
    assert main(["store", "check", str(path)]) == 0
    assert "ok (3 records)" in capsys.readouterr().out
    _garbage(path)
    assert main(["store", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "vidgen store recover" in err and "Traceback" not in err
    assert main(["store", "recover", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["salvaged"] == 0 and report["moved_to"].startswith(str(path) + ".corrupt-")
    assert main(["store", "check", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"path": str(path), "ok": True,
                                                    "exists": True, "records": 0}


def test_pipeline_with_a_corrupt_store_fails_closed(dev_keys: DevKeys, tmp_path: Path) -> None:
    path = tmp_path / "manifests.sqlite3"
    _garbage(path)
    out = tmp_path / "out"
    out.mkdir()
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=path)
    with pytest.raises(StoreError, match="vidgen store recover") as info:
        pipe.generate("x", num_frames=4, output=out / "o.mp4")
    assert str(path) in info.value.message
    assert list(out.iterdir()) == []


# --- the consent registry ------------------------------------------------------------------


class _Faces:
    """A stand-in analyzer: an image's first pixel picks its (synthetic) embedding."""

    def __init__(self) -> None:
        rng = np.random.default_rng(3)
        table = rng.normal(size=(8, 128)).astype(np.float32)
        self.table = table / np.linalg.norm(table, axis=1, keepdims=True)

    def detect(self, frame: np.ndarray) -> Sequence[Any]:
        return [(0, 0, 8, 8)]

    def embed(self, frame: np.ndarray, boxes: Sequence[Any]) -> Any:
        return self.table[[int(frame[0, 0, 0])] * len(boxes)]


def _face(k: int) -> np.ndarray:
    return np.full((8, 8, 3), k, np.uint8)


def _filled_registry(path: Path) -> _Faces:
    faces = _Faces()
    with ConsentRegistry(path) as reg:
        reg.enrol("vip", "Protected Person", [_face(1)], None, faces)
        reg.enrol("actor", "Consenting Actor", [_face(2)],
                  ConsentScope(frozenset({"edit"}), None, "legal"), faces)
    return faces


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_registry_is_a_typed_error_naming_path_and_recovery(tmp_path: Path,
                                                                    damage: str) -> None:
    path = tmp_path / "consent.sqlite3"
    _filled_registry(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    DAMAGE[damage](path)
    for call in (lambda: ConsentRegistry(path), lambda: check_registry(path)):
        with pytest.raises(StoreError) as info:
            call()
        assert str(path) in info.value.message
        assert "vidgen consent recover" in info.value.message or \
            "not a vidgen consent registry" in info.value.message


def test_pipeline_with_a_corrupt_registry_refuses_to_start(dev_keys: DevKeys,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "consent.sqlite3"
    _garbage(path)
    backend = GradientBackend()
    with pytest.raises(StoreError, match="consent registry"):
        Pipeline(backend, signer=dev_keys.signer(), consent_registry=path)
    assert backend.calls == 0


def test_recover_registry_keeps_valid_people_and_says_what_was_dropped(tmp_path: Path) -> None:
    path = tmp_path / "consent.sqlite3"
    faces = _filled_registry(path)
    with sqlite3.connect(path) as conn:  # one damaged record
        conn.execute("UPDATE people SET consent = '{\"tasks\": [\"teleport\"]}' "
                     "WHERE person_id = 'actor'")
    with pytest.raises(StoreError, match="damaged"):
        check_registry(path)
    result = recover_registry(path)
    assert result.people == 1 and result.references == 1 and result.moved_to is not None
    assert any("invalid" in d for d in result.dropped)
    with ConsentRegistry(path) as reg:
        (vip,) = reg.people()
        assert vip.person_id == "vip" and vip.protected
        match = reg.match(faces.table[[1]])[0]  # the protected face is still known
        assert match is not None and match.person_id == "vip"
    assert check_registry(path) == 1


def test_recover_registry_refuses_healthy_and_newer(tmp_path: Path) -> None:
    path = tmp_path / "consent.sqlite3"
    _filled_registry(path)
    with pytest.raises(StoreError, match="passes the integrity check"):
        recover_registry(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future')")
    with pytest.raises(StoreError, match="upgrade vidgen"):
        recover_registry(path, force=True)
    assert path.exists()


def test_cli_consent_check_and_recover(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "consent.sqlite3"
    _filled_registry(path)
    assert main(["consent", "check", "--registry", str(path)]) == 0
    assert "ok (2 people)" in capsys.readouterr().out
    _garbage(path)
    assert main(["consent", "check", "--registry", str(path)]) == 1
    assert "vidgen consent recover" in capsys.readouterr().err
    assert main(["consent", "recover", "--registry", str(path)]) == 0
    text = capsys.readouterr().out
    assert "moved to" in text and "re-enrol" in text
    assert main(["consent", "check", "--registry", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["people"] == 0


def test_forget_overwrites_the_embeddings_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "consent.sqlite3"
    faces = _Faces()
    with ConsentRegistry(path) as reg:
        reg.enrol("keep", "Keep", [_face(1)], None, faces)
        reg.enrol("gone", "Forget Me", [_face(5)], None, faces)
        secret = faces.table[5].astype("<f4").tobytes()
        reg.forget("gone")

    def on_disk() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir())

    assert secret not in on_disk() and b"Forget Me" not in on_disk()
    assert faces.table[1].astype("<f4").tobytes() in on_disk()


# --- read-only output directory, full disk -------------------------------------------------


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_read_only_output_directory_refused_before_any_work(
        dev_keys: DevKeys, out_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend = GradientBackend()
    pipe = Pipeline(backend, signer=dev_keys.signer(), store=tmp_path / "m.sqlite3")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == out_dir
                        else real_access(p, mode, *a, **k))
    with pytest.raises(errors.OutputError, match="not writable") as info:
        pipe.generate("x", output=out_dir / "o.mp4")
    assert str(out_dir) in info.value.message and info.value.stage == "output"
    assert backend.calls == 0 and list(out_dir.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs file permissions that bind the current user")
def test_read_only_output_directory_for_real(dev_keys: DevKeys, out_dir: Path,
                                             tmp_path: Path) -> None:
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=tmp_path / "m.sqlite3")
    out_dir.chmod(0o500)
    try:
        with pytest.raises(errors.OutputError, match="not writable"):
            pipe.generate("x", output=out_dir / "o.mp4")
    finally:
        out_dir.chmod(0o700)
    assert list(out_dir.iterdir()) == []


class _FullDisk:
    """A file whose writes stop half way with ENOSPC, as on a full disk."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def write(self, data: bytes) -> int:
        self._file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "copy"])
def test_disk_full_while_writing_the_signed_file(dev_keys: DevKeys, out_dir: Path,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 in_place: bool) -> None:
    from vidgen.provenance import c2pa as c2pa_module
    from vidgen.provenance import c2pa_inplace

    def full_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = builtins.open(file, mode, *args, **kwargs)  # noqa: SIM115 (closed by the caller)
        return _FullDisk(f) if ("w" in mode or "+" in mode) else f

    if not in_place:
        monkeypatch.setattr(c2pa_inplace, "available", lambda: False)
    monkeypatch.setattr(c2pa_inplace if in_place else c2pa_module, "open", full_open,
                        raising=False)
    store = ManifestStore(tmp_path / "m.sqlite3")
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=store)
    with pytest.raises(errors.OutputError, match="No space left on device") as info:
        pipe.generate("x", num_frames=4, output=out_dir / "o.mp4")
    assert info.value.stage == "sign" and str(out_dir) in info.value.message
    assert list(out_dir.iterdir()) == []  # no partial output, no temporaries
    assert store.count() == 0

