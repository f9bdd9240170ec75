"""``vidgen.verify``: what a compliance team runs on any file.

The report (contract in ARCHITECTURE.md) combines the C2PA manifest state, the
watermark detector's answer and, when the manifest was stripped, the manifest
recovered through the watermark id. Verdicts:

- ``confirmed``: an intact manifest from a trusted signer, or no manifest but a
  detected mark whose manifest was recovered from the manifest store;
- ``tampered``: a manifest is present but its hashes or signature fail;
- ``unconfirmed``: no manifest (and nothing recovered), or an intact one from a
  signer that is not trusted;
- ``error``: the file could not be processed (exit code 2).

The watermark is looked for when a key is at hand (``key=``, else
``$VIDGEN_WATERMARK_KEY``/``_FILE``, else an existing ``watermark.key`` in the
default keys directory). The method is the one the manifest's soft binding
names, else ``watermark_method=``/``$VIDGEN_WATERMARK_METHOD``/``"vidgen"``.
At most ``max_frames`` frames are decoded, spread evenly over the clip.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Any, Protocol

import attrs

from vidgen.errors import (
    ConfigurationError,
    KeyMaterialError,
    MediaError,
    StoreError,
    VidgenError,
)
from vidgen.provenance.c2pa import MIME_BY_KIND, SoftBinding, read_c2pa, read_soft_binding
from vidgen.provenance.keys import (
    configured_watermark_method,
    existing_watermark_key,
    load_trust_anchors,
)
from vidgen.provenance.watermark.base import KeyedWatermarker
from vidgen.types import C2paReport, VerificationReport, WatermarkReport

MAX_VERIFY_BYTES = 16 * 1024**3
DEFAULT_VERIFY_FRAMES = 64
# Decoded RGB the detector may hold at once: 64 frames of 1080p fit; 8K gets ~10 frames.
FRAME_BUDGET_BYTES = 1 << 30


class WatermarkDetector(Protocol):
    """Reads the keyed watermark from a file (``vidgen.provenance.watermark``)."""

    def detect_file(self, path: Path) -> WatermarkReport: ...


class ManifestLookup(Protocol):
    """Finds the manifest recorded for a watermark id (``vidgen.provenance.store``)."""

    def lookup(self, watermark_id: int) -> dict[str, Any] | None: ...


@attrs.frozen
class SampledFrameDetector:
    """Runs a keyed watermarker on at most ``max_frames`` frames spread evenly over a file.

    Decoding is bounded twice: by ``video_io``'s hostile-input limits and by
    ``FRAME_BUDGET_BYTES`` of RGB frames (fewer frames for very large sizes).
    """

    watermarker: KeyedWatermarker
    max_frames: int = DEFAULT_VERIFY_FRAMES

    def detect_file(self, path: Path) -> WatermarkReport:
        from vidgen.video_io import probe_video, read_video

        info = probe_video(path)
        budget = max(1, FRAME_BUDGET_BYTES // max(1, info.width * info.height * 3))
        count = max(1, min(self.max_frames, budget))
        step = max(1, math.ceil(info.num_frames / count)) if info.num_frames else 1
        clip = read_video(path, max_frames=count, step=step)
        try:
            det = self.watermarker.detect(clip)
        except MediaError:
            raise
        except Exception as exc:  # a detector that cannot cope must not become a traceback
            return WatermarkReport(
                checked=False, method=self.watermarker.name,
                explanation=f"the {self.watermarker.name!r} detector failed: "
                            f"{type(exc).__name__}: {exc}")
        if det.detected:
            explanation = (f"mark of method {det.method!r} detected (p = {det.p_value:.3g})"
                           + (f", watermark id {det.payload}" if det.payload is not None
                              else ", but its id could not be decoded"))
        else:
            explanation = (f"no mark of method {det.method!r} under this key "
                           f"(p = {det.p_value:.3g}, {det.frames_used} frames)")
        return WatermarkReport(
            checked=True, detected=det.detected,
            payload=det.payload if det.detected else None, p_value=det.p_value,
            bits_matched=det.bits_matched, frames_used=det.frames_used, method=det.method,
            explanation=explanation)


@functools.lru_cache(maxsize=8)
def _watermarker(key: bytes, method: str) -> KeyedWatermarker:
    from vidgen.provenance.watermark import watermarker

    return watermarker(key, method)


def _detector(key: bytes | None, method: str,
              max_frames: int) -> SampledFrameDetector | WatermarkReport:
    """The detector for ``method``, or a report saying why none can run."""
    if key is None:
        return WatermarkReport(
            checked=False, method=method,
            explanation="no watermark key (pass --key FILE, or set $VIDGEN_WATERMARK_KEY or "
                        "$VIDGEN_WATERMARK_KEY_FILE)")
    try:
        return SampledFrameDetector(_watermarker(key, method), max_frames)
    except ConfigurationError as exc:  # e.g. the manifest names a method not installed here
        return WatermarkReport(checked=False, method=method,
                               explanation=f"cannot check the watermark: {exc.message}")


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


def _compare(watermark: WatermarkReport, binding: SoftBinding | None,
             c2pa_report: C2paReport) -> WatermarkReport:
    """Fill ``matches_manifest``: does the detected id agree with the manifest's soft binding?"""
    if not watermark.detected or watermark.payload is None or c2pa_report.manifest is None:
        return watermark
    if binding is None or binding.watermark_id is None:
        note = (f"the manifest declares no vidgen soft binding, yet the frames carry "
                f"watermark id {watermark.payload}")
        return attrs.evolve(watermark, matches_manifest=False,
                            explanation=_join(watermark.explanation, note))
    if binding.watermark_id == watermark.payload:
        return attrs.evolve(watermark, matches_manifest=True)
    note = (f"the frames carry watermark id {watermark.payload} but the manifest's soft "
            f"binding declares {binding.watermark_id}")
    return attrs.evolve(watermark, matches_manifest=False,
                        explanation=_join(watermark.explanation, note))


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second


