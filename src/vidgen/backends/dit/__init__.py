"""The native latent Diffusion Transformer backend (``dit``)."""

from vidgen.backends.dit.backend import DiTBackend
from vidgen.backends.dit.model import DIT_PRESETS, DiT, DiTConfig

__all__ = ["DIT_PRESETS", "DiT", "DiTBackend", "DiTConfig"]
