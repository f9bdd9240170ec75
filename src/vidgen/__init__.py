"""vidgen: provenance-first text-to-video.

Every video vidgen emits has passed the prompt and likeness checks configured on
the pipeline, carries the configured watermark, and is signed with a C2PA
manifest. See ``Pipeline`` and ``verify``.
"""

__version__ = "0.1.0"

from vidgen import errors  # noqa: E402
from vidgen.backends.base import (  # noqa: E402
    Backend,
    BackendInfo,
    Capabilities,
    list_backends,
    load_backend,
    register_backend,
)
from vidgen.errors import VidgenError  # noqa: E402
from vidgen.pipeline import Pipeline  # noqa: E402
from vidgen.provenance.verify import verify  # noqa: E402
from vidgen.types import (  # noqa: E402
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
    "VidgenError",
    "Video",
    "__version__",
    "errors",
    "list_backends",
    "load_backend",
    "register_backend",
    "verify",
]
