"""The vidgen command: JSON outputs, exit codes, messages without tracebacks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vidgen.cli import main


def test_generate_json_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.mp4"
    keys = tmp_path / "keys"
    code = main(["generate", "a green triangle bouncing", "-o", str(out), "--frames", "8",
                 "--seed", "2", "--keys", str(keys), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == str(out.absolute())
    assert summary["num_frames"] == 8 and summary["backend"] == "dit"
    assert summary["signer"] == "vidgen development signer"
    assert main(["verify", str(out), "--trust", str(keys / "ca.pem")]) == 0
    assert main(["verify", str(out)]) == 1


def test_generate_unknown_caption_is_a_plain_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "a purple elephant dancing", "-o", str(tmp_path / "x.mp4"),
                 "--keys", str(tmp_path / "k")])
    assert code == 1
    err = capsys.readouterr().err
    assert "elephant" in err and "circle" in err  # names the word, lists the vocabulary
    assert "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_generate_unknown_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "x", "--backend", "nope", "-o", str(tmp_path / "x.mp4")]) == 1
    assert "registered backends" in capsys.readouterr().err


def test_backends_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--json"]) == 0
    backends = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
    scene = backends["scene"]
    assert scene["capabilities"]["tasks"] == ["text_to_video"]
    assert scene["capabilities"]["model_id"] == "vidgen/scene"
    assert scene["error"] is None


def test_keys_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "k"
    assert main(["keys", "init", str(d)]) == 0
    assert stat.S_IMODE((d / "signer.key").stat().st_mode) == 0o600
    assert main(["keys", "init", str(d)]) == 1  # refuses to overwrite
    assert "--force" in capsys.readouterr().err
    assert main(["keys", "init", str(d), "--force"]) == 0


def test_world_readable_key_refused_by_generate(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "k"
    main(["keys", "init", str(d)])
    (d / "signer.key").chmod(0o644)
    assert main(["generate", "a red circle", "-o", str(tmp_path / "o.mp4"),
                 "--keys", str(d)]) == 1
    assert "chmod 600" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_console_script_entry_point(tmp_path: Path) -> None:
    """The installed `vidgen` script runs, and bad files exit 2 without a traceback."""
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 50)
    env = {**os.environ, "VIDGEN_KEYS_DIR": str(tmp_path / "k")}
    proc = subprocess.run([sys.executable, "-m", "vidgen.cli", "verify", str(bad), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["verdict"] == "error"
    assert "Traceback" not in proc.stderr
