"""One backend factory per model family, for the ``vidgen.backends`` entry points.

``vidgen generate --backend wan`` is ``DiffusersBackend(family="wan")``: the
family's default Hugging Face repo from the local cache unless ``model=`` names
another repo or a local directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidgen.backends.diffusers.adapter import DiffusersBackend
from vidgen.backends.diffusers.families import FAMILIES

Factory = Callable[..., DiffusersBackend]


def _factory(family: str) -> Factory:
    def make(model: str | Path | None = None, **options: Any) -> DiffusersBackend:
        return DiffusersBackend(model, family=family, name=family, **options)

    make.__name__ = make.__qualname__ = family.replace("-", "_")
    make.__doc__ = (f"{FAMILIES[family].label} through diffusers (default weights: "
                    f"{FAMILIES[family].repo} in the local Hugging Face cache).")
    return make


cogvideox = _factory("cogvideox")
ltx_video = _factory("ltx-video")
wan = _factory("wan")
hunyuan_video = _factory("hunyuan-video")
mochi = _factory("mochi")
latte = _factory("latte")
animatediff = _factory("animatediff")
modelscope_t2v = _factory("modelscope-t2v")
i2vgen_xl = _factory("i2vgen-xl")
svd = _factory("svd")

ENTRY_POINTS: dict[str, str] = {
    "diffusers": "vidgen.backends.diffusers:DiffusersBackend",
    **{name: f"vidgen.backends.diffusers.factories:{name.replace('-', '_')}"
       for name in FAMILIES},
}
"""Backend name -> target, as in pyproject.toml's entry points (tests compare the two)."""
