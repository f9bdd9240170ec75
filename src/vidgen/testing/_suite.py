"""The conformance checks a backend must pass, and the suite that runs them.

Each check has a name (``CHECK_NAMES``), runs on its own (a failing check does
not stop the others) and ends passed, failed or skipped with a message. The
suite builds the backend once and shares it, and what the checks have in
common (the tiny requests, the reference clip, the pipeline and its keys),
between the checks.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import json
import math
import os
import secrets
import shutil
import tempfile
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import attrs
import numpy as np

from vidgen.backends.base import (
    ENTRY_POINT_GROUP,
    Backend,
    BackendFactory,
    Capabilities,
    _builtin_factories,
    backend_names,
    list_backends,
    load_backend,
)
from vidgen.errors import ConfigurationError, UnsupportedTask
from vidgen.testing._report import CheckResult, CheckStatus, ConformanceError, ConformanceReport
from vidgen.testing._watch import FileEvent, watch, watch_environ
from vidgen.types import Frames, GenerationRequest, Inputs, Task, Video

BackendTarget = str | BackendFactory | Backend
"""What the suite checks: a registered name, a factory (usually the class), or an instance."""

DEFAULT_PROMPT = "a red circle moving right"
DEFAULT_SECOND_PROMPT = "a blue square moving left"

TASK_CHECKS: tuple[str, ...] = tuple(f"sample[{t.value}]" for t in Task)
CHECK_NAMES: tuple[str, ...] = (
    "protocol", "capabilities", "capabilities_check", *TASK_CHECKS, "sample_defaults",
    "progress", "cancellation", "determinism", "no_file_writes", "no_key_access", "pipeline",
    "pipeline_cancellation", "registry",
)
"""Every check, in the order the suite runs them (``sample[<task>]`` is one per ``Task``)."""

_TINY_FRAMES = 4
_TINY_SIDE = 16  # the smallest frame vidgen's default watermark accepts
_MAX_LISTED = 5  # file events quoted in a message
_EXTEND_CONTEXT = 8  # frames in the clip an extend request continues


# --- options ---------------------------------------------------------------------------


def _to_tasks(value: Iterable[Task | str] | None) -> frozenset[Task] | None:
    if value is None:
        return None
    if isinstance(value, str | Task):
        value = (value,)
    try:
        return frozenset(Task(v) for v in value)
    except ValueError as exc:
        raise ConfigurationError(f"tasks: {exc} (tasks: {', '.join(t.value for t in Task)})"
                                 ) from exc


def _matches(name: str, pattern: str) -> bool:
    """``pattern`` selects ``name`` exactly, or every ``sample[...]`` check when it is
    ``"sample"``."""
    return name == pattern or (name.startswith(pattern + "[") and name.endswith("]"))


def _to_names(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    names = frozenset((value,) if isinstance(value, str) else value)
    unknown = sorted(n for n in names if not any(_matches(c, n) for c in CHECK_NAMES))
    if unknown:
        raise ConfigurationError(f"unknown conformance check(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(CHECK_NAMES)}")
    return names


def _to_skip(value: Iterable[str] | str) -> frozenset[str]:
    names = _to_names(value)
    return names if names is not None else frozenset()


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ConfigurationError(f"{attribute.name} must be a positive int, got {value!r}")


@attrs.frozen(kw_only=True)
class ConformanceOptions:
    """How the suite runs; every field is a keyword of ``check_backend``.

    ``num_frames``/``height``/``width`` size every request the suite makes (default:
    4 frames, 16x16 rounded up to ``size_multiple``, within the backend's limits).
    Keep them tiny: the suite samples a few dozen times. ``tasks`` limits the tasks
    sampled (default: every task the backend supports); the first of them in
    ``Task`` order (text-to-video when supported) is the *primary* task that the
    progress, cancellation, determinism, key and pipeline checks use.
    """

    name: str | None = None  # the registered name: enables the registry check
    backend_options: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    prompt: str = DEFAULT_PROMPT
    second_prompt: str = DEFAULT_SECOND_PROMPT  # the storyboard's second segment
    num_frames: int | None = attrs.field(default=None, validator=_positive)
    height: int | None = attrs.field(default=None, validator=_positive)
    width: int | None = attrs.field(default=None, validator=_positive)
    tasks: frozenset[Task] | None = attrs.field(default=None, converter=_to_tasks)
    seed: int = 0
    other_seed: int = 1  # must give different frames from ``seed``
    num_steps: int | None = attrs.field(default=None, validator=_positive)
    request_options: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    watermark_method: str | None = None  # the pipeline check's (default: the configured one)
    skip: frozenset[str] = attrs.field(factory=frozenset, converter=_to_skip)
    only: frozenset[str] | None = attrs.field(default=None, converter=_to_names)

    def __attrs_post_init__(self) -> None:
        if self.seed == self.other_seed:
            raise ConfigurationError("seed and other_seed must differ")

    def selects(self, check: str) -> bool:
        """Whether ``check`` is in ``only`` (when given)."""
        return self.only is None or any(_matches(check, p) for p in self.only)

    def skips(self, check: str) -> bool:
        return any(_matches(check, p) for p in self.skip)


# --- check outcomes --------------------------------------------------------------------


class _Fail(Exception):
    pass


class _Skip(Exception):
    pass


def _fail(message: str) -> NoReturn:
    raise _Fail(message)


def _skip(message: str) -> NoReturn:
    raise _Skip(message)


class ConformanceCancelled(Exception):
    """What the suite's progress callback raises to cancel sampling."""


@attrs.define
class _Progress:
    """A recording progress callback; from call ``raise_at`` on, it raises ``token``."""

    raise_at: int | None = None
    calls: list[tuple[Any, Any]] = attrs.field(factory=list)
    token: ConformanceCancelled = attrs.field(
        factory=lambda: ConformanceCancelled("cancelled by the vidgen conformance suite"))

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))
        if self.raise_at is not None and len(self.calls) >= self.raise_at:
            raise self.token

    @property
    def calls_after_cancel(self) -> int:
        return 0 if self.raise_at is None else max(0, len(self.calls) - self.raise_at)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


