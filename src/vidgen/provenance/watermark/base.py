"""The watermarker interface, its detection result, keys, and the registry by name.

A watermarker is keyed: an instance holds its secret key and embeds a 32-bit
payload (the watermark id) into frames, or detects it. ``detected`` is a
statistical decision: ``p_value`` is the probability that an unmarked clip
(or a clip marked under another key) scores at least as high, and detection
means ``p_value`` is below the method's threshold (1e-6 per clip for the
default method).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from vidgen.errors import ConfigurationError, KeyMaterialError
from vidgen.types import Video

PAYLOAD_BITS = 32
DEFAULT_METHOD = "vidgen"
KEY_BYTES = 32
ENV_WATERMARK_KEY = "VIDGEN_WATERMARK_KEY"
ENV_WATERMARK_KEY_FILE = "VIDGEN_WATERMARK_KEY_FILE"


@attrs.frozen
class Detection:
    """What a detector found in a clip."""

    detected: bool
    payload: int | None  # the decoded watermark id, when detected and its check passed
    p_value: float  # P(score >= observed | no mark under this key)
    bits_matched: int | None  # decoded code bits agreeing with the re-encoded payload
    frames_used: int
    method: str
    score: float = 0.0  # the method's detection statistic (e.g. a z-score)


@runtime_checkable
class KeyedWatermarker(Protocol):
    """Embeds and detects a 32-bit payload under the key it was made with."""

    name: str

    def embed(self, video: Video, payload: int) -> Video: ...

    def detect(self, video: Video) -> Detection: ...


WatermarkerFactory = Callable[[bytes], KeyedWatermarker]

_lock = threading.Lock()
_methods: dict[str, WatermarkerFactory] = {}


def register_method(name: str, factory: WatermarkerFactory) -> None:
    """Make a watermarking method available by name (``get_watermarker(name, key)``)."""
    with _lock:
        _methods[name] = factory


def method_names() -> list[str]:
    with _lock:
        return sorted(_methods)


def get_watermarker(name: str, key: bytes) -> KeyedWatermarker:
    """A keyed watermarker of the named method."""
    with _lock:
        factory = _methods.get(name)
    if factory is None:
        raise ConfigurationError(
            f"no watermarking method {name!r}; available: {', '.join(method_names()) or 'none'}")
    return factory(check_key(key))


def check_payload(payload: int) -> int:
    if not isinstance(payload, int) or not 0 <= payload < 1 << PAYLOAD_BITS:
        raise ConfigurationError(f"payload must be an integer in [0, 2**{PAYLOAD_BITS}), "
                                 f"got {payload!r}")
    return payload


def check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) < 16:
        raise KeyMaterialError("a watermark key must be at least 16 bytes")
    return bytes(key)


# --- key files ----------------------------------------------------------------------------


def new_key() -> bytes:
    """A fresh random per-deployment watermark key."""
    return secrets.token_bytes(KEY_BYTES)


def write_key_file(path: str | Path, key: bytes | None = None) -> bytes:
    """Write a key as hex to a new 0600 file; returns the key."""
    key = check_key(key if key is not None else new_key())
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return key


def parse_key(text: str, source: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise KeyMaterialError(f"{source}: a watermark key is hex text") from exc
    return check_key(key)


def read_key_file(path: str | Path) -> bytes:
    """Read a hex key file; refused if group/world accessible (like private keys)."""
    from vidgen.provenance.keys import check_private_key_permissions

    p = Path(path).expanduser()
    check_private_key_permissions(p)
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise KeyMaterialError(f"watermark key {p} is not hex text") from None
    except OSError as exc:
        raise KeyMaterialError(f"cannot read watermark key {p}: {exc.strerror or exc}") from exc
    return parse_key(text, str(p))


def key_from_env() -> bytes | None:
    """``$VIDGEN_WATERMARK_KEY`` (hex) or ``$VIDGEN_WATERMARK_KEY_FILE``; None when unset."""
    text = os.environ.get(ENV_WATERMARK_KEY)
    if text:
        return parse_key(text, ENV_WATERMARK_KEY)
    path = os.environ.get(ENV_WATERMARK_KEY_FILE)
    if path:
        return read_key_file(path)
    return None
