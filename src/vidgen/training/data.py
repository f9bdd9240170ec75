"""Training data: the scene caption space, a compositional held-out split, and clip streams.

Learned backends train on (caption, clip) pairs rendered by the scene backend.
To measure whether a model composes what it learned rather than memorising
captions, some (color, shape, motion) *combinations* never appear in training,
while every individual color, shape and motion (and every pair of them) does.
Everything here is a pure function of its arguments, so any item of any split
can be regenerated exactly from (split, index, seed, sizes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Literal

import attrs
import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import IterableDataset, get_worker_info

from vidgen.backends.scene.grammar import (
    CAMERAS,
    COLORS,
    DEFAULT_BACKGROUND,
    MOTIONS,
    SHAPES,
    SIZES,
    ObjectSpec,
    SceneSpec,
)
from vidgen.backends.scene.render import render_scene
from vidgen.errors import ConfigurationError

Split = Literal["train", "heldout"]
SPLITS: tuple[Split, ...] = ("train", "heldout")
Combination = tuple[str, str, str]
"""(color, shape, motion)."""
Clip = npt.NDArray[np.uint8]

OBJECT_COLORS: tuple[str, ...] = tuple(c for c in COLORS if c != DEFAULT_BACKGROUND)
"""Colors visible on the default background; the combinations are built from these."""
HELDOUT_MODULUS = 7
"""About one combination in seven is held out."""
_SPACE_SEED = 20240611  # fixes the multi-object captions of each split


def combinations() -> tuple[Combination, ...]:
    """Every (color, shape, motion) triple, in vocabulary order."""
    return tuple((c, s, m) for c in OBJECT_COLORS for s in SHAPES for m in MOTIONS)


def is_heldout(color: str, shape: str, motion: str) -> bool:
    """True for combinations reserved for evaluation.

    The rule ``(i + 2j + 3k) % 7 == 0`` on vocabulary indices holds out one
    triple in seven. Fixing any two of color, shape, motion leaves at least
    five values of the third, and ``i``, ``2j``, ``3k`` each step through
    distinct residues mod 7, so at most two of them are held out: every
    single word and every pair of words still occurs in training.
    """
    i, j, k = OBJECT_COLORS.index(color), SHAPES.index(shape), MOTIONS.index(motion)
    return (i + 2 * j + 3 * k) % HELDOUT_MODULUS == 0


def split_combinations(split: Split) -> tuple[Combination, ...]:
    """The combinations whose objects may appear in ``split``."""
    _check_split(split)
    return tuple(c for c in combinations() if is_heldout(*c) == (split == "heldout"))


@functools.cache
def caption_space(split: Split) -> tuple[str, ...]:
    """Every caption of ``split``, each built only from that split's combinations.

    Per combination: the three sizes alone; two of it; it with a partner from
    the same split; and it on another background, with the camera still or
    panning (these vary deterministically across combinations).
    """
    combos = split_combinations(split)
    rng = np.random.default_rng([_SPACE_SEED, SPLITS.index(split)])
    captions: list[str] = []
    for n, (color, shape, motion) in enumerate(combos):
        obj = ObjectSpec(color=color, shape=shape, motion=motion)
        for size in SIZES:
            captions.append(SceneSpec((attrs.evolve(obj, size=size),)).caption())
        captions.append(SceneSpec((obj, obj)).caption())
        p_color, p_shape, p_motion = combos[(n + 1 + int(rng.integers(len(combos) - 1)))
                                            % len(combos)]
        partner = ObjectSpec(color=p_color, shape=p_shape, motion=p_motion)
        captions.append(SceneSpec((obj, partner)).caption())
        backgrounds = [c for c in COLORS if c not in (color, DEFAULT_BACKGROUND)]
        background = backgrounds[int(rng.integers(len(backgrounds)))]
        camera = (None, *CAMERAS)[n % (len(CAMERAS) + 1)]
        captions.append(SceneSpec((obj,), background=background, camera=camera).caption())
    return tuple(dict.fromkeys(captions))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigurationError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


@functools.lru_cache(maxsize=8)
def _epoch_order(seed: int, epoch: int, size: int) -> npt.NDArray[np.int64]:
    return np.random.default_rng([seed, epoch]).permutation(size)


@attrs.frozen
class SceneDataset:
    """An endless, indexable stream of (caption, clip) pairs from one split.

    Item ``i`` visits the captions in a fresh seeded order every epoch and
    renders with its own seed, so a run can resume or shard by index alone.
    """

    split: Split = "train"
    num_frames: int = 16
    height: int = 64
    width: int = 64
    fps: float = 8.0
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        _check_split(self.split)
        if self.seed < 0:
            raise ConfigurationError(f"seed must be non-negative, got {self.seed}")

    @property
    def captions(self) -> tuple[str, ...]:
        return caption_space(self.split)

    def caption(self, index: int) -> str:
        """The caption of item ``index``, without rendering (each epoch visits all once)."""
        if index < 0:
            raise ConfigurationError(f"index must be non-negative, got {index}")
        captions = self.captions
        epoch, position = divmod(index, len(captions))
        return captions[int(_epoch_order(self.seed, epoch, len(captions))[position])]

    def item(self, index: int) -> tuple[str, Clip]:
        """The pair at ``index`` (any non-negative integer)."""
        caption = self.caption(index)
        render_seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        clip = render_scene(caption, num_frames=self.num_frames, height=self.height,
                            width=self.width, fps=self.fps, seed=render_seed).frames
        return caption, clip

    def __iter__(self) -> Iterator[tuple[str, Clip]]:
        index = 0
        while True:
            yield self.item(index)
            index += 1

    def take(self, n: int) -> Iterator[tuple[str, Clip]]:
        """The first ``n`` pairs."""
        return (self.item(i) for i in range(n))


def iter_pairs(
    split: Split = "train",
    *,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    fps: float = 8.0,
    seed: int = 0,
    n: int | None = None,
) -> Iterator[tuple[str, Clip]]:
    """Yield (caption, uint8 clip (T, H, W, 3)) pairs: ``n`` of them, or forever if None."""
    dataset = SceneDataset(split=split, num_frames=num_frames, height=height, width=width,
                           fps=fps, seed=seed)
    return iter(dataset) if n is None else dataset.take(n)


def clip_to_tensor(clip: Clip) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (C, T, H, W) in [-1, 1], the layout models train on."""
    return torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2).float() / 127.5 - 1.0


class TorchSceneDataset(IterableDataset[tuple[str, torch.Tensor]]):
    """``SceneDataset`` for a torch ``DataLoader``; workers take interleaved indices.

    With ``n`` set, the workers together yield exactly items ``0 .. n-1`` once.
    """

    def __init__(self, dataset: SceneDataset, n: int | None = None) -> None:
        super().__init__()
        self.dataset = dataset
        self.n = n

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        info = get_worker_info()
        index, step = (0, 1) if info is None else (int(info.id), int(info.num_workers))
        while self.n is None or index < self.n:
            caption, clip = self.dataset.item(index)
            yield caption, clip_to_tensor(clip)
            index += step


__all__ = [
    "HELDOUT_MODULUS",
    "OBJECT_COLORS",
    "SPLITS",
    "Combination",
    "SceneDataset",
    "Split",
    "TorchSceneDataset",
    "caption_space",
    "clip_to_tensor",
    "combinations",
    "is_heldout",
    "iter_pairs",
    "split_combinations",
]
