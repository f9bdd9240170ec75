"""``vidgen.verify``: what a compliance team runs on any file.

The report (contract in ARCHITECTURE.md) combines the C2PA manifest state, the
watermark detector's answer and, when the manifest was stripped, the manifest
recovered through the watermark id. Verdicts:

- ``confirmed``: an intact manifest from a trusted signer (or a detected mark
  whose manifest was recovered);
- ``tampered``: a manifest is present but its hashes or signature fail;
- ``unconfirmed``: no manifest, or an intact one from a signer that is not trusted;
- ``error``: the file could not be processed (exit code 2).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

from vidgen.errors import KeyMaterialError, MediaError, VidgenError
from vidgen.provenance.c2pa import MIME_BY_KIND, read_c2pa
from vidgen.provenance.keys import load_trust_anchors
from vidgen.types import C2paReport, VerificationReport, WatermarkReport

MAX_VERIFY_BYTES = 16 * 1024**3


class WatermarkDetector(Protocol):
    """Reads the keyed watermark from a file (``vidgen.provenance.watermark``)."""

    def detect_file(self, path: Path) -> WatermarkReport: ...


class ManifestLookup(Protocol):
    """Finds the manifest recorded for a watermark id (``vidgen.provenance.store``)."""

    def lookup(self, watermark_id: int) -> dict[str, Any] | None: ...


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verdict(c2pa_report: C2paReport, recovered: dict[str, Any] | None) -> str:
    if c2pa_report.state == "trusted":
        return "confirmed"
    if c2pa_report.state == "invalid":
        return "tampered"
    if recovered is not None:
        return "confirmed"
    return "unconfirmed"


def _no_detector() -> WatermarkReport:
    return WatermarkReport(checked=False, explanation="no watermark detector configured")


def verify(
    path: str | Path,
    *,
    trust: str | Path | None = None,
    trust_anchors_pem: str | None = None,
    detector: WatermarkDetector | None = None,
    store: ManifestLookup | None = None,
) -> VerificationReport:
    """Verify one file. Never raises for a bad file: the report's verdict is ``error``.

    ``trust`` is a PEM file of trust anchors (default ``$VIDGEN_TRUST_ANCHORS``);
    ``trust_anchors_pem`` passes them already loaded (for sweeps over many files).
    A bad trust file raises ``KeyMaterialError``: that is the caller's mistake.
    """
    p = Path(path)
    anchors = trust_anchors_pem if trust_anchors_pem is not None else load_trust_anchors(trust)
    digest: str | None = None
    try:
        if not p.is_file():
            raise MediaError(f"{p}: not a file" if p.exists() else f"{p}: no such file")
        size = p.stat().st_size
        if size > MAX_VERIFY_BYTES:
            raise MediaError(f"{p}: {size} bytes is over the {MAX_VERIFY_BYTES}-byte limit")
        digest = sha256_file(p)
        from vidgen.video_io import check_container

        kind = check_container(p)
        mime = MIME_BY_KIND.get(kind)
        if mime is None:
            raise MediaError(f"{p}: {kind} files are not supported (MP4 and MOV are)")
        c2pa_report = read_c2pa(p, mime, anchors)
        watermark = detector.detect_file(p) if detector is not None else _no_detector()
        recovered = None
        if (c2pa_report.state == "absent" and store is not None and watermark.detected
                and watermark.payload is not None):
            recovered = store.lookup(watermark.payload)
    except KeyMaterialError:
        raise
    except (VidgenError, OSError) as exc:
        message = exc.message if isinstance(exc, VidgenError) else f"{p}: {exc}"
        return VerificationReport(file=str(p), sha256=digest, c2pa=None, watermark=None,
                                  recovered_manifest=None, verdict="error", error=message)
    return VerificationReport(
        file=str(p), sha256=digest, c2pa=c2pa_report, watermark=watermark,
        recovered_manifest=recovered, verdict=_verdict(c2pa_report, recovered))
