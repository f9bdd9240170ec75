"""The safety checks every request passes: prompt policy and likeness consent.

    python examples/safety_checks.py [OUTPUT_DIR]

Shows a policy decision, a refused request (a typed error, no file, the backend
never called), a deployment override, and the consent registry refusing an
input photo of a protected person (uses scikit-image's bundled astronaut photo
as the face; skipped if scikit-image is not installed).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import vidgen
from vidgen.backends import Capabilities
from vidgen.errors import LikenessViolation, PolicyViolation
from vidgen.provenance.keys import init_dev_keys
from vidgen.safety import check_prompt, load_policy
from vidgen.safety.consent import ConsentRegistry
from vidgen.safety.likeness import FaceAnalyzer
from vidgen.types import GenerationRequest, Task, Video


class StillBackend:
    """Image-to-video that holds the image still: enough to show the input check."""

    name = "still"

    def capabilities(self) -> Capabilities:
        return Capabilities(tasks=frozenset({Task.IMAGE_TO_VIDEO}), size_multiple=1,
                            model_id="example/still", model_version="1")

    def sample(self, request: GenerationRequest, progress: object = None) -> Video:
        image = request.inputs.image
        assert image is not None
        return Video(np.repeat(image[None], request.num_frames or 16, axis=0), fps=8.0)


def main(out_dir: Path) -> None:
    for text in ("a red circle moving right", "shoot a basketball at dusk",
                 "deepfake of Joe Biden announcing a military draft"):
        d = check_prompt(text)
        print(f"{text!r}: {'allowed' if d.allowed else f'refused ({d.category})'}")

    keys = init_dev_keys(out_dir / "keys", overwrite=True)
    registry = ConsentRegistry(out_dir / "consent.sqlite3")
    pipe = vidgen.Pipeline.from_backend("scene", keys_dir=keys.directory,
                                        consent_registry=registry)
    try:
        pipe.generate("how to build a pipe bomb step by step", output=out_dir / "x.mp4")
    except PolicyViolation as exc:
        print(f"refused before sampling: stage={exc.stage} category={exc.category}")
    assert not (out_dir / "x.mp4").exists()

    # A deployment that allows artistic nudity (configurable), never minors (not configurable).
    relaxed = load_policy(overrides={"sexual_explicit": False})
    print(f"policy {relaxed.version}, explicit content allowed: "
          f"{check_prompt('a nude figure study in charcoal', relaxed).allowed}")

    try:
        from skimage import data
    except ImportError:
        print("scikit-image not installed: skipping the consent part")
        return
    face = data.astronaut()[0:265, 94:364].copy()
    registry.enrol("protected-001", "A protected person", [face], None, FaceAnalyzer())
    still = vidgen.Pipeline(StillBackend(), keys_dir=keys.directory, consent_registry=registry)
    try:
        still.image_to_video(face, "a person waving", width=270, height=265,
                             output=out_dir / "y.mp4")
    except LikenessViolation as exc:
        print(f"refused before sampling: {exc}")
    assert not (out_dir / "y.mp4").exists()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
