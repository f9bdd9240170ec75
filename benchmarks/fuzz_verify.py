"""Fuzz ``vidgen.verify`` and ``vidgen.Video.read`` with structure-aware MP4/MOV mutations.

    python benchmarks/fuzz_verify.py [--cases 100000] [--workers 2] [--seed 0]
        [--case-timeout 20] [--memory-mb 1536] [--out benchmarks/results/fuzz_verify.json]

Each case is a mutation of a seed in ``tests/data/fuzz_seeds/`` (see
``tests/fuzzing.py`` for the mutator: box sizes, types, nesting, truncation,
duplicated/oversized boxes, ``stsz``/``stco``/``stsc``/``stts``/``mdhd``/``tkhd`` fields,
``avcC``/``hvcC``, H.264 NAL payloads, the C2PA ``uuid`` box and its JUMBF/CBOR), run
through both targets in a worker subprocess:

- ``verify`` (trust anchors of the seeds, the ``test-blocks`` watermark double through
  the real ``SampledFrameDetector`` decode path, a dict manifest store) must return a
  report (never raise) whose JSON serialises; a trusted manifest must never confirm
  media that differs from the seed's;
- ``Video.read`` (tight ``ReadLimits``) must return frames within the limits or raise
  ``MediaError``.

The parent is a watchdog: a case that takes longer than ``--case-timeout`` is a hang,
a worker that dies is a crash (signal or exit status), a worker whose address space
would pass ``--memory-mb`` over its start (``RLIMIT_AS``) fails its allocations, and
one whose resident set grows past it is restarted and reported. Every finding's input
is regenerated (cases are deterministic in ``--seed`` and their index) and saved
under ``--findings`` with a JSON note. Prints and writes one JSON object (rewritten
every 30 s while running, so a long run that is stopped still leaves figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzzing import SEEDS_DIR, Seed, load_seeds, make_case  # noqa: E402

# ---------------------------------------------------------------------- the worker


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _vm_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def worker_main(args: argparse.Namespace) -> None:
    """Serve cases: read an index per line on stdin, answer one JSON line each."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # native libraries must not write into the protocol
    from tests.fuzzing import load_config, run_case

    seeds = load_seeds(args.seeds)
    by_name = {s.name: s.data for s in seeds}
    config = load_config(args.seeds)
    targets = tuple(args.targets.split(","))
    scratch = Path(args.scratch)
    # Warm up (imports, codecs) before measuring the baseline the limits are relative to.
    for seed in seeds:
        warm = scratch / seed.name
        warm.write_bytes(seed.data)
        run_case(warm, seed.data, seed.data, config, targets)
    base_rss = _rss_kib()
    limit_kib = args.memory_mb * 1024
    resource.setrlimit(resource.RLIMIT_AS, ((_vm_kib() + limit_kib) * 1024,) * 2)
    proto.write(json.dumps({"ready": True, "rss_kib": base_rss}) + "\n")
    for line in sys.stdin:
        index = int(line)
        try:
            case = make_case(seeds, args.seed, index)
        except Exception:  # a bug in the mutator, not in the code under test
            proto.write(json.dumps({"i": index, "mutator_error": traceback.format_exc()}) + "\n")
            continue
        path = scratch / f"case{Path(case.seed).suffix}"
        path.write_bytes(case.data)
        start = time.perf_counter()
        result = run_case(path, case.data, by_name[case.seed], config, targets)
        result.update(i=index, seed=case.seed, ops=case.ops,
                      t=time.perf_counter() - start, rss_kib=_rss_kib() - base_rss)
        proto.write(json.dumps(result) + "\n")
        if result["rss_kib"] > limit_kib:
            break  # the parent sees the growth in the result and starts a fresh worker


# ---------------------------------------------------------------------- the parent


