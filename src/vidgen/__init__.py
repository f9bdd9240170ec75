"""vidgen: provenance-first text-to-video.

Every video vidgen emits has passed the prompt and likeness checks configured on
the pipeline, carries an invisible keyed watermark, is signed with a C2PA
manifest that binds the watermark id (soft binding), and is recorded in the
manifest store. See ``Pipeline`` and ``verify``.
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
from vidgen.provenance.disclosure import DisclosureLabel
from vidgen.provenance.store import ManifestStore
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
    "DisclosureLabel",
    "GenerationRequest",
    "GenerationResult",
    "Inputs",
    "ManifestStore",
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
