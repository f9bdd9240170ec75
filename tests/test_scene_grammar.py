"""The scene caption language: parsing, canonical captions, and errors that teach the language."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidgen.backends.scene import CaptionError, ObjectSpec, SceneSpec, parse_caption, vocabulary
from vidgen.backends.scene.grammar import (
    CAMERAS,
    COLORS,
    MAX_OBJECTS,
    MOTIONS,
    SHAPES,
    SIZES,
    tokenize,
)
from vidgen.errors import BackendError


def obj(color: str = "white", shape: str = "circle", size: str = "medium",
        motion: str = "static") -> ObjectSpec:
    return ObjectSpec(color=color, shape=shape, size=size, motion=motion)


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a red circle moving right on a blue background",
         SceneSpec((obj("red", motion="right"),), background="blue")),
        ("a yellow square falling", SceneSpec((obj("yellow", "square", motion="falling"),))),
        ("a green triangle bouncing", SceneSpec((obj("green", "triangle", motion="bouncing"),))),
        ("a small white circle moving up", SceneSpec((obj(size="small", motion="up"),))),
        ("two circles moving left", SceneSpec((obj(motion="left"), obj(motion="left")))),
        ("a red circle moving right and a blue square falling",
         SceneSpec((obj("red", motion="right"), obj("blue", "square", motion="falling")))),
        ("camera panning left", SceneSpec((), camera="pan-left")),
        ("a star, with the camera panning to the right",
         SceneSpec((obj(shape="star"),), camera="pan-right")),
        ("the camera is panning left while a circle spins",
         SceneSpec((obj(motion="rotating"),), camera="pan-left")),
        ("three big grey diamonds", SceneSpec((obj("gray", "diamond", "large"),) * 3)),
        ("A falling ball on a WHITE background.",
         SceneSpec((obj("black", motion="falling"),), background="white")),
        ("an orange star moving diagonally up-left",
         SceneSpec((obj("orange", "star", motion="up-left"),))),
        ("a circle moving left up", SceneSpec((obj(motion="up-left"),))),
        ("a red circle, a blue square, and a green star",
         SceneSpec((obj("red"), obj("blue", "square"), obj("green", "star")))),
        ("a yellow square, falling!", SceneSpec((obj("yellow", "square", motion="falling"),))),
        ("on a blue background, a tiny red circle is still",
         SceneSpec((obj("red", size="small"),), background="blue")),
        ("  A   RED   circle...moving    to the LEFT  ", SceneSpec((obj("red", motion="left"),))),
    ],
)
def test_examples_parse(caption: str, expected: SceneSpec) -> None:
    assert parse_caption(caption) == expected


def test_canonical_captions_read_naturally() -> None:
    spec = SceneSpec((obj("orange", motion="up-left"), obj("red", "square", "large"),
                      obj("red", "square", "large")), background="blue", camera="pan-left")
    assert spec.caption() == ("an orange circle moving up-left and two large red squares "
                              "on a blue background with the camera panning left")
    assert SceneSpec((obj(motion="falling"),)).caption() == "a white circle falling"


def test_runs_longer_than_three_are_split_but_round_trip() -> None:
    spec = SceneSpec((obj("red"),) * 5)
    assert spec.caption() == "three red circles and two red circles"
    assert parse_caption(spec.caption()) == spec


objects = st.builds(ObjectSpec, color=st.sampled_from(sorted(COLORS)),
                    shape=st.sampled_from(SHAPES), size=st.sampled_from(SIZES),
                    motion=st.sampled_from(MOTIONS))


@st.composite
def scenes(draw: st.DrawFn) -> SceneSpec:
    background = draw(st.sampled_from(sorted(COLORS)))
    items = draw(st.lists(objects.filter(lambda o: o.color != background),
                          max_size=MAX_OBJECTS))
    camera = draw(st.sampled_from((None, *CAMERAS)))
    return SceneSpec(tuple(items), background=background, camera=camera)


@settings(max_examples=300, deadline=None)
@given(scenes())
def test_caption_round_trips(spec: SceneSpec) -> None:
    assert parse_caption(spec.caption()) == spec


@settings(max_examples=150, deadline=None)
@given(scenes(), st.randoms(use_true_random=False))
def test_case_punctuation_and_whitespace_are_tolerated(spec: SceneSpec, rnd: random.Random) -> None:
    caption = spec.caption()
    noisy = "".join(c.upper() if rnd.random() < 0.3 else c for c in caption)
    noisy = noisy.replace(" ", rnd.choice([" ", "  ", "\t", " \n "]))
    noisy = rnd.choice(["", "  ", "\""]) + noisy + rnd.choice(["", ".", "!", " ...", "?\n"])
    assert parse_caption(noisy) == spec


def test_default_object_color_contrasts_with_background() -> None:
    assert parse_caption("a circle").objects[0].color == "white"
    assert parse_caption("a circle on a white background").objects[0].color == "black"


def test_unknown_words_are_named_and_vocabulary_listed() -> None:
    with pytest.raises(CaptionError) as info:
        parse_caption("a purple elephant dancing on a red cirle")
    message = str(info.value)
    for word in ("'elephant'", "'dancing'", "'cirle'"):
        assert word in message
    assert "did you mean 'circle'" in message
    voc = vocabulary()
    for word in (*voc.colors, *voc.shapes, *voc.sizes, "falling", "bouncing", "rotating",
                 "static", "up-left", "background", "camera panning"):
        assert word in message, word
    assert info.value.stage == "backend"
    assert isinstance(info.value, BackendError)


@pytest.mark.parametrize(
    ("caption", "fragment"),
    [
        ("", "empty caption"),
        (" , ... ", "empty caption"),
        ("and, with", "empty caption"),
        ("red moving right", "has no shape"),
        ("a red circle moving", "needs a direction"),
        ("a red blue circle", "more than one color"),
        ("a small large circle", "more than one size"),
        ("a falling circle bouncing", "more than one motion"),
        ("a circle moving left right", "contradictory"),
        ("a circle moving up down", "contradictory"),
        ("a circle falling left", "cannot read"),
        ("a black circle", "invisible"),
        ("a red circle on a red background", "invisible"),
        ("a circle on a background", "needs a color"),
        ("a circle on a red background and a square on a blue background", "more than one"),
        ("a red on a blue background circle", "before or after"),
        ("a circle with the camera panning up", "left or right"),
        ("a circle and the camera", "can only pan"),
        ("camera panning left and camera panning right", "both ways"),
        ("red two circles", "unexpected 'two'"),
        ("three circles and three circles and three circles", f"at most {MAX_OBJECTS}"),
    ],
)
def test_structural_errors_explain_themselves(caption: str, fragment: str) -> None:
    with pytest.raises(CaptionError, match="Understood vocabulary") as info:
        parse_caption(caption)
    assert fragment in str(info.value)


def test_specs_validate_their_fields() -> None:
    with pytest.raises(CaptionError, match="unknown shape 'hexagon'"):
        ObjectSpec(color="red", shape="hexagon")
    with pytest.raises(CaptionError, match="unknown motion"):
        ObjectSpec(motion="sideways")
    with pytest.raises(CaptionError, match="camera"):
        SceneSpec((), camera="zoom-in")
    with pytest.raises(CaptionError, match="invisible"):
        SceneSpec((ObjectSpec(color="blue"),), background="blue")


def test_vocabulary_is_consistent_with_the_parser() -> None:
    voc = vocabulary()
    assert len(voc.colors) >= 10 and "black" in voc.colors
    assert set(voc.as_dict()) == {"colors", "shapes", "sizes", "motions", "backgrounds",
                                  "cameras", "counts"}
    for color in voc.colors:
        background = "white" if color != "white" else "black"
        assert parse_caption(f"a {color} square on a {background} background").objects[0].color \
            == color
    for motion in voc.motions:
        assert parse_caption(SceneSpec((obj(motion=motion),)).caption()).objects[0].motion \
            == motion
    for count, word in enumerate(("one", "two", "three"), start=1):
        assert len(parse_caption(f"{word} stars").objects) == count


def test_tokenize_keeps_commas_and_drops_other_punctuation() -> None:
    assert tokenize("A red-circle, moving; LEFT!") == ["a", "red", "circle", ",", "moving", "left"]
