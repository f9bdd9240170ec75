"""Where vidgen keeps files: the user's data directory and the shipped weights; and making
a new directory entry durable."""

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


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["fsync_directory", "user_data_file", "weights_dir"]