# --- inputs the suite makes ------------------------------------------------------------


def _image(height: int, width: int, phase: int = 0) -> Frames:
    """A structured test image: gradients and a checkerboard (no faces, no text)."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (255 * xx // max(width - 1, 1)).astype(np.uint8)
    img[..., 1] = (255 * yy // max(height - 1, 1)).astype(np.uint8)
    img[..., 2] = np.where(((xx + phase) // 4 + yy // 4) % 2 == 0, 200, 60).astype(np.uint8)
    return img


def _clip(frames: int, height: int, width: int) -> Video:
    return Video(np.stack([_image(height, width, phase=i) for i in range(frames)]), fps=8.0)


def _box(height: int, width: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    mask = np.zeros((height, width), bool)
    mask[height // 4: max(height // 4 + 1, 3 * height // 4),
         width // 4: max(width // 4 + 1, 3 * width // 4)] = True
    return mask


def _fit(target: int, multiple: int, maximum: int) -> int:
    """The smallest multiple of ``multiple`` >= ``target``, else the largest <= ``maximum``."""
    m = max(1, multiple)
    size = m * math.ceil(target / m)
    if size > maximum:
        size = max(m, m * (maximum // m))
    return size


@attrs.frozen
class _Sizes:
    frames: int | None
    height: int | None
    width: int | None


def _snapshot_inputs(inputs: Inputs) -> dict[str, np.ndarray[Any, Any]]:
    out: dict[str, np.ndarray[Any, Any]] = {}
    if inputs.image is not None:
        out["image"] = inputs.image.copy()
    if inputs.video is not None:
        out["video"] = inputs.video.frames.copy()
    if inputs.mask is not None:
        out["mask"] = inputs.mask.copy()
    return out


def _describe(events: Iterable[FileEvent | str]) -> str:
    items = [str(e) for e in events]
    shown = "; ".join(items[:_MAX_LISTED])
    return shown + (f"; ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED
                    else "")


@contextlib.contextmanager
def _environ(values: Mapping[str, str], *, drop_prefix: str | None = None) -> Iterator[None]:
    """Run the block with ``values`` set (and every ``drop_prefix*`` variable removed)."""
    saved = dict(os.environ)
    try:
        if drop_prefix is not None:
            for key in [k for k in os.environ if k.startswith(drop_prefix)]:
                del os.environ[key]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- the suite -------------------------------------------------------------------------


class ConformanceSuite:
    """Runs the named checks against one backend; results are cached per check.

    ``target`` is a registered backend name (``load_backend(name, **backend_options)``;
    the registry check then runs too), a factory such as the backend class (called
    with ``backend_options``), or a ready instance (then the "fresh instance"
    determinism comparison is skipped). ``options`` are ``ConformanceOptions`` fields.

    Not thread-safe: checks change the working directory and environment while the
    backend samples.
    """

    def __init__(self, target: BackendTarget, **options: Any) -> None:
        try:
            self.options = ConformanceOptions(**options)
        except TypeError as exc:
            raise ConfigurationError(f"conformance options: {exc}") from exc
        name = self.options.name
        if isinstance(target, str):
            if name is not None and name != target:
                raise ConfigurationError(f"name={name!r} differs from the backend name "
                                         f"{target!r} given")
            self.options = attrs.evolve(self.options, name=target)
        self.target = target
        self._results: dict[str, CheckResult] = {}
        self._backend: Backend | None = None
        self._backend_error: str | None = None
        self._reference: Video | None = None
        self._is_repeatable: bool | None = None
        self._pipeline: Any = None
        self._tmp: Path | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    # --- public ------------------------------------------------------------------------

    @staticmethod
    def names() -> tuple[str, ...]:
        """Every check name, in order (usable with ``pytest.mark.parametrize``)."""
        return CHECK_NAMES

    def run(self, name: str) -> CheckResult:
        """Run one check (once; later calls return the cached result)."""
        if name not in CHECK_NAMES:
            raise ConfigurationError(f"no conformance check named {name!r}; "
                                     f"known: {', '.join(CHECK_NAMES)}")
        if name not in self._results:
            self._results[name] = self._run(name)
        return self._results[name]

    def report(self) -> ConformanceReport:
        """Run every selected check and collect the results."""
        checks = tuple(self.run(n) for n in CHECK_NAMES if self.options.selects(n))
        label = self._backend.name if self._backend is not None and isinstance(
            getattr(self._backend, "name", None), str) else self._target_label()
        return ConformanceReport(backend=label, checks=checks)

    def assert_check(self, name: str) -> CheckResult:
        """Run ``name``: raise ``ConformanceError`` if it failed, skip the current test
        (pytest, else ``unittest.SkipTest``) if it was skipped."""
        result = self.run(name)
        if result.failed:
            text = f"{result.name}: {result.message}"
            if result.details:
                text += "\n" + result.details
            raise ConformanceError(text, (result,))
        if result.skipped:
            _skip_test(result.message)
        return result

    def close(self) -> None:
        """Remove the suite's temporary files (also done when the suite is collected)."""
        if self._finalizer is not None:
            self._finalizer()

    # --- running -----------------------------------------------------------------------

    def _run(self, name: str) -> CheckResult:
        start = time.perf_counter()
        status, details = CheckStatus.PASSED, None
        try:
            if not self.options.selects(name):
                _skip("not selected (only=...)")
            if self.options.skips(name):
                _skip("skipped by request (skip=...)")
            message = self._dispatch(name)
        except _Fail as exc:
            status, message = CheckStatus.FAILED, str(exc)
        except _Skip as exc:
            status, message = CheckStatus.SKIPPED, str(exc)
        except Exception as exc:
            status = CheckStatus.FAILED
            message = f"raised {type(exc).__name__}: {exc}"
            details = "".join(traceback.format_exception(exc, limit=-8)).rstrip()
        return CheckResult(name=name, status=status, message=message,
                           duration_s=time.perf_counter() - start, details=details)

    def _dispatch(self, name: str) -> str:
        if name.startswith("sample["):
            return self._check_sample(Task(name[len("sample["):-1]))
        method: Callable[[], str] = getattr(self, f"_check_{name}")
        return method()

    def _target_label(self) -> str:
        t = self.target
        if isinstance(t, str):
            return t
        return str(getattr(t, "__qualname__", None) or type(t).__qualname__)

    def _tmpdir(self, label: str) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="vidgen-conformance-"))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
        path = self._tmp / f"{label}-{secrets.token_hex(4)}"
        path.mkdir()
        return path

    # --- shared state ------------------------------------------------------------------

    def _make(self) -> Backend:
        t, opts = self.target, self.options.backend_options
        if isinstance(t, str):
            return load_backend(t, **opts)
        if isinstance(t, type) or (callable(t) and not isinstance(t, Backend)):
            return t(**opts)
        if opts:
            raise ConfigurationError("backend_options need a factory or a name, "
                                     "not a ready backend instance")
        return t

    def backend(self) -> Backend:
        """The backend under test, built once (a failure fails every check that needs it)."""
        if self._backend is None:
            if self._backend_error is not None:
                _fail(self._backend_error)
            try:
                self._backend = self._make()
            except Exception as exc:
                self._backend_error = (f"the backend could not be built: "
                                       f"{type(exc).__name__}: {exc}")
                _fail(self._backend_error)
        return self._backend

    def _caps(self) -> Capabilities:
        b = self.backend()
        caps = b.capabilities()
        if not isinstance(caps, Capabilities):
            _fail(f"capabilities() returned {type(caps).__name__}, not a "
                  "vidgen.backends.Capabilities")
        return caps

    def _name(self) -> str:
        name = getattr(self.backend(), "name", None)
        return name if isinstance(name, str) else repr(name)

    def _tasks(self) -> list[Task]:
        caps = self._caps()
        chosen = self.options.tasks
        tasks = [t for t in Task if t in caps.tasks and (chosen is None or t in chosen)]
        if not tasks:
            _fail("no task to sample: the backend supports "
                  f"{sorted(t.value for t in caps.tasks)}, tasks= selects "
                  f"{sorted(t.value for t in chosen or ())}")
        return tasks

    def _primary(self) -> Task:
        return self._tasks()[0]

    def _tiny(self) -> _Sizes:
        caps, o = self._caps(), self.options
        frames = o.num_frames or min(max(_TINY_FRAMES, caps.min_frames), caps.max_frames)
        return _Sizes(frames, o.height or _fit(_TINY_SIDE, caps.size_multiple, caps.max_height),
                      o.width or _fit(_TINY_SIDE, caps.size_multiple, caps.max_width))

    def _request(self, task: Task, *, seed: int | None = None,
                 sizes: _Sizes | None = None) -> tuple[GenerationRequest, tuple[int, int, int]]:
        """A request for ``task`` with inputs made here, and the (T, H, W) it must yield.

        ``sizes`` None means the suite's tiny sizes; a ``_Sizes`` of Nones asks for the
        backend's defaults (inputs are then made at the default size).
        """
        caps, o = self._caps(), self.options
        s = sizes if sizes is not None else self._tiny()
        t = s.frames if s.frames is not None else caps.default_frames
        h = s.height if s.height is not None else caps.default_height
        w = s.width if s.width is not None else caps.default_width
        inputs, segments = Inputs(), 1
        extra: dict[str, Any] = {}
        if task in (Task.IMAGE_TO_VIDEO, Task.CINEMAGRAPH):
            inputs = Inputs(image=_image(h, w),
                            mask=_box(h, w) if task == Task.CINEMAGRAPH else None)
        elif task in (Task.EDIT, Task.STYLIZE):
            inputs = Inputs(video=_clip(t, h, w))
        elif task == Task.EXTEND:  # a clip to continue: give it some context
            inputs = Inputs(video=_clip(max(2 * t, _EXTEND_CONTEXT), h, w))
        elif task == Task.INPAINT:
            inputs = Inputs(video=_clip(t, h, w), mask=np.broadcast_to(_box(h, w),
                                                                      (t, h, w)).copy())
        elif task == Task.STORYBOARD:
            extra["storyboard"] = (o.prompt, o.second_prompt)
            segments = 2
        if task == Task.EDIT:
            extra["strength"] = 0.6
        request = GenerationRequest(
            prompt=o.prompt, task=task, num_frames=s.frames, height=s.height, width=s.width,
            seed=o.seed if seed is None else seed, num_steps=o.num_steps, inputs=inputs,
            options=dict(o.request_options), **extra)
        return request, (t * segments, h, w)

    def _sample(self, request: GenerationRequest, expected: tuple[int, int, int],
                progress: Callable[[int, int], None] | None = None,
                backend: Backend | None = None) -> Video:
        b = backend if backend is not None else self.backend()
        video = b.sample(request, progress)
        if not isinstance(video, Video):
            _fail(f"sample() returned {type(video).__name__}, not a vidgen.Video")
        got = tuple(int(n) for n in video.frames.shape[:3])
        if got != expected:
            _fail(f"sample() for {request.task.value} returned frames (T,H,W)={got}, "
                  f"expected {expected} (num_frames={request.num_frames}, "
                  f"height={request.height}, width={request.width})")
        return video

    def _reference_clip(self) -> Video:
        """The primary task's clip at the suite's seed, sampled once."""
        if self._reference is None:
            request, expected = self._request(self._primary())
            self._reference = self._sample(request, expected)
        return self._reference

    def _repeatable(self) -> bool:
        """Whether the backend claims determinism and repeats the reference clip (checks
        that compare clips only do so then; the determinism check reports the rest)."""
        if self._is_repeatable is None:
            repeatable = False
            if self._caps().deterministic:
                request, expected = self._request(self._primary())
                repeatable = self._sample(request, expected) == self._reference_clip()
            self._is_repeatable = repeatable
        return self._is_repeatable

    # --- checks ------------------------------------------------------------------------

    def _check_protocol(self) -> str:
        b = self.backend()
        problems = []
        name = getattr(b, "name", None)
        if not isinstance(name, str) or not name:
            problems.append(f"name must be a non-empty str, got {name!r}")
        elif any(c.isspace() or c in "/\\:" for c in name):
            problems.append(f"name {name!r} must not contain whitespace, '/', '\\' or ':'")
        for attr in ("capabilities", "sample"):
            if not callable(getattr(b, attr, None)):
                problems.append(f"{attr}() is missing or not callable")
        if not isinstance(b, Backend):
            problems.append("does not implement the vidgen.backends.Backend protocol")
        if callable(getattr(b, "sample", None)):
            try:
                sig = inspect.signature(b.sample)
            except (TypeError, ValueError):
                sig = None
            if sig is not None:
                for args in ((object(),), (object(), None)):
                    try:
                        sig.bind(*args)
                    except TypeError:
                        problems.append(f"sample() cannot be called with {len(args)} positional "
                                        "argument(s): it must be sample(request, progress=None)")
        if problems:
            _fail("; ".join(problems))
        caps = self._caps()
        return f"{type(b).__qualname__} named {name!r}, model {caps.model_id} {caps.model_version}"

    def _check_capabilities(self) -> str:
        caps = self._caps()
        problems = []
        if not isinstance(caps.tasks, frozenset) or not caps.tasks:
            problems.append(f"tasks must be a non-empty frozenset of Task, got {caps.tasks!r}")
        elif not all(isinstance(t, Task) for t in caps.tasks):
            problems.append("tasks must all be vidgen.Task values, got "
                            f"{sorted(map(str, caps.tasks))}")
        ints = ("min_frames", "max_frames", "default_frames", "max_height", "max_width",
                "default_height", "default_width", "size_multiple")
        bad = [f for f in ints if isinstance(getattr(caps, f), bool)
               or not isinstance(getattr(caps, f), int) or getattr(caps, f) < 1]
        if bad:
            problems.append(f"{', '.join(bad)} must be positive ints")
        else:
            if not caps.min_frames <= caps.default_frames <= caps.max_frames:
                problems.append(f"default_frames {caps.default_frames} is outside min_frames.."
                                f"max_frames {caps.min_frames}..{caps.max_frames}")
            for side in ("height", "width"):
                default, limit = getattr(caps, f"default_{side}"), getattr(caps, f"max_{side}")
                if default > limit:
                    problems.append(f"default_{side} {default} is over max_{side} {limit}")
                if default % caps.size_multiple:
                    problems.append(f"default_{side} {default} is not a multiple of "
                                    f"size_multiple {caps.size_multiple}")
        if not isinstance(caps.default_fps, int | float) or not 0.1 <= caps.default_fps <= 1000:
            problems.append(f"default_fps must be in [0.1, 1000], got {caps.default_fps!r}")
        for f in ("device", "model_id", "model_version"):
            value = getattr(caps, f)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{f} must be a non-empty str, got {value!r}")
        if caps.model_id == "unknown":
            problems.append("model_id is the default 'unknown': name the model (it goes into "
                            "every output's C2PA manifest)")
        if not isinstance(caps.deterministic, bool):
            problems.append(f"deterministic must be a bool, got {caps.deterministic!r}")
        if not problems:
            again = self._caps()
            if again != caps:
                problems.append("capabilities() changed between two calls")
            try:
                json.dumps(caps.to_dict())
            except (TypeError, ValueError) as exc:
                problems.append(f"to_dict() is not JSON-serialisable (vidgen backends --json): "
                                f"{exc}")
        if problems:
            _fail("; ".join(problems))
        tasks = ", ".join(sorted(t.value for t in caps.tasks))
        return (f"tasks {tasks}; frames {caps.min_frames}..{caps.max_frames} "
                f"(default {caps.default_frames}); default {caps.default_width}x"
                f"{caps.default_height}, multiple of {caps.size_multiple}")

    def _check_capabilities_check(self) -> str:
        caps, name = self._caps(), self._name()
        for task in self._tasks():
            request, _ = self._request(task)
            try:
                caps.check(request, name)
            except UnsupportedTask as exc:
                _fail(f"the suite's {task.value} request is refused ({exc}); pass num_frames=, "
                      "height=, width= that the backend supports")
            try:
                caps.check(GenerationRequest(prompt=self.options.prompt, task=task), name)
            except UnsupportedTask as exc:
                _fail(f"a {task.value} request at the default sizes is refused: {exc}")
        base = GenerationRequest(prompt=self.options.prompt, task=self._primary())
        refused = {
            "an unsupported task": [attrs.evolve(base, task=t) for t in Task
                                    if t not in caps.tasks],
            "too many frames": [attrs.evolve(base, num_frames=caps.max_frames + 1)],
            "too few frames": ([attrs.evolve(base, num_frames=caps.min_frames - 1)]
                               if caps.min_frames > 1 else []),
            "too tall a frame": [attrs.evolve(base, height=caps.max_height + caps.size_multiple)],
            "too wide a frame": [attrs.evolve(base, width=caps.max_width + caps.size_multiple)],
            "a size off the size multiple": (
                [attrs.evolve(base, height=caps.default_height + 1)]
                if caps.size_multiple > 1 else []),
        }
        checked = []
        for what, requests in refused.items():
            for request in requests:
                try:
                    caps.check(request, name)
                except UnsupportedTask:
                    continue
                _fail(f"Capabilities.check accepted {what} ({request.task.value}, "
                      f"{request.num_frames} frames, {request.width}x{request.height}); the "
                      "pipeline relies on it to refuse requests the backend cannot serve")
            if requests:
                checked.append(what)
        note = "" if any(t not in caps.tasks for t in Task) else \
            " (the backend supports every task)"
        return f"refuses {', '.join(checked)}{note}"

    def _check_sample(self, task: Task) -> str:
        caps = self._caps()
        if task not in caps.tasks:
            _skip(f"the backend does not support {task.value}")
        if self.options.tasks is not None and task not in self.options.tasks:
            _skip(f"{task.value} not selected (tasks=...)")
        request, expected = self._request(task)
        before_inputs = _snapshot_inputs(request.inputs)
        before_options = dict(request.options)
        video = self._sample(request, expected)
        after = _snapshot_inputs(request.inputs)
        changed = [k for k, v in before_inputs.items() if not np.array_equal(v, after[k])]
        if changed:
            _fail(f"sample() modified the request's input {', '.join(changed)} in place")
        if request.options != before_options:
            _fail("sample() modified request.options in place")
        t, h, w = expected
        return f"{t}x{h}x{w} uint8 at {video.fps:g} fps"

    def _check_sample_defaults(self) -> str:
        task = self._primary()
        request, expected = self._request(task, sizes=_Sizes(None, None, None))
        self._sample(request, expected)
        t, h, w = expected
        return f"{task.value} with no sizes gives the defaults {t}x{h}x{w}"

    def _check_progress(self) -> str:
        request, expected = self._request(self._primary())
        rec = _Progress()
        self._sample(request, expected, rec)
        if not rec.calls:
            _fail("progress was never called: call progress(done, total) as work advances "
                  "(raising from it is how callers cancel)")
        last_done = -1
        for i, (done, total) in enumerate(rec.calls):
            ok_types = all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                           for v in (done, total))
            if not ok_types:
                _fail(f"call {i + 1}: progress({done!r}, {total!r}) must get ints")
            if total < 1 or not 0 <= done <= total:
                _fail(f"call {i + 1}: progress({done}, {total}) needs total >= 1 and "
                      "0 <= done <= total")
            if done < last_done:
                _fail(f"call {i + 1}: done went back from {last_done} to {done}")
            last_done = int(done)
        done, total = rec.calls[-1]
        if done != total:
            _fail(f"the last progress call was ({done}, {total}): report done == total when "
                  "sampling finishes")
        return f"{len(rec.calls)} calls, ending at ({done}, {total})"

    def _check_cancellation(self) -> str:
        request, expected = self._request(self._primary())
        reference = self._reference_clip() if self._repeatable() else None
        rec = _Progress(raise_at=1)
        try:
            self._sample(request, expected, rec)
        except ConformanceCancelled as exc:
            if exc is not rec.token:  # pragma: no cover - only the suite raises it
                _fail("a different cancellation exception propagated")
        except _Fail:
            raise
        except Exception as exc:
            if any(e is rec.token for e in _chain(exc)):
                _fail(f"sample() wrapped the callback's exception in {type(exc).__name__}: "
                      "let it propagate unchanged (callers catch their own cancel exception)")
            raise
        else:
            if not rec.calls:
                _fail("progress was never called, so sampling cannot be cancelled")
            _fail("progress raised but sample() returned a clip: the exception must propagate "
                  "(the backend swallowed the cancellation)")
        if rec.calls_after_cancel:
            _fail(f"progress was called {rec.calls_after_cancel} more time(s) after it raised: "
                  "the backend caught the cancellation and kept sampling")
        again = self._sample(request, expected)
        if reference is not None and again != reference:
            _fail("after a cancelled sample the same request gives different frames: "
                  "cancellation left state behind")
        return ("the callback's exception propagated at once; the next sample is "
                + ("unchanged" if reference is not None else "fine"))

    def _check_determinism(self) -> str:
        caps = self._caps()
        if not caps.deterministic:
            _skip("capabilities().deterministic is False")
        task = self._primary()
        request, expected = self._request(task)
        first = self._reference_clip()
        second = self._sample(request, expected, _Progress())
        if second != first:
            _fail(f"the same request (seed {request.seed}) gave different frames twice in a "
                  "row although capabilities().deterministic is True (report "
                  "deterministic=False if that is expected)")
        other_req, _ = self._request(task, seed=self.options.other_seed)
        other = self._sample(other_req, expected)
        if np.array_equal(other.frames, first.frames):
            _fail(f"seeds {request.seed} and {other_req.seed} gave identical frames: the seed "
                  "must drive the sampling")
        fresh_note = ""
        if self.target is not self._backend:  # a factory or a name: a second instance
            fresh = self._make()
            if self._sample(request, expected, backend=fresh) != first:
                _fail("a second instance of the backend gives different frames for the same "
                      "seed (state outside the seed, e.g. an unseeded global RNG)")
            fresh_note = ", a second instance agrees"
        return (f"seed {request.seed} repeats exactly{fresh_note}; seed {other_req.seed} "
                "differs")

    def _check_no_file_writes(self) -> str:
        tasks = self._tasks()
        sandbox = self._tmpdir("writes")
        with watch(sandbox) as seen:
            for task in tasks:
                request, expected = self._request(task)
                self._sample(request, expected, _Progress())
        assert seen.result is not None
        problems = []
        if seen.result.writes:
            problems.append(f"wrote through Python: {_describe(seen.result.writes)}")
        if seen.result.created:
            problems.append(f"files appeared in the working or temporary directory: "
                            f"{_describe(seen.result.created)}")
        if problems:
            _fail("a backend must not write files (the pipeline owns every output): "
                  + "; ".join(problems))
        return f"sampled {', '.join(t.value for t in tasks)} without writing a file"

    def _key_paths(self) -> list[str]:
        """Where this process's real keys, store and consent registry are."""
        from vidgen.provenance.keys import default_keys_dir

        paths = [str(default_keys_dir())]
        for var in ("VIDGEN_SIGN_CERT", "VIDGEN_SIGN_KEY", "VIDGEN_WATERMARK_KEY_FILE",
                    "VIDGEN_TRUST_ANCHORS", "VIDGEN_STORE", "VIDGEN_CONSENT_DB"):
            if os.environ.get(var):
                paths.append(str(Path(os.environ[var]).expanduser()))
        return paths

    def _check_no_key_access(self) -> str:
        request, expected = self._request(self._primary())
        reference = self._reference_clip() if self._repeatable() else None
        canary = self._tmpdir("keys-canary")
        keys, xdg_keys = canary / "keys", canary / "xdg" / "vidgen" / "keys"
        for d in (keys, xdg_keys):
            d.mkdir(parents=True)
            for f in ("ca.pem", "ca.key", "signer.pem", "signer.key", "watermark.key"):
                (d / f).write_text(f"canary {secrets.token_hex(8)}\n")
                (d / f).chmod(0o600)
        env = {
            "VIDGEN_KEYS_DIR": str(keys), "XDG_DATA_HOME": str(canary / "xdg"),
            "VIDGEN_SIGN_CERT": str(keys / "signer.pem"),
            "VIDGEN_SIGN_KEY": str(keys / "signer.key"),
            "VIDGEN_WATERMARK_KEY": secrets.token_hex(32),
            "VIDGEN_WATERMARK_KEY_FILE": str(keys / "watermark.key"),
            "VIDGEN_TRUST_ANCHORS": str(keys / "ca.pem"),
            "VIDGEN_STORE": str(canary / "store.sqlite3"),
            "VIDGEN_CONSENT_DB": str(canary / "consent.sqlite3"),
        }
        protected = [str(keys), str(xdg_keys), env["VIDGEN_STORE"], env["VIDGEN_CONSENT_DB"],
                     *self._key_paths()]
        secret_vars = sorted(set(env) - {"XDG_DATA_HOME"})
        with _environ(env), watch_environ(secret_vars) as env_reads, \
                watch(self._tmpdir("keys-run"), protected) as seen:
            with_keys = self._sample(request, expected, _Progress())
        assert seen.result is not None
        if seen.result.protected_access:
            _fail("sample() touched key material or provenance state (the pipeline owns keys, "
                  f"signing and the store): {_describe(seen.result.protected_access)}")
        if env_reads:
            _fail("sample() read key or provenance settings from the environment: "
                  f"{', '.join(sorted(set(env_reads)))}")
        with _environ({}, drop_prefix="VIDGEN_"):
            stripped = self._sample(request, expected)
        if reference is not None:
            if with_keys != reference or stripped != reference:
                _fail("the frames depend on the VIDGEN_* environment (keys, store, signer): a "
                      "backend must not read it")
            return ("no key, store or consent file or variable touched; frames independent "
                    "of the VIDGEN_* environment")
        return "no key, store or consent file or variable touched; samples without VIDGEN_*"

    def _pipe(self) -> tuple[Any, Path]:
        """A Pipeline around the backend with throwaway keys, store and consent registry."""
        if self._pipeline is None:
            from vidgen.pipeline import Pipeline
            from vidgen.provenance.keys import init_dev_keys

            home = self._tmpdir("pipeline")
            keys = init_dev_keys(home / "keys")
            pipe = Pipeline(self.backend(), keys_dir=keys.directory,
                            store=home / "manifests.sqlite3",
                            consent_registry=home / "consent.sqlite3",
                            watermark_method=self.options.watermark_method)
            self._pipeline = (pipe, home)
        return self._pipeline  # type: ignore[no-any-return]

    def _check_pipeline(self) -> str:
        from vidgen.provenance.c2pa import GENERATION_ASSERTION
        from vidgen.provenance.verify import verify
        from vidgen.provenance.watermark import read_key_file

        caps, name = self._caps(), self._name()
        pipe, home = self._pipe()
        request, expected = self._request(self._primary())
        out_dir = self._tmpdir("pipeline-out")
        result = pipe.run(request, output=out_dir / "conformance.mp4")
        left = sorted(p.name for p in out_dir.iterdir())
        if left != ["conformance.mp4"]:
            _fail(f"the output directory holds {left}, expected only conformance.mp4")
        if result.backend != name:
            _fail(f"result.backend is {result.backend!r}, expected {name!r}")
        report = verify(result.path, trust=home / "keys" / "ca.pem",
                        key=read_key_file(home / "keys" / "watermark.key"),
                        store=home / "manifests.sqlite3")
        if report.verdict != "confirmed" or report.c2pa is None or report.c2pa.state != "trusted":
            state = report.c2pa.state if report.c2pa else None
            _fail(f"vidgen.verify says {report.verdict} (C2PA {state}; {report.error or ''}) "
                  "for the pipeline's output")
        manifest = report.c2pa.manifest or {}
        generation = next((a.get("data") or {} for a in manifest.get("assertions") or []
                           if a.get("label") == GENERATION_ASSERTION), None)
        if generation is None:
            _fail(f"the signed manifest has no {GENERATION_ASSERTION} assertion")
        model = generation.get("model") or {}
        recorded = (generation.get("backend"), model.get("id"), model.get("version"))
        if recorded != (name, caps.model_id, caps.model_version):
            _fail(f"the manifest records backend/model/version {recorded}, expected "
                  f"{(name, caps.model_id, caps.model_version)}")
        if report.c2pa.ai_generated is not True:
            _fail("the manifest does not mark the output as AI-generated")
        decoded = Video.read(result.path)
        if decoded.frames.shape[:3] != expected:
            _fail(f"the MP4 decodes to (T,H,W)={decoded.frames.shape[:3]}, expected {expected}")
        wm = report.watermark
        mark = ("watermark detected, id matches the manifest" if wm and wm.detected
                and wm.matches_manifest else
                "watermark not detected (tiny clips can be below the detector's reach)")
        return (f"{request.task.value} -> signed MP4, verify: confirmed, manifest names "
                f"{caps.model_id} {caps.model_version}; {mark}")

    def _check_pipeline_cancellation(self) -> str:
        pipe, _home = self._pipe()
        request, _ = self._request(self._primary())
        out_dir = self._tmpdir("pipeline-cancel")
        rec = _Progress(raise_at=1)
        try:
            pipe.run(request, output=out_dir / "cancelled.mp4", progress=rec)
        except Exception as exc:
            if not any(e is rec.token for e in _chain(exc)):
                _fail(f"the pipeline raised {type(exc).__name__} ({exc}) that does not come "
                      "from the cancelling callback")
            kind = type(exc).__name__
        else:
            _fail("the pipeline finished although progress raised: the backend ignores "
                  "cancellation" if rec.calls else "progress was never called: the pipeline "
                  "run could not be cancelled")
        left = sorted(p.name for p in out_dir.iterdir())
        if left:
            _fail(f"a cancelled run left files behind: {left}")
        return f"cancelled run raised {kind} and left no file"

    def _check_registry(self) -> str:
        name = self.options.name
        if name is None:
            _skip("no registered name given (pass name=..., or check the backend by name)")
        backend = self.backend()
        if name not in backend_names():
            _fail(f"{name!r} is not registered: declare it under [project.entry-points."
                  f"\"{ENTRY_POINT_GROUP}\"] and reinstall the package "
                  f"(registered: {', '.join(backend_names())})")
        eps = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
               if ep.name == name]
        builtin = _builtin_factories().get(name)
        shadowing = [ep for ep in eps if builtin is not None and ep.value != builtin]
        if shadowing:
            dists = ", ".join(f"{ep.value} ({ep.dist.name if ep.dist else '?'})"
                              for ep in shadowing)
            _fail(f"{name!r} is a built-in backend name; the entry point(s) {dists} are "
                  "ignored (a plugin may not shadow a built-in): choose another name")
        targets = {ep.value for ep in eps}
        if len(targets) > 1:
            _fail(f"several entry points claim {name!r}: {sorted(targets)}; only the first "
                  "found is used")
        loaded = load_backend(name, **self.options.backend_options)
        if type(loaded) is not type(backend):
            _fail(f"load_backend({name!r}) builds {type(loaded).__qualname__}, not the "
                  f"{type(backend).__qualname__} under test")
        if loaded.name != name:
            _fail(f"the backend registered as {name!r} calls itself {loaded.name!r}: use the "
                  "same name (the manifest records backend.name)")
        info = next((i for i in list_backends() if i.name == name), None)
        if info is None:
            _fail(f"vidgen.list_backends() does not list {name!r}")
        if info.error is not None:
            _fail(f"vidgen.list_backends() reports an error for {name!r}: {info.error}")
        plain = loaded if not self.options.backend_options else load_backend(name)
        if info.capabilities != plain.capabilities():  # list_backends loads with no options
            _fail("vidgen.list_backends() shows other capabilities than the backend reports")
        how = ("built in" if builtin is not None else
               f"entry point {eps[0].value}" if eps else "registered at runtime (no entry point)")
        return f"{name!r} loads and is listed ({how}, source {info.source})"


def _skip_test(message: str) -> NoReturn:
    try:
        import pytest
    except ImportError:  # pragma: no cover - pytest is how the class form runs
        import unittest

        raise unittest.SkipTest(message) from None
    pytest.skip(message)


def check_backend(target: BackendTarget, **options: Any) -> ConformanceReport:
    """Run the conformance suite against a backend and return the report.

    ``target``: a registered name (then the registry check runs), a factory (usually
    the backend class), or an instance. ``options``: ``ConformanceOptions`` fields
    (``backend_options``, ``num_frames``/``height``/``width``, ``tasks``, ``prompt``,
    ``num_steps``, ``name``, ``skip``, ``only``, ...). Call ``raise_for_failures()`` on
    the report to turn failures into an exception.
    """
    suite = ConformanceSuite(target, **options)
    try:
        return suite.report()
    finally:
        suite.close()
