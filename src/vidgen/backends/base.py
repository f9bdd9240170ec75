"""The Backend protocol, its Capabilities, and the registry of backends.

A backend turns a ``GenerationRequest`` into frames. It never writes files and
never sees keys: the pipeline owns safety, watermarking, signing and output.
Third-party packages register backends under the entry point group
``vidgen.backends``; the value is a callable (usually the class) that takes
keyword options and returns a Backend.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs

from vidgen.errors import BackendError, UnknownBackend, UnsupportedTask, VidgenError
from vidgen.types import GenerationRequest, Task, Video

ENTRY_POINT_GROUP = "vidgen.backends"

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)``; raising from it cancels sampling."""


@attrs.frozen
class Capabilities:
    """What a backend can do; the pipeline refuses requests outside these limits."""

    tasks: frozenset[Task]
    min_frames: int = 1
    max_frames: int = 256
    max_height: int = 4096
    max_width: int = 4096
    default_frames: int = 16
    default_height: int = 64
    default_width: int = 64
    default_fps: float = 8.0
    size_multiple: int = 2
    device: str = "cpu"
    model_id: str = "unknown"
    model_version: str = "0"
    deterministic: bool = True
    dtype: str | None = None  # the weights' precision where the backend states it ("bf16", ...)

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["tasks"] = sorted(t.value for t in self.tasks)
        return d

    def check(self, request: GenerationRequest, backend_name: str) -> None:
        """Raise ``UnsupportedTask`` unless the request fits these capabilities."""
        if request.task not in self.tasks:
            supported = ", ".join(sorted(t.value for t in self.tasks))
            raise UnsupportedTask(
                f"backend {backend_name!r} does not support task {request.task.value!r} "
                f"(supported: {supported})"
            )
        frames = request.num_frames if request.num_frames is not None else self.default_frames
        if not (self.min_frames <= frames <= self.max_frames):
            raise UnsupportedTask(
                f"backend {backend_name!r} generates {self.min_frames}..{self.max_frames} "
                f"frames, {frames} requested"
            )
        height = request.height if request.height is not None else self.default_height
        width = request.width if request.width is not None else self.default_width
        if not (1 <= height <= self.max_height and 1 <= width <= self.max_width):
            raise UnsupportedTask(
                f"backend {backend_name!r} supports up to {self.max_width}x{self.max_height}, "
                f"{width}x{height} requested"
            )
        m = self.size_multiple
        if height % m or width % m:
            raise UnsupportedTask(
                f"backend {backend_name!r} needs width and height divisible by {m}, "
                f"{width}x{height} requested"
            )


@runtime_checkable
class Backend(Protocol):
    """A generative model. ``sample`` returns frames only; it must be deterministic per seed."""

    name: str

    def capabilities(self) -> Capabilities: ...

    def sample(
        self, request: GenerationRequest, progress: ProgressCallback | None = None
    ) -> Video: ...


BackendFactory = Callable[..., Backend]


@attrs.frozen
class BackendInfo:
    """A registered backend as ``vidgen backends`` lists it."""

    name: str
    source: str  # "builtin" or the distribution that registered it
    target: str  # "module:attr"
    capabilities: Capabilities | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "target": self.target,
            "capabilities": self.capabilities.to_dict() if self.capabilities else None,
            "error": self.error,
        }


_lock = threading.Lock()
_registered: dict[str, tuple[str, str, BackendFactory | None]] = {}


def register_backend(name: str, factory: BackendFactory, *, source: str = "runtime") -> None:
    """Register a backend factory in this process (entry points are the durable way)."""
    with _lock:
        target = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}"
        _registered[name] = (source, target, factory)


def _entry_points() -> dict[str, tuple[str, str, importlib.metadata.EntryPoint]]:
    found: dict[str, tuple[str, str, importlib.metadata.EntryPoint]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        found.setdefault(ep.name, (dist, ep.value, ep))
    return found


def _builtin_factories() -> dict[str, str]:
    # Built-ins are also declared as entry points in pyproject.toml; listing them
    # here keeps them available when vidgen runs from a source tree without metadata.
    from vidgen.backends.diffusers.factories import ENTRY_POINTS as DIFFUSERS

    return {"scene": "vidgen.backends.scene:SceneBackend",
            "dit": "vidgen.backends.dit:DiTBackend",
            "stunet": "vidgen.backends.stunet:STUNetBackend",
            "keyframe": "vidgen.backends.keyframe:KeyframeBackend",
            **DIFFUSERS}


def _load_target(target: str) -> BackendFactory:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _candidates() -> dict[str, tuple[str, str, Callable[[], BackendFactory]]]:
    out: dict[str, tuple[str, str, Callable[[], BackendFactory]]] = {}
    for name, target in _builtin_factories().items():
        out[name] = ("builtin", target, lambda t=target: _load_target(t))  # type: ignore[misc]
    for name, (dist, target, ep) in _entry_points().items():
        if name in out and out[name][1] == target:
            continue  # our own entry point for a built-in
        if name in out:
            continue  # a plugin may not shadow a built-in name
        out[name] = (dist, target, ep.load)
    with _lock:
        for name, (source, target, factory) in _registered.items():
            if factory is not None:
                out[name] = (source, target, lambda f=factory: f)  # type: ignore[misc]
    return out


def backend_names() -> list[str]:
    """Names of every backend that can be loaded by ``load_backend``."""
    return sorted(_candidates())


def load_backend(name: str, **options: Any) -> Backend:
    """Instantiate the backend registered under ``name`` with keyword ``options``."""
    candidates = _candidates()
    if name not in candidates:
        known = ", ".join(sorted(candidates)) or "none"
        raise UnknownBackend(f"no backend named {name!r}; registered backends: {known}")
    source, target, loader = candidates[name]
    try:
        factory = loader()
        backend = factory(**options)
    except VidgenError:
        raise  # already typed and explained (a missing weights file, a bad option, ...)
    except Exception as exc:
        raise BackendError(
            f"backend {name!r} ({target} from {source}) failed to load: {exc}"
        ) from exc
    if not isinstance(backend, Backend):
        raise BackendError(
            f"backend {name!r} ({target}) does not implement the Backend protocol "
            "(needs name, capabilities(), sample())"
        )
    return backend


def list_backends() -> list[BackendInfo]:
    """Every registered backend with its capabilities (or the error that kept it from loading)."""
    infos = []
    for name, (source, target, _loader) in sorted(_candidates().items()):
        try:
            caps: Capabilities | None = load_backend(name).capabilities()
            error = None
        except Exception as exc:  # a broken plugin must not hide the others
            caps, error = None, f"{type(exc).__name__}: {exc}"
        infos.append(BackendInfo(name=name, source=source, target=target,
                                 capabilities=caps, error=error))
    return infos
