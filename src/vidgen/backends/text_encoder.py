"""Text conditioning for the native backends: a small caption encoder, or a local HF encoder.

The default is a word-level transformer trained together with the diffusion
model on the scene caption language: the vocabulary is closed and tiny, so a
few hundred thousand parameters suffice and nothing is downloaded. For real
captions, ``HFTextEncoder`` wraps a CLIP or T5 text encoder from a local
directory (``transformers`` is an optional extra; loading never touches the hub).

Every encoder returns ``TextEncoding``: per-token states for cross-attention,
a padding mask, and a pooled vector for adaLN conditioning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import attrs
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidgen.backends.scene import grammar
from vidgen.errors import ConfigurationError

PAD, UNK, CLS = "<pad>", "<unk>", "<cls>"


@attrs.frozen(eq=False)
class TextEncoding:
    """Encoder output for a batch of captions."""

    tokens: torch.Tensor  # (B, L, D) per-token states
    mask: torch.Tensor  # (B, L) bool, True = a real token
    pooled: torch.Tensor  # (B, D)


def caption_vocabulary() -> tuple[str, ...]:
    """Every word the scene grammar understands (aliases included), in a fixed order."""
    words = sorted(grammar._KNOWN_WORDS | {"background", "camera"})
    return (PAD, UNK, CLS, *words)


@attrs.frozen
class WordTokenizer:
    """Lower-cased words and commas (the grammar's tokenizer) -> ids; unknown words -> <unk>."""

    vocabulary: tuple[str, ...] = attrs.field(factory=caption_vocabulary)
    max_length: int = 32

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (B, L) int64, mask (B, L) bool); a <cls> token first, truncated at max_length."""
        index = {w: i for i, w in enumerate(self.vocabulary)}
        rows = [[index[CLS], *(index.get(w, index[UNK]) for w in grammar.tokenize(c))]
                [: self.max_length] for c in captions]
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.int64)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = True
        return ids, mask


@attrs.frozen
class CaptionEncoderConfig:
    width: int = 128
    depth: int = 2
    heads: int = 4
    max_length: int = 32


class CaptionEncoder(nn.Module):
    """A small pre-norm transformer over caption words; pooled output = the <cls> state."""

    def __init__(self, config: CaptionEncoderConfig = CaptionEncoderConfig()) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = WordTokenizer(max_length=config.max_length)
        self.embed = nn.Embedding(self.tokenizer.size, config.width)
        self.position = nn.Parameter(torch.zeros(config.max_length, config.width))
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, 4 * config.width, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position, std=0.02)

    @property
    def dim(self) -> int:
        return self.config.width

    def forward(self, captions: Sequence[str]) -> TextEncoding:
        device = self.embed.weight.device
        ids, mask = self.tokenizer(captions)
        return self.encode_ids(ids.to(device), mask.to(device))

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> TextEncoding:
        """Already tokenized captions (the trainer tokenizes its whole cache once)."""
        x = self.embed(ids) + self.position[: ids.shape[1]]  # (B, L, D)
        x = self.layers(x, src_key_padding_mask=~mask)  # (B, L, D)
        x = self.norm(x)
        return TextEncoding(tokens=x, mask=mask, pooled=x[:, 0])


_HF_LAYOUT = ("a directory as written by save_pretrained: config.json, the weights "
              "(model.safetensors, or pytorch_model.bin, or a sharded *.index.json) and the "
              "tokenizer files (tokenizer.json + tokenizer_config.json)")
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json")
# a vocabulary: without one, transformers 5 silently builds an empty default T5 tokenizer
_HF_TOKENIZERS = ("tokenizer.json", "spiece.model", "tokenizer.model", "vocab.json")
# model_type in config.json -> the transformers encoder class that loads it
_HF_ENCODERS = {"clip": "CLIPTextModel", "clip_text_model": "CLIPTextModel",
                "t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}


class HFTextEncoder(nn.Module):
    """A transformers CLIP/T5 text encoder and tokenizer from a local directory (frozen).

    ``path`` is a directory holding ``config.json``, the weights and the tokenizer
    files; nothing is fetched from the hub (``local_files_only=True``). A full CLIP
    checkpoint (text + vision) loads its text tower; a T5 encoder-decoder its encoder.
    The wrapped model stays in eval mode (no dropout) whatever ``train()`` is called with,
    and ``max_length`` is capped at the model's position limit (CLIP: 77).
    """

    def __init__(self, path: str | Path, *, max_length: int = 77,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        root = Path(path)
        if not (root / "config.json").is_file():
            raise ConfigurationError(f"no text encoder at {root} (no config.json): expected "
                                     f"{_HF_LAYOUT}")
        if not any((root / name).is_file() for name in _HF_WEIGHTS):
            raise ConfigurationError(f"no text encoder weights in {root}: expected {_HF_LAYOUT}")
        if not any((root / name).is_file() for name in _HF_TOKENIZERS):
            raise ConfigurationError(f"no tokenizer vocabulary in {root} (none of "
                                     f"{', '.join(_HF_TOKENIZERS)}): expected {_HF_LAYOUT}")
        try:
            import transformers
        except ImportError as exc:  # the optional extra is missing
            raise ConfigurationError(
                "HFTextEncoder needs transformers: pip install 'vidgen[hf]'") from exc
        try:
            config = transformers.AutoConfig.from_pretrained(root, local_files_only=True)
        except Exception as exc:  # a broken config.json or an unknown model_type
            raise ConfigurationError(
                f"could not read the text encoder config in {root}: {exc}; expected "
                f"{_HF_LAYOUT}") from exc
        model_type = str(getattr(config, "model_type", ""))
        if model_type not in _HF_ENCODERS:
            raise ConfigurationError(
                f"{root} holds a {model_type or 'unknown'!r} model; HFTextEncoder loads "
                f"{', '.join(sorted(_HF_ENCODERS))} text encoders")
        try:
            self.tokenizer: Any = transformers.AutoTokenizer.from_pretrained(
                root, local_files_only=True)
        except Exception as exc:  # missing tokenizer files, or a slow-only tokenizer
            raise ConfigurationError(
                f"could not load the tokenizer in {root}: {exc}; expected {_HF_LAYOUT}") from exc
        try:
            encoder_class = getattr(transformers, _HF_ENCODERS[model_type])
            self.model: Any = encoder_class.from_pretrained(
                root, local_files_only=True, dtype=dtype)
        except Exception as exc:  # unreadable or mismatched weights
            raise ConfigurationError(
                f"could not load the text encoder weights in {root}: {exc}; expected "
                f"{_HF_LAYOUT}") from exc
        if self.tokenizer.pad_token is None:  # padding a batch needs one
            if self.tokenizer.eos_token is None:
                raise ConfigurationError(f"the tokenizer in {root} has neither a pad nor an "
                                         "eos token to pad a batch with")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.requires_grad_(False)
        self.model.eval()
        model_config = self.model.config  # the text config, also for a full CLIP checkpoint
        positions = getattr(model_config, "max_position_embeddings", None)  # T5: relative
        self.max_length = min(max_length, int(positions)) if positions else max_length
        self._dim = int(model_config.hidden_size if hasattr(model_config, "hidden_size")
                        else model_config.d_model)

    @property
    def dim(self) -> int:
        return self._dim

    def train(self, mode: bool = True) -> Self:
        """The encoder is frozen: the wrapped model stays in eval mode (no dropout)."""
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, captions: Sequence[str]) -> TextEncoding:
        if not captions:
            raise ValueError("HFTextEncoder needs at least one caption")
        batch = self.tokenizer(list(captions), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        device = next(self.model.parameters()).device
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device).bool()
        out = self.model(input_ids=ids, attention_mask=mask)
        tokens = out.last_hidden_state.float()  # (B, L, D)
        pooled = getattr(out, "pooler_output", None)  # CLIP: the eos state
        if pooled is None:  # T5: masked mean
            weights = mask.float().unsqueeze(-1)
            pooled = (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return TextEncoding(tokens=tokens, mask=mask, pooled=pooled.float())


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) scalars -> (B, dim) sin/cos features (the DDPM/Transformer timestep embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                            device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2*half)
    return F.pad(emb, (0, dim % 2))

class TimestepEmbedder(nn.Module):
    """t in [0, 1] -> a width-sized vector (sinusoids of 1000 t, then an MLP): the DiT's and
    the STUNet's timestep conditioning."""

    def __init__(self, width: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, width), nn.SiLU(),
                                 nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp(sinusoidal_embedding(1000.0 * t, self.frequency_dim))
        return out  # (B, D)



__all__ = [
    "CaptionEncoder",
    "CaptionEncoderConfig",
    "HFTextEncoder",
    "TextEncoding",
    "TimestepEmbedder",
    "WordTokenizer",
    "caption_vocabulary",
    "sinusoidal_embedding",
]
