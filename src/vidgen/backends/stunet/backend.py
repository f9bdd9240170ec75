"""The ``stunet`` backend: the native Space-Time U-Net, the whole clip in one pass.

Sampling, image-to-video and extension are shared with the other native
backends (``vidgen.backends.latent_backend``). The U-Net takes any latent
size (it downsamples with rounding up and upsamples to the skip connections'
exact sizes), so frame sizes need only suit the autoencoder.

No weights ship yet: train them with
``vidgen train --backend stunet --preset small --out RUN --export stunet-small.safetensors``
and pass ``weights=`` the exported file (or put it in ``vidgen/weights``).
"""

from __future__ import annotations

from vidgen.backends.latent_backend import LatentDiffusionBackend

DEFAULT_WEIGHTS = "stunet-small.safetensors"


class STUNetBackend(LatentDiffusionBackend):
    """Latent Space-Time U-Net text-to-video (also image-to-video and extension)."""

    name = "stunet"
    architecture = "stunet"
    label = "STUNet"
    default_weights = DEFAULT_WEIGHTS
    default_preset = "small"


__all__ = ["DEFAULT_WEIGHTS", "STUNetBackend"]
