"""Generative backends (plugins) and their registry."""

from vidgen.backends.base import (
    Backend,
    BackendInfo,
    Capabilities,
    ProgressCallback,
    list_backends,
    load_backend,
    register_backend,
)

__all__ = [
    "Backend",
    "BackendInfo",
    "Capabilities",
    "ProgressCallback",
    "list_backends",
    "load_backend",
    "register_backend",
]
