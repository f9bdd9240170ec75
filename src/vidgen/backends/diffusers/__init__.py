"""Adapters over Hugging Face diffusers video pipelines (the ``vidgen[diffusers]`` extra).

Importing this package is cheap: diffusers, transformers and Pillow are imported
only when a pipeline is loaded or run. See docs/diffusers.md.
"""

from vidgen.backends.diffusers.adapter import DiffusersBackend
from vidgen.backends.diffusers.families import FAMILIES, Family, FrameRule, Profile
from vidgen.backends.diffusers.options import DiffusersOptions

__all__ = ["FAMILIES", "DiffusersBackend", "DiffusersOptions", "Family", "FrameRule", "Profile"]
