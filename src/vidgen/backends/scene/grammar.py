"""The scene caption language: vocabulary, parser and canonical captions.

Captions are the only interface to the scene backend, and the training data is
made of them, so the language is deliberately small and closed: every word is
either understood exactly or rejected with a message that lists what is
understood. A ``SceneSpec`` turns back into one canonical caption, so specs and
captions round-trip (``parse_caption(spec.caption()) == spec``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence

import attrs

from vidgen.errors import CaptionError

GRAMMAR_VERSION = "1.0"
"""Bumped whenever a caption could parse or render differently (model_version of the backend)."""

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 190, 60),
    "blue": (30, 80, 235),
    "yellow": (245, 220, 30),
    "white": (255, 255, 255),
    "cyan": (0, 210, 230),
    "magenta": (220, 30, 200),
    "orange": (250, 140, 20),
    "purple": (130, 50, 200),
    "gray": (128, 128, 128),
    "black": (0, 0, 0),
}
"""Color name -> fixed sRGB triple (objects and backgrounds share the palette)."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")
SIZES: tuple[str, ...] = ("small", "medium", "large")
DIRECTIONS: tuple[str, ...] = (
    "left", "right", "up", "down", "up-left", "up-right", "down-left", "down-right",
)
MOTIONS: tuple[str, ...] = ("static", *DIRECTIONS, "falling", "bouncing", "rotating")
"""Canonical motion names; a direction means 'moving <direction>' at constant speed."""
CAMERAS: tuple[str, ...] = ("pan-left", "pan-right")

DEFAULT_BACKGROUND = "black"
DEFAULT_SIZE = "medium"
DEFAULT_MOTION = "static"
MAX_OBJECTS = 8
"""More objects than this stop being a readable scene at 64x64."""

_COUNTS = {"a": 1, "an": 1, "the": 1, "one": 1, "1": 1, "two": 2, "2": 2, "three": 3, "3": 3}
_COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
_SIZE_WORDS = {"small": "small", "tiny": "small", "medium": "medium",
               "large": "large", "big": "large"}
_COLOR_WORDS = {**{c: c for c in COLORS}, "grey": "gray"}
_SHAPE_WORDS = {**{s: s for s in SHAPES}, **{s + "s": s for s in SHAPES},
                "ball": "circle", "balls": "circle"}
_MOVE_VERBS = frozenset({"moving", "moves", "move", "sliding", "slides"})
_DIRECTION_WORDS = {"left": "left", "leftward": "left", "leftwards": "left",
                    "right": "right", "rightward": "right", "rightwards": "right",
                    "up": "up", "upward": "up", "upwards": "up",
                    "down": "down", "downward": "down", "downwards": "down"}
_MOTION_WORDS = {"falling": "falling", "falls": "falling", "dropping": "falling",
                 "bouncing": "bouncing", "bounces": "bouncing",
                 "rotating": "rotating", "rotates": "rotating",
                 "spinning": "rotating", "spins": "rotating",
                 "static": "static", "still": "static", "stationary": "static"}
_BACKGROUND_WORDS = frozenset({"background", "backdrop"})
_BACKGROUND_PREPS = frozenset({"on", "against", "over"})
_CAMERA_VERBS = frozenset({"panning", "pans", "pan"})
_SEPARATORS = frozenset({"and", ",", "with", "while"})
_FILLERS = frozenset({"is", "are", "to", "diagonally"})
_ARTICLES = frozenset({"a", "an", "the"})

_KNOWN_WORDS = frozenset(
    {*_COUNTS, *_SIZE_WORDS, *_COLOR_WORDS, *_SHAPE_WORDS, *_MOVE_VERBS, *_DIRECTION_WORDS,
     *_MOTION_WORDS, *_BACKGROUND_WORDS, *_BACKGROUND_PREPS, "camera", *_CAMERA_VERBS,
     *_SEPARATORS, *_FILLERS}
)
_TOKEN_RE = re.compile(r"[^\W_]+|,")


@attrs.frozen
class Vocabulary:
    """Every canonical word the parser understands, by role (for help texts and datasets)."""

    colors: tuple[str, ...]
    shapes: tuple[str, ...]
    sizes: tuple[str, ...]
    motions: tuple[str, ...]
    backgrounds: tuple[str, ...]
    cameras: tuple[str, ...]
    counts: tuple[str, ...]

    def as_dict(self) -> dict[str, tuple[str, ...]]:
        return attrs.asdict(self)  # keeps tuples as tuples


