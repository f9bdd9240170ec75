"""vidgen: provenance-first text-to-video."""

__version__ = "0.1.0"
