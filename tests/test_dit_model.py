"""DiT model: shapes over variable grids, zero-initialised output, attention modes, text masks."""

from __future__ import annotations

import pytest
import torch

from vidgen.backends.dit.model import DIT_PRESETS, DiT, DiTConfig, sincos_3d
from vidgen.backends.text_encoder import CaptionEncoder, CaptionEncoderConfig, WordTokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def encoder() -> CaptionEncoder:
    torch.manual_seed(0)
    return CaptionEncoder(CaptionEncoderConfig(width=32, depth=1, heads=2))


def _perturb(model: DiT) -> DiT:
    """Give the zero-initialised branches weights so the tests see a non-trivial network."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("attention", ["full", "factorised"])
@pytest.mark.parametrize("shape", [(4, 8, 16, 16), (4, 2, 8, 12), (4, 1, 4, 4)])
def test_output_shape_follows_input(encoder: CaptionEncoder, attention: str,
                                    shape: tuple[int, ...]) -> None:
    config = DiTConfig(width=32, depth=2, heads=2, text_dim=32, patch=(1, 2, 2),
                       attention=attention)  # type: ignore[arg-type]
    model = _perturb(DiT(config))
    text = encoder(["a red circle moving left", "two blue squares"])
    x = torch.randn(2, *shape)
    out = model(x, torch.rand(2), text.tokens, text.mask, text.pooled)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_untrained_model_predicts_zero(encoder: CaptionEncoder) -> None:
    """adaLN-Zero + zero final layer: the untrained prediction is exactly 0."""
    model = DiT(DIT_PRESETS["test"])
    text = encoder(["a red circle"])
    out = model(torch.randn(1, 4, 2, 8, 8), torch.rand(1), text.tokens, text.mask, text.pooled)
    assert torch.count_nonzero(out) == 0


def test_indivisible_grid_is_a_clear_error(encoder: CaptionEncoder) -> None:
    model = DiT(DiTConfig(width=32, depth=1, heads=2, text_dim=32, patch=(2, 2, 2)))
    text = encoder(["a red circle"])
    with pytest.raises(ValueError, match="not divisible"):
        model(torch.randn(1, 4, 3, 8, 8), torch.rand(1), text.tokens, text.mask, text.pooled)


def test_caption_and_time_change_the_prediction(encoder: CaptionEncoder) -> None:
    model = _perturb(DiT(DIT_PRESETS["test"]))
    x = torch.randn(1, 4, 2, 8, 8)
    red, blue = encoder(["a red circle"]), encoder(["a blue triangle falling"])
    base = model(x, torch.tensor([0.5]), red.tokens, red.mask, red.pooled)
    other_text = model(x, torch.tensor([0.5]), blue.tokens, blue.mask, blue.pooled)
    other_time = model(x, torch.tensor([0.9]), red.tokens, red.mask, red.pooled)
    assert not torch.allclose(base, other_text) and not torch.allclose(base, other_time)


def test_padding_tokens_do_not_leak(encoder: CaptionEncoder) -> None:
    """A caption batched with a longer one gives the same output as alone."""
    model = _perturb(DiT(DIT_PRESETS["test"])).eval()
    x = torch.randn(1, 4, 2, 8, 8)
    t = torch.tensor([0.3])
    alone = encoder(["a red circle"])
    batch = encoder(["a red circle", "two small green squares moving up and a white star"])
    out_alone = model(x, t, alone.tokens, alone.mask, alone.pooled)
    out_batch = model(x.expand(2, -1, -1, -1, -1), t.expand(2), batch.tokens, batch.mask,
                      batch.pooled)[:1]
    torch.testing.assert_close(out_alone, out_batch, atol=1e-5, rtol=1e-4)


def test_positions_are_distinct_and_factorised() -> None:
    pos = sincos_3d((2, 3, 4), 64)
    assert pos.shape == (24, 64)
    assert torch.unique(pos, dim=0).shape[0] == 24  # every token has its own position
    grid = pos.reshape(2, 3, 4, 64)
    assert torch.equal(grid[0, :, :, :16], grid[0, 0:1, 0:1, :16].expand(3, 4, 16))  # time part


def test_tokenizer_marks_unknown_words() -> None:
    tok = WordTokenizer()
    ids, mask = tok(["a red circle", "a zorblax circle"])
    assert ids.shape == mask.shape == (2, 4)
    assert ids[1, 2] == tok.vocabulary.index("<unk>") and ids[0, 2] != ids[1, 2]