def vocabulary() -> Vocabulary:
    """The understood vocabulary, canonical names only (aliases are listed in the docs)."""
    return Vocabulary(
        colors=tuple(COLORS), shapes=SHAPES, sizes=SIZES, motions=MOTIONS,
        backgrounds=tuple(COLORS), cameras=CAMERAS, counts=("a", "one", "two", "three"),
    )


def vocabulary_help() -> str:
    """A few lines listing the language, appended to every ``CaptionError``."""
    moves = "|".join(DIRECTIONS)
    return (
        "Understood vocabulary:\n"
        f"  counts: a, an, one, two, three\n"
        f"  sizes: {', '.join(SIZES)} (also tiny, big)\n"
        f"  colors: {', '.join(COLORS)} (also grey)\n"
        f"  shapes: {', '.join(SHAPES)} (plurals too; ball = circle)\n"
        f"  motions: moving {moves}, falling, bouncing, rotating, static\n"
        f"  backgrounds: on a <color> background\n"
        f"  camera: camera panning left|right\n"
        f"  connectors: and, ',', with, while"
    )


def _caption_error(problem: str) -> CaptionError:
    return CaptionError(f"{problem}\n{vocabulary_help()}")


def _one_of(allowed: Sequence[str], what: str) -> Callable[[object, object, str], None]:
    def check(_instance: object, _attribute: object, value: str) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise _caption_error(f"unknown {what} {value!r}")

    return check


@attrs.frozen
class ObjectSpec:
    """One object in a scene: what it looks like and how it moves."""

    color: str = attrs.field(default="white", validator=_one_of(tuple(COLORS), "color"))
    shape: str = attrs.field(default="circle", validator=_one_of(SHAPES, "shape"))
    size: str = attrs.field(default=DEFAULT_SIZE, validator=_one_of(SIZES, "size"))
    motion: str = attrs.field(default=DEFAULT_MOTION, validator=_one_of(MOTIONS, "motion"))

    def phrase(self, count: int = 1) -> str:
        """This object as a noun phrase, ``count`` times (``count`` in 1..3)."""
        words = [] if self.size == DEFAULT_SIZE else [self.size]
        words += [self.color, self.shape + ("s" if count > 1 else "")]
        article = _COUNT_WORDS[count] if count > 1 else _article(words[0])
        motion = _motion_phrase(self.motion)
        return " ".join([article, *words] + ([motion] if motion else []))


def _article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def _to_tuple(objects: Iterable[ObjectSpec]) -> tuple[ObjectSpec, ...]:
    return tuple(objects)


def _motion_phrase(motion: str) -> str:
    if motion == DEFAULT_MOTION:
        return ""
    if motion in DIRECTIONS:
        return f"moving {motion}"
    return motion


def _check_objects(instance: SceneSpec, _attribute: object, value: tuple[ObjectSpec, ...]) -> None:
    if len(value) > MAX_OBJECTS:
        raise _caption_error(f"a scene holds at most {MAX_OBJECTS} objects, got {len(value)}")
    for obj in value:
        if not isinstance(obj, ObjectSpec):
            raise _caption_error(f"scene objects must be ObjectSpec, got {type(obj).__name__}")
        if obj.color == instance.background:
            raise _caption_error(
                f"a {obj.color} {obj.shape} on a {instance.background} background "
                "would be invisible; choose another color or background"
            )


@attrs.frozen
class SceneSpec:
    """A parsed caption: objects drawn in order (later ones on top), background and camera."""

    objects: tuple[ObjectSpec, ...] = attrs.field(converter=_to_tuple, validator=_check_objects)
    background: str = attrs.field(
        default=DEFAULT_BACKGROUND, validator=_one_of(tuple(COLORS), "background color")
    )
    camera: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_one_of(CAMERAS, "camera motion"))
    )

    def caption(self) -> str:
        """The canonical caption; ``parse_caption(spec.caption()) == spec``."""
        parts: list[str] = []
        i = 0
        while i < len(self.objects):
            run = 1
            while (run < 3 and i + run < len(self.objects)
                   and self.objects[i + run] == self.objects[i]):
                run += 1
            parts.append(self.objects[i].phrase(run))
            i += run
        text = " and ".join(parts)
        if self.background != DEFAULT_BACKGROUND or not parts:
            text += f" on {_article(self.background)} {self.background} background"
        if self.camera is not None:
            text += f" with the camera panning {self.camera.removeprefix('pan-')}"
        return text.strip()


