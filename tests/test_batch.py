"""vidgen batch: the job format, the finished rule, resume, faults (fast; scene backend)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidgen.batch import (
    BatchLocked,
    BatchOutputError,
    DuplicateJobId,
    JobFormatError,
    PipelineConfig,
    UnsafeJobId,
    load_results,
    parse_job_lines,
    parse_jobs,
    run_batch,
)
from vidgen.batch.outdir import LOCK_FILE, temporaries
from vidgen.provenance.keys import DevKeys
from vidgen.provenance.watermark import read_key_file
from vidgen.types import Task

from .batch_helpers import PROMPTS, assert_complete, register_test_backends, write_jobs

REFUSED_PROMPT = "a man stabbing a woman, blood everywhere"


@pytest.fixture
def test_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper backends (and ``gradient``) registered in this process for one test."""
    from vidgen.backends import base

    from .conftest import GradientBackend

    monkeypatch.setattr(base, "_registered", dict(base._registered))
    register_test_backends()
    base.register_backend("gradient", GradientBackend)


@pytest.fixture
def config(dev_keys: DevKeys, tmp_path: Path) -> PipelineConfig:
    """The real watermark (workers cannot see the test double), the session's dev keys."""
    return PipelineConfig(keys_dir=str(dev_keys.directory), watermark_method="vidgen",
                          store=str(tmp_path / "store.sqlite3"), crf=23, preset="ultrafast")


def _lines(*objs: dict[str, Any]) -> list[str]:
    return [json.dumps(o) for o in objs]


# --- the job format ----------------------------------------------------------------------


def test_parse_every_task(tmp_path: Path) -> None:
    jobs = parse_job_lines(_lines(
        {"id": "t2v", "prompt": "a red circle"},
        {"id": "i2v", "task": "image_to_video", "prompt": "p", "image": "in/a.png"},
        {"id": "edit", "task": "edit", "prompt": "p", "video": "/abs/v.mp4", "strength": 0.5},
        {"id": "sty", "task": "stylize", "prompt": "p", "video": "v.mp4"},
        {"id": "ext", "task": "extend", "prompt": "p", "video": "v.mp4", "num_frames": 8},
        {"id": "loop", "task": "loop", "prompt": "p", "options": {"loop_frames": 4}},
        {"id": "loop2", "task": "loop", "prompt": "p", "video": "v.mp4"},
        {"id": "inp", "task": "inpaint", "prompt": "p", "video": "v.mp4", "mask": "m.npy"},
        {"id": "cine", "task": "cinemagraph", "prompt": "p", "image": "a.png",
         "mask": "m.PNG"},
        {"id": "story", "task": "storyboard", "prompts": ["one", "two"], "num_frames": 8,
         "backend": "dit", "backend_options": {"preset": "tiny"}},
    ), base_dir=tmp_path, default_backend="scene")
    by_id = {j.id: j for j in jobs}
    assert [j.line for j in jobs] == list(range(1, 11))
    assert by_id["t2v"].task == Task.TEXT_TO_VIDEO and by_id["t2v"].backend == "scene"
    assert by_id["i2v"].image == tmp_path / "in" / "a.png"
    assert by_id["edit"].video == Path("/abs/v.mp4") and by_id["edit"].strength == 0.5
    assert by_id["story"].prompts == ("one", "two") and by_id["story"].prompt == "one"
    assert by_id["story"].backend_options == {"preset": "tiny"}
    assert by_id["loop"].options == {"loop_frames": 4}
    # the job hash is stable and changes with the job
    again = parse_job_lines(_lines({"prompt": "a red circle", "id": "t2v"}), base_dir=tmp_path,
                            default_backend="scene")[0]
    assert again.spec_sha256 == by_id["t2v"].spec_sha256
    other = parse_job_lines(_lines({"id": "t2v", "prompt": "a red circle", "seed": 1}),
                            base_dir=tmp_path, default_backend="scene")[0]
    assert other.spec_sha256 != by_id["t2v"].spec_sha256


