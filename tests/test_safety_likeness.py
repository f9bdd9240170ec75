"""Likeness checks and the consent registry.

Real faces come from scikit-image's bundled photos (the astronaut and the
cameraman); face-free photos (coffee, rocket, the cat) are the negative path.
Consent logic that needs many identities is tested on the registry with
synthetic embedding vectors through a stand-in analyzer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidgen.errors import ConfigurationError, LikenessViolation, StoreError, VidgenError
from vidgen.safety.consent import SCHEMA_VERSION, ConsentRegistry, ConsentScope, Match
from vidgen.safety.likeness import (
    FaceAnalyzer,
    FaceBox,
    LikenessPolicy,
    LikenessRefusal,
    LikenessScanner,
    enrol_from_files,
    sample_indices,
)
from vidgen.types import Task, Video

skdata = pytest.importorskip("skimage.data")

UTC = dt.UTC
I2V = frozenset({"image_to_video"})


def _c(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img)


class _Memo(FaceAnalyzer):
    """The real analyzer, remembering its answers per frame: the same photos are scanned
    by many tests, and the machine running them is small."""

    def __init__(self, inner: FaceAnalyzer) -> None:  # no super(): reuse inner's models
        self.inner = inner
        self.boxes: dict[bytes, list[FaceBox]] = {}
        self.vectors: dict[tuple[bytes, tuple[FaceBox, ...]], np.ndarray] = {}

    @staticmethod
    def _key(frame: Any) -> bytes:
        if not isinstance(frame, np.ndarray):
            return repr(frame).encode()
        return hashlib.sha256(frame.tobytes()).digest() + repr(
            (frame.shape, frame.dtype)).encode()

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        key = self._key(frame)
        if key not in self.boxes:
            self.boxes[key] = self.inner.detect(frame)
        return list(self.boxes[key])

    def embed(self, frame: np.ndarray, boxes: Sequence[FaceBox]) -> np.ndarray:
        key = (self._key(frame), tuple(boxes))
        if key not in self.vectors:
            self.vectors[key] = self.inner.embed(frame, boxes)
        return self.vectors[key].copy()


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return _Memo(FaceAnalyzer())


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """A head-and-shoulders crop (the full photo also has a name patch dlib takes for a face)."""
    return _c(skdata.astronaut()[0:265, 94:364])


@pytest.fixture(scope="module")
def astronaut_probe() -> np.ndarray:
    """A different view of the astronaut: wider crop, mirrored, brighter."""
    img = skdata.astronaut()[0:300, 60:400][:, ::-1].astype(np.int16) + 30
    return _c(np.clip(img, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def cameraman() -> np.ndarray:
    return _c(np.stack([skdata.camera()] * 3, axis=-1))


@pytest.fixture(scope="module")
def cameraman_probe(cameraman: np.ndarray) -> np.ndarray:
    return _c(np.clip(cameraman.astype(np.int16) + 25, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def no_faces() -> list[np.ndarray]:
    return [_c(skdata.coffee()), _c(skdata.rocket()), _c(skdata.chelsea())]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ConsentRegistry]:
    reg = ConsentRegistry(tmp_path / "consent.sqlite3")
    yield reg
    reg.close()


def image(frame: np.ndarray) -> Video:
    return Video(frame[None], fps=1.0)


def consent(tasks: frozenset[str] = I2V, until: dt.datetime | None = None) -> ConsentScope:
    return ConsentScope(tasks, until, "legal@example.org")


# --- the analyzer ----------------------------------------------------------------------


def test_torch_port_matches_dlib_embedding(analyzer: FaceAnalyzer, astronaut: np.ndarray,
                                           cameraman: np.ndarray) -> None:
    reference = FaceAnalyzer(embedder="dlib")
    for img in (astronaut, cameraman):
        boxes = analyzer.detect(img)
        assert len(boxes) == 1
        ours, theirs = analyzer.embed(img, boxes), reference.embed(img, boxes)
        assert ours.shape == (1, 128) and ours.dtype == np.float32
        assert np.abs(ours - theirs).max() < 1e-4


def test_detects_real_faces_and_nothing_in_face_free_photos(
        analyzer: FaceAnalyzer, astronaut: np.ndarray, no_faces: list[np.ndarray]) -> None:
    (box,) = analyzer.detect(astronaut)
    assert 60 <= box.width <= 130 and box.left >= 50 and box.right <= 220
    for img in no_faces:
        assert analyzer.detect(img) == []
    assert analyzer.embed(no_faces[0], []).shape == (0, 128)


def test_same_person_close_different_people_far(
        analyzer: FaceAnalyzer, astronaut: np.ndarray, astronaut_probe: np.ndarray,
        cameraman: np.ndarray) -> None:
    def vec(img: np.ndarray) -> np.ndarray:
        return analyzer.embed(img, analyzer.detect(img)[:1])[0]

    threshold = LikenessPolicy().threshold
    assert np.linalg.norm(vec(astronaut) - vec(astronaut_probe)) < threshold
    assert np.linalg.norm(vec(astronaut) - vec(cameraman)) > threshold


@pytest.mark.parametrize("frame", [
    np.zeros((64, 64, 3), np.float32),
    np.zeros((64, 64), np.uint8),
    np.zeros((64, 64, 4), np.uint8),
    np.zeros((0, 64, 3), np.uint8),
    [[0, 0, 0]],
])
def test_bad_frames_are_configuration_errors(analyzer: FaceAnalyzer, frame: Any) -> None:
    with pytest.raises(ConfigurationError):
        analyzer.detect(frame)
    with pytest.raises(ConfigurationError):
        analyzer.embed(frame, [FaceBox(0, 0, 10, 10, 1.0)])


def test_bad_analyzer_settings() -> None:
    with pytest.raises(ConfigurationError):
        FaceAnalyzer(embedder="onnx")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        FaceAnalyzer(detect_pixels=10)
    with pytest.raises(ConfigurationError):
        FaceAnalyzer(models="/nonexistent/models")


# --- enrolment -------------------------------------------------------------------------


def test_enrol_and_match_real_faces(registry: ConsentRegistry, analyzer: FaceAnalyzer,
                                    astronaut: np.ndarray, astronaut_probe: np.ndarray,
                                    cameraman: np.ndarray) -> None:
    registry.enrol("nasa-1", "Astronaut", [astronaut], consent(), analyzer)
    (person,) = registry.people()
    assert (person.person_id, person.references, person.protected) == ("nasa-1", 1, False)
    assert person.consent == consent()
    probe = analyzer.embed(astronaut_probe, analyzer.detect(astronaut_probe))
    other = analyzer.embed(cameraman, analyzer.detect(cameraman))
    found, missing = registry.match(np.concatenate([probe, other]))
    assert isinstance(found, Match) and found.person_id == "nasa-1"
    assert found.distance < LikenessPolicy().threshold
    assert missing is None


def test_enrol_refuses_unclear_references(registry: ConsentRegistry, analyzer: FaceAnalyzer,
                                          astronaut: np.ndarray, cameraman: np.ndarray,
                                          no_faces: list[np.ndarray]) -> None:
    with pytest.raises(ConfigurationError, match="0 faces"):
        registry.enrol("p1", "Nobody", [no_faces[0]], consent(), analyzer)
    with pytest.raises(ConfigurationError, match="2 faces"):
        registry.enrol("p1", "Twins", [_c(np.hstack([astronaut, astronaut]))], consent(),
                       analyzer)
    with pytest.raises(ConfigurationError, match="same person"):
        registry.enrol("p1", "Mixed", [astronaut, cameraman], consent(), analyzer)
    with pytest.raises(ConfigurationError, match="reference images"):
        registry.enrol("p1", "None", [], consent(), analyzer)
    with pytest.raises(ConfigurationError, match="person id"):
        registry.enrol("bad id!", "X", [astronaut], consent(), analyzer)
    assert registry.people() == []
    registry.enrol("p1", "Astronaut", [astronaut], None, analyzer)
    with pytest.raises(ConfigurationError, match="already enrolled person 'p1'"):
        registry.enrol("p2", "Same face", [astronaut], consent(), analyzer)


def test_enrol_from_files_unreadable_image_is_typed(registry: ConsentRegistry,
                                                    analyzer: FaceAnalyzer,
                                                    tmp_path: Path) -> None:
    bad = tmp_path / "face.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(VidgenError):
        enrol_from_files(registry, "p1", "X", [bad], consent(), analyzer)
    with pytest.raises(VidgenError):
        enrol_from_files(registry, "p1", "X", [tmp_path / "missing.png"], consent(), analyzer)


# --- scanning real faces -----------------------------------------------------------------


def test_consenting_person_allowed_within_scope(
        registry: ConsentRegistry, analyzer: FaceAnalyzer, astronaut: np.ndarray,
        astronaut_probe: np.ndarray) -> None:
    registry.enrol("nasa-1", "Astronaut", [astronaut], consent(), analyzer)
    summary = LikenessScanner(registry, analyzer)(image(astronaut_probe), where="input_image",
                                                  task=Task.IMAGE_TO_VIDEO)
    assert summary is not None
    assert summary["consenting_person_ids"] == ["nasa-1"]
    assert (summary["faces"], summary["unknown_faces"], summary["flagged"]) == (1, 0, False)
    assert json.loads(json.dumps(summary)) == summary


def test_protected_person_refused_and_second_identity_allowed(
        registry: ConsentRegistry, analyzer: FaceAnalyzer, astronaut: np.ndarray,
        astronaut_probe: np.ndarray, cameraman: np.ndarray,
        cameraman_probe: np.ndarray) -> None:
    registry.enrol("vip-7", "A Famous Name", [astronaut], None, analyzer)
    registry.enrol("crew-2", "Cameraman", [cameraman], consent(frozenset(Task)), analyzer)
    scanner = LikenessScanner(registry, analyzer)
    with pytest.raises(LikenessViolation) as info:
        scanner(image(astronaut_probe), where="input_image", task="image_to_video")
    err = info.value
    assert isinstance(err, LikenessRefusal) and err.stage == "likeness"
    assert (err.reason, err.person_id, err.frame, err.where) == (
        "protected", "vip-7", 0, "input_image")
    assert "vip-7" in str(err) and "Famous" not in str(err)
    summary = scanner(image(cameraman_probe), where="input_image", task="edit")
    assert summary is not None and summary["consenting_person_ids"] == ["crew-2"]


def test_consent_scope_task_expiry_and_revocation(
        registry: ConsentRegistry, analyzer: FaceAnalyzer, astronaut: np.ndarray,
        astronaut_probe: np.ndarray) -> None:
    until = dt.datetime(2030, 1, 1, tzinfo=UTC)
    registry.enrol("nasa-1", "Astronaut", [astronaut], consent(I2V, until), analyzer)
    clip = Video(np.stack([astronaut_probe] * 2), fps=8)
    before = LikenessScanner(registry, analyzer, clock=lambda: until - dt.timedelta(days=1))
    after = LikenessScanner(registry, analyzer, clock=lambda: until)

    assert before(clip, where="input_video", task="image_to_video") is not None
    with pytest.raises(LikenessRefusal, match="does not cover task 'edit'") as info:
        before(clip, where="input_video", task="edit")
    assert info.value.reason == "consent_task"
    with pytest.raises(LikenessRefusal, match="expired") as info:
        after(clip, where="input_video", task="image_to_video")
    assert info.value.reason == "consent_expired"

    registry.revoke("nasa-1")
    (person,) = registry.people()
    assert person.revoked_at is not None
    with pytest.raises(LikenessRefusal, match="revoked") as info:
        before(clip, where="output", task="image_to_video")
    assert info.value.reason == "consent_revoked"
    registry.forget("nasa-1")  # erased: the face is now simply unknown
    summary = before(clip, where="input_video", task="image_to_video")
    assert summary is not None and summary["unknown_faces"] == 2 and summary["flagged"]


def test_unknown_face_policies(registry: ConsentRegistry, analyzer: FaceAnalyzer,
                               astronaut_probe: np.ndarray) -> None:
    video = image(astronaut_probe)
    flagged = LikenessScanner(registry, analyzer)(video, where="input_image",
                                                  task="image_to_video")
    assert flagged is not None
    assert (flagged["unknown_faces"], flagged["flagged"], flagged["consenting_person_ids"]) \
        == (1, True, [])
    allowed = LikenessScanner(registry, analyzer, LikenessPolicy(unknown_faces="allow"))(
        video, where="input_image", task="image_to_video")
    assert allowed is not None and allowed["flagged"] is False
    refusing = LikenessScanner(registry, analyzer, LikenessPolicy(unknown_faces="refuse"))
    with pytest.raises(LikenessRefusal) as info:
        refusing(video, where="input_image", task="image_to_video")
    assert info.value.reason == "unknown_face" and info.value.person_id is None
    # generated outputs are full of faces that match nobody: not refused, not flagged
    out = refusing(video, where="output", task="text_to_video")
    assert out is not None and out["unknown_faces"] == 1 and out["flagged"] is False


def test_no_face_returns_none(registry: ConsentRegistry, analyzer: FaceAnalyzer,
                              astronaut: np.ndarray, no_faces: list[np.ndarray]) -> None:
    registry.enrol("vip-7", "Someone", [astronaut], None, analyzer)
    scanner = LikenessScanner(registry, analyzer, LikenessPolicy(unknown_faces="refuse"))
    for where in ("input_image", "input_video", "output"):
        assert scanner(image(no_faces[1]), where=where, task="edit") is None


class _Spy(FaceAnalyzer):
    """The real analyzer, recording which frames it was asked to look at."""

    def __init__(self, inner: FaceAnalyzer) -> None:  # no super(): reuse inner's models
        self.inner, self.seen = inner, []

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        self.seen.append(int(frame[0, 0, 0]))
        return self.inner.detect(frame)

    def embed(self, frame: np.ndarray, boxes: Sequence[FaceBox]) -> np.ndarray:
        return self.inner.embed(frame, boxes)


def test_output_frames_are_sampled(registry: ConsentRegistry, analyzer: FaceAnalyzer,
                                   astronaut: np.ndarray, astronaut_probe: np.ndarray,
                                   no_faces: list[np.ndarray]) -> None:
    assert sample_indices(100, 8) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert sample_indices(3, 8) == [0, 1, 2] and sample_indices(5, 1) == [0]
    registry.enrol("vip-7", "Someone", [astronaut], None, analyzer)
    h, w = astronaut_probe.shape[:2]
    frames = np.repeat(_c(no_faces[0][:h, :w])[None], 30, axis=0)
    frames[29] = astronaut_probe  # the protected face only in the last frame
    frames[:, 0, 0, 0] = np.arange(30)  # tag each frame for the spy
    spy = _Spy(analyzer)
    with pytest.raises(LikenessRefusal) as info:
        LikenessScanner(registry, spy)(Video(frames, fps=8), where="output",
                                       task="text_to_video")
    assert info.value.frame == 29 and info.value.reason == "protected"
    assert spy.seen == sample_indices(30, 8)
    # a face only in frames between the samples is not seen: sampling is a documented limit
    frames[29] = frames[0]
    frames[29, 0, 0, 0] = 29
    frames[13] = astronaut_probe
    frames[13, 0, 0, 0] = 13
    spy.seen.clear()
    assert LikenessScanner(registry, spy, LikenessPolicy(output_frames=4))(
        Video(frames, fps=8), where="output", task="text_to_video") is None
    assert spy.seen == [0, 10, 19, 29]


def test_scanner_argument_errors(registry: ConsentRegistry, analyzer: FaceAnalyzer,
                                 no_faces: list[np.ndarray]) -> None:
    scanner = LikenessScanner(registry, analyzer)
    video = image(no_faces[0])
    with pytest.raises(ConfigurationError):
        scanner(video, where="somewhere", task="edit")
    with pytest.raises(ConfigurationError):
        scanner(video, where="output", task="teleport")
    with pytest.raises(ConfigurationError):
        scanner(no_faces[0], where="output", task="edit")  # type: ignore[arg-type]
    for bad in ({"unknown_faces": "maybe"}, {"threshold": 0.0}, {"output_frames": 0}):
        with pytest.raises(ConfigurationError):
            LikenessPolicy(**bad)  # type: ignore[arg-type]


# --- consent logic on synthetic embeddings -----------------------------------------------


class _Vectors(FaceAnalyzer):
    """A stand-in analyzer: an image's first pixel picks its (synthetic) face embedding."""

    def __init__(self, table: np.ndarray) -> None:  # no models needed
        self.table = table

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        return [] if frame[0, 0, 0] == 255 else [FaceBox(0, 0, 8, 8, 1.0)]

    def embed(self, frame: np.ndarray, boxes: Sequence[FaceBox]) -> np.ndarray:
        return self.table[[int(frame[0, 0, 0])] * len(boxes)]


