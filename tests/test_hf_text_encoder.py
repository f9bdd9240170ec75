"""HFTextEncoder on tiny random CLIP and T5 text encoders saved to a tmp dir (no downloads).

The models and tokenizers are built in-process from configs and an in-memory vocabulary
(transformers 5 tokenizers accept one), saved with save_pretrained, and loaded back
through HFTextEncoder with the hub switched off and sockets blocked.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

from vidgen.backends.dit.model import DiT, DiTConfig  # noqa: E402
from vidgen.backends.text_encoder import HFTextEncoder, TextEncoding  # noqa: E402
from vidgen.errors import ConfigurationError  # noqa: E402

torch.set_num_threads(1)

WIDTH = 32
POSITIONS = 16  # CLIP's position table; T5 positions are relative
LETTERS = "abcdefghijklmnopqrstuvwxyz"
SHORT, LONG = "a red cat", "the green dog runs over a blue field"


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Hub off, an empty HF cache, and any network connection is an error."""
    cache = tmp_path_factory.mktemp("hf_home")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(cache))
        mp.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True, raising=False)
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        yield cache


def _clip_tokenizer() -> Any:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=POSITIONS)


def _t5_tokenizer() -> Any:
    words = sorted(set(f"{SHORT} {LONG}".split()))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    vocab += [("\u2581" + w, -1.0) for w in words] + [(c, -5.0) for c in LETTERS]
    return transformers.T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def _save_clip(root: Path) -> Path:
    tokenizer = _clip_tokenizer()
    config = transformers.CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=WIDTH, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=POSITIONS,
        bos_token_id=0, eos_token_id=1, pad_token_id=1)
    torch.manual_seed(0)
    transformers.CLIPTextModel(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def _save_t5(root: Path) -> Path:
    tokenizer = _t5_tokenizer()
    config = transformers.T5Config(
        vocab_size=len(tokenizer), d_model=WIDTH, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
        relative_attention_num_buckets=8, dropout_rate=0.1, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0)
    torch.manual_seed(0)
    transformers.T5EncoderModel(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, offline: Path) -> dict[str, Path]:
    return {"clip": _save_clip(tmp_path_factory.mktemp("clip")),
            "t5": _save_t5(tmp_path_factory.mktemp("t5"))}


@pytest.fixture(scope="module")
def encoders(saved: dict[str, Path]) -> dict[str, HFTextEncoder]:
    return {kind: HFTextEncoder(path) for kind, path in saved.items()}


KINDS = pytest.mark.parametrize("kind", ["clip", "t5"])


@KINDS
def test_shapes_mask_and_pooled(encoders: dict[str, HFTextEncoder], kind: str) -> None:
    enc = encoders[kind]
    captions = [LONG, SHORT, "dog"]
    out = enc(captions)
    assert isinstance(out, TextEncoding) and enc.dim == WIDTH
    b, length, d = out.tokens.shape
    assert (b, d) == (3, WIDTH) and out.pooled.shape == (3, WIDTH)
    assert out.tokens.dtype == out.pooled.dtype == torch.float32
    assert out.mask.dtype == torch.bool and out.mask.shape == (3, length)
    # True exactly on each caption's own tokens (specials included), left-aligned
    lengths = [len(enc.tokenizer(c, truncation=True, max_length=enc.max_length)["input_ids"])
               for c in captions]
    assert out.mask.sum(1).tolist() == lengths and length == max(lengths)
    for row, n in zip(out.mask, lengths, strict=True):
        assert row[:n].all() and not row[n:].any()
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()


@KINDS
def test_frozen_and_deterministic_even_in_train_mode(encoders: dict[str, HFTextEncoder],
                                                     kind: str) -> None:
    enc = encoders[kind]
    params = list(enc.parameters())
    assert params and not any(p.requires_grad for p in params)
    first = enc([SHORT, LONG])
    enc.train()  # a parent module's .train() must not switch on T5's dropout (rate 0.1)
    try:
        assert enc.training and not enc.model.training
        second = enc([SHORT, LONG])
    finally:
        enc.eval()
    assert torch.equal(first.tokens, second.tokens) and torch.equal(first.pooled, second.pooled)
    assert not second.tokens.requires_grad


@KINDS
def test_padding_does_not_change_real_tokens(encoders: dict[str, HFTextEncoder],
                                             kind: str) -> None:
    """CLIP is causal and T5 masks the pad keys: a short caption's states ignore batch padding."""
    enc = encoders[kind]
    alone = enc([SHORT])
    mixed = enc([LONG, SHORT])
    n = int(alone.mask.sum())
    assert mixed.tokens.shape[1] > n and int(mixed.mask[1].sum()) == n
    torch.testing.assert_close(mixed.tokens[1, :n], alone.tokens[0, :n], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed.pooled[1], alone.pooled[0], atol=1e-5, rtol=1e-5)


def test_long_captions_are_truncated_to_the_position_limit(saved: dict[str, Path]) -> None:
    words = " ".join(["field"] * 40)
    clip = HFTextEncoder(saved["clip"])  # max_length 77 > CLIP's 16 positions: capped
    assert clip.max_length == POSITIONS
    assert clip([words]).tokens.shape == (1, POSITIONS, WIDTH)
    t5 = HFTextEncoder(saved["t5"], max_length=8)
    out = t5([words, SHORT])
    assert out.tokens.shape == (2, 8, WIDTH) and out.mask[0].all()


def test_full_clip_checkpoint_loads_its_text_tower(tmp_path: Path) -> None:
    text = transformers.CLIPTextConfig(
        vocab_size=len(_clip_tokenizer()), hidden_size=WIDTH, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=POSITIONS,
        bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
              "num_attention_heads": 2, "image_size": 16, "patch_size": 8}
    config = transformers.CLIPConfig(text_config=text.to_dict(), vision_config=vision,
                                     projection_dim=8)
    transformers.CLIPModel(config).save_pretrained(tmp_path)
    _clip_tokenizer().save_pretrained(tmp_path)
    enc = HFTextEncoder(tmp_path)
    assert enc.dim == WIDTH  # the text width, not the projection or vision width
    assert enc([SHORT]).pooled.shape == (1, WIDTH)


def _assert_layout_error(path: Path, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        HFTextEncoder(path)
    message = str(info.value)
    assert str(path) in message and "config.json" in message and "save_pretrained" in message


def test_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    _assert_layout_error(tmp_path / "nowhere", "no config.json")


def test_directory_without_weights_is_a_configuration_error(saved: dict[str, Path],
                                                            tmp_path: Path) -> None:
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((saved["clip"] / name).read_bytes())
    _assert_layout_error(tmp_path, "no text encoder weights")


def test_directory_without_tokenizer_is_a_configuration_error(saved: dict[str, Path],
                                                              tmp_path: Path) -> None:
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((saved["t5"] / name).read_bytes())
    _assert_layout_error(tmp_path, "no tokenizer vocabulary")


def test_broken_files_and_other_architectures_are_configuration_errors(
        saved: dict[str, Path], tmp_path: Path) -> None:
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((saved["clip"] / name).read_bytes())
    (tmp_path / "config.json").write_text("{not json")
    _assert_layout_error(tmp_path, "could not read the text encoder config")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    with pytest.raises(ConfigurationError, match="'bert' model"):
        HFTextEncoder(tmp_path)
    (tmp_path / "config.json").write_bytes((saved["clip"] / "config.json").read_bytes())
    (tmp_path / "tokenizer.json").write_text("{not json")
    _assert_layout_error(tmp_path, "could not load the tokenizer")


def test_nothing_was_downloaded(encoders: dict[str, HFTextEncoder], offline: Path) -> None:
    assert encoders  # both loaded with sockets blocked
    assert not any(offline.iterdir()), "the HF cache should stay empty"


@KINDS
def test_dit_runs_on_hf_encoder_output(encoders: dict[str, HFTextEncoder], kind: str) -> None:
    enc = encoders[kind]
    torch.manual_seed(0)
    model = DiT(DiTConfig(width=32, depth=1, heads=2, text_dim=enc.dim, patch=(1, 2, 2)))
    with torch.no_grad():  # give the zero-initialised branches weights
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    text, other = enc([LONG, SHORT]), enc(["dog", "dog"])
    x, t = torch.randn(2, 4, 2, 8, 8), torch.rand(2)
    out = model(x, t, text.tokens, text.mask, text.pooled)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, model(x, t, other.tokens, other.mask, other.pooled))


def test_base_import_does_not_pull_transformers() -> None:
    code = ("import sys, vidgen, vidgen.backends.text_encoder; "
            "assert 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