@pytest.mark.parametrize("bad_id", [
    "../x", "a/b", "a\\b", "/etc/passwd", "a\x00b", ".hidden", ".", "..", "CON", "con.mp4",
    "LPT1", "x" * 129, "", "end.", "-flag", "sp ace", "é", 5, None,
])
def test_unsafe_ids_are_refused_with_line_numbers(bad_id: object) -> None:
    with pytest.raises(UnsafeJobId) as info:
        parse_job_lines(["", _lines({"id": "ok-1", "prompt": "p"})[0],
                         json.dumps({"id": bad_id, "prompt": "p"})], default_backend="scene")
    assert info.value.line == 3 and ":3:" in info.value.message


def test_format_errors_name_the_line(tmp_path: Path) -> None:
    cases: list[tuple[str, type[JobFormatError], str]] = [
        ('{"id": "a", "prompt": "p", "sede": 1}', JobFormatError, "unknown key"),
        ('{"id": "a", "prompt": "p"', JobFormatError, "not valid JSON"),
        ('["a"]', JobFormatError, "JSON object"),
        ('{"prompt": "p"}', JobFormatError, "needs an 'id'"),
        ('{"id": "a"}', JobFormatError, "needs a 'prompt'"),
        ('{"id": "a", "prompt": "p", "task": "dance"}', JobFormatError, "unknown task"),
        ('{"id": "a", "prompt": "p", "task": "edit"}', JobFormatError, "needs 'video'"),
        ('{"id": "a", "prompt": "p", "image": "x.png"}', JobFormatError, "takes no 'image'"),
        ('{"id": "a", "prompt": "p", "task": "inpaint", "video": "v.mp4", "mask": "m.jpg"}',
         JobFormatError, ".npy"),
        ('{"id": "a", "prompt": "p", "strength": 0.5}', JobFormatError, "no 'strength'"),
        ('{"id": "a", "prompt": "p", "seed": -1}', JobFormatError, "'seed'"),
        ('{"id": "a", "prompt": "p", "num_frames": true}', JobFormatError, "'num_frames'"),
        ('{"id": "a", "prompt": "p", "fps": NaN}', JobFormatError, "not valid JSON"),
        ('{"id": "a", "prompt": "p", "id": "b"}', JobFormatError, "appears twice"),
        ('{"id": "a", "task": "storyboard", "prompts": []}', JobFormatError, "storyboard"),
        ('{"id": "a", "prompt": "p", "backend_options": [1]}', JobFormatError, "JSON object"),
        ('{"id": "A", "prompt": "p"}', DuplicateJobId, "line 1"),
    ]
    for text, kind, words in cases:
        path = tmp_path / "jobs.jsonl"
        path.write_text('{"id": "a", "prompt": "p"}\n\n' + text + "\n", encoding="utf-8")
        with pytest.raises(kind) as info:
            parse_jobs(path, default_backend="scene")
        assert info.value.line == 3, text
        assert words in info.value.message and f"{path}:3:" in info.value.message, \
            (text, info.value.message)
    path.write_bytes(b'{"id": "a", "prompt": "\xff"}\n')
    with pytest.raises(JobFormatError, match="UTF-8"):
        parse_jobs(path)


# --- running and resuming ----------------------------------------------------------------


