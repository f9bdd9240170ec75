"""The native keyframe + temporal interpolation cascade (``keyframe``)."""

from vidgen.backends.keyframe.backend import KeyframeBackend

__all__ = ["KeyframeBackend"]
