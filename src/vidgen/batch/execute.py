"""Running one job: the same code in the batch parent, a local worker and a Ray actor.

A ``JobRunner`` keeps one ``Pipeline`` per (backend, backend_options) for its whole
life, so a worker loads each model once. ``run`` never raises for a job's own
failure: safety refusals become ``refused`` results and every other error an
``error`` result (prompts are redacted from messages).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vidgen.batch.jobs import Job
from vidgen.batch.results import JobResult
from vidgen.errors import LikenessViolation, MediaError, PolicyViolation, VidgenError
from vidgen.types import Task

REFUSALS: tuple[type[VidgenError], ...] = (PolicyViolation, LikenessViolation)
MAX_MESSAGE = 2000


@attrs.frozen
class PipelineConfig:
    """How every worker builds its pipelines (all None: the same defaults as ``generate``)."""

    keys_dir: str | None = None
    store: str | None = None
    watermark_method: str | None = None
    policy: str | None = None
    consent_registry: str | None = None
    disclose: str | None = None  # a language code for the visible label
    include_prompt: bool = False
    crf: int = 18
    preset: str = "medium"

    def build(self, backend: str, backend_options: dict[str, Any]) -> Any:
        from vidgen.pipeline import Pipeline

        return Pipeline.from_backend(
            backend, backend_options=backend_options, keys_dir=self.keys_dir,
            store=self.store, watermark_method=self.watermark_method, policy=self.policy,
            consent_registry=self.consent_registry, disclose=self.disclose,
            include_prompt=self.include_prompt, crf=self.crf, preset=self.preset)


class JobRunner:
    """Runs jobs into ``out_dir``; reuses one pipeline per backend configuration."""

    def __init__(self, config: PipelineConfig, out_dir: str | Path) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self._pipes: dict[str, Any] = {}
        self._failed: dict[str, VidgenError] = {}

    def pipeline(self, job: Job) -> Any:
        key = json.dumps([job.backend, job.backend_options], sort_keys=True, default=str)
        if key in self._failed:
            raise self._failed[key]
        if key not in self._pipes:
            try:
                self._pipes[key] = self.config.build(job.backend, job.backend_options)
            except VidgenError as exc:  # e.g. an unknown backend: fail its jobs, fast
                self._failed[key] = exc
                raise
        return self._pipes[key]

    def run(self, job: Job, *, attempts: int = 1) -> JobResult:
        start = time.perf_counter()
        try:
            result = _dispatch(self.pipeline(job), job, self.out_dir / job.output_name)
        except REFUSALS as exc:
            return JobResult.for_job(
                job, "refused", attempts=attempts, seconds=time.perf_counter() - start,
                error_type=type(exc).__name__, error_stage=exc.stage,
                error_message=redact(exc.message, job))
        except VidgenError as exc:
            return JobResult.for_job(
                job, "error", attempts=attempts, seconds=time.perf_counter() - start,
                error_type=type(exc).__name__, error_stage=exc.stage,
                error_message=redact(exc.message, job))
        except Exception as exc:  # a bug or a plugin's surprise: recorded, the batch goes on
            return JobResult.for_job(
                job, "error", attempts=attempts, seconds=time.perf_counter() - start,
                error_type=type(exc).__name__, error_stage="internal",
                error_message=redact(str(exc), job))
        return JobResult.for_job(
            job, "ok", attempts=attempts, seconds=time.perf_counter() - start,
            path=str(result.path), sha256=result.sha256, watermark_id=result.watermark_id)


def redact(message: str, job: Job) -> str:
    """``message`` without the job's texts (results never hold a prompt in clear)."""
    for text in sorted(set(job.texts), key=len, reverse=True):
        if text:
            message = message.replace(text, "<prompt>")
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"


def _params(job: Job, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    params: dict[str, Any] = dict(job.options)
    for key in ("num_frames", "height", "width", "fps", "seed", "negative_prompt", "strength",
                "num_steps", "guidance"):
        value = getattr(job, key)
        if value is not None and key not in skip:
            params[key] = value
    return params


def _dispatch(pipe: Any, job: Job, out: Path) -> Any:
    t, p = job.task, job.prompt
    if t == Task.TEXT_TO_VIDEO:
        return pipe.generate(p, output=out, **_params(job))
    if t == Task.IMAGE_TO_VIDEO:
        return pipe.image_to_video(job.image, p, output=out, **_params(job))
    if t == Task.EDIT:
        return pipe.edit(job.video, p, output=out, **_params(job))
    if t == Task.STYLIZE:
        return pipe.stylize(job.video, p, output=out, **_params(job))
    if t == Task.EXTEND:
        return pipe.extend(job.video, p, output=out, **_params(job))
    if t == Task.INPAINT:
        return pipe.inpaint(job.video, load_mask(_required(job.mask)), p, output=out,
                            **_params(job))
    if t == Task.CINEMAGRAPH:
        return pipe.cinemagraph(job.image, load_mask(_required(job.mask)), p, output=out,
                                **_params(job))
    if t == Task.STORYBOARD:
        params = _params(job, skip=("num_frames",))
        if job.num_frames is not None:
            params["frames_per_prompt"] = job.num_frames
        return pipe.storyboard(job.prompts, output=out, **params)
    if t == Task.LOOP:
        if job.video is None:
            return pipe.loop(p, output=out, **_params(job))
        return _loop_video(pipe, job, out)
    raise VidgenError(f"task {t.value} is not supported by vidgen batch")


def _loop_video(pipe: Any, job: Job, out: Path) -> Any:
    """Loop a given clip: the request carries the video (backends that cannot, refuse)."""
    from vidgen.types import GenerationRequest, Inputs, Video

    video = Video.read(_required(job.video))
    params = _params(job)
    fields = {k: params.pop(k) for k in ("num_frames", "height", "width", "fps", "seed",
                                         "negative_prompt", "strength", "num_steps",
                                         "guidance") if k in params}
    fields.setdefault("height", video.height)
    fields.setdefault("width", video.width)
    request = GenerationRequest(prompt=job.prompt, task=Task.LOOP, options=params,
                                inputs=Inputs(video=video, video_source=job.video), **fields)
    return pipe.run(request, output=out)


def _required(path: Path | None) -> Path:
    if path is None:  # parse_job guarantees it; keep mypy and a hand-made Job honest
        raise MediaError("the job names no input file for this task")
    return path


def load_mask(path: Path) -> np.ndarray[Any, Any]:
    """A boolean mask from ``.npy`` (bool or 0/1 numbers; (H, W) or (T, H, W)) or from a
    ``.png`` (pixels brighter than mid-grey are True)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.number):
                raise MediaError(f"mask {path.name}: dtype {arr.dtype} is not a mask")
            return np.asarray(arr != 0)
        if suffix == ".png":
            from vidgen.video_io import read_image

            return np.asarray(read_image(path).mean(axis=2) >= 128)
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot read mask {path}: {exc}") from exc
    raise MediaError(f"mask {path.name}: use a .npy array or a .png image")




def prepare_credentials(config: PipelineConfig) -> None:
    """Create (once, in the parent) the dev keys, watermark key and consent registry that
    the workers would otherwise race to create on a first run; fail fast on bad keys."""
    from vidgen.provenance.keys import default_signer, default_watermark_key
    from vidgen.safety.consent import ConsentRegistry

    default_signer(config.keys_dir)
    if config.watermark_method in (None, "vidgen"):
        default_watermark_key(config.keys_dir)
    ConsentRegistry(config.consent_registry).close()


__all__ = ["JobRunner", "PipelineConfig", "load_mask", "prepare_credentials", "redact"]