def test_inline_batch_records_ok_refused_error_and_resumes(
        tmp_path: Path, config: PipelineConfig, dev_keys: DevKeys) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(_lines(
        {"id": "good", "prompt": PROMPTS[0], "num_frames": 8, "height": 32, "width": 32},
        {"id": "unsafe", "prompt": REFUSED_PROMPT, "num_frames": 8},
        {"id": "gibberish", "prompt": "zzz qqq", "num_frames": 8},
        {"id": "good2", "prompt": PROMPTS[1], "num_frames": 8, "height": 32, "width": 32,
         "seed": 4},
    )) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = run_batch(jobs, out, workers=0, config=config, default_backend="scene")
    assert (summary.ok, summary.refused, summary.error, summary.skipped) == (2, 1, 1, 0)
    assert summary.exit_code == 1
    text = (out / "results.jsonl").read_text()
    assert REFUSED_PROMPT not in text and PROMPTS[0] not in text and "zzz qqq" not in text
    records = {r.id: r for r in load_results(out / "results.jsonl").results.values()}
    assert records["unsafe"].status == "refused"
    assert records["unsafe"].error_type == "PolicyViolation"
    assert records["gibberish"].status == "error"
    assert records["gibberish"].error_type == "CaptionError"
    assert records["gibberish"].error_stage == "backend"
    assert records["good"].watermark_id is not None and records["good"].backend == "scene"
    assert sorted(p.name for p in out.glob("*.mp4")) == ["good.mp4", "good2.mp4"]
    before = (out / "good.mp4").stat().st_mtime_ns

    # rerun: ok and refused jobs are finished; the error is redone (and errs again)
    summary = run_batch(jobs, out, workers=0, config=config, default_backend="scene")
    assert (summary.skipped, summary.ok, summary.refused, summary.error) == (3, 0, 0, 1)
    assert (out / "good.mp4").stat().st_mtime_ns == before
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4  # one record per job: the old error record was replaced

    # fix the bad job: only it runs; the batch is complete and verifiable
    jobs.write_text(jobs.read_text().replace("zzz qqq", "a cyan star moving up-left"))
    summary = run_batch(jobs, out, workers=0, config=config, default_backend="scene")
    assert (summary.skipped, summary.ok, summary.exit_code) == (3, 1, 0)
    from vidgen import verify

    report = verify(out / "gibberish.mp4", trust=dev_keys.ca_cert,
                    key=read_key_file(dev_keys.watermark_key))
    assert report.verdict == "confirmed"


def test_resume_repairs_torn_log_removes_temporaries_and_redoes_changed_jobs(
        tmp_path: Path, config: PipelineConfig) -> None:
    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 4)
    out = tmp_path / "out"
    assert run_batch(jobs_file, out, workers=0, config=config).ok == 4
    ids = [f"clip-{i:03d}" for i in range(4)]
    log = out / "results.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    # a torn last record (clip-003's, cut mid-line), stale temporaries of a killed worker,
    # an altered output (clip-001) and a missing one (clip-002)
    log.write_bytes(b"".join(lines[:3]) + lines[3][:40])
    torn_id = json.loads(lines[3])["id"]
    (out / ".clip-000.mp4.0123456789ab.encode.mp4").write_bytes(b"half")
    (out / ".vidgen-batch-results.abcdef012345.tmp").write_bytes(b"x")
    (out / "unrelated.txt").write_text("kept")
    with open(out / "clip-001.mp4", "ab") as f:
        f.write(b"tampered")
    (out / "clip-002.mp4").unlink()
    summary = run_batch(jobs_file, out, workers=0, config=config)
    redone = {torn_id, "clip-001", "clip-002"}
    assert summary.ok == len(redone) and summary.skipped == 4 - len(redone)
    assert summary.temporaries_removed == 2 and summary.records_dropped == 1
    (out / "unrelated.txt").unlink()
    assert_complete(out, ids)
    # a changed job is a different job: redone, still one output and one record
    write_jobs(jobs_file, 4, extra={"fps": 6.0})
    assert run_batch(jobs_file, out, workers=0, config=config).ok == 4
    assert_complete(out, ids)