def _face(k: int) -> np.ndarray:
    return np.full((8, 8, 3), k, np.uint8)


@pytest.fixture
def vectors() -> np.ndarray:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(6, 128)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    near = base[0] + 0.02 * rng.normal(size=128).astype(np.float32)  # 1: look-alike of 0
    return np.concatenate([base, near[None]])


def test_match_picks_the_nearest_and_lists_all(registry: ConsentRegistry,
                                               vectors: np.ndarray) -> None:
    fake = _Vectors(vectors)
    registry.enrol("a", "A", [_face(0)], consent(), fake)
    registry.enrol("b", "B", [_face(2), _face(2)], None, fake)
    probe = vectors[[6, 2, 4]]
    first, second, third = registry.match(probe)
    assert first is not None and first.person_id == "a"
    assert second is not None and second.person_id == "b" and second.protected
    assert third is None
    both = registry.match_all(np.stack([vectors[0], vectors[0]]), threshold=1.99)
    assert [m.person_id for m in both[0]] == ["a", "b"]
    assert both[0][0].distance < both[0][1].distance
    with pytest.raises(ConfigurationError):
        registry.match(np.zeros((2, 64), np.float32))
    with pytest.raises(ConfigurationError):
        registry.match(np.full((1, 128), np.nan, np.float32))


