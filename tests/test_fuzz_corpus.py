"""The CI-sized run of the verify/read fuzzer (``benchmarks/fuzz_verify.py`` runs 100k+).

Seeds live in ``tests/data/fuzz_seeds/`` (made by ``benchmarks/make_fuzz_seeds.py``);
inputs that once broke a contract live in ``tests/data/fuzz_seeds/regressions/`` and
are replayed here. A "crash" is anything ``run_case`` rules out: ``verify`` raising,
``Video.read`` raising something other than ``MediaError``, a report that does not
serialise, frames outside the limits, or a trusted manifest over changed media.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .fuzzing import SEEDS_DIR, Config, load_config, load_seeds, make_case, run_case, tally

CASES = 500
CASE_SECONDS = 10.0
REGRESSIONS = SEEDS_DIR / "regressions"


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


def test_seeds_are_small_and_give_their_expected_outcomes(config: Config,
                                                          tmp_path: Path) -> None:
    expected = json.loads((SEEDS_DIR / "seeds.json").read_text())["expected"]
    seeds = load_seeds()
    assert {s.name for s in seeds} == set(expected)
    for seed in seeds:
        assert len(seed.data) < 16 * 1024, seed.name
        path = tmp_path / seed.name
        path.write_bytes(seed.data)
        outcome = run_case(path, seed.data, seed.data, config)
        assert not outcome["crashes"], outcome["crashes"]
        assert {k: outcome[k] for k in ("verify", "read")} == expected[seed.name], seed.name


def test_cases_are_deterministic() -> None:
    seeds = load_seeds()
    for index in (0, 1, 99, 12345):
        first, again = make_case(seeds, 7, index), make_case(seeds, 7, index)
        assert first.data == again.data and first.ops == again.ops


def test_mutated_cases_only_give_reports_videos_or_media_errors(config: Config,
                                                                tmp_path: Path) -> None:
    seeds = load_seeds()
    by_name = {s.name: s.data for s in seeds}
    results = []
    for index in range(CASES):
        case = make_case(seeds, 20_251, index)
        path = tmp_path / f"case{Path(case.seed).suffix}"
        path.write_bytes(case.data)
        start = time.monotonic()
        outcome = run_case(path, case.data, by_name[case.seed], config)
        elapsed = time.monotonic() - start
        assert not outcome["crashes"], (index, case.ops, outcome["crashes"])
        assert elapsed < CASE_SECONDS, (index, case.ops, elapsed)
        results.append(outcome)
    counts = tally(results)
    # The mutator must reach past the structure check: some cases decode, some verify.
    assert counts["read"]["video"] > CASES // 10
    assert counts["verify"]["error"] < CASES
    assert counts["c2pa"]["trusted"] and counts["c2pa"]["invalid"]


def test_regression_inputs(config: Config, tmp_path: Path) -> None:
    """Inputs that once broke a contract (none found yet: the folder may be absent)."""
    files = sorted(p for p in REGRESSIONS.glob("*") if p.suffix in (".mp4", ".mov")) \
        if REGRESSIONS.is_dir() else []
    for path in files:
        data = path.read_bytes()
        case = tmp_path / f"case{path.suffix}"
        case.write_bytes(data)
        outcome = run_case(case, data, data, config)
        assert not outcome["crashes"], (path.name, outcome["crashes"])
