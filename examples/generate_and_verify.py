"""Generate a signed clip with the default backend, then verify it.

    python examples/generate_and_verify.py [OUTPUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import vidgen
from vidgen.provenance.keys import init_dev_keys


def main(out_dir: Path) -> None:
    keys = init_dev_keys(out_dir / "keys", overwrite=True)
    pipe = vidgen.Pipeline.from_backend("scene", keys_dir=keys.directory)
    result = pipe.generate("a red circle moving right on a blue background",
                           num_frames=16, seed=0, output=out_dir / "circle.mp4")
    print(f"wrote {result.path} ({result.video.num_frames} frames), sha256 {result.sha256[:12]}")

    trusted = vidgen.verify(result.path, trust=keys.ca_cert)
    untrusted = vidgen.verify(result.path)
    print(f"with the dev CA as trust anchor: {trusted.c2pa.state if trusted.c2pa else None} "
          f"-> {trusted.verdict}")
    print(f"without trust anchors:           {untrusted.c2pa.state if untrusted.c2pa else None} "
          f"-> {untrusted.verdict}")
    assert trusted.verdict == "confirmed" and untrusted.verdict == "unconfirmed"


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