def test_protected_look_alike_wins_over_consent(registry: ConsentRegistry,
                                                vectors: np.ndarray) -> None:
    fake = _Vectors(vectors)
    registry.enrol("fan", "Fan", [_face(6)], consent(frozenset(Task)), fake,
                   threshold=0.1)  # a looser enrolment check would refuse the look-alike
    registry.enrol("star", "Star", [_face(0)], None, fake, threshold=0.1)
    with pytest.raises(LikenessRefusal) as info:
        LikenessScanner(registry, fake)(image(_face(6)), where="input_image", task="edit")
    assert (info.value.reason, info.value.person_id) == ("protected", "star")


def test_revocation_seen_by_other_connections(tmp_path: Path, vectors: np.ndarray) -> None:
    path = tmp_path / "shared.sqlite3"
    fake = _Vectors(vectors)
    with ConsentRegistry(path) as admin, ConsentRegistry(path, readonly=True) as scanner_db:
        admin.enrol("a", "A", [_face(3)], consent(), fake)
        scanner = LikenessScanner(scanner_db, fake)
        assert scanner(image(_face(3)), where="input_image", task="image_to_video") is not None
        admin.revoke("a")
        with pytest.raises(LikenessRefusal, match="revoked"):
            scanner(image(_face(3)), where="input_image", task="image_to_video")
        with pytest.raises(StoreError, match="read-only"):
            scanner_db.revoke("a")
        with pytest.raises(ConfigurationError):
            admin.revoke("nobody")


