"""The job file: one JSON object per line, each a ``Job``.

``parse_jobs(path)`` reads and validates the whole file before anything runs; the
first problem raises a ``JobFormatError`` naming the file and line. A job is::

    {"id": "shot-001", "prompt": "a red circle moving right", "backend": "dit",
     "task": "text_to_video", "seed": 0, "num_frames": 16}

Keys (anything else is refused, so typos do not pass silently):

- ``id`` (required): a safe file stem (``vidgen.batch.ids``); the output is ``DIR/<id>.mp4``.
- ``prompt``: the text (required for every task but ``storyboard``, which takes
  ``prompts``: a non-empty list of texts, one segment each).
- ``task``: one of ``vidgen.Task`` (default ``text_to_video``).
- ``backend``, ``backend_options`` (an object passed to the backend's factory).
- ``seed``, ``num_frames`` (a storyboard's frames per prompt; extend's added frames),
  ``height``, ``width``, ``fps``, ``num_steps``, ``guidance``, ``negative_prompt``,
  ``strength`` (not for text_to_video or storyboard), ``options`` (an object of
  backend request options, e.g. ``{"loop_frames": 8}``).
- inputs, as file paths (relative ones are read from the job file's directory):
  ``image`` (image_to_video, cinemagraph), ``video`` (edit, stylize, extend,
  inpaint; optional for loop), ``mask`` (inpaint, cinemagraph; ``.npy`` or ``.png``).

Blank lines are skipped. Input files are opened when the job runs: a missing one
fails that job (recorded), not the whole batch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from vidgen.batch.errors import DuplicateJobId, JobFormatError
from vidgen.batch.ids import check_job_id
from vidgen.types import Task

MAX_LINE_BYTES = 1 << 20

_INPUTS: dict[Task, tuple[frozenset[str], frozenset[str]]] = {
    # task: (required input keys, allowed input keys)
    Task.TEXT_TO_VIDEO: (frozenset(), frozenset()),
    Task.IMAGE_TO_VIDEO: (frozenset({"image"}), frozenset({"image"})),
    Task.EDIT: (frozenset({"video"}), frozenset({"video"})),
    Task.STYLIZE: (frozenset({"video"}), frozenset({"video"})),
    Task.EXTEND: (frozenset({"video"}), frozenset({"video"})),
    Task.LOOP: (frozenset(), frozenset({"video"})),
    Task.INPAINT: (frozenset({"video", "mask"}), frozenset({"video", "mask"})),
    Task.CINEMAGRAPH: (frozenset({"image", "mask"}), frozenset({"image", "mask"})),
    Task.STORYBOARD: (frozenset(), frozenset()),
}
_NO_STRENGTH = frozenset({Task.TEXT_TO_VIDEO, Task.STORYBOARD})
_MASK_SUFFIXES = (".npy", ".png")

KEYS = frozenset({"id", "prompt", "prompts", "task", "backend", "backend_options", "seed",
                  "num_frames", "height", "width", "fps", "num_steps", "guidance",
                  "negative_prompt", "strength", "options", "image", "video", "mask"})


@attrs.frozen(hash=False)
class Job:
    """One validated line of a job file."""

    id: str
    prompt: str  # a storyboard's first prompt
    backend: str
    task: Task = Task.TEXT_TO_VIDEO
    prompts: tuple[str, ...] = ()  # storyboard segments (``prompt`` is the first)
    backend_options: dict[str, Any] = attrs.field(factory=dict)
    seed: int = 0
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    fps: float | None = None
    num_steps: int | None = None
    guidance: float | None = None
    negative_prompt: str | None = None
    strength: float | None = None
    options: dict[str, Any] = attrs.field(factory=dict)
    image: Path | None = None
    video: Path | None = None
    mask: Path | None = None
    line: int = attrs.field(default=0, eq=False)

    @property
    def output_name(self) -> str:
        return f"{self.id}.mp4"

    @property
    def texts(self) -> tuple[str, ...]:
        """Every text of the job (kept out of logs and results: only hashes are written)."""
        texts = self.prompts if self.task == Task.STORYBOARD else (self.prompt,)
        return (*texts, *((self.negative_prompt,) if self.negative_prompt else ()))

    def to_dict(self) -> dict[str, Any]:
        """The normalised job (resolved backend, absolute paths), JSON-safe."""
        data: dict[str, Any] = {}
        for field in attrs.fields(Job):
            if field.name == "line":
                continue
            value = getattr(self, field.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Task):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            data[field.name] = value
        return data

    @property
    def spec_sha256(self) -> str:
        """SHA-256 of the canonical normalised job: a changed job is a different job."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    @property
    def prompt_sha256(self) -> str:
        return hashlib.sha256(self.prompt.encode("utf-8")).hexdigest()


# --- parsing ---------------------------------------------------------------------------