def tokenize(caption: str) -> list[str]:
    """Lower-cased words and commas; other punctuation and whitespace only separate words."""
    return _TOKEN_RE.findall(caption.lower())


def parse_caption(caption: str) -> SceneSpec:
    """Parse a caption into a ``SceneSpec``; ``CaptionError`` names what is not understood."""
    if not isinstance(caption, str):
        raise _caption_error(f"a caption must be a string, got {type(caption).__name__}")
    tokens = tokenize(caption)
    if not any(t != "," for t in tokens):
        raise _caption_error(f"empty caption {caption!r}: describe at least one object")
    unknown = list(dict.fromkeys(t for t in tokens if t not in _KNOWN_WORDS))
    if unknown:
        described = ", ".join(_describe_unknown(w) for w in unknown)
        raise _caption_error(f"caption {caption!r} has words the scene backend does not "
                             f"understand: {described}")
    groups: list[tuple[int, _PartialObject]] = []
    backgrounds: list[str] = []
    cameras: list[str] = []
    for clause in _clauses(tokens):
        rest = _take_background(clause, backgrounds)
        rest = _take_camera(rest, cameras)
        if rest:
            groups.append(_parse_object(rest))
    if not (groups or backgrounds or cameras):
        raise _caption_error(f"empty caption {caption!r}: describe at least one object")
    if len(set(backgrounds)) > 1:
        raise _caption_error(f"caption {caption!r} names more than one background: "
                             f"{', '.join(dict.fromkeys(backgrounds))}")
    if len(set(cameras)) > 1:
        raise _caption_error(f"caption {caption!r} pans the camera both ways")
    background = backgrounds[0] if backgrounds else DEFAULT_BACKGROUND
    default_color = "black" if background == "white" else "white"
    objects = tuple(
        ObjectSpec(color=p.color or default_color, shape=p.shape, size=p.size, motion=p.motion)
        for count, p in groups
        for _ in range(count)
    )
    return SceneSpec(objects=objects, background=background,
                     camera=cameras[0] if cameras else None)


def _describe_unknown(word: str) -> str:
    close = difflib.get_close_matches(word, sorted(_KNOWN_WORDS), n=1, cutoff=0.75)
    return f"{word!r} (did you mean {close[0]!r}?)" if close else repr(word)


def _clauses(tokens: list[str]) -> list[list[str]]:
    """Split at connectors; a bare comma splits only before a new object, background or camera.

    So "a yellow square, falling" stays one object while "a red circle, a blue square" is two.
    """
    segments: list[tuple[bool, list[str]]] = []  # (preceded by commas only, words)
    words: list[str] = []
    comma_only = False
    for tok in [*tokens, "and"]:
        if tok not in _SEPARATORS:
            words.append(tok)
            continue
        if words:
            segments.append((comma_only, words))
            words, comma_only = [], True
        comma_only = comma_only and tok == ","
    clauses: list[list[str]] = []
    for after_comma, seg in segments:
        if after_comma and clauses and not _opens_clause(seg):
            clauses[-1] = clauses[-1] + seg
        else:
            clauses.append(seg)
    return clauses


def _opens_clause(clause: list[str]) -> bool:
    return any(t in _SHAPE_WORDS or t in _BACKGROUND_WORDS or t == "camera" for t in clause)


def _cut(clause: list[str], start: int, stop: int, what: str) -> list[str]:
    """Remove ``clause[start:stop]``, which must sit at the clause's start or end."""
    if start != 0 and stop != len(clause):
        raise _caption_error(f"the {what} in {' '.join(clause)!r} must come before or after "
                             "the object, not inside it")
    return clause[:start] + clause[stop:]


def _take_background(clause: list[str], found: list[str]) -> list[str]:
    idx = [i for i, t in enumerate(clause) if t in _BACKGROUND_WORDS]
    if not idx:
        return clause
    if len(idx) > 1:
        raise _caption_error(f"{' '.join(clause)!r} names a background twice")
    end = idx[0]
    if end == 0 or clause[end - 1] not in _COLOR_WORDS:
        raise _caption_error(f"{' '.join(clause)!r}: a background needs a color, "
                             "e.g. 'on a blue background'")
    found.append(_COLOR_WORDS[clause[end - 1]])
    start = end - 1
    if start > 0 and clause[start - 1] in _ARTICLES:
        start -= 1
    if start > 0 and clause[start - 1] in _BACKGROUND_PREPS:
        start -= 1
    return _cut(clause, start, end + 1, "background")


