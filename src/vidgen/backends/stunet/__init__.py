"""The native Space-Time U-Net backend (``stunet``)."""

from vidgen.backends.stunet.backend import STUNetBackend
from vidgen.backends.stunet.model import STUNET_PRESETS, STUNet, STUNetConfig

__all__ = ["STUNET_PRESETS", "STUNet", "STUNetBackend", "STUNetConfig"]
