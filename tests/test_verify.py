"""Round trips through vidgen.verify: trusted / valid / invalid / absent / error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import vidgen
from vidgen.cli import main
from vidgen.pipeline import Pipeline
from vidgen.provenance.keys import DevKeys
from vidgen.types import Video

from .mp4boxes import flip_byte_in_mdat, strip_c2pa


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, dev_keys: DevKeys) -> Path:
    out = tmp_path_factory.mktemp("signed") / "clip.mp4"
    pipe = Pipeline.from_backend("scene", signer=dev_keys.signer())
    pipe.generate("a red circle moving right", num_frames=12, seed=3, output=out)
    return out


def test_trusted_with_dev_anchor(signed: Path, anchors: Path) -> None:
    r = vidgen.verify(signed, trust=anchors)
    assert r.c2pa is not None and r.c2pa.state == "trusted"
    assert r.verdict == "confirmed" and r.exit_code == 0
    assert r.c2pa.ai_generated is True
    assert r.c2pa.signer == "vidgen development signer"
    assert r.c2pa.claim_generator == f"vidgen/{vidgen.__version__}"
    assert r.c2pa.codes == ()


def test_valid_but_untrusted_without_anchor(signed: Path) -> None:
    r = vidgen.verify(signed)
    assert r.c2pa is not None and r.c2pa.state == "valid"
    assert "signingCredential.untrusted" in r.c2pa.codes
    assert r.c2pa.explanation and "not" in r.c2pa.explanation and "tamper" in r.c2pa.explanation
    assert r.verdict == "unconfirmed" and r.exit_code == 1


def test_flipped_video_byte_is_invalid(signed: Path, anchors: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mp4"
    flip_byte_in_mdat(signed, bad)
    r = vidgen.verify(bad, trust=anchors)
    assert r.c2pa is not None and r.c2pa.state == "invalid"
    assert "assertion.bmffHash.mismatch" in r.c2pa.codes
    assert r.verdict == "tampered"
    assert main(["verify", str(bad), "--json", "--trust", str(anchors)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["c2pa"]["state"] == "invalid"
    assert "assertion.bmffHash.mismatch" in report["c2pa"]["codes"]


def test_stripped_manifest_is_recovered_through_the_watermark(signed: Path,
                                                              tmp_path: Path) -> None:
    stripped = tmp_path / "stripped.mp4"
    assert strip_c2pa(signed, stripped) == 1
    assert Video.read(stripped).num_frames == 12  # still a playable file
    r = vidgen.verify(stripped)
    assert r.c2pa is not None and r.c2pa.state == "absent"
    assert r.watermark is not None and r.watermark.detected
    assert r.recovered_manifest is not None
    assert r.recovered_manifest["title"] == "clip.mp4"
    assert r.verdict == "confirmed" and r.exit_code == 0


def test_stripped_manifest_without_key_or_record_is_unconfirmed(
        signed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stripped = tmp_path / "stripped.mp4"
    strip_c2pa(signed, stripped)
    r = vidgen.verify(stripped, store=tmp_path / "empty.sqlite3")  # mark found, id unknown
    assert r.watermark is not None and r.watermark.detected and r.recovered_manifest is None
    assert r.verdict == "unconfirmed" and r.exit_code == 1
    assert r.watermark.explanation and "not in the manifest store" in r.watermark.explanation
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY")
    monkeypatch.setenv("VIDGEN_KEYS_DIR", str(tmp_path / "no-keys"))
    r = vidgen.verify(stripped)  # no key: the watermark cannot be checked
    assert r.watermark is not None and not r.watermark.checked
    assert r.verdict == "unconfirmed"


def test_reencoded_file_loses_the_manifest(signed: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    reencoded = tmp_path / "re.mp4"
    Video.read(signed).write(reencoded, crf=28)
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY")  # C2PA only
    monkeypatch.setenv("VIDGEN_KEYS_DIR", str(tmp_path / "no-keys"))
    r = vidgen.verify(reencoded)
    assert r.c2pa is not None and r.c2pa.state == "absent"
    assert r.exit_code == 1


def test_json_contract(signed: Path, anchors: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(signed), "--json", "--trust", str(anchors)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"file", "sha256", "c2pa", "watermark", "recovered_manifest", "verdict"}
    assert set(report["c2pa"]) >= {"state", "signer", "claim_generator", "codes", "ai_generated"}
    assert set(report["watermark"]) >= {"detected", "payload", "p_value", "bits_matched",
                                        "frames_used"}
    assert report["verdict"] == "confirmed"
    assert len(report["sha256"]) == 64


def test_unprocessable_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for f in (garbage, empty, tmp_path / "missing.mp4", tmp_path):
        r = vidgen.verify(f)
        assert r.verdict == "error" and r.exit_code == 2, f
        assert main(["verify", str(f)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_multiple_files_worst_exit_code(signed: Path, anchors: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    stripped = tmp_path / "s.mp4"
    strip_c2pa(signed, stripped)
    assert main(["verify", str(signed), str(stripped), "--trust", str(anchors), "--json",
                 "--store", str(tmp_path / "empty.sqlite3")]) == 1
    reports = json.loads(capsys.readouterr().out)
    assert [r["verdict"] for r in reports] == ["confirmed", "unconfirmed"]
    assert main(["verify", str(signed), str(stripped), "--trust", str(anchors)]) == 0


def test_bad_trust_file_is_an_error(signed: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "anchors.pem"
    bad.write_text("nope")
    assert main(["verify", str(signed), "--trust", str(bad)]) == 2
    assert "no valid PEM certificate" in capsys.readouterr().err


def test_untrusted_other_ca(signed: Path, tmp_path: Path) -> None:
    from vidgen.provenance.keys import init_dev_keys

    other = init_dev_keys(tmp_path / "other", organization="someone else")
    r = vidgen.verify(signed, trust=other.ca_cert)
    assert r.c2pa is not None and r.c2pa.state == "valid"
    assert r.verdict == "unconfirmed"


def test_copy_keeps_provenance(signed: Path, anchors: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    shutil.copy(signed, copy)
    assert vidgen.verify(copy, trust=anchors).verdict == "confirmed"
    frames = Video.read(copy).frames
    assert frames.shape == (12, 64, 64, 3) and frames.dtype == np.uint8
