"""Typed errors: one base class, one subclass per stage of the chain.

Every failure that reaches a caller is a ``VidgenError`` whose ``stage`` says
which part of the chain refused, so applications can tell a policy refusal
from a broken disk without parsing messages.
"""

from __future__ import annotations


class VidgenError(Exception):
    """Base class of every error vidgen raises on purpose."""

    stage: str = "vidgen"

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        super().__init__(message)
        if stage is not None:
            self.stage = stage

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(VidgenError):
    """Bad arguments or settings given by the caller (wrong shapes, unknown options)."""

    stage = "config"


class PolicyViolation(VidgenError):
    """The prompt policy refused the request before any compute was spent."""

    stage = "prompt_policy"

    def __init__(self, message: str, *, category: str = "unspecified", stage: str | None = None):
        super().__init__(message, stage=stage)
        self.category = category


class LikenessViolation(VidgenError):
    """An input or output shows a person whose likeness may not be used."""

    stage = "likeness"


class BackendError(VidgenError):
    """The generative backend failed or cannot do what was asked."""

    stage = "backend"


class UnknownBackend(BackendError):
    """No backend of that name is registered (built in or through entry points)."""


class UnsupportedTask(BackendError):
    """The backend's capabilities do not include the requested task or size."""


class CaptionError(BackendError):
    """The scene backend does not understand the caption; the message lists what it does."""


class WatermarkError(VidgenError):
    """Embedding or detecting the invisible watermark failed."""

    stage = "watermark"


class DisclosureError(VidgenError):
    """The visible disclosure label could not be applied (e.g. the frame is too small)."""

    stage = "disclosure"


class SigningError(VidgenError):
    """Building or signing the C2PA manifest failed; no unsigned file is ever left."""

    stage = "sign"


class TransientSignerError(SigningError):
    """Raised by a signing callback (KMS, HSM, remote service) for a failure worth retrying:
    throttling, a 503, a dropped connection. Any other exception from a callback is taken
    as permanent and is not retried (see ``CallbackSigner``)."""


class SignerUnavailable(SigningError):
    """The signer did not answer in time or failed transiently on every attempt (an outage).

    ``signer`` names it and ``attempts`` says how many calls were made.
    """

    def __init__(self, message: str, *, signer: str, attempts: int,
                 stage: str | None = None) -> None:
        super().__init__(message, stage=stage)
        self.signer = signer
        self.attempts = attempts


class KeyMaterialError(SigningError):
    """A key or certificate is missing, malformed, or stored insecurely."""

    stage = "keys"


class MediaError(VidgenError):
    """A media file could not be read or written (corrupt, hostile, too large, unsupported)."""

    stage = "media"


class OutputError(VidgenError):
    """The final output could not be committed (disk full, read-only directory, ...)."""

    stage = "output"


class StoreError(VidgenError):
    """The manifest store could not record or look up a credential."""

    stage = "store"


__all__ = [
    "BackendError",
    "CaptionError",
    "ConfigurationError",
    "DisclosureError",
    "KeyMaterialError",
    "LikenessViolation",
    "MediaError",
    "OutputError",
    "PolicyViolation",
    "SignerUnavailable",
    "SigningError",
    "StoreError",
    "TransientSignerError",
    "UnknownBackend",
    "UnsupportedTask",
    "VidgenError",
    "WatermarkError",
]