def test_consent_scope_validation() -> None:
    scope = ConsentScope(["image_to_video", Task.EDIT], None, "me")  # type: ignore[arg-type]
    assert scope.tasks == frozenset({"image_to_video", "edit"})
    assert ConsentScope("edit", None, "me").tasks == frozenset({"edit"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown task"):
        ConsentScope(frozenset({"teleport"}), None, "me")
    with pytest.raises(ConfigurationError, match="at least one task"):
        ConsentScope(frozenset(), None, "me")
    with pytest.raises(ConfigurationError, match="timezone"):
        ConsentScope(I2V, dt.datetime(2030, 1, 1), "me")
    with pytest.raises(ConfigurationError, match="granted"):
        ConsentScope(I2V, None, " ")


# --- the registry file -------------------------------------------------------------------


def test_registry_file_wal_schema_and_persistence(tmp_path: Path, vectors: np.ndarray) -> None:
    path = tmp_path / "deep" / "consent.sqlite3"
    with ConsentRegistry(path) as reg:
        assert reg.journal_mode() == "wal" and reg.schema_version() == SCHEMA_VERSION
        reg.enrol("a", "A", [_face(1)], consent(), _Vectors(vectors))
        reg.enrol("p", "P", [_face(2)], None, _Vectors(vectors))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM face_references").fetchone() == (2,)
    with ConsentRegistry(path) as reg:
        people = {p.person_id: p for p in reg.people()}
        assert people["a"].consent == consent() and people["p"].protected
    reg.close()  # closing twice is fine; using a closed registry is a StoreError
    with pytest.raises(StoreError, match="closed"):
        reg.people()


def test_default_location_from_environment(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDGEN_CONSENT_DB", str(tmp_path / "env.sqlite3"))
    with ConsentRegistry() as reg:
        assert reg.path == tmp_path / "env.sqlite3"
    assert (tmp_path / "env.sqlite3").exists()


def test_corrupt_or_foreign_registry_is_a_store_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(os.urandom(8192))
    with pytest.raises(StoreError, match="corrupt"):
        ConsentRegistry(garbage)
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE things (x)")
    with pytest.raises(StoreError, match="not a vidgen consent registry"):
        ConsentRegistry(foreign)
    newer = tmp_path / "newer.sqlite3"
    ConsentRegistry(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future')")
    with pytest.raises(StoreError, match="newer"):
        ConsentRegistry(newer)
    with pytest.raises(StoreError, match="does not exist"):
        ConsentRegistry(tmp_path / "missing.sqlite3", readonly=True)


def test_damaged_record_is_a_store_error(tmp_path: Path, vectors: np.ndarray) -> None:
    path = tmp_path / "consent.sqlite3"
    with ConsentRegistry(path) as reg:
        reg.enrol("a", "A", [_face(1)], consent(), _Vectors(vectors))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE people SET consent = '{\"tasks\": [\"teleport\"]}'")
    with ConsentRegistry(path) as reg, pytest.raises(StoreError, match="damaged"):
        reg.people()
