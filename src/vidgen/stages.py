"""The stages of the fail-closed chain, one small object each.

request -> prompt policy -> likeness scan of inputs -> backend.sample()
        -> likeness scan of output -> [visible disclosure label] -> watermark embed
        -> encode MP4 -> C2PA sign (with the soft binding: method + watermark id)
        -> atomic commit (temp + fsync + rename) -> manifest store record

Each stage reads and extends a ``Job``. The pipeline runs them in order; an
exception from any stage becomes that stage's typed error, and every file the
job made (temporaries and, if already committed, the output) is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import attrs

from vidgen.backends.base import Backend, ProgressCallback
from vidgen.errors import (
    BackendError,
    DisclosureError,
    LikenessViolation,
    MediaError,
    OutputError,
    PolicyViolation,
    SigningError,
    StoreError,
    UnsupportedTask,
    VidgenError,
    WatermarkError,
)
from vidgen.paths import fsync_directory
from vidgen.provenance import c2pa_inplace
from vidgen.provenance.c2pa import (
    DISCLOSURE_ASSERTION,
    SAFETY_ASSERTION,
    GenerationClaim,
    Ingredient,
    sign_mp4,
    soft_binding_assertion,
)
from vidgen.provenance.keys import Signer
from vidgen.types import GenerationRequest, PromptDecision, Task, Video, policy_kind

# --- the slots later components plug into ---------------------------------------------


class PromptGate(Protocol):
    """Decides whether a piece of request text may be generated (``vidgen.safety``)."""

    def __call__(self, text: str) -> PromptDecision: ...


class LikenessScanner(Protocol):
    """Scans frames for faces that may not be used; raises ``LikenessViolation``.

    ``where`` is ``input_image``, ``input_video`` or ``output``; ``task`` the
    request's task value (consent is given per task). Returns a JSON-safe summary
    for the manifest, or None when there was nothing to report.
    """

    def __call__(self, video: Video, *, where: str, task: str) -> dict[str, Any] | None: ...


class Watermarker(Protocol):
    """Embeds a keyed, invisible mark carrying ``payload`` into the frames."""

    name: str

    def embed(self, video: Video, payload: int) -> Video: ...


class ManifestStore(Protocol):
    """Durable map from watermark id to manifest, so stripped files can be recovered."""

    def record(self, watermark_id: int, manifest: dict[str, Any], sha256: str,
               path: str) -> None: ...


class Discloser(Protocol):
    """Draws a visible label into the frames; returns them and what to record in the manifest."""

    def apply(self, video: Video) -> tuple[Video, dict[str, Any]]: ...


# --- the job a chain works on ----------------------------------------------------------


@attrs.define
class Job:
    """Mutable working state of one request as it moves through the chain."""

    request: GenerationRequest
    output: Path
    backend: Backend
    progress: ProgressCallback | None = None
    video: Video | None = None
    watermark_id: int | None = None
    disclosure: dict[str, Any] | None = None
    encoded: Path | None = None
    signed: Path | None = None
    committed: bool = False
    manifest: dict[str, Any] | None = None
    sha256: str | None = None
    safety: dict[str, Any] = attrs.field(factory=dict)
    ingredients: tuple[Ingredient, ...] = ()
    timings: dict[str, float] = attrs.field(factory=dict)

    def temp_path(self, suffix: str) -> Path:
        """A hidden temporary next to the output (same filesystem, so rename is atomic)."""
        token = secrets.token_hex(6)
        return self.output.with_name(f".{self.output.name}.{token}.{suffix}")

    def cleanup(self) -> None:
        """Remove every file this job made; called when any stage fails."""
        paths = [self.encoded, self.signed]
        if self.committed:
            paths.append(self.output)
        for path in paths:
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
        self.committed = False

    def frames(self) -> Video:
        if self.video is None:
            raise BackendError("no frames: the sampling stage has not run")
        return self.video


class Stage(Protocol):
    name: ClassVar[str]
    error: ClassVar[type[VidgenError]]

    def run(self, job: Job) -> None: ...


# --- the stages ------------------------------------------------------------------------


@attrs.frozen
class CheckCapabilities:
    """Refuse requests the backend cannot serve before anything else runs."""

    name: ClassVar[str] = "capabilities"
    error: ClassVar[type[VidgenError]] = UnsupportedTask

    def run(self, job: Job) -> None:
        job.backend.capabilities().check(job.request, job.backend.name)


@attrs.frozen
class CheckPrompt:
    """Every text in the request goes through every prompt gate."""

    gates: Sequence[PromptGate]
    name: ClassVar[str] = "prompt_policy"
    error: ClassVar[type[VidgenError]] = PolicyViolation

    def run(self, job: Job) -> None:
        for label, text in job.request.labelled_texts:
            kind = policy_kind(label)  # storyboard[i] is read as a prompt
            for gate in self.gates:
                check = getattr(gate, "check", None)  # gates that read the text kind
                decision = check(text, kind=kind) if callable(check) else gate(text)
                if not isinstance(decision, PromptDecision):
                    raise PolicyViolation(f"prompt gate {gate!r} returned "
                                          f"{type(decision).__name__}, not a PromptDecision")
                if not decision.allowed:
                    what = label.replace("_", " ")
                    raise PolicyViolation(
                        f"{what} refused ({decision.category}): {decision.reason}",
                        category=decision.category or "unspecified")
        versions = [str(v) for g in self.gates
                    if (v := getattr(getattr(g, "policy", None), "version", None))]
        job.safety["prompt_policy"] = {"gates": len(self.gates), "versions": versions,
                                       "texts": len(job.request.labelled_texts)}


@attrs.frozen
class ScanInputs:
    """Faces in input images and videos are checked before the backend sees them."""

    scanners: Sequence[LikenessScanner]
    name: ClassVar[str] = "likeness_inputs"
    error: ClassVar[type[VidgenError]] = LikenessViolation

    def run(self, job: Job) -> None:
        inputs = job.request.inputs
        media: list[tuple[str, Video]] = []
        if inputs.image is not None:
            media.append(("input_image", Video(inputs.image[None], fps=1.0)))
        if inputs.video is not None:
            media.append(("input_video", inputs.video))
        task = job.request.task.value
        findings = [f for where, v in media for s in self.scanners
                    if (f := s(v, where=where, task=task))]
        job.safety["input_scanners"] = len(self.scanners)
        if findings:
            job.safety["input_findings"] = findings


@attrs.frozen
class Sample:
    """Run the backend and check that it returned what was asked."""

    name: ClassVar[str] = "sample"
    error: ClassVar[type[VidgenError]] = BackendError

    def run(self, job: Job) -> None:
        caps = job.backend.capabilities()
        video = job.backend.sample(job.request, job.progress)
        if not isinstance(video, Video):
            raise BackendError(
                f"backend {job.backend.name!r} returned {type(video).__name__}, not a Video")
        r = job.request
        segments = max(1, len(r.storyboard)) if r.task == Task.STORYBOARD else 1
        want = ((r.num_frames or caps.default_frames) * segments,  # a storyboard's per segment
                r.height or caps.default_height, r.width or caps.default_width)
        got = video.frames.shape[:3]
        if tuple(got) != want:
            raise BackendError(
                f"backend {job.backend.name!r} returned frames of shape (T,H,W)={tuple(got)}, "
                f"expected {want}")
        job.video = video


@attrs.frozen
class ScanOutput:
    """Generated frames are checked for protected likenesses before they are kept."""

    scanners: Sequence[LikenessScanner]
    name: ClassVar[str] = "likeness_output"
    error: ClassVar[type[VidgenError]] = LikenessViolation

    def run(self, job: Job) -> None:
        video = job.frames()
        task = job.request.task.value
        findings = [f for s in self.scanners if (f := s(video, where="output", task=task))]
        job.safety["output_scanners"] = len(self.scanners)
        if findings:
            job.safety["output_findings"] = findings


@attrs.frozen
class Disclose:
    """Draw the visible "AI-generated" label, when one is configured, before the watermark."""

    discloser: Discloser | None
    name: ClassVar[str] = "disclosure"
    error: ClassVar[type[VidgenError]] = DisclosureError

    def run(self, job: Job) -> None:
        if self.discloser is None:
            return
        before = job.frames()
        labelled, record = self.discloser.apply(before)
        if not isinstance(labelled, Video) or labelled.frames.shape != before.frames.shape:
            raise DisclosureError("the disclosure label changed the clip shape")
        job.video, job.disclosure = labelled, dict(record)


@attrs.frozen
class EmbedWatermark:
    """Mark the frames with a fresh random id before they are encoded (always: no opt-out)."""

    watermarker: Watermarker
    new_id: Callable[[], int] = attrs.field(default=lambda: secrets.randbits(32))
    name: ClassVar[str] = "watermark"
    error: ClassVar[type[VidgenError]] = WatermarkError

    def run(self, job: Job) -> None:
        watermark_id = self.new_id()
        if isinstance(watermark_id, bool) or not 0 <= watermark_id < 1 << 32:
            raise WatermarkError(f"watermark id {watermark_id!r} is not a 32-bit unsigned int")
        marked = self.watermarker.embed(job.frames(), watermark_id)
        if not isinstance(marked, Video) or marked.frames.shape != job.frames().frames.shape:
            raise WatermarkError(f"watermarker {self.watermarker.name!r} changed the clip shape")
        job.video, job.watermark_id = marked, watermark_id


@attrs.frozen
class Encode:
    """H.264 MP4 into a temporary beside the output."""

    crf: int = 18
    preset: str = "medium"
    name: ClassVar[str] = "encode"
    error: ClassVar[type[VidgenError]] = MediaError

    def run(self, job: Job) -> None:
        from vidgen.video_io import write_video

        job.encoded = job.temp_path("encode.mp4")
        write_video(job.frames(), job.encoded, crf=self.crf, preset=self.preset)


@attrs.frozen
class Sign:
    """Sign the encoded temporary: in place when the C2PA library allows, else into a copy."""

    signer: Signer
    watermark_method: str
    include_prompt: bool = False
    name: ClassVar[str] = "sign"
    error: ClassVar[type[VidgenError]] = SigningError

    def run(self, job: Job) -> None:
        if job.encoded is None:
            raise SigningError("nothing to sign: the encode stage has not run")
        if job.watermark_id is None:
            raise SigningError("refusing to sign unwatermarked frames: the watermark stage "
                               "has not run")
        r, v = job.request, job.frames()
        caps = job.backend.capabilities()
        extra: list[dict[str, Any]] = [soft_binding_assertion(
            self.watermark_method, job.watermark_id, round(1000 * v.duration))]
        if job.disclosure is not None:
            extra.append({"label": DISCLOSURE_ASSERTION, "data": job.disclosure})
        if job.safety:
            extra.append({"label": SAFETY_ASSERTION, "data": dict(job.safety)})
        claim = GenerationClaim(
            title=job.output.name, task=r.task.value, backend=job.backend.name,
            model_id=caps.model_id, model_version=caps.model_version, seed=r.seed,
            num_frames=v.num_frames, width=v.width, height=v.height, fps=v.fps,
            prompt_sha256=hashlib.sha256(r.prompt.encode("utf-8")).hexdigest(),
            prompt=r.prompt if self.include_prompt else None,
            parameters=_parameters(r), ingredients=job.ingredients,
            extra_assertions=tuple(extra),
        )
        if c2pa_inplace.available():
            job.manifest = c2pa_inplace.sign_mp4_in_place(job.encoded, claim, self.signer)
            job.signed, job.encoded = job.encoded, None
            return
        job.signed = job.temp_path("signed.mp4")
        job.manifest = sign_mp4(job.encoded, job.signed, claim, self.signer)
        job.encoded.unlink(missing_ok=True)
        job.encoded = None


def _parameters(r: GenerationRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key in ("num_steps", "guidance", "strength"):
        value = getattr(r, key)
        if value is not None:
            params[key] = value
    if r.negative_prompt:
        params["negative_prompt_sha256"] = hashlib.sha256(
            r.negative_prompt.encode("utf-8")).hexdigest()
    if r.storyboard:
        params["storyboard_sha256"] = [hashlib.sha256(t.encode("utf-8")).hexdigest()
                                       for t in r.storyboard]
    return params


@attrs.frozen
class Commit:
    """fsync the signed file, rename it over the output, fsync the directory."""

    name: ClassVar[str] = "commit"
    error: ClassVar[type[VidgenError]] = OutputError

    def run(self, job: Job) -> None:
        if job.signed is None:
            raise OutputError("nothing to commit: the sign stage has not run")
        digest = hashlib.sha256()
        with open(job.signed, "rb+") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
            f.flush()
            os.fsync(f.fileno())
        os.replace(job.signed, job.output)
        job.signed, job.committed = None, True
        fsync_directory(job.output.parent)
        job.sha256 = digest.hexdigest()


@attrs.frozen
class Record:
    """Store watermark id -> manifest so a stripped copy can get its credentials back."""

    store: ManifestStore
    name: ClassVar[str] = "record"
    error: ClassVar[type[VidgenError]] = StoreError

    def run(self, job: Job) -> None:
        if job.watermark_id is None or job.manifest is None or job.sha256 is None:
            raise StoreError("nothing to record: the watermark, sign or commit stage has "
                             "not run")
        self.store.record(job.watermark_id, job.manifest, job.sha256, str(job.output))


def run_chain(stages: Sequence[Stage], job: Job) -> Job:
    """Run ``stages`` in order; on any failure remove the job's files and raise typed."""
    try:
        for stage in stages:
            start = time.perf_counter()
            try:
                stage.run(job)
            except VidgenError:
                raise
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                raise stage.error(f"{stage.name} failed: {type(exc).__name__}: {exc}",
                                  stage=stage.name) from exc
            job.timings[stage.name] = time.perf_counter() - start
    except BaseException:
        job.cleanup()
        raise
    return job
