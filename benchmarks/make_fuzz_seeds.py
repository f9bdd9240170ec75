"""Write the seed corpus for the verify/read fuzzers into tests/data/fuzz_seeds/.

    python benchmarks/make_fuzz_seeds.py [--out tests/data/fuzz_seeds]

Small files (a few KB each) covering what the fuzzer should reach:

- ``signed.mp4``: a scene-backend clip through the full chain (C2PA manifest signed
  by a throwaway development CA, ``test-blocks`` watermark double);
- ``stripped.mp4``: the same with its C2PA box blanked (recovered through the mark);
- ``plain.mp4`` / ``plain_moov_last.mp4``: unsigned H.264, moov first and last;
- ``plain.mov``: QuickTime container; ``fragmented.mp4``: moof/traf/trun fragments;
- ``hevc.mp4``: H.265 (hvcC) at 64x64.

Also writes ``anchors.pem`` (the throwaway CA's certificate; its key is discarded),
and ``seeds.json``: the watermark key and method, a manifest-store record for the
mark, and the verdict each seed gets. The CA and signer are valid for ten years.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzzing import load_config, load_seeds, run_case  # noqa: E402
from tests.mp4boxes import strip_c2pa  # noqa: E402
from tests.watermark_double import TEST_KEY, TEST_METHOD, BlockTestWatermark  # noqa: E402


def _frames(t: int, h: int, w: int) -> np.ndarray:
    tt = np.arange(t, dtype=np.float64)[:, None, None]
    y = np.arange(h, dtype=np.float64)[None, :, None]
    x = np.arange(w, dtype=np.float64)[None, None, :]
    red = 128 + 90 * np.sin(x / 7 + tt)
    green = 128 + 90 * np.cos(y / 5 - tt / 2)
    blue = 128 + 60 * np.sin((x + y) / 9)
    return np.clip(np.stack(np.broadcast_arrays(red, green, blue), -1), 0, 255).astype(np.uint8)


def _encode(path: Path, frames: np.ndarray, *, fmt: str = "mp4", codec: str = "libx264",
            movflags: str | None = "+faststart", crf: int = 32) -> None:
    options = {"movflags": movflags} if movflags else {}
    options["fflags"] = "+bitexact"
    with av.open(str(path), "w", format=fmt, container_options=options) as out:
        opts = {"crf": str(crf), "preset": "ultrafast"}
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        stream = out.add_stream(codec, rate=Fraction(12), options=opts)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "libx265":
            stream.codec_context.codec_tag = "hvc1"
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "fuzz_seeds")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vidgen-seeds-") as tmp:
        work = Path(tmp)
        for var, value in (("VIDGEN_KEYS_DIR", work / "keys-default"),
                           ("VIDGEN_STORE", work / "store.sqlite3"),
                           ("VIDGEN_CONSENT_DB", work / "consent.sqlite3")):
            os.environ[var] = str(value)
        from vidgen.pipeline import Pipeline
        from vidgen.provenance.keys import init_dev_keys
        from vidgen.provenance.watermark import available_methods, register_method

        if TEST_METHOD not in available_methods():
            register_method(TEST_METHOD, BlockTestWatermark)
        keys = init_dev_keys(work / "keys", organization="vidgen fuzz seeds", signer_days=3650)
        pipe = Pipeline.from_backend("scene", signer=keys.signer(), watermark_key=TEST_KEY,
                                     watermark_method=TEST_METHOD, crf=32, preset="ultrafast",
                                     store=work / "store.sqlite3")
        result = pipe.generate("a red circle moving right", num_frames=6, width=32, height=32,
                               seed=1, output=out / "signed.mp4")
        strip_c2pa(out / "signed.mp4", out / "stripped.mp4")
        frames = _frames(6, 32, 32)
        _encode(out / "plain.mp4", frames)
        _encode(out / "plain_moov_last.mp4", frames, movflags=None)
        _encode(out / "plain.mov", frames, fmt="mov")
        _encode(out / "fragmented.mp4", frames,
                movflags="frag_keyframe+empty_moov+default_base_moof")
        _encode(out / "hevc.mp4", _frames(4, 64, 64), codec="libx265", crf=40)
        (out / "anchors.pem").write_bytes(keys.ca_cert.read_bytes())
        meta = {
            "anchors": "anchors.pem",
            "watermark_method": TEST_METHOD,
            "watermark_key_hex": TEST_KEY.hex(),
            "store": {str(result.watermark_id): result.manifest},
            "expected": {},
        }
        (out / "seeds.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    config = load_config(out)
    for seed in load_seeds(out):
        outcome = run_case(out / seed.name, seed.data, seed.data, config)
        assert not outcome["crashes"], outcome
        meta["expected"][seed.name] = {"verify": outcome["verify"], "read": outcome["read"]}
        print(f"{seed.name}: {len(seed.data)} bytes, {outcome['verify']}, read {outcome['read']}")
    (out / "seeds.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