def test_local_pool_records_failures_and_goes_on(tmp_path: Path, config: PipelineConfig,
                                                  dev_keys: DevKeys, test_backends: None
                                                  ) -> None:
    """A backend that raises, an unknown backend, and a full disk (ENOSPC simulated by
    replacing os.fsync in the worker for one job's video temporaries: the commit's fsync is
    where a full disk shows with delayed allocation) are recorded; the other jobs finish."""
    from .batch_helpers import faulty_worker

    jobs_file = tmp_path / "jobs.jsonl"
    jobs = write_jobs(jobs_file, 5)
    jobs[1]["backend"] = "exploding"
    jobs[2]["backend"] = "no-such-backend"
    jobs[3]["id"] = "enospc-003"
    jobs_file.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    out = tmp_path / "out"
    summary = run_batch(jobs_file, out, workers=2, config=config, worker_init=faulty_worker)
    assert (summary.ok, summary.error, summary.executor, summary.workers) == (2, 3, "local", 2)
    assert summary.exit_code == 1
    records = load_results(out / "results.jsonl").results
    assert records["clip-001"].error_type == "BackendError"
    assert "the model fell over" in (records["clip-001"].error_message or "")
    assert records["clip-002"].error_type == "UnknownBackend"
    full = records["enospc-003"]
    assert (full.error_type, full.error_stage) == ("OutputError", "commit")
    assert "No space left" in (full.error_message or "")
    assert sorted(p.name for p in out.glob("*.mp4")) == ["clip-000.mp4", "clip-004.mp4"]
    assert temporaries(out) == []
    from vidgen import verify

    report = verify(out / "clip-004.mp4", trust=dev_keys.ca_cert,
                    key=read_key_file(dev_keys.watermark_key))
    assert report.verdict == "confirmed"
    # space again: a rerun redoes the failed jobs; the full-disk one now succeeds
    summary = run_batch(jobs_file, out, workers=0, config=config)
    assert (summary.skipped, summary.ok, summary.error) == (2, 1, 2)
    assert len((out / "results.jsonl").read_text().splitlines()) == 5
    assert (out / "enospc-003.mp4").exists() and temporaries(out) == []


def test_disk_full_on_the_results_log_stops_the_batch_and_resume_completes(
        tmp_path: Path, config: PipelineConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 3)
    out = tmp_path / "out"
    real_write = os.write
    appended: list[int] = []

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("results.jsonl"):
            appended.append(fd)
            if len(appended) == 2:  # the second record finds the disk full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(BatchOutputError, match="No space left"):
        run_batch(jobs_file, out, workers=0, config=config)
    monkeypatch.undo()
    summary = run_batch(jobs_file, out, workers=0, config=config)
    assert summary.skipped == 1 and summary.ok == 2
    assert_complete(out, ["clip-000", "clip-001", "clip-002"])


def test_unwritable_output_directory_is_a_typed_error(
        tmp_path: Path, config: PipelineConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 1)
    out = tmp_path / "ro"
    out.mkdir()
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(BatchOutputError, match="read-only file system"):
        run_batch(jobs_file, out, workers=0, config=config)
    assert list(out.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and unshare for a read-only bind mount")
def test_cli_on_a_read_only_mount_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 1)
    out = tmp_path / "ro"
    out.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            f"mount --bind -o ro '{out}' '{out}'"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.decode()[:200]}")
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{out}' '{out}' && exec "
         f"'{sys.executable}' -m vidgen.cli batch '{jobs_file}' --out '{out}' --workers 0"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "read-only file system" in proc.stderr and "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []


