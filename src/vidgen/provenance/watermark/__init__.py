"""Invisible, keyed video watermarks: ``embed`` and ``detect``.

The default method (``"vidgen"``, ``keyed.py``) is vidgen's own; the
invisible-watermark methods (``"dwtDct"``, ``"dwtDctSvd"``, ``"rivaGan"``,
``baselines.py``) are available behind the same interface when that optional
package is installed.
"""

from __future__ import annotations

import importlib

from vidgen.provenance.watermark.base import (
    DEFAULT_METHOD,
    PAYLOAD_BITS,
    Detection,
    KeyedWatermarker,
    check_payload,
    get_watermarker,
    key_from_env,
    method_names,
    new_key,
    read_key_file,
    register_method,
    write_key_file,
)
from vidgen.types import Video

_BUILTIN_MODULES = ("vidgen.provenance.watermark.keyed", "vidgen.provenance.watermark.baselines")


def _load_builtin_methods() -> None:
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            continue  # an optional method whose dependency is not installed


def available_methods() -> list[str]:
    """Names of the watermarking methods usable in this installation."""
    _load_builtin_methods()
    return method_names()


def watermarker(key: bytes, method: str = DEFAULT_METHOD) -> KeyedWatermarker:
    """A keyed watermarker of ``method`` (default: vidgen's own)."""
    _load_builtin_methods()
    return get_watermarker(method, key)


def embed(video: Video, payload: int, key: bytes, method: str = DEFAULT_METHOD) -> Video:
    """Return ``video`` with ``payload`` (a 32-bit id) invisibly embedded under ``key``."""
    return watermarker(key, method).embed(video, check_payload(payload))


def detect(video: Video, key: bytes, method: str = DEFAULT_METHOD) -> Detection:
    """Look for a mark made under ``key``; ``Detection.p_value`` says how sure."""
    return watermarker(key, method).detect(video)


__all__ = [
    "DEFAULT_METHOD",
    "PAYLOAD_BITS",
    "Detection",
    "KeyedWatermarker",
    "available_methods",
    "detect",
    "embed",
    "key_from_env",
    "new_key",
    "read_key_file",
    "register_method",
    "watermarker",
    "write_key_file",
]
