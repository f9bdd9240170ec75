"""Every script in examples/ runs as is (with the real default watermark method)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidgen.provenance.watermark import DEFAULT_METHOD, available_methods

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.skipif(DEFAULT_METHOD not in available_methods(),
                    reason=f"the default watermark method {DEFAULT_METHOD!r} is not installed")
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIDGEN_WATERMARK_METHOD", "VIDGEN_WATERMARK_KEY"}}
    env.update(VIDGEN_KEYS_DIR=str(tmp_path / "default-keys"),
               VIDGEN_STORE=str(tmp_path / "manifests.sqlite3"),
               VIDGEN_CONSENT_DB=str(tmp_path / "consent.sqlite3"))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