def _take_camera(clause: list[str], found: list[str]) -> list[str]:
    if "camera" not in clause:
        return clause
    if clause.count("camera") > 1:
        raise _caption_error(f"{' '.join(clause)!r} names the camera twice")
    at = clause.index("camera")
    start = at - 1 if at > 0 and clause[at - 1] in _ARTICLES else at
    i = at + 1
    if i < len(clause) and clause[i] == "is":
        i += 1
    if i >= len(clause) or clause[i] not in _CAMERA_VERBS:
        raise _caption_error(f"{' '.join(clause)!r}: the camera can only pan, "
                             "e.g. 'camera panning left'")
    i += 1
    while i < len(clause) and clause[i] in ("to", "the"):
        i += 1
    if i >= len(clause) or _DIRECTION_WORDS.get(clause[i]) not in ("left", "right"):
        raise _caption_error(f"{' '.join(clause)!r}: the camera pans left or right")
    found.append("pan-" + _DIRECTION_WORDS[clause[i]])
    return _cut(clause, start, i + 1, "camera")


@attrs.frozen
class _PartialObject:
    color: str | None
    shape: str
    size: str
    motion: str


def _parse_object(words: list[str]) -> tuple[int, _PartialObject]:
    """``[count] (size | color | motion-adjective)* shape [is|are] [motion]``."""
    phrase = " ".join(words)
    count: int | None = None
    size: str | None = None
    color: str | None = None
    motion: str | None = None

    def once(current: str | int | None, new: str | int, what: str) -> None:
        if current is not None:
            raise _caption_error(f"{phrase!r} gives more than one {what} "
                                 f"({current!r} and {new!r}) for one object")

    if not any(w in _SHAPE_WORDS for w in words):
        raise _caption_error(f"{phrase!r} has no shape; every object needs one of "
                             f"{', '.join(SHAPES)}")
    i = 0
    while words[i] not in _SHAPE_WORDS:
        w = words[i]
        if w in _COUNTS and (i == 0 or (i == 1 and words[0] == "the")):
            count = _COUNTS[w]
        elif w in _SIZE_WORDS:
            once(size, w, "size")
            size = _SIZE_WORDS[w]
        elif w in _COLOR_WORDS:
            once(color, w, "color")
            color = _COLOR_WORDS[w]
        elif w in _MOTION_WORDS:
            once(motion, w, "motion")
            motion = _MOTION_WORDS[w]
        else:
            raise _caption_error(f"{phrase!r}: unexpected {w!r} before the shape")
        i += 1
    shape = _SHAPE_WORDS[words[i]]
    tail = [w for w in words[i + 1:] if w not in ("is", "are")]
    if tail:
        once(motion, " ".join(tail), "motion")
        motion = _parse_motion(tail, phrase)
    return count or 1, _PartialObject(color=color, shape=shape, size=size or DEFAULT_SIZE,
                                      motion=motion or DEFAULT_MOTION)


def _parse_motion(tail: list[str], phrase: str) -> str:
    if len(tail) == 1 and tail[0] in _MOTION_WORDS:
        return _MOTION_WORDS[tail[0]]
    if tail[0] not in _MOVE_VERBS:
        raise _caption_error(f"{phrase!r}: cannot read {' '.join(tail)!r} as a motion "
                             "(expected e.g. 'moving left', 'falling', 'bouncing')")
    dirs = [_DIRECTION_WORDS.get(w) for w in tail[1:] if w not in ("to", "the", "diagonally")]
    if not dirs or None in dirs:
        raise _caption_error(f"{phrase!r}: 'moving' needs a direction "
                             f"({', '.join(DIRECTIONS)})")
    vertical = [d for d in dirs if d in ("up", "down")]
    horizontal = [d for d in dirs if d in ("left", "right")]
    if len(vertical) > 1 or len(horizontal) > 1:
        raise _caption_error(f"{phrase!r}: contradictory or repeated directions "
                             f"{' '.join(d or '' for d in dirs)!r}")
    return "-".join(vertical + horizontal)