def test_a_second_batch_on_the_same_directory_is_refused(
        tmp_path: Path, config: PipelineConfig) -> None:
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)\nprint('locked', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        jobs_file = tmp_path / "jobs.jsonl"
        write_jobs(jobs_file, 1)
        with pytest.raises(BatchLocked, match="another vidgen batch"):
            run_batch(jobs_file, out, workers=0, config=config)
        assert not (out / "results.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()


def test_cli_exit_codes_and_summary(tmp_path: Path, dev_keys: DevKeys,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from vidgen.cli import main

    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 2)
    out = tmp_path / "out"
    common = ["--out", str(out), "--workers", "0", "--keys", str(dev_keys.directory),
              "--watermark-method", "vidgen", "--store", str(tmp_path / "s.sqlite3")]
    assert main(["batch", str(jobs_file), *common, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] == 2 and summary["exit_code"] == 0
    assert main(["batch", str(jobs_file), *common]) == 0
    assert "2 finished before" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "../escape", "prompt": "p"}\n')
    assert main(["batch", str(bad), *common]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1:" in err and "path separator" in err and "Traceback" not in err
    failing = tmp_path / "failing.jsonl"
    failing.write_text('{"id": "x", "prompt": "zzz", "backend": "scene"}\n')
    assert main(["batch", str(failing), *common]) == 1
    assert "CaptionError" in capsys.readouterr().out


def test_workers_that_cannot_start_stop_the_batch(tmp_path: Path,
                                                 config: PipelineConfig) -> None:
    from vidgen.batch import BatchError

    from .batch_helpers import die_at_start, fail_at_start

    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 3)
    with pytest.raises(BatchError, match="a worker could not start: RuntimeError: no GPU"):
        run_batch(jobs_file, tmp_path / "a", workers=2, config=config,
                  worker_init=fail_at_start)
    with pytest.raises(BatchError, match="died in a row"):
        run_batch(jobs_file, tmp_path / "b", workers=2, config=config,
                  worker_init=die_at_start)
    # jobs whose worker died max_attempts times were recorded as such before the stop
    for record in load_results(tmp_path / "b" / "results.jsonl").results.values():
        assert record.error_type == "WorkerDied" and record.attempts == 3
    assert temporaries(tmp_path / "b") == []


def test_ray_missing_is_a_clear_error(tmp_path: Path, config: PipelineConfig,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from vidgen.batch import RayUnavailable
    from vidgen.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 1)
    with pytest.raises(RayUnavailable, match=r"vidgen\[ray\]"):
        run_batch(jobs_file, tmp_path / "out", ray=True, config=config)
    assert not (tmp_path / "out").exists()
    assert main(["batch", str(jobs_file), "--out", str(tmp_path / "out"), "--ray"]) == 2
    assert "vidgen[ray]" in capsys.readouterr().err


def test_masks_load_from_npy_and_png(tmp_path: Path) -> None:
    from vidgen.batch.execute import load_mask
    from vidgen.video_io import encode_png

    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    np.save(tmp_path / "m.npy", mask)
    image = np.zeros((8, 8, 3), np.uint8)
    image[mask] = 255
    (tmp_path / "m.png").write_bytes(encode_png(image))
    assert np.array_equal(load_mask(tmp_path / "m.npy"), mask)
    assert np.array_equal(load_mask(tmp_path / "m.png"), mask)


def test_image_to_video_job_through_the_batch(tmp_path: Path, config: PipelineConfig,
                                              test_backends: None) -> None:
    """Input paths reach the pipeline (relative to the job file); a missing input fails only
    its own job."""
    from vidgen.video_io import encode_png

    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "start.png").write_bytes(
        encode_png(np.full((32, 32, 3), 90, np.uint8)))
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(_lines(
        {"id": "i2v", "task": "image_to_video", "prompt": "a red circle", "image":
         "inputs/start.png", "backend": "gradient", "num_frames": 4},
        {"id": "missing", "task": "image_to_video", "prompt": "a red circle",
         "image": "inputs/nope.png", "backend": "gradient", "num_frames": 4},
    )) + "\n")
    summary = run_batch(jobs_file, tmp_path / "out", workers=0, config=config)
    records = load_results(tmp_path / "out" / "results.jsonl").results
    assert summary.ok == 1 and records["i2v"].status == "ok", records["i2v"]
    assert records["missing"].status == "error" and records["missing"].error_stage == "media"


def test_a_killed_worker_is_replaced_and_its_job_redone(
        tmp_path: Path, config: PipelineConfig) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    jobs_file = tmp_path / "jobs.jsonl"
    write_jobs(jobs_file, 3, backend="slow-scene",
               extra={"backend_options": {"delay": 0.5, "markers": str(markers)}})
    out = tmp_path / "out"
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(summary=run_batch(
        jobs_file, out, workers=2, config=config, worker_init=register_test_backends)))
    thread.start()
    deadline = time.monotonic() + 120
    while not list(markers.glob("1.*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = int(next(markers.glob("1.*")).suffix[1:])
    os.kill(victim, 9)  # the worker running clip-001, mid-job
    thread.join(timeout=180)
    summary = result["summary"]
    assert summary.ok == 3 and summary.error == 0
    records = load_results(out / "results.jsonl").results
    assert records["clip-001"].attempts == 2
    assert len(list(markers.glob("1.*"))) == 2  # started twice, in two processes
    assert_complete(out, ["clip-000", "clip-001", "clip-002"])



