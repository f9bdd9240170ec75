"""Workarounds for gaps between diffusers 0.42 and its dependencies, each small and guarded.

Both were hit running the pipelines on this stack (diffusers 0.42.1,
transformers 5.24): they apply only where the gap is present, and change
nothing a working install would do differently.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def _fix_text(text: str) -> str:
    return text


_NO_FTFY = types.SimpleNamespace(fix_text=_fix_text)


def guard_ftfy(pipe: Any) -> None:
    """Let Wan's image-to-video and video-to-video pipelines run without ftfy.

    Their prompt cleaning calls ``ftfy.fix_text`` unconditionally, while the
    module imports ftfy only if it is installed (the text-to-video pipeline
    checks first and skips it): without ftfy they fail with a NameError. Here
    the missing name becomes a no-op, so they clean prompts as text-to-video
    does without ftfy (HTML unescaping and whitespace). Install ftfy for the
    reference cleaning.
    """
    module = sys.modules.get(type(pipe).__module__)
    if module is not None and "is_ftfy_available" in vars(module) and "ftfy" not in vars(module):
        module.ftfy = _NO_FTFY  # type: ignore[attr-defined]


def alias_clip_text_model(pipe: Any) -> None:
    """Make diffusers' ``clip_skip`` path work with transformers 5 CLIP text encoders.

    diffusers reads ``text_encoder.text_model.final_layer_norm`` when clip_skip is
    set (I2VGen-XL sets clip_skip=1 by default); transformers 5's CLIPTextModel
    holds ``final_layer_norm`` itself and has no ``text_model``. The alias (a
    plain attribute, not a registered submodule: weights and state dicts are
    unchanged) keeps the penultimate-layer conditioning the model was trained with.
    """
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if (encoder is not None and hasattr(encoder, "final_layer_norm")
                and not hasattr(encoder, "text_model")):
            object.__setattr__(encoder, "text_model", encoder)


def apply(pipe: Any) -> None:
    """Every workaround this pipeline needs."""
    guard_ftfy(pipe)
    alias_clip_text_model(pipe)
