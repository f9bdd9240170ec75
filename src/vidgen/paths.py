"""Where vidgen keeps files: the user's data directory and the shipped weights."""

from __future__ import annotations

import os
from pathlib import Path


def user_data_file(env_var: str, filename: str) -> Path:
    """``$env_var`` if set, else ``$XDG_DATA_HOME/vidgen/filename`` (``~/.local/share``)."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vidgen" / filename


def weights_dir() -> Path:
    """The package's ``weights/`` directory (small checkpoints shipped with vidgen)."""
    return Path(__file__).resolve().parent / "weights"


__all__ = ["user_data_file", "weights_dir"]
