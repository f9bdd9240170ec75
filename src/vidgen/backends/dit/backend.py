"""The ``dit`` backend: the native latent Diffusion Transformer with its shipped weights.

Sampling, image-to-video and extension are shared with the other native
backends (``vidgen.backends.latent_backend``); the DiT adds its name, its
weights and the latent sizes its patches need.
"""

from __future__ import annotations

from vidgen.backends.latent_backend import LatentDiffusionBackend

DEFAULT_WEIGHTS = "dit-small.safetensors"


class DiTBackend(LatentDiffusionBackend):
    """Latent DiT text-to-video (also image-to-video and extension) on CPU or GPU."""

    name = "dit"
    architecture = "dit"
    label = "DiT"
    default_weights = DEFAULT_WEIGHTS
    default_preset = "tiny"

    def _latent_size_multiple(self) -> int:
        """Latent H and W must be whole numbers of patches."""
        patch = getattr(self.model.denoiser, "config").patch  # noqa: B009 (typed as Module)
        return int(max(patch[1], patch[2]))


__all__ = ["DEFAULT_WEIGHTS", "DiTBackend"]