def parse_jobs(path: str | Path, *, default_backend: str | None = None) -> list[Job]:
    """Read and validate a JSONL job file (relative input paths: from its directory)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise JobFormatError(f"cannot read the job file {file}: {exc.strerror or exc}",
                             path=str(file)) from exc
    return parse_job_lines(data.splitlines(), base_dir=file.parent.absolute(),
                           default_backend=default_backend, source=str(file))


def parse_job_lines(lines: Iterable[bytes | str], *, base_dir: str | Path = ".",
                    default_backend: str | None = None, source: str = "jobs"
                    ) -> list[Job]:
    """Validate job lines (bytes or str); ``JobFormatError`` at the first bad one."""
    if default_backend is None:
        from vidgen.pipeline import DEFAULT_BACKEND

        default_backend = DEFAULT_BACKEND
    base = Path(base_dir).absolute()
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            if len(raw) > MAX_LINE_BYTES:
                raise JobFormatError(f"line is longer than {MAX_LINE_BYTES} bytes",
                                     line=number, path=source)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JobFormatError(f"not UTF-8 ({exc.reason} at byte {exc.start})",
                                     line=number, path=source) from exc
        else:
            text = raw
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        job = parse_job(text, line=number, base_dir=base, default_backend=default_backend,
                        source=source)
        key = job.id.casefold()
        if key in seen:
            raise DuplicateJobId(f"job id {job.id!r} is already used on line {seen[key]} "
                                 "(ids are compared case-insensitively)", line=number,
                                 path=source)
        seen[key] = number
        jobs.append(job)
    return jobs


def parse_job(text: str, *, line: int = 0, base_dir: str | Path = ".",
              default_backend: str = "dit", source: str = "jobs") -> Job:
    """One job from one line of JSON."""

    def bad(message: str) -> JobFormatError:
        return JobFormatError(message, line=line, path=source)

    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys,
                         parse_constant=_no_constants)
    except _KeyRepeated as exc:
        raise bad(f"key {exc.args[0]!r} appears twice") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise bad(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise bad(f"a job must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - KEYS)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(map(repr, unknown))}; a job may have: "
                  f"{', '.join(sorted(KEYS))}")
    if "id" not in obj:
        raise bad("a job needs an 'id'")
    job_id = check_job_id(obj["id"], line=line, path=source)

    task_name = obj.get("task", Task.TEXT_TO_VIDEO.value)
    try:
        task = Task(task_name)
    except ValueError:
        raise bad(f"unknown task {task_name!r}; tasks: "
                  f"{', '.join(t.value for t in Task)}") from None

    if task == Task.STORYBOARD:
        if "prompt" in obj:
            raise bad("a storyboard takes 'prompts' (a list, one per segment), not 'prompt'")
        prompts = obj.get("prompts")
        if (not isinstance(prompts, list) or not prompts
                or not all(isinstance(p, str) and p.strip() for p in prompts)):
            raise bad("a storyboard needs 'prompts': a non-empty list of non-empty strings")
        prompts_t = tuple(prompts)
        prompt = prompts_t[0]
    else:
        if "prompts" in obj:
            raise bad("'prompts' is only for task storyboard; use 'prompt'")
        prompt = obj.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad(f"task {task.value} needs a 'prompt': a non-empty string")
        prompts_t = ()

    backend = obj.get("backend", default_backend)
    if not isinstance(backend, str) or not backend:
        raise bad("'backend' must be a backend name (see `vidgen backends`)")
    backend_options = _object(obj, "backend_options", bad)
    options = _object(obj, "options", bad)

    required, allowed = _INPUTS[task]
    given = {k for k in ("image", "video", "mask") if k in obj}
    if missing := sorted(required - given):
        raise bad(f"task {task.value} needs {' and '.join(map(repr, missing))} "
                  "(a file path)")
    if extra := sorted(given - allowed):
        raise bad(f"task {task.value} takes no {' or '.join(map(repr, extra))}")
    paths = {k: _path(obj[k], k, Path(base_dir), bad) for k in sorted(given)}
    mask = paths.get("mask")
    if mask is not None and mask.suffix.lower() not in _MASK_SUFFIXES:
        raise bad(f"'mask' must be a .npy array or a .png image, got {mask.name!r}")

    strength = _number(obj, "strength", bad, low=0.0, low_open=True, high=1.0)
    if strength is not None and task in _NO_STRENGTH:
        raise bad(f"task {task.value} takes no 'strength'")
    negative = obj.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise bad("'negative_prompt' must be a string")
    fps = _number(obj, "fps", bad, low=0.0, low_open=True)
    guidance = _number(obj, "guidance", bad)
    return Job(
        id=job_id, prompt=prompt, backend=backend, task=task, prompts=prompts_t,
        backend_options=backend_options, seed=_int(obj, "seed", bad, 0) or 0,
        num_frames=_int(obj, "num_frames", bad, 1), height=_int(obj, "height", bad, 1),
        width=_int(obj, "width", bad, 1), fps=fps, num_steps=_int(obj, "num_steps", bad, 1),
        guidance=guidance, negative_prompt=negative or None, strength=strength,
        options=options, image=paths.get("image"), video=paths.get("video"), mask=mask,
        line=line)


class _KeyRepeated(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _KeyRepeated(key)
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _object(obj: Mapping[str, Any], key: str, bad: Any) -> dict[str, Any]:
    value = obj.get(key, {})
    if not isinstance(value, dict):
        raise bad(f"{key!r} must be a JSON object")
    return dict(value)


def _int(obj: Mapping[str, Any], key: str, bad: Any, low: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 1 << 63:
        raise bad(f"{key!r} must be an integer >= {low}, got {value!r}")
    return value


def _number(obj: Mapping[str, Any], key: str, bad: Any, *, low: float | None = None,
            low_open: bool = False, high: float | None = None) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(f"{key!r} must be a number, got {value!r}")
    if (low is not None and (value <= low if low_open else value < low)) or (
            high is not None and value > high):
        lo = "" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "" if high is None else f"{high:g}]"
        raise bad(f"{key!r} must be in {lo or '(-inf'}, {hi or 'inf)'}, got {value!r}")
    return float(value)


def _path(value: Any, key: str, base: Path, bad: Any) -> Path:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise bad(f"{key!r} must be a file path (a non-empty string)")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


__all__ = ["KEYS", "Job", "parse_job", "parse_job_lines", "parse_jobs"]
