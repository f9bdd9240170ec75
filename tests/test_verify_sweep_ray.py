"""Verification sweeps on Ray (`vidgen verify DIR --ray`): same records as the local pool,
resume across executors, a worker killed mid-file, a file that keeps killing workers, and
the errors when Ray is missing or misnamed."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vidgen.batch import RayUnavailable
from vidgen.cli import main
from vidgen.errors import VidgenError
from vidgen.provenance import sweep as sweep_module
from vidgen.provenance.keys import load_trust_anchors
from vidgen.provenance.sweep import SweepOutcome, SweepSettings, collect_files, load_jsonl, sweep
from vidgen.provenance.watermark import register_method

from .test_verify_sweep import EXPECTED, _rel, _tree, clips  # noqa: F401  (clips: a fixture)
from .watermark_double import TEST_METHOD, BlockTestWatermark

# --------------------------------------------------------- hooks run in the Ray workers


def register_double() -> None:
    """The chain tests' watermark double, in a fresh (not forked) verifier process."""
    register_method(TEST_METHOD, BlockTestWatermark)


def faulty_worker(markers: str) -> None:
    """``crashme*`` files kill their worker every time; the first ``victim*`` file leaves a
    marker ``victim.<pid>`` and waits to be killed from outside."""
    register_double()
    original = sweep_module._run_task

    def run(task: Any) -> Any:
        name = Path(task.path).name
        if name.startswith("crashme"):
            os._exit(3)  # what a segfault in a native parser looks like to Ray
        if name.startswith("victim") and not any(Path(markers).glob("victim.*")):
            Path(markers, f"victim.{os.getpid()}").touch()
            time.sleep(120)  # mid-file, until the test kills this process
        return original(task)

    sweep_module._run_task = run


# ----------------------------------------------------------------------------- tests