def _recover(watermark: WatermarkReport,
             store: ManifestLookup) -> tuple[WatermarkReport, dict[str, Any] | None]:
    assert watermark.payload is not None
    manifest = store.lookup(watermark.payload)
    if manifest is None:
        note = (f"watermark id {watermark.payload} is not in the manifest store "
                f"({getattr(store, 'path', 'given')}): no manifest to recover")
        return attrs.evolve(watermark, explanation=_join(watermark.explanation, note)), None
    note = "manifest recovered from the manifest store"
    lookup_all = getattr(store, "lookup_all", None)
    if callable(lookup_all):
        shared = len(lookup_all(watermark.payload))
        if shared > 1:
            note += (f"; {shared} outputs share this id (32-bit ids collide rarely), "
                     "the most recent is shown")
    return attrs.evolve(watermark, explanation=_join(watermark.explanation, note)), manifest


def verify(
    path: str | Path,
    *,
    trust: str | Path | None = None,
    trust_anchors_pem: str | None = None,
    key: bytes | None = None,
    watermark_method: str | None = None,
    store: ManifestLookup | str | Path | None = None,
    detector: WatermarkDetector | None = None,
    max_frames: int = DEFAULT_VERIFY_FRAMES,
) -> VerificationReport:
    """Verify one file. Never raises for a bad file: the report's verdict is ``error``.

    ``trust`` is a PEM file of trust anchors (default ``$VIDGEN_TRUST_ANCHORS``);
    ``trust_anchors_pem`` passes them already loaded (for sweeps over many files).
    ``key`` is the watermark key (default: see the module docstring);
    ``store`` the manifest store to recover stripped manifests from (default the
    store at ``$VIDGEN_STORE`` or the user data dir; never created by verify);
    ``detector`` replaces the built-in watermark detector.
    A bad trust file, key or store, or an unknown ``watermark_method``, raises
    (``KeyMaterialError``, ``StoreError``, ``ConfigurationError``): those are the
    caller's mistakes, not the file's.
    """
    p = Path(path)
    anchors = trust_anchors_pem if trust_anchors_pem is not None else load_trust_anchors(trust)
    wm_key = key if key is not None else existing_watermark_key()
    if watermark_method is not None:
        from vidgen.provenance.watermark import available_methods

        if watermark_method not in available_methods():
            raise ConfigurationError(
                f"no watermarking method {watermark_method!r}; available: "
                f"{', '.join(available_methods()) or 'none'}")
    lookup: ManifestLookup
    if store is None or isinstance(store, str | Path):
        from vidgen.provenance.store import ManifestStore

        lookup = ManifestStore(store)
    else:
        lookup = store
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
        binding = read_soft_binding(c2pa_report.manifest)
        method = watermark_method or (binding.method if binding and binding.method else None)
        found = detector if detector is not None else _detector(
            wm_key, method or configured_watermark_method(), max_frames)
        if isinstance(found, WatermarkReport):
            watermark = found
        else:
            try:
                watermark = found.detect_file(p)
            except MediaError as exc:
                if c2pa_report.state == "absent":
                    raise  # nothing at all could be read from this file
                watermark = WatermarkReport(
                    checked=False, explanation=f"the frames could not be decoded: {exc.message}")
        watermark = _compare(watermark, binding, c2pa_report)
        recovered = None
        if c2pa_report.state == "absent" and watermark.detected and watermark.payload is not None:
            watermark, recovered = _recover(watermark, lookup)
    except (KeyMaterialError, StoreError):
        raise
    except (VidgenError, OSError) as exc:
        message = exc.message if isinstance(exc, VidgenError) else f"{p}: {exc}"
        return VerificationReport(file=str(p), sha256=digest, c2pa=None, watermark=None,
                                  recovered_manifest=None, verdict="error", error=message)
    return VerificationReport(
        file=str(p), sha256=digest, c2pa=c2pa_report, watermark=watermark,
        recovered_manifest=recovered, verdict=_verdict(c2pa_report, recovered))
