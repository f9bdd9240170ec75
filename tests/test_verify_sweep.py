"""Verification sweeps: directories, the process pool, JSONL/HTML reports, resume, kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidgen.cli import main
from vidgen.pipeline import Pipeline
from vidgen.provenance import sweep as sweep_module
from vidgen.provenance.keys import DevKeys, load_trust_anchors
from vidgen.provenance.report_html import render_html
from vidgen.provenance.sweep import (
    SweepSettings,
    collect_files,
    load_jsonl,
    report_from_dict,
    sweep,
)
from vidgen.types import Video

from .mp4boxes import flip_byte_in_mdat

ROOT = Path(__file__).resolve().parent.parent
# A hostile name: the folder "<script>alert(1)<" holds "script>.mp4".
EVIL = "<script>alert(1)</script>.mp4"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, dev_keys: DevKeys) -> dict[str, Path]:
    src = tmp_path_factory.mktemp("sweep-src")
    signed = src / "signed.mp4"
    Pipeline.from_backend("scene", signer=dev_keys.signer()).generate(
        "a red circle moving right", num_frames=6, width=32, height=32, seed=2, output=signed)
    tampered = src / "tampered.mp4"
    flip_byte_in_mdat(signed, tampered, offset_in_mdat=32)
    plain = src / "plain.mp4"
    rng = np.random.default_rng(0)
    Video(rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), fps=8).write(plain, crf=35)
    garbage = src / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01garbage" * 50)
    return {"signed": signed, "tampered": tampered, "plain": plain, "garbage": garbage}


def _tree(root: Path, clips: dict[str, Path]) -> Path:
    """A folder to sweep: each verdict, a nested copy, a hostile name, files to skip."""
    root.mkdir()
    shutil.copy(clips["signed"], root / "a_signed.mp4")
    shutil.copy(clips["tampered"], root / "b_tampered.MOV")  # suffixes match in any case
    shutil.copy(clips["plain"], root / "c_plain.m4v")
    shutil.copy(clips["garbage"], root / "d_garbage.mp4")
    (root / "<script>alert(1)<").mkdir()
    shutil.copy(clips["signed"], root / EVIL)
    (root / "notes.txt").write_text("not a video")
    (root / "link.mp4").symlink_to(clips["signed"])  # links inside a folder: not followed
    return root


EXPECTED = {EVIL: "confirmed", "a_signed.mp4": "confirmed", "b_tampered.MOV": "tampered",
            "c_plain.m4v": "unconfirmed", "d_garbage.mp4": "error"}  # in walking order


def _rel(root: Path, record: dict[str, Any]) -> str:
    return Path(record["file"]).relative_to(root).as_posix()


def test_collect_files_walks_sorted_by_suffix_without_links(tmp_path: Path,
                                                           clips: dict[str, Path]) -> None:
    root = _tree(tmp_path / "v", clips)
    (tmp_path / "empty").mkdir()
    files, empty = collect_files([root, root / "a_signed.mp4", tmp_path / "missing.mp4",
                                  tmp_path / "empty"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        *(f"v/{name}" for name in EXPECTED), "missing.mp4"]  # a_signed once
    assert empty == [tmp_path / "empty"]


def test_sweep_cli_reports_and_exit_code(tmp_path: Path, clips: dict[str, Path],
                                         anchors: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path / "v", clips)
    jsonl, html_path = tmp_path / "r.jsonl", tmp_path / "r.html"
    code = main(["verify", str(root), "--trust", str(anchors), "--jsonl", str(jsonl),
                 "--html", str(html_path), "--workers", "2"])
    assert code == 2  # one file could not be processed
    text = capsys.readouterr().out
    assert "summary" in text and "tampered" in text
    records, torn = load_jsonl(jsonl)
    assert not torn
    assert {_rel(root, r): r["verdict"] for r in records} == EXPECTED
    # Each line is exactly what `vidgen verify FILE --json` prints for that file.
    by_file = {r["file"]: r for r in records}
    for name in ("a_signed.mp4", "d_garbage.mp4"):
        single = str(root / name)
        main(["verify", single, "--json", "--trust", str(anchors)])
        assert json.loads(capsys.readouterr().out) == by_file[single]
    page = html_path.read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("data:image/jpeg;base64,") == 4  # every file but the garbage
    assert "script-src" not in page and "default-src 'none'" in page


@pytest.mark.parametrize(("names", "code"), [(["a_signed.mp4"], 0),
                                              (["a_signed.mp4", "c_plain.m4v"], 1),
                                              (["b_tampered.MOV"], 1),
                                              (["a_signed.mp4", "d_garbage.mp4"], 2)])
def test_exit_codes_over_a_folder(tmp_path: Path, clips: dict[str, Path], anchors: Path,
                                  names: list[str], code: int,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    full = _tree(tmp_path / "all", clips)
    root = tmp_path / "v"
    root.mkdir()
    for name in names:
        shutil.copy(full / name, root / name)
    assert main(["verify", str(root), "--trust", str(anchors), "-q", "--workers", "0"]) == code
    summary = capsys.readouterr().out
    assert "total" in summary


def test_empty_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path)]) == 2
    assert "no video files" in capsys.readouterr().err


def test_json_array_for_several_files(tmp_path: Path, clips: dict[str, Path], anchors: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path / "v", clips)
    assert main(["verify", str(root / "a_signed.mp4"), str(root / "c_plain.m4v"), "--json",
                 "--trust", str(anchors)]) == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # stdout stays pure JSON; the table goes to stderr
    assert [r["verdict"] for r in data] == ["confirmed", "unconfirmed"]
    assert "summary" in captured.err


def test_resume_repairs_a_torn_line_and_keeps_one_record_per_file(
        tmp_path: Path, clips: dict[str, Path], anchors: Path) -> None:
    root = _tree(tmp_path / "v", clips)
    files, _ = collect_files([root])
    settings = SweepSettings(trust_anchors_pem=load_trust_anchors(anchors))
    jsonl = tmp_path / "r.jsonl"
    clean = sweep(files, settings, workers=0, jsonl=jsonl)
    assert clean.verified == len(files) and clean.exit_code == 2
    lines = jsonl.read_bytes().splitlines(keepends=True)
    # A torn last line, a stale duplicate, and a file changed since its record.
    torn = b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]
    stale = json.loads(lines[0])
    stale["verdict"] = "bogus"
    jsonl.write_bytes(json.dumps(stale).encode() + b"\n" + torn)
    shutil.copy(clips["plain"], root / "a_signed.mp4")
    resumed = sweep(files, settings, workers=2, jsonl=jsonl, resume=True)
    # Re-verified: the torn record's file and the changed file; the rest are reused.
    assert resumed.verified == 2 and resumed.reused == len(files) - 2
    records, torn_now = load_jsonl(jsonl)
    assert not torn_now and sorted(r["file"] for r in records) == sorted(map(str, files))
    verdicts = {_rel(root, r): r["verdict"] for r in records}
    assert verdicts == {**EXPECTED, "a_signed.mp4": "unconfirmed"}
    assert [r["verdict"] for r in resumed.records] == [verdicts[_rel(root, r)]
                                                       for r in resumed.records]


def test_resume_refuses_a_file_that_is_not_a_report(tmp_path: Path, clips: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text("precious\nnot json\n")
    assert main(["verify", str(clips["plain"]), "--jsonl", str(report), "--resume"]) == 2
    assert "refusing to resume" in capsys.readouterr().err
    assert report.read_text() == "precious\nnot json\n"


def _crash_on_marker(task: Any) -> Any:
    if "crashme" in task.path:
        os._exit(3)  # what a segfault in a native parser looks like to the pool
    return _ORIGINAL_RUN(task)


_ORIGINAL_RUN = sweep_module._run_task


def test_a_file_that_kills_its_worker_gets_an_error_record(
        tmp_path: Path, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["a.mp4", "b.mp4", "crashme.mp4", "c.mp4", "d.mp4"]
    for name in names:
        shutil.copy(clips["plain"], tmp_path / name)
    monkeypatch.setattr(sweep_module, "_run_task", _crash_on_marker)  # forked workers see it
    outcome = sweep([tmp_path / n for n in names], SweepSettings(), workers=2,
                    jsonl=tmp_path / "r.jsonl")
    verdicts = [r["verdict"] for r in outcome.records]
    assert verdicts == ["unconfirmed", "unconfirmed", "error", "unconfirmed", "unconfirmed"]
    assert outcome.crashed == 1 and "process died" in outcome.records[2]["error"]
    assert outcome.records[2]["sha256"]  # so --resume does not crash on it again
    assert len(load_jsonl(tmp_path / "r.jsonl")[0]) == len(names)


_BOOT = ("import sys; from tests.watermark_double import TEST_METHOD, BlockTestWatermark; "
         "from vidgen.provenance.watermark import register_method; "
         "register_method(TEST_METHOD, BlockTestWatermark); from vidgen.cli import main; "
         "sys.exit(main(sys.argv[1:]))")


def _cli(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _BOOT, *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_kill_9_midway_then_resume_equals_a_clean_run(tmp_path: Path, clips: dict[str, Path],
                                                      anchors: Path) -> None:
    root = tmp_path / "v"
    root.mkdir()
    kinds = ["signed", "tampered", "plain", "garbage"]
    for i in range(160):  # hard links: many files, no disk
        os.link(clips[kinds[i % 4]], root / f"{i:03d}_{kinds[i % 4]}.mp4")
    files, _ = collect_files([root])
    args = ["verify", str(root), "--trust", str(anchors), "--workers", "2", "-q"]
    killed = tmp_path / "killed.jsonl"
    proc = _cli([*args, "--jsonl", str(killed)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if killed.exists() and killed.read_bytes().count(b"\n") >= 8:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    prefix, torn = load_jsonl(killed)  # a valid prefix (at most a torn last line)
    assert 8 <= len(prefix) < len(files)
    assert main([*args, "--jsonl", str(killed), "--resume"]) == 2
    resumed, torn = load_jsonl(killed)
    assert not torn
    assert sorted(r["file"] for r in resumed) == sorted(map(str, files))  # one each
    clean_path = tmp_path / "clean.jsonl"
    assert main([*args, "--jsonl", str(clean_path)]) == 2
    clean, _ = load_jsonl(clean_path)
    key = {r["file"]: r for r in clean}
    assert {r["file"]: r for r in resumed} == key
    assert {r["verdict"] for r in clean} == {"confirmed", "tampered", "unconfirmed", "error"}


def test_html_escapes_everything_from_the_file() -> None:
    evil = '<img src=x onerror="alert(1)">'
    record = {"file": f"/v/{evil}.mp4", "sha256": "ab" * 32, "verdict": "tampered",
              "error": None, "recovered_manifest": {"title": evil},
              "c2pa": {"state": "invalid", "signer": evil, "issuer": evil,
                       "claim_generator": evil, "codes": [evil], "ai_generated": True,
                       "explanation": evil},
              "watermark": {"checked": True, "detected": True, "payload": 5, "p_value": 1e-9,
                            "bits_matched": 32, "frames_used": 4, "method": evil,
                            "matches_manifest": False, "explanation": evil}}
    page = render_html([record], {f"/v/{evil}.mp4": ("image/png", b"\x89PNG")})
    assert "<img src=x" not in page and "onerror=\"" not in page
    assert page.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") >= 8
    assert report_from_dict(record).c2pa is not None  # the record round-trips


def test_a_file_name_that_is_not_utf8(tmp_path: Path, clips: dict[str, Path]) -> None:
    name = os.fsdecode(b"\xff\xfe<b>.mp4")  # surrogate escapes in the str
    shutil.copy(clips["plain"], tmp_path / name)
    jsonl, page = tmp_path / "r.jsonl", tmp_path / "r.html"
    assert main(["verify", str(tmp_path), "--jsonl", str(jsonl), "--html", str(page),
                 "--workers", "0", "-q"]) == 1
    (record,), _ = load_jsonl(jsonl)
    assert record["file"] == str(tmp_path / name) and record["verdict"] == "unconfirmed"
    assert "\\udcff\\udcfe&lt;b&gt;.mp4" in page.read_text()


_AFTER_TORCH = """
import sys, torch
from pathlib import Path
from vidgen.provenance.sweep import SweepSettings, sweep

def big_op():  # a parallel region in the worker, as a large clip's watermark check opens
    torch.ones(1 << 22).sum()

torch.set_num_threads(2)
big_op()  # this process has an OpenMP thread team before the pool forks
outcome = sweep([Path(p) for p in sys.argv[1:]], SweepSettings(), workers=1, worker_init=big_op)
print([r["verdict"] for r in outcome.records])
"""


def test_a_sweep_after_torch_work_in_the_caller_does_not_hang(clips: dict[str, Path]) -> None:
    # libgomp is not fork-safe: a forked worker with more than one OpenMP thread waited
    # forever on the parent's team (workers now use one torch thread).
    proc = subprocess.run([sys.executable, "-c", _AFTER_TORCH, str(clips["plain"]),
                           str(clips["garbage"])], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "VIDGEN_WATERMARK_METHOD": "vidgen"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['unconfirmed', 'error']"
