"""verify on varied containers and on files signed by another C2PA tool and CA."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import c2pa
import numpy as np
import pytest

import vidgen
from vidgen.provenance.keys import DevKeys, init_dev_keys

CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def _make(path: Path, fmt: str, codec: str, *, audio: bool = False,
          options: dict[str, str] | None = None, frames: int = 10) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        v = c.add_stream(codec, rate=Fraction(25))
        v.width, v.height = 64, 48
        v.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        a = c.add_stream("aac", rate=16000) if audio else None
        for i in range(frames):
            img = np.full((48, 64, 3), (i * 20) % 256, np.uint8)
            img[: 8 + i] = rng.integers(0, 255, size=3)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            samples = np.zeros((1, 1024), np.float32)
            for k in range(8):
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, k * 1024
                for p in a.encode(frame):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
    return path


def _foreign_sign(src: Path, dst: Path, mime: str, keys: DevKeys) -> None:
    """Sign as another product would: its own generator name, CA, and a capture action."""
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": "OtherCam", "version": "2.1"}],
        "title": src.name,
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": CAPTURE}]}}],
    }
    info = c2pa.C2paSignerInfo(b"es256", keys.signer_cert.read_bytes(),
                               keys.signer_key.read_bytes(), None)
    signer = c2pa.Signer.from_info(info)
    builder = c2pa.Builder(json.dumps(manifest))
    with open(src, "rb") as s, open(dst, "w+b") as d:
        builder.sign(signer, mime, s, d)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> DevKeys:
    return init_dev_keys(tmp_path_factory.mktemp("other"), organization="Other Camera Co")


CASES = [
    ("h264.mp4", "mp4", "libx264", "video/mp4", False, None),
    ("h264-aac.mp4", "mp4", "libx264", "video/mp4", True, None),
    ("mpeg4.mov", "mov", "mpeg4", "video/quicktime", False, None),
    ("mjpeg.mov", "mov", "mjpeg", "video/quicktime", False, None),
    ("h264-faststart.mp4", "mp4", "libx264", "video/mp4", False, {"movflags": "+faststart"}),
]


@pytest.mark.parametrize(("name", "fmt", "codec", "mime", "audio", "options"), CASES,
                         ids=[c[0] for c in CASES])
def test_foreign_signed_and_unsigned(tmp_path: Path, other_ca: DevKeys, name: str, fmt: str,
                                     codec: str, mime: str, audio: bool,
                                     options: dict[str, str] | None) -> None:
    plain = _make(tmp_path / name, fmt, codec, audio=audio, options=options)
    unsigned = vidgen.verify(plain)
    assert unsigned.c2pa is not None and unsigned.c2pa.state == "absent"
    assert unsigned.exit_code == 1

    signed = tmp_path / f"signed-{name}"
    _foreign_sign(plain, signed, mime, other_ca)
    r = vidgen.verify(signed)
    assert r.c2pa is not None
    assert r.c2pa.state == "valid", r.c2pa
    assert r.c2pa.claim_generator == "OtherCam/2.1"
    assert r.c2pa.signer == "Other Camera Co signer"
    assert r.c2pa.ai_generated is False
    assert "signingCredential.untrusted" in r.c2pa.codes
    trusted = vidgen.verify(signed, trust=other_ca.ca_cert)
    assert trusted.c2pa is not None and trusted.c2pa.state == "trusted"
    assert trusted.verdict == "confirmed"


def test_fragmented_mp4(tmp_path: Path, other_ca: DevKeys) -> None:
    """Fragmented MP4 (moof/mdat pairs): unsigned is absent; signed validates or says why."""
    frag = _make(tmp_path / "frag.mp4", "mp4", "libx264", frames=30,
                 options={"movflags": "frag_keyframe+empty_moov"})
    r = vidgen.verify(frag)
    assert r.c2pa is not None and r.c2pa.state == "absent"
    signed = tmp_path / "signed-frag.mp4"
    _foreign_sign(frag, signed, "video/mp4", other_ca)
    r = vidgen.verify(signed, trust=other_ca.ca_cert)
    assert r.c2pa is not None and r.c2pa.state == "trusted", r.c2pa
