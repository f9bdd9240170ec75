"""Helpers for the batch tests, importable by worker processes (``worker_init`` hooks)."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

from vidgen.backends.base import Capabilities, ProgressCallback, register_backend
from vidgen.backends.scene import SceneBackend
from vidgen.batch.outdir import LOCK_FILE, sha256_file
from vidgen.provenance.keys import DevKeys
from vidgen.provenance.watermark import read_key_file
from vidgen.types import GenerationRequest, Video

PROMPTS = ["a red circle moving right", "a blue square moving left",
           "a green triangle moving up", "a yellow star rotating", "a small white diamond falling",
           "two purple circles bouncing", "a large orange square moving down",
           "a cyan star moving up-left"]


def write_jobs(path: Path, n: int, *, backend: str = "scene", extra: dict[str, Any] | None = None,
               frames: int = 8, size: int = 32) -> list[dict[str, Any]]:
    jobs = [{"id": f"clip-{i:03d}", "prompt": PROMPTS[i % len(PROMPTS)], "backend": backend,
             "seed": i, "num_frames": frames, "height": size, "width": size, **(extra or {})}
            for i in range(n)]
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs), encoding="utf-8")
    return jobs


class SlowScene:
    """The scene backend, slowed down; drops a marker ``<seed>.<pid>`` as each job starts."""

    name = "slow-scene"

    def __init__(self, delay: float = 0.0, markers: str | None = None) -> None:
        self.delay = float(delay)
        self.markers = markers
        self.inner = SceneBackend()

    def capabilities(self) -> Capabilities:
        return self.inner.capabilities()

    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None
               ) -> Video:
        if self.markers:
            Path(self.markers, f"{request.seed}.{os.getpid()}").touch()
        time.sleep(self.delay)
        return self.inner.sample(request, progress)


class Exploding(SlowScene):
    """Raises inside sampling (not a VidgenError: the chain makes it a BackendError)."""

    name = "exploding"

    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None
               ) -> Video:
        raise RuntimeError("the model fell over")


def register_test_backends() -> None:
    register_backend("slow-scene", SlowScene)
    register_backend("exploding", Exploding)


_real_fsync = os.fsync


def _fsync_enospc(fd: int) -> None:
    """``os.fsync`` as on a full disk for the video temporaries of jobs whose id starts with
    ``enospc`` (delayed allocation reports ENOSPC at fsync); everything else works."""
    try:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        name = ""
    if name.startswith(".enospc") and name.endswith(".mp4"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    _real_fsync(fd)


def faulty_worker() -> None:
    """worker_init: the test backends, and a full disk for ``enospc*`` jobs' outputs."""
    register_test_backends()
    os.fsync = _fsync_enospc  # type: ignore[assignment]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def descendants(pid: int) -> dict[int, int]:
    """{pid: parent pid} of every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found: dict[int, int] = {}
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found[child] = parent
                frontier.append(child)
    return found


def batch_workers(pid: int) -> list[int]:
    """The worker processes of the batch ``pid`` (forked by its fork server)."""
    tree = descendants(pid)
    children = {p for p, parent in tree.items() if parent == pid}
    return sorted(p for p, parent in tree.items() if parent in children)


def assert_complete(out: Path, ids: list[str], *, verify_with: DevKeys | None = None) -> None:
    """Every job ok with exactly one output matching its one record; nothing else in DIR."""
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{i}.mp4" for i in ids] + ["results.jsonl", LOCK_FILE])
    raw = (out / "results.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.splitlines()]
    assert sorted(r["id"] for r in records) == sorted(ids)  # one record per job
    for r in records:
        assert r["status"] == "ok", r
        assert r["sha256"] == sha256_file(out / f"{r['id']}.mp4")
    if verify_with is not None:
        from vidgen import verify

        key = read_key_file(verify_with.watermark_key)
        anchors = verify_with.ca_cert.read_text()
        for i in ids:
            report = verify(out / f"{i}.mp4", trust_anchors_pem=anchors, key=key)
            assert report.verdict == "confirmed", (i, report.to_dict())


def die_at_start() -> None:
    """worker_init of a worker that cannot run here (as a native crash at import would)."""
    os._exit(3)


def fail_at_start() -> None:
    raise RuntimeError("no GPU here")
