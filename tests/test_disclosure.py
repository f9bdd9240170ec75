"""The visible disclosure label: placement, untouched pixels, glyphs, manifest record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vidgen
from vidgen import errors
from vidgen.pipeline import Pipeline
from vidgen.provenance.disclosure import (
    GLYPHS,
    LABELS,
    POSITIONS,
    DisclosureLabel,
    render_mask,
    text_bitmap,
)
from vidgen.provenance.keys import DevKeys
from vidgen.types import Video

from .conftest import GradientBackend


def _clip(t: int = 3, h: int = 180, w: int = 320) -> Video:
    rng = np.random.default_rng(0)
    return Video(rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8), fps=10)


@pytest.mark.parametrize("position", POSITIONS)
def test_label_sits_in_its_corner_and_nothing_else_changes(position: str) -> None:
    clip = _clip()
    label = DisclosureLabel(position=position)  # type: ignore[arg-type]
    out, record = label.apply(clip)
    box = record["box"]
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    margin = round(label.margin * clip.height)
    assert (x == margin) == position.endswith("left")
    assert (x + w == clip.width - margin) == position.endswith("right")
    assert (y == margin) == position.startswith("top")
    assert (y + h == clip.height - margin) == position.startswith("bottom")
    inside = np.zeros(clip.frames.shape[1:3], bool)
    inside[y:y + h, x:x + w] = True
    assert np.array_equal(out.frames[:, ~inside], clip.frames[:, ~inside])  # untouched
    changed = (out.frames != clip.frames).any(axis=(0, 3))
    assert changed[inside].mean() > 0.9  # the dark box covers the region
    assert record["position"] == position and record["text"] == "AI-generated"
    assert record["language"] == "en" and record["frames"] == "all"
    assert out.fps == clip.fps


def test_text_is_white_on_a_darkened_box() -> None:
    flat = Video(np.full((1, 180, 320, 3), 200, np.uint8))
    out, record = DisclosureLabel(box_opacity=0.6).apply(flat)
    b = record["box"]
    region = out.frames[0, b["y"]:b["y"] + b["height"], b["x"]:b["x"] + b["width"], 0]
    assert region[0, 0] == 80  # 200 * (1 - 0.6), the padding has no text
    assert region.max() == 255  # fully covered text pixels are white
    assert set(np.unique(region)) - {80, 255}  # anti-aliased edges in between


def test_size_is_relative_to_frame_height() -> None:
    small = DisclosureLabel(size=0.05).layout(360, 640)
    large = DisclosureLabel(size=0.05).layout(1080, 1920)
    assert large.height == pytest.approx(3 * small.height, abs=3)
    assert large.width == pytest.approx(3 * small.width, abs=6)


def test_glyph_shapes_survive_rendering() -> None:
    """At an integer scale, the coverage at every cell centre is the bitmap itself."""
    for text in LABELS.values():
        bitmap = text_bitmap(text)
        for scale in (1, 3, 6):
            mask = render_mask(bitmap, scale)
            centres = mask[scale // 2::scale, scale // 2::scale]
            assert centres.shape == bitmap.shape
            assert np.array_equal(centres > 0.5, bitmap > 0), (text, scale)


def test_every_label_has_its_glyphs() -> None:
    assert LABELS == {"en": "AI-generated", "de": "KI-generiert", "fr": "Généré par IA",
                      "ko": "AI 생성"}
    for text in LABELS.values():
        assert set(text) <= set(GLYPHS)
    assert GLYPHS["생"].any() and not np.array_equal(GLYPHS["생"], GLYPHS["성"])


def test_bad_labels_are_refused() -> None:
    with pytest.raises(errors.ConfigurationError, match="no built-in disclosure label"):
        DisclosureLabel(language="xx")
    with pytest.raises(errors.ConfigurationError, match="no glyph"):
        DisclosureLabel(text="AI-generated!")
    with pytest.raises(errors.ConfigurationError, match="position"):
        DisclosureLabel(position="center")  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="size"):
        DisclosureLabel(size=0.9)
    assert DisclosureLabel(text="KI generiert").label_text == "KI generiert"


def test_frame_too_small_for_a_legible_label() -> None:
    with pytest.raises(errors.DisclosureError, match="too small"):
        DisclosureLabel().apply(Video(np.zeros((1, 32, 32, 3), np.uint8)))
    # shrinks to fit (down to one pixel per font cell) rather than overflow
    layout = DisclosureLabel(size=0.2).layout(120, 100)
    assert layout.x >= 0 and layout.x + layout.width <= 100


class _Recorder:
    """Keeps the frames the watermark stage received."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: Video | None = None

    def embed(self, video: Video, payload: int) -> Video:
        self.seen = video
        return video


def test_pipeline_applies_label_before_watermark_and_records_it(
        dev_keys: DevKeys, tmp_path: Path) -> None:
    backend = GradientBackend()
    recorder = _Recorder()
    pipe = Pipeline(backend, signer=dev_keys.signer(), watermarker=recorder, disclose="de")
    res = pipe.generate("x", num_frames=4, height=96, width=160, output=tmp_path / "o.mp4")
    assert recorder.seen is not None
    plain = backend.sample(vidgen.GenerationRequest("x", num_frames=4, height=96, width=160))
    expected, record = DisclosureLabel(language="de").apply(plain)
    assert recorder.seen == expected  # the mark goes over the labelled frames
    data = next(a["data"] for a in res.manifest["assertions"]
                if a["label"] == "org.vidgen.disclosure")
    assert data == record and data["text"] == "KI-generiert"
    report = vidgen.verify(res.path)  # signed into the file, not only returned
    assert report.c2pa is not None and report.c2pa.manifest is not None
    assert any(a["label"] == "org.vidgen.disclosure"
               for a in report.c2pa.manifest["assertions"])


def test_no_label_unless_asked(dev_keys: DevKeys, tmp_path: Path) -> None:
    res = Pipeline(GradientBackend(), signer=dev_keys.signer()).generate(
        "x", output=tmp_path / "o.mp4")
    assert all(a["label"] != "org.vidgen.disclosure" for a in res.manifest["assertions"])


def test_label_that_cannot_fit_fails_closed(dev_keys: DevKeys, tmp_path: Path) -> None:
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), disclose=DisclosureLabel())
    with pytest.raises(errors.DisclosureError) as info:
        pipe.generate("x", output=tmp_path / "o.mp4")  # 32x32 frames
    assert info.value.stage == "disclosure"
    assert list(tmp_path.iterdir()) == []


def test_cli_generate_with_disclosure(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from vidgen.cli import main

    out = tmp_path / "c.mp4"
    assert main(["generate", "a red circle moving right", "-o", str(out), "--width", "192",
                 "--height", "128", "--frames", "4", "--disclose", "ko",
                 "--disclose-position", "top-left", "--json"]) == 0
    summary: dict[str, Any] = json.loads(capsys.readouterr().out)
    data = next(a["data"] for a in summary["manifest"]["assertions"]
                if a["label"] == "org.vidgen.disclosure")
    assert data["text"] == "AI 생성" and data["position"] == "top-left"
