"""Property test: verify on mutated / truncated / spliced signed MP4s.

verify never raises; a file it cannot process gets verdict "error" (exit 2);
a mutation of the hashed media is never "confirmed" by its manifest (only, if
the watermark survives, by recovery from the manifest store); each case stays within a
time budget and memory stays bounded.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidgen
from vidgen.pipeline import Pipeline
from vidgen.provenance.keys import DevKeys, load_trust_anchors

from .mp4boxes import C2PA_UUID, top_level_boxes

VERDICTS = {"confirmed", "unconfirmed", "tampered", "error"}


@pytest.fixture(scope="module")
def signed_bytes(tmp_path_factory: pytest.TempPathFactory, dev_keys: DevKeys) -> bytes:
    out = tmp_path_factory.mktemp("fuzz-src") / "clip.mp4"
    Pipeline.from_backend("scene", signer=dev_keys.signer()).generate(
        "a red circle moving right", num_frames=6, width=32, height=32, output=out)
    return out.read_bytes()


@st.composite
def mutations(draw: st.DrawFn, n: int) -> tuple[str, list[tuple[int, int]], int]:
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "zero", "dup_box"]))
    edits = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 255)),
                          min_size=1, max_size=8))
    cut = draw(st.integers(0, n - 1))
    return kind, edits, cut


def _mutate(data: bytes, kind: str, edits: list[tuple[int, int]], cut: int) -> bytes:
    buf = bytearray(data)
    if kind == "flip":
        for pos, x in edits:
            buf[pos] ^= x
    elif kind == "truncate":
        del buf[cut:]
    elif kind == "insert":
        buf[cut:cut] = bytes(x for _, x in edits)
    elif kind == "zero":
        for pos, _ in edits:
            buf[pos] = 0
    elif kind == "dup_box":
        boxes = top_level_boxes(data)
        _, off, size = boxes[cut % len(boxes)]
        buf[off:off] = data[off:off + size]
    return bytes(buf)


# Top-level boxes the C2PA BMFF hash excludes by design (c2pa.hash.bmff.v3 exclusions).
_EXCLUDED = {"ftyp", "free", "skip", "mfra"}


def _hashed(data: bytes, pos: int) -> bool:
    """Whether byte ``pos`` is covered by the manifest's hard binding."""
    for kind, off, size in top_level_boxes(data):
        if off <= pos < off + size:
            is_manifest = kind == "uuid" and data[off + 8:off + 24] == C2PA_UUID
            return not is_manifest and kind not in _EXCLUDED
    return False


def _last_hashed(data: bytes) -> int:
    return max(p for p in range(len(data)) if _hashed(data, p))


def _check(data: bytes, mutated: bytes, kind: str, edits: list[tuple[int, int]], cut: int,
           path: Path, anchors: str) -> None:
    path.write_bytes(mutated)
    start = time.perf_counter()
    report = vidgen.verify(path, trust_anchors_pem=anchors)
    assert time.perf_counter() - start < 10.0
    assert report.verdict in VERDICTS
    assert report.exit_code in (0, 1, 2)
    if report.verdict == "error":
        assert report.error
    touched_media = (
        (kind in {"flip", "zero"} and any(
            _hashed(data, p) and mutated[p] != data[p] for p, _ in edits))
        or (kind == "truncate" and cut <= _last_hashed(data))
        or (kind == "insert" and _hashed(data, cut))
    )
    if touched_media and mutated != data:
        # The manifest never vouches for changed media. A watermark that survived the
        # change may still recover the original manifest: it is meant to survive edits.
        recovered = (report.c2pa is not None and report.c2pa.state == "absent"
                     and report.recovered_manifest is not None)
        assert report.verdict != "confirmed" or recovered, (kind, edits, cut)


def _run_case(signed_bytes: bytes, dev_keys: DevKeys, tmp_path: Path,
              data: st.DataObject) -> None:
    anchors = load_trust_anchors(dev_keys.ca_cert)
    assert anchors is not None
    kind, edits, cut = data.draw(mutations(len(signed_bytes)))
    mutated = _mutate(signed_bytes, kind, edits, cut)
    _check(signed_bytes, mutated, kind, edits, cut, tmp_path / "m.mp4", anchors)


_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=300, deadline=None, suppress_health_check=_HEALTH)
@given(data=st.data())
def test_verify_mutated_mp4(signed_bytes: bytes, dev_keys: DevKeys, tmp_path: Path,
                            data: st.DataObject) -> None:
    _run_case(signed_bytes, dev_keys, tmp_path, data)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=_HEALTH)
@given(data=st.data())
def test_verify_mutated_mp4_long(signed_bytes: bytes, dev_keys: DevKeys, tmp_path: Path,
                                 data: st.DataObject) -> None:
    _run_case(signed_bytes, dev_keys, tmp_path, data)


def test_memory_stays_bounded(signed_bytes: bytes, dev_keys: DevKeys, tmp_path: Path) -> None:
    """A box that claims to be 4 GiB long must not make verify allocate 4 GiB."""
    import struct

    anchors = load_trust_anchors(dev_keys.ca_cert)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for claimed in (2**32 - 1, 2**31, 10**9):
        bad = bytearray(signed_bytes)
        for kind, off, _size in top_level_boxes(signed_bytes):
            if kind in {"moov", "uuid"}:
                bad[off:off + 4] = struct.pack(">I", claimed)
        path = tmp_path / "huge.mp4"
        path.write_bytes(bytes(bad))
        report = vidgen.verify(path, trust_anchors_pem=anchors)
        assert report.verdict in {"error", "tampered", "unconfirmed"}
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 512 * 1024