def test_missing_ray_is_a_clear_error_before_the_report_is_touched(
        tmp_path: Path, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    report = tmp_path / "r.jsonl"
    report.write_text('{"file": "keep.mp4"}\n')
    with pytest.raises(RayUnavailable, match=r"vidgen\[ray\]"):
        sweep([clips["plain"], clips["signed"]], SweepSettings(), jsonl=report, ray=True)
    assert main(["verify", str(clips["plain"]), "--jsonl", str(report), "--ray"]) == 2
    assert "vidgen[ray]" in capsys.readouterr().err
    assert report.read_text() == '{"file": "keep.mp4"}\n'


def test_a_file_taken_as_the_ray_address_is_refused(
        clips: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["verify", str(clips["plain"]), "--ray", str(clips["signed"])]) == 2
    assert "not a Ray address" in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """One local Ray instance for the module; sweeps use it as it is and leave it running."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _jsonl_by_file(path: Path) -> dict[str, dict[str, Any]]:
    records, torn = load_jsonl(path)
    assert not torn
    by_file = {r["file"]: r for r in records}
    assert len(by_file) == len(records)  # one record per file
    return by_file


def test_ray_sweep_equals_the_pool_sweep(tmp_path: Path, clips: dict[str, Path],  # noqa: F811
                                         anchors: Path, local_ray: Any) -> None:
    root = _tree(tmp_path / "v", clips)
    files, _ = collect_files([root])
    settings = SweepSettings(trust_anchors_pem=load_trust_anchors(anchors), thumbnails=True)
    pool_jsonl, ray_jsonl = tmp_path / "pool.jsonl", tmp_path / "ray.jsonl"
    pool = sweep(files, settings, workers=2, jsonl=pool_jsonl)
    on_ray: SweepOutcome = sweep(files, settings, workers=2, jsonl=ray_jsonl, ray=True,
                                 worker_init=register_double)
    assert on_ray.records == pool.records  # input order, every field
    assert {_rel(root, r): r["verdict"] for r in on_ray.records} == EXPECTED
    assert any(r["watermark"] and r["watermark"]["detected"] for r in on_ray.records)
    assert _jsonl_by_file(ray_jsonl) == _jsonl_by_file(pool_jsonl)
    assert on_ray.thumbnails == pool.thumbnails and len(on_ray.thumbnails) == 4
    assert (on_ray.verified, on_ray.crashed, on_ray.exit_code) == (len(files), 0, 2)


@pytest.mark.slow
def test_ray_resume_and_cli(tmp_path: Path, clips: dict[str, Path], anchors: Path,  # noqa: F811
                            local_ray: Any, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path / "v", clips)
    files, _ = collect_files([root])
    settings = SweepSettings(trust_anchors_pem=load_trust_anchors(anchors))
    pool_jsonl = tmp_path / "pool.jsonl"
    sweep(files, settings, workers=0, jsonl=pool_jsonl)
    # --resume on Ray reuses the pool's records; a changed file is verified again.
    shutil.copy(clips["plain"], root / "a_signed.mp4")
    resumed = sweep(files, settings, workers=5, jsonl=pool_jsonl, resume=True, ray=True,
                    worker_init=register_double)  # 5 actors asked for, 2 CPUs: 2 actors
    assert (resumed.verified, resumed.reused) == (1, len(files) - 1)
    assert _jsonl_by_file(pool_jsonl)[str(root / "a_signed.mp4")]["verdict"] == "unconfirmed"

    # The CLI: --ray after the files; stdout stays pure JSON.
    cli_jsonl = tmp_path / "cli.jsonl"
    assert main(["verify", str(root), "--trust", str(anchors), "--jsonl", str(cli_jsonl),
                 "--json", "--ray"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert {_rel(root, r): r["verdict"] for r in data} == {**EXPECTED,
                                                           "a_signed.mp4": "unconfirmed"}
    assert len(_jsonl_by_file(cli_jsonl)) == len(files)

    # A key file that the actors cannot read ends the sweep like a bad --key (exit 2).
    with pytest.raises(VidgenError, match="cannot read") as info:
        sweep(files, SweepSettings(key_file=str(tmp_path / "missing.key")), workers=2,
              ray=True)
    assert info.value.stage == "keys"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a worker process")
def test_ray_worker_killed_mid_file(tmp_path: Path, clips: dict[str, Path],  # noqa: F811
                                    local_ray: Any) -> None:
    names = ["a.mp4", "victim.mp4", "crashme.mp4", "b.mp4", "c.mp4"]
    root = tmp_path / "v"
    root.mkdir()
    for name in names:
        shutil.copy(clips["plain"], root / name)
    markers = tmp_path / "markers"
    markers.mkdir()
    jsonl = tmp_path / "r.jsonl"
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcome"] = sweep([root / n for n in names], SweepSettings(), workers=2,
                                      jsonl=jsonl, ray=True,
                                      worker_init=functools.partial(faulty_worker,
                                                                    str(markers)))
        except BaseException as exc:  # re-raised below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while not list(markers.glob("victim.*")) and time.monotonic() < deadline:
        assert thread.is_alive(), result.get("error")
        time.sleep(0.05)
    victim = int(next(markers.glob("victim.*")).suffix[1:])
    os.kill(victim, signal.SIGKILL)  # the actor verifying victim.mp4
    thread.join(timeout=180)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    outcome: SweepOutcome = result["outcome"]
    verdicts = [r["verdict"] for r in outcome.records]
    # victim.mp4 was given to a fresh actor and verified; crashme.mp4 killed 3 actors.
    assert verdicts == ["unconfirmed", "unconfirmed", "error", "unconfirmed", "unconfirmed"]
    assert outcome.crashed == 1 and outcome.exit_code == 2
    error = outcome.records[2]["error"]
    assert "process died on this file, 3 times" in error
    assert outcome.records[2]["sha256"]  # so --resume does not crash on it again
    assert len(list(markers.glob("victim.*"))) == 1
    assert sorted(_jsonl_by_file(jsonl)) == sorted(str(root / n) for n in names)
