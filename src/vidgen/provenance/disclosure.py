"""A visible "AI-generated" label, rendered into the frames before the watermark.

EU AI Act Art. 50(4) asks deployers who publish deep fakes to disclose that
the content was artificially generated; a label people can see does that even
where no C2PA reader is at hand. The label is optional (``Pipeline(disclose=...)``)
and, when applied, recorded in the manifest (``org.vidgen.disclosure``) with its
text, language, position and pixel box.

No font files and no Pillow: a small bitmap font for exactly the characters of
the built-in labels lives in this module (Latin on a 5-column, 7-row cap grid
with 2 descender rows; the Hangul syllables 생 and 성 on a 9x10 grid). Glyphs
are scaled by bilinear interpolation of the bitmap, thresholded and
supersampled 4x4, which gives anti-aliased strokes with rounded corners at any
size. White text on a semi-transparent dark box; pixels outside the box are
not touched.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from vidgen.errors import ConfigurationError, DisclosureError
from vidgen.types import Video

Position = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
POSITIONS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")

LABELS: dict[str, str] = {
    "en": "AI-generated",
    "de": "KI-generiert",
    "fr": "Généré par IA",
    "ko": "AI 생성",
}

# --- the font ------------------------------------------------------------------------------
# Every glyph is GRID_ROWS rows tall. Latin: rows 1-7 are the cap height (baseline
# under row 7), rows 8-9 the descender, row 0 stays empty. Hangul uses rows 0-9.

GRID_ROWS = 10
_LATIN: dict[str, tuple[str, ...]] = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".###."),
    "I": ("###", ".#.", ".#.", ".#.", ".#.", ".#.", "###"),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "-": ("....", "....", "....", "####", "....", "....", "...."),
    " ": ("...", "...", "...", "...", "...", "...", "..."),
    "a": (".....", ".....", ".###.", "....#", ".####", "#...#", ".####"),
    "d": ("....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"),
    "e": (".....", ".....", ".###.", "#...#", "#####", "#....", ".###."),
    "é": ("...#.", "..#..", ".###.", "#...#", "#####", "#....", ".###."),
    "g": (".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."),
    "i": (".#.", "...", "##.", ".#.", ".#.", ".#.", "###"),
    "n": (".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"),
    "p": (".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."),
    "r": (".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."),
    "t": (".#..", ".#..", "####", ".#..", ".#..", ".#.#", "..#."),
}
_HANGUL: dict[str, tuple[str, ...]] = {
    "생": (  # ㅅ + ㅐ over ㅇ
        "..#...#..#",
        "..#...#..#",
        ".#.#..####",
        ".#.#..#..#",
        "#...#.#..#",
        "......#..#",
        "...###....",
        "..#...#...",
        "..#...#...",
        "...###....",
    ),
    "성": (  # ㅅ + ㅓ over ㅇ
        "..#.....#.",
        "..#.....#.",
        ".#.#..###.",
        ".#.#....#.",
        "#...#...#.",
        "........#.",
        "...###....",
        "..#...#...",
        "..#...#...",
        "...###....",
    ),
}


def _glyph_array(rows: tuple[str, ...], top: int) -> npt.NDArray[np.float64]:
    out = np.zeros((GRID_ROWS, len(rows[0])), np.float64)
    for r, line in enumerate(rows):
        out[top + r] = [c == "#" for c in line]
    return out


GLYPHS: dict[str, npt.NDArray[np.float64]] = {
    **{ch: _glyph_array(rows, 1) for ch, rows in _LATIN.items()},
    **{ch: _glyph_array(rows, 0) for ch, rows in _HANGUL.items()},
}
SUPPORTED_CHARACTERS = frozenset(GLYPHS)


def text_bitmap(text: str) -> npt.NDArray[np.float64]:
    """The label as one bitmap line (GRID_ROWS rows, glyphs 1 column apart), rows cropped."""
    missing = sorted({c for c in text if c not in GLYPHS})
    if missing:
        raise ConfigurationError(
            f"the disclosure font has no glyph for {''.join(missing)!r}; supported: "
            f"{''.join(sorted(SUPPORTED_CHARACTERS))!r}")
    if not text.strip():
        raise ConfigurationError("the disclosure text is empty")
    gap = np.zeros((GRID_ROWS, 1))
    parts: list[npt.NDArray[np.float64]] = []
    for i, ch in enumerate(text):
        if i:
            parts.append(gap)
        parts.append(GLYPHS[ch])
    line = np.concatenate(parts, axis=1)
    used = np.flatnonzero(line.any(axis=1))
    return line[used[0]:used[-1] + 1]


# Below 0.5 so that diagonal neighbours join and strokes come out a little bolder
# (about 1.2 cells), which survives video compression better.
_THRESHOLD = 0.4


def render_mask(bitmap: npt.NDArray[np.float64], scale: float,
                supersample: int = 4) -> npt.NDArray[np.float64]:
    """Coverage in [0, 1] of ``bitmap`` drawn at ``scale`` pixels per bitmap cell.

    The bitmap is interpolated bilinearly (cell centres at integer coordinates)
    and thresholded a little below 0.5, so strokes join and corners round off;
    averaging ``supersample``**2 samples per pixel anti-aliases the edges.
    """
    rows, cols = bitmap.shape
    h, w = max(1, round(rows * scale)), max(1, round(cols * scale))
    padded = np.pad(bitmap, 1)
    n = supersample
    sub = (np.arange(n) + 0.5) / n
    ys = ((np.arange(h)[:, None] + sub[None, :]).ravel() / scale - 0.5) + 1.0
    xs = ((np.arange(w)[:, None] + sub[None, :]).ravel() / scale - 0.5) + 1.0
    ys = np.clip(ys, 0.0, rows + 1.0 - 1e-9)
    xs = np.clip(xs, 0.0, cols + 1.0 - 1e-9)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    y1, x1 = np.minimum(y0 + 1, rows + 1), np.minimum(x0 + 1, cols + 1)
    top = padded[y0][:, x0] * (1 - fx) + padded[y0][:, x1] * fx
    bottom = padded[y1][:, x0] * (1 - fx) + padded[y1][:, x1] * fx
    value = top * (1 - fy) + bottom * fy
    inside = (value >= _THRESHOLD).astype(np.float64)
    coverage: npt.NDArray[np.float64] = inside.reshape(h, n, w, n).mean(axis=(1, 3))
    return coverage


# --- the label -------------------------------------------------------------------------


def _check_fraction(lo: float, hi: float) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
        if not lo <= value <= hi:
            raise ConfigurationError(f"DisclosureLabel.{attribute.name} must be in "
                                     f"[{lo}, {hi}], got {value!r}")
    return check


@attrs.frozen
class DisclosureLabel:
    """A visible label such as "AI-generated", drawn in a corner of every frame.

    ``language`` picks a built-in text (``LABELS``: en, de, fr, ko); ``text``
    overrides it (only characters of the built-in font). ``size`` is the text
    height as a fraction of the frame height; ``margin`` the gap to the frame
    edges, also relative to the height; ``box_opacity`` the darkness of the box.
    """

    language: str = "en"
    text: str | None = None
    position: Position = "bottom-right"
    size: float = attrs.field(default=0.045, converter=float, validator=_check_fraction(0.005, 0.5))
    margin: float = attrs.field(default=0.03, converter=float, validator=_check_fraction(0.0, 0.25))
    box_opacity: float = attrs.field(default=0.6, converter=float,
                                     validator=_check_fraction(0.0, 1.0))

    def __attrs_post_init__(self) -> None:
        if self.text is None and self.language not in LABELS:
            raise ConfigurationError(
                f"no built-in disclosure label for language {self.language!r}; built in: "
                f"{', '.join(sorted(LABELS))} (or pass text=)")
        if self.position not in POSITIONS:
            raise ConfigurationError(f"position must be one of {', '.join(POSITIONS)}, "
                                     f"got {self.position!r}")
        text_bitmap(self.label_text)  # refuse unsupported characters up front

    @property
    def label_text(self) -> str:
        return self.text if self.text is not None else LABELS[self.language]

    def layout(self, height: int, width: int) -> Layout:
        """Where the label goes on a ``height`` x ``width`` frame, and its coverage mask.

        The text is at least one pixel per font cell (7 px capitals): smaller is
        not legible, so a frame too small for that raises ``DisclosureError``.
        """
        bitmap = text_bitmap(self.label_text)
        rows, cols = bitmap.shape
        cap_rows = 7.0
        scale = max(1.0, self.size * height / cap_rows)
        pad = max(1, round(0.45 * cap_rows * scale))
        margin = round(self.margin * height)
        room_w, room_h = width - 2 * margin - 2 * pad, height - 2 * margin - 2 * pad
        fit = min(room_w / cols, room_h / rows)
        if fit < scale:
            if fit < 1.0:
                raise DisclosureError(
                    f"a {width}x{height} frame is too small for a legible "
                    f"{self.label_text!r} label (needs about {cols + 2 * pad + 2 * margin} "
                    f"px width at the smallest size)")
            scale = fit
        text = render_mask(bitmap, scale)
        th, tw = text.shape
        box_h, box_w = th + 2 * pad, tw + 2 * pad
        top = margin if self.position.startswith("top") else height - margin - box_h
        left = margin if self.position.endswith("left") else width - margin - box_w
        return Layout(x=left, y=top, width=box_w, height=box_h, pad=pad, text=text)

    def apply(self, video: Video) -> tuple[Video, dict[str, Any]]:
        """The clip with the label drawn on every frame, and the manifest record of it."""
        layout = self.layout(video.height, video.width)
        frames = video.frames.copy()
        region = frames[:, layout.y:layout.y + layout.height,
                        layout.x:layout.x + layout.width].astype(np.float32)
        region *= 1.0 - self.box_opacity
        alpha = np.zeros((layout.height, layout.width), np.float32)
        p = layout.pad
        alpha[p:p + layout.text.shape[0], p:p + layout.text.shape[1]] = layout.text
        alpha = alpha[None, :, :, None]
        region = region * (1.0 - alpha) + 255.0 * alpha
        frames[:, layout.y:layout.y + layout.height, layout.x:layout.x + layout.width] = \
            np.clip(np.rint(region), 0, 255).astype(np.uint8)
        record = {
            "text": self.label_text,
            "language": self.language,
            "position": self.position,
            "box": {"x": layout.x, "y": layout.y, "width": layout.width,
                    "height": layout.height},
            "frames": "all",
            "purpose": "visible disclosure of AI-generated content (EU AI Act Art. 50)",
        }
        return Video(frames, fps=video.fps), record


@attrs.frozen(eq=False)
class Layout:
    """The label's box on the frame (pixels) and the text coverage inside it."""

    x: int
    y: int
    width: int
    height: int
    pad: int
    text: npt.NDArray[np.float64] = attrs.field(repr=False)


__all__ = ["LABELS", "POSITIONS", "DisclosureLabel", "Layout", "render_mask", "text_bitmap"]