class Slot:
    """One worker process and the thread that feeds it cases under a watchdog."""

    def __init__(self, fuzz: Fuzz, number: int) -> None:
        self.fuzz = fuzz
        self.number = number
        self.scratch = Path(tempfile.mkdtemp(prefix=f"vidgen-fuzz-{number}-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.buffer = b""
        self.log = self.scratch / "stderr.log"

    def start(self) -> None:
        a = self.fuzz.args
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
               "--seeds", str(a.seeds), "--seed", str(a.seed), "--targets", a.targets,
               "--memory-mb", str(a.memory_mb), "--scratch", str(self.scratch)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "VIDGEN_KEYS_DIR": str(self.scratch)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, env=env, start_new_session=True)
        self.buffer = b""
        ready = self.read_line(self.fuzz.args.start_timeout)
        if not isinstance(ready, dict) or not ready.get("ready"):
            raise RuntimeError(f"worker {self.number} did not start: {ready!r}\n"
                               f"{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def read_line(self, timeout: float) -> dict[str, Any] | str:
        """The next JSON line, or ``"timeout"`` / ``"died"``."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return "died"
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def run(self) -> None:
        while (index := self.fuzz.next_index()) is not None:
            if self.proc is None:
                self.start()
                self.fuzz.count("worker_starts")
            assert self.proc is not None and self.proc.stdin is not None
            try:
                self.proc.stdin.write(f"{index}\n".encode())
                self.proc.stdin.flush()
                answer = self.read_line(self.fuzz.args.case_timeout)
            except BrokenPipeError:
                answer = "died"
            if isinstance(answer, dict) and "mutator_error" in answer:
                self.fuzz.mutator_error(index, answer["mutator_error"])
                continue
            if isinstance(answer, dict):
                self.fuzz.record(answer)
                if answer["rss_kib"] > self.fuzz.args.memory_mb * 1024:
                    self.fuzz.finding("memory", index, f"resident set grew by "
                                      f"{answer['rss_kib']} KiB", "")
                    self.stop()
                continue
            if answer == "timeout":
                self.stop()
                self.fuzz.finding("hang", index,
                                  f"no answer within {self.fuzz.args.case_timeout} s", "")
            else:
                assert self.proc is not None
                code = self.proc.wait()
                how = (f"killed by signal {signal.Signals(-code).name}" if code < 0
                       else f"exited with status {code}")
                tail = self.log.read_text(errors="replace")[-3000:]
                self.proc = None
                self.fuzz.finding("crash", index, f"worker {how}", tail)
            self.fuzz.record({"i": index, "lost": answer})


class Fuzz:
    def __init__(self, args: argparse.Namespace, seeds: list[Seed]) -> None:
        self.args = args
        self.seeds = seeds
        self.lock = threading.Lock()
        self.issued = 0
        self.done = 0
        self.start = time.monotonic()
        self.counters: dict[str, Counter[str]] = {
            k: Counter() for k in ("verify", "c2pa", "verify_error", "read", "read_error",
                                   "ops", "seeds", "events")}
        self.findings: list[dict[str, Any]] = []
        self.mutator_errors: list[dict[str, Any]] = []
        self.slowest: list[tuple[float, int, str, list[str]]] = []
        self.peak_rss_growth_kib = 0
        self.case_seconds = 0.0

    def next_index(self) -> int | None:
        with self.lock:
            if self.issued >= self.args.cases:
                return None
            self.issued += 1
            return self.args.first + self.issued - 1

    def count(self, event: str) -> None:
        with self.lock:
            self.counters["events"][event] += 1

    def record(self, result: dict[str, Any]) -> None:
        with self.lock:
            self.done += 1
            if "lost" in result:
                return
            for key in ("verify", "c2pa", "verify_error", "read", "read_error"):
                if key in result:
                    self.counters[key][result[key]] += 1
            self.counters["ops"].update(op.split(":")[0].split("@")[0] for op in result["ops"])
            self.counters["seeds"][result["seed"]] += 1
            self.case_seconds += result["t"]
            self.peak_rss_growth_kib = max(self.peak_rss_growth_kib, result["rss_kib"])
            self.slowest.append((result["t"], result["i"], result["seed"], result["ops"]))
            self.slowest = sorted(self.slowest, reverse=True)[:10]
        for crash in result["crashes"]:
            self.finding("exception", result["i"], f"{crash['target']}: {crash['type']}: "
                         f"{crash['message']}", crash["traceback"], crash["type"])

    def mutator_error(self, index: int, detail: str) -> None:
        with self.lock:
            self.done += 1
            self.counters["events"]["mutator_errors"] += 1
            self.mutator_errors.append({"case": index, "traceback": detail[-2000:]})
        print(f"mutator error on case {index}:\n{detail}", file=sys.stderr, flush=True)

    def finding(self, kind: str, index: int, message: str, detail: str,
                exc_type: str | None = None) -> None:
        try:
            case = make_case(self.seeds, self.args.seed, index)
        except Exception:
            self.mutator_error(index, traceback.format_exc())
            return
        self.args.findings.mkdir(parents=True, exist_ok=True)
        stem = f"{kind}-{self.args.seed}-{index}"
        path = self.args.findings / f"{stem}{Path(case.seed).suffix}"
        path.write_bytes(case.data)
        note = {"kind": kind, "case": index, "run_seed": self.args.seed, "seed_file": case.seed,
                "ops": case.ops, "message": message, "type": exc_type, "detail": detail,
                "input": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)}
        (self.args.findings / f"{stem}.json").write_text(json.dumps(note, indent=1) + "\n")
        with self.lock:
            self.findings.append(note)
        print(f"FINDING {kind} case {index}: {message}", file=sys.stderr, flush=True)

    def report(self, final: bool) -> dict[str, Any]:
        with self.lock:
            elapsed = time.monotonic() - self.start
            kinds = Counter(f["kind"] for f in self.findings)
            by_type = Counter((f["type"] or f["message"]) for f in self.findings)
            return {
                "benchmark": "fuzz_verify",
                "command": "python benchmarks/fuzz_verify.py " + " ".join(sys.argv[1:]),
                "finished": final,
                "machine": {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "processor": platform.processor(),
                            "note": "shared 2-core machine; other jobs were running"},
                "versions": _versions(),
                "run_seed": self.args.seed,
                "workers": self.args.workers,
                "case_timeout_s": self.args.case_timeout,
                "memory_limit_mb": self.args.memory_mb,
                "cases": self.done,
                "seconds": round(elapsed, 1),
                "cases_per_second": round(self.done / elapsed, 1) if elapsed else None,
                "mean_case_ms_in_worker": round(1000 * self.case_seconds / max(1, self.done), 2),
                "targets": {
                    "verify": {"verdicts": dict(self.counters["verify"].most_common()),
                               "c2pa_states": dict(self.counters["c2pa"].most_common()),
                               "error_kinds": dict(self.counters["verify_error"].most_common(25))},
                    "read": {"outcomes": dict(self.counters["read"].most_common()),
                             "error_kinds": dict(self.counters["read_error"].most_common(25))},
                },
                "seeds": dict(self.counters["seeds"].most_common()),
                "mutations": dict(self.counters["ops"].most_common()),
                "findings": {"total": len(self.findings), "by_kind": dict(kinds),
                             "by_type": dict(by_type.most_common(20)),
                             "crashes": sum(kinds[k] for k in ("crash", "exception")),
                             "hangs": kinds["hang"], "memory": kinds["memory"],
                             "first": [{k: f[k] for k in ("kind", "case", "message", "input")}
                                       for f in self.findings[:20]]},
                "worker_starts": self.counters["events"]["worker_starts"],
                "mutator_errors": self.mutator_errors[:10],
                "peak_rss_growth_mib": round(self.peak_rss_growth_kib / 1024, 1),
                "slowest_cases": [{"seconds": round(t, 3), "case": i, "seed": s, "ops": o}
                                  for t, i, s, o in self.slowest],
            }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("vidgen", "av", "c2pa-python", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "?"
    return out


def parent_main(args: argparse.Namespace) -> int:
    seeds = load_seeds(args.seeds)
    fuzz = Fuzz(args, seeds)
    slots = [Slot(fuzz, n) for n in range(args.workers)]
    threads = [threading.Thread(target=s.run, daemon=True) for s in slots]
    for t in threads:
        t.start()

    def save(final: bool) -> dict[str, Any]:
        data = fuzz.report(final)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(args.out)
        return data

    try:
        last = time.monotonic()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=1.0)
            if time.monotonic() - last > args.save_every:
                last = time.monotonic()
                data = save(False)
                print(f"{data['cases']} cases, {data['cases_per_second']}/s, "
                      f"{data['findings']['total']} findings", file=sys.stderr, flush=True)
    finally:
        for s in slots:
            s.stop()
            shutil.rmtree(s.scratch, ignore_errors=True)
    data = save(True)
    print(json.dumps(data, indent=1))
    return 1 if data["findings"]["total"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--first", type=int, default=0, help="index of the first case")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="run seed (cases are deterministic)")
    parser.add_argument("--targets", default="verify,read")
    parser.add_argument("--case-timeout", type=float, default=20.0)
    parser.add_argument("--start-timeout", type=float, default=120.0)
    parser.add_argument("--memory-mb", type=int, default=1536)
    parser.add_argument("--seeds", type=Path, default=SEEDS_DIR)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/fuzz_verify.json")
    parser.add_argument("--findings", type=Path,
                        default=ROOT / "benchmarks/results/fuzz_findings")
    parser.add_argument("--save-every", type=float, default=30.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return 0
    return parent_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
