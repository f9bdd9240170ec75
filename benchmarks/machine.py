"""What every benchmark states about the machine it ran on, and how it hands over its JSON.

Imported by the scripts beside it (``python benchmarks/NAME.py`` puts this folder on the
import path).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_report(report: dict[str, Any], out: Path | None) -> None:
    """Print the report as JSON and, when ``out`` is given, also write it there."""
    text = json.dumps(report, indent=1)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
