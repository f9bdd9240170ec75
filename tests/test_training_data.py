"""Training data: the held-out split is compositional, and streams are deterministic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vidgen.backends.scene import parse_caption
from vidgen.backends.scene.grammar import MOTIONS, SHAPES
from vidgen.errors import ConfigurationError
from vidgen.training.data import (
    OBJECT_COLORS,
    SceneDataset,
    Split,
    TorchSceneDataset,
    caption_space,
    clip_to_tensor,
    combinations,
    is_heldout,
    iter_pairs,
    split_combinations,
)


def test_split_partitions_the_combinations() -> None:
    train, heldout = set(split_combinations("train")), set(split_combinations("heldout"))
    assert not train & heldout
    assert train | heldout == set(combinations())
    assert len(combinations()) == len(OBJECT_COLORS) * len(SHAPES) * len(MOTIONS)
    assert 0.1 < len(heldout) / len(combinations()) < 0.2


def test_every_word_and_every_pair_of_words_is_seen_in_training() -> None:
    train = split_combinations("train")
    for position, words in enumerate((OBJECT_COLORS, SHAPES, MOTIONS)):
        assert {combo[position] for combo in train} == set(words)
    for a, b in itertools.combinations(range(3), 2):
        seen = {(combo[a], combo[b]) for combo in train}
        vocab = (OBJECT_COLORS, SHAPES, MOTIONS)
        assert seen == set(itertools.product(vocab[a], vocab[b])), (a, b)


def test_heldout_rule_is_fixed() -> None:
    # a change here silently changes what every trained model was evaluated on
    assert is_heldout("red", "circle", "static")
    assert not is_heldout("red", "circle", "left")
    assert len(split_combinations("heldout")) == 86


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_captions_parse_and_use_only_their_splits_combinations(split: Split) -> None:
    allowed = set(split_combinations(split))
    captions = caption_space(split)
    assert len(captions) == len(set(captions)) > 3 * len(allowed)
    kinds = {"multi": 0, "background": 0, "camera": 0}
    for caption in captions:
        spec = parse_caption(caption)
        assert spec.caption() == caption
        for obj in spec.objects:
            assert (obj.color, obj.shape, obj.motion) in allowed, caption
        kinds["multi"] += len(spec.objects) > 1
        kinds["background"] += spec.background != "black"
        kinds["camera"] += spec.camera is not None
    assert all(count > 0 for count in kinds.values()), kinds


def test_spaces_do_not_overlap() -> None:
    assert not set(caption_space("train")) & set(caption_space("heldout"))


def test_pairs_are_deterministic_per_seed() -> None:
    a = list(iter_pairs("train", num_frames=4, height=32, width=32, seed=1, n=6))
    b = list(iter_pairs("train", num_frames=4, height=32, width=32, seed=1, n=6))
    c = list(iter_pairs("train", num_frames=4, height=32, width=32, seed=2, n=6))
    assert len(a) == 6
    for (cap_a, clip_a), (cap_b, clip_b) in zip(a, b, strict=True):
        assert cap_a == cap_b and np.array_equal(clip_a, clip_b)
        assert clip_a.shape == (4, 32, 32, 3) and clip_a.dtype == np.uint8
    assert [cap for cap, _ in a] != [cap for cap, _ in c]


def test_items_are_addressable_and_epochs_cover_every_caption_once() -> None:
    dataset = SceneDataset(split="heldout", num_frames=3, height=16, width=16, seed=5)
    stream = list(itertools.islice(iter(dataset), 4))
    for index, (caption, clip) in enumerate(stream):
        again = dataset.item(index)
        assert again[0] == caption and np.array_equal(again[1], clip)
    size = len(dataset.captions)
    first = [dataset.caption(i) for i in range(size)]
    second = [dataset.caption(i) for i in range(size, 2 * size)]
    assert sorted(first) == sorted(second) == sorted(dataset.captions)
    assert first != second  # a fresh order each epoch


def test_infinite_stream_and_heldout_stream() -> None:
    stream = iter_pairs("heldout", num_frames=2, height=16, width=16)
    items = list(itertools.islice(stream, 3))
    assert len(items) == 3
    heldout = set(split_combinations("heldout"))
    for caption, _ in items:
        for obj in parse_caption(caption).objects:
            assert (obj.color, obj.shape, obj.motion) in heldout


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="split"):
        SceneDataset(split="test")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="split"):
        caption_space("validation")  # type: ignore[arg-type,unused-ignore]
    with pytest.raises(ConfigurationError, match="seed"):
        SceneDataset(seed=-1)
    with pytest.raises(ConfigurationError, match="index"):
        SceneDataset().item(-1)


def test_tensor_layout_and_range() -> None:
    clip = np.zeros((2, 4, 6, 3), dtype=np.uint8)
    clip[1, 2, 3] = (255, 0, 128)
    tensor = clip_to_tensor(clip)
    assert tensor.shape == (3, 2, 4, 6) and tensor.dtype == torch.float32
    assert tensor[:, 1, 2, 3].tolist() == pytest.approx([1.0, -1.0, 128 / 127.5 - 1], abs=1e-6)
    assert tensor[:, 0].min() == -1.0


def test_torch_dataset_yields_each_item_once_across_workers() -> None:
    dataset = SceneDataset(num_frames=2, height=16, width=16, seed=3)
    expected = [dataset.caption(i) for i in range(5)]
    single = list(TorchSceneDataset(dataset, n=5))
    assert [cap for cap, _ in single] == expected
    assert single[0][1].shape == (3, 2, 16, 16)
    assert float(single[0][1].min()) >= -1.0 and float(single[0][1].max()) <= 1.0
    loader = torch.utils.data.DataLoader(TorchSceneDataset(dataset, n=5), batch_size=None,
                                         num_workers=2)
    assert sorted(cap for cap, _ in loader) == sorted(expected)
