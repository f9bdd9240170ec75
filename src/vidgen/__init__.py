"""vidgen: provenance-first text-to-video.

Every video vidgen emits has passed the prompt and likeness checks configured on
the pipeline, carries the configured watermark, and is signed with a C2PA
manifest. See ``Pipeline`` and ``verify``.
"""

__version__ = "0.1.0"

from vidgen import errors
from vidgen.backends.base import (
    Backend,
    BackendInfo,
    Capabilities,
    list_backends,
    load_backend,
    register_backend,
)
from vidgen.errors import VidgenError
from vidgen.pipeline import Pipeline
from vidgen.provenance.verify import verify
from vidgen.types import (
    GenerationRequest,
    GenerationResult,
    Inputs,
    PromptDecision,
    Task,
    VerificationReport,
    Video,
)

__all__ = [
    "Backend",
    "BackendInfo",
    "Capabilities",
    "GenerationRequest",
    "GenerationResult",
    "Inputs",
    "Pipeline",
    "PromptDecision",
    "Task",
    "VerificationReport",
    "Video",
    "VidgenError",
    "__version__",
    "errors",
    "list_backends",
    "load_backend",
    "register_backend",
    "verify",
]
