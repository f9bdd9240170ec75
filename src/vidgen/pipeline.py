"""``Pipeline``: one object an application keeps, one method per task, every output signed.

The pipeline owns the chain (``vidgen.stages``): safety checks, sampling, the
optional visible disclosure label, the watermark, encoding, C2PA signing, the
atomic write and the manifest store record. A backend only returns frames. If
any stage fails, no output file exists afterwards and the caller gets the
stage's typed error.

Every output is watermarked: there is no switch to turn the mark off. If the
configured watermarking method is not available, the pipeline refuses to be
built (``WatermarkError``) rather than write unmarked files.
"""

from __future__ import annotations

import datetime
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vidgen.backends.base import Backend, ProgressCallback, load_backend
from vidgen.errors import ConfigurationError, OutputError, WatermarkError
from vidgen.provenance.c2pa import Ingredient
from vidgen.provenance.disclosure import DisclosureLabel
from vidgen.provenance.keys import (
    Signer,
    configured_watermark_method,
    default_signer,
    default_watermark_key,
)
from vidgen.provenance.store import ManifestStore as SqliteManifestStore
from vidgen.safety.consent import ConsentRegistry
from vidgen.safety.likeness import LikenessPolicy
from vidgen.safety.likeness import LikenessScanner as FaceLikenessScanner
from vidgen.safety.prompt import Policy, PromptPolicyGate, load_policy
from vidgen.stages import (
    CheckCapabilities,
    CheckPrompt,
    Commit,
    Disclose,
    Discloser,
    EmbedWatermark,
    Encode,
    Job,
    LikenessScanner,
    ManifestStore,
    PromptGate,
    Record,
    Sample,
    ScanInputs,
    ScanOutput,
    Sign,
    Stage,
    Watermarker,
    run_chain,
)
from vidgen.types import Frames, GenerationRequest, GenerationResult, Inputs, Task, Video

DEFAULT_BACKEND = "dit"

ImageInput = str | Path | Frames
VideoInput = str | Path | Video
MaskInput = npt.NDArray[np.bool_] | npt.NDArray[np.uint8]


class Pipeline:
    """Generate video with a backend; every output passes the whole provenance chain."""

    def __init__(
        self,
        backend: Backend,
        *,
        signer: Signer | None = None,
        keys_dir: str | Path | None = None,
        policy: Policy | str | Path | None = None,
        consent_registry: ConsentRegistry | str | Path | None = None,
        likeness_policy: LikenessPolicy | None = None,
        prompt_gates: Sequence[PromptGate] = (),
        likeness_scanners: Sequence[LikenessScanner] = (),
        watermarker: Watermarker | None = None,
        watermark_key: bytes | None = None,
        watermark_method: str | None = None,
        store: ManifestStore | str | Path | None = None,
        disclose: Discloser | str | None = None,
        include_prompt: bool = False,
        crf: int = 18,
        preset: str = "medium",
    ) -> None:
        """``signer`` defaults to ``VIDGEN_SIGN_CERT``/``VIDGEN_SIGN_KEY`` or dev keys.

        Safety always runs: the prompt policy (``policy``: a ``Policy``, a policy
        file, or None for the packaged one) checks every text of every request, and
        the likeness scanner checks input media and sampled output frames against
        the consent registry (``consent_registry``: a ``ConsentRegistry``, a path,
        or None for ``$VIDGEN_CONSENT_DB`` / the default location) under
        ``likeness_policy``. ``prompt_gates`` and ``likeness_scanners`` add checks
        after the built-in ones; they cannot replace them.

        Watermark: ``watermark_method`` (default ``$VIDGEN_WATERMARK_METHOD``, else
        ``"vidgen"``) keyed with ``watermark_key`` (default: ``keys_dir/watermark.key``,
        else ``$VIDGEN_WATERMARK_KEY``/``_FILE``, else the default keys directory's,
        created on first use); or a ready ``watermarker`` object. An unavailable
        method raises ``WatermarkError`` here.

        ``store`` records watermark id -> manifest (default: the SQLite store at
        ``$VIDGEN_STORE`` or ``~/.local/share/vidgen/manifests.sqlite3``; a path
        opens one there; any object with ``record(...)`` works).

        ``disclose`` draws a visible label (a ``DisclosureLabel``, or a language
        code such as ``"en"``) before the watermark, and records it in the manifest.

        ``include_prompt`` writes the prompt itself into the manifest; by default
        only its SHA-256 is recorded.
        """
        self.backend = backend
        self.watermarker: Watermarker = _watermarker(watermarker, watermark_key,
                                                     watermark_method, keys_dir)
        self.signer: Signer = signer if signer is not None else default_signer(keys_dir)
        self.policy: Policy = (policy if isinstance(policy, Policy)
                               else load_policy(policy))
        self.consent_registry = (consent_registry if isinstance(consent_registry, ConsentRegistry)
                                 else ConsentRegistry(consent_registry))
        self.prompt_gates: tuple[PromptGate, ...] = (PromptPolicyGate(self.policy),
                                                     *prompt_gates)
        self.likeness_scanners: tuple[LikenessScanner, ...] = (
            FaceLikenessScanner(self.consent_registry, policy=likeness_policy),
            *likeness_scanners)
        self.store: ManifestStore = (SqliteManifestStore(store) if store is None
                                     or isinstance(store, str | Path) else store)
        self.disclose: Discloser | None = (DisclosureLabel(language=disclose)
                                           if isinstance(disclose, str) else disclose)
        self.include_prompt = include_prompt
        self.crf = crf
        self.preset = preset

    @classmethod
    def from_backend(
        cls, name: str = DEFAULT_BACKEND, *, backend_options: dict[str, Any] | None = None,
        **pipeline_options: Any,
    ) -> Pipeline:
        """Load a registered backend by name (built in or plugin) and wrap it."""
        return cls(load_backend(name, **(backend_options or {})), **pipeline_options)

    # --- tasks -------------------------------------------------------------------------

    def generate(
        self, prompt: str, *, output: str | Path | None = None, num_frames: int | None = None,
        height: int | None = None, width: int | None = None, fps: float | None = None,
        seed: int = 0, negative_prompt: str | None = None, num_steps: int | None = None,
        guidance: float | None = None, progress: ProgressCallback | None = None,
        **options: Any,
    ) -> GenerationResult:
        """Text-to-video."""
        request = GenerationRequest(
            prompt=prompt, task=Task.TEXT_TO_VIDEO, num_frames=num_frames, height=height,
            width=width, fps=fps, seed=seed, negative_prompt=negative_prompt,
            num_steps=num_steps, guidance=guidance, options=options)
        return self.run(request, output=output, progress=progress)

    def image_to_video(
        self, image: ImageInput, prompt: str, *, output: str | Path | None = None,
        progress: ProgressCallback | None = None, **params: Any,
    ) -> GenerationResult:
        """Animate an image (it becomes the first frame)."""
        frames, source = _image(image)
        return self._task(Task.IMAGE_TO_VIDEO, prompt, Inputs(image=frames, image_source=source),
                          output, progress, params)

    def edit(
        self, video: VideoInput, prompt: str, *, strength: float = 0.6,
        output: str | Path | None = None, progress: ProgressCallback | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Video-to-video: change ``video`` toward ``prompt``; ``strength`` in (0, 1]."""
        if not 0.0 < strength <= 1.0:
            raise ConfigurationError(f"strength must be in (0, 1], got {strength}")
        clip, source = _video(video)
        return self._task(Task.EDIT, prompt, Inputs(video=clip, video_source=source), output,
                          progress, {"strength": strength, **params})

    def inpaint(
        self, video: VideoInput, mask: MaskInput, prompt: str, *,
        output: str | Path | None = None, progress: ProgressCallback | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Regenerate the masked region (mask True = regenerate), keep the rest."""
        clip, source = _video(video)
        inputs = Inputs(video=clip, video_source=source, mask=_mask(mask, clip.frames.shape[:3]))
        return self._task(Task.INPAINT, prompt, inputs, output, progress, params)

    def stylize(
        self, video: VideoInput, style_prompt: str, *, output: str | Path | None = None,
        progress: ProgressCallback | None = None, **params: Any,
    ) -> GenerationResult:
        """Change the look of ``video`` and keep its motion."""
        clip, source = _video(video)
        return self._task(Task.STYLIZE, style_prompt, Inputs(video=clip, video_source=source),
                          output, progress, params)

    def cinemagraph(
        self, image: ImageInput, mask: MaskInput, prompt: str, *,
        output: str | Path | None = None, progress: ProgressCallback | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Motion only inside ``mask``; the rest of the image stays still."""
        frames, source = _image(image)
        inputs = Inputs(image=frames, image_source=source,
                        mask=_mask(mask, (1, *frames.shape[:2]))[0])
        return self._task(Task.CINEMAGRAPH, prompt, inputs, output, progress, params)

    def extend(
        self, video: VideoInput, prompt: str, *, num_frames: int = 16,
        output: str | Path | None = None, progress: ProgressCallback | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Continue ``video`` by ``num_frames`` frames."""
        clip, source = _video(video)
        return self._task(Task.EXTEND, prompt, Inputs(video=clip, video_source=source), output,
                          progress, {"num_frames": num_frames, **params})

    def loop(
        self, prompt: str, *, output: str | Path | None = None,
        progress: ProgressCallback | None = None, **params: Any,
    ) -> GenerationResult:
        """A clip of ``prompt`` whose last frame flows back into its first (plays seamlessly
        on repeat)."""
        return self._task(Task.LOOP, prompt, Inputs(), output, progress, params)

    def storyboard(
        self, prompts: Sequence[str], *, frames_per_prompt: int = 16,
        output: str | Path | None = None, progress: ProgressCallback | None = None,
        **params: Any,
    ) -> GenerationResult:
        """One clip from a sequence of prompts: ``frames_per_prompt`` frames for each, in order,
        the subject carried across each cut (``len(prompts) * frames_per_prompt`` frames).

        Every prompt passes the prompt policy (a refusal names the segment, ``storyboard[i]``);
        the request's ``prompt`` is ``prompts[0]``, and the manifest records each prompt's
        SHA-256.
        """
        if isinstance(prompts, str):
            raise ConfigurationError("storyboard takes a sequence of prompts, not one string")
        texts = tuple(prompts)
        if not texts:
            raise ConfigurationError("a storyboard needs at least one prompt")
        if not all(isinstance(t, str) for t in texts):
            raise ConfigurationError("storyboard prompts must be strings")
        if "num_frames" in params:
            raise ConfigurationError("give a storyboard's length as frames_per_prompt")
        return self._task(Task.STORYBOARD, texts[0], Inputs(), output, progress,
                          {"num_frames": frames_per_prompt, "storyboard": texts, **params})

    def _task(self, task: Task, prompt: str, inputs: Inputs, output: str | Path | None,
              progress: ProgressCallback | None, params: dict[str, Any]) -> GenerationResult:
        fields: dict[str, Any] = _input_sizes(task, inputs)  # unless the caller gives them
        fields.update({k: params.pop(k) for k in ("num_frames", "height", "width", "fps", "seed",
                                                  "negative_prompt", "strength", "num_steps",
                                                  "guidance", "storyboard") if k in params})
        request = GenerationRequest(prompt=prompt, task=task, inputs=inputs, options=params,
                                    **fields)
        return self.run(request, output=output, progress=progress)

    # --- the chain ---------------------------------------------------------------------

    def stages(self, request: GenerationRequest) -> list[Stage]:
        """The chain for ``request``, in order (see ``vidgen.stages``)."""
        return [
            CheckCapabilities(),
            CheckPrompt(self.prompt_gates),
            ScanInputs(self.likeness_scanners),
            Sample(),
            ScanOutput(self.likeness_scanners),
            Disclose(self.disclose),
            EmbedWatermark(self.watermarker, new_id=self._new_watermark_id),
            Encode(crf=self.crf, preset=self.preset),
            Sign(self.signer, self.watermarker.name, include_prompt=self.include_prompt),
            Commit(),
            Record(self.store),
        ]

    def _new_watermark_id(self) -> int:
        """A random 32-bit id, redrawn while the store already knows it (ids stay unique
        within one store, so recovery is not ambiguous; racing writers may still collide)."""
        contains = getattr(self.store, "contains", None)
        watermark_id = secrets.randbits(32)
        for _ in range(16):
            if contains is None or not contains(watermark_id):
                break
            watermark_id = secrets.randbits(32)
        return watermark_id

    def run(self, request: GenerationRequest, *, output: str | Path | None = None,
            progress: ProgressCallback | None = None) -> GenerationResult:
        """Run the whole chain for one request and return the committed result."""
        out = _output_path(output, request.seed)
        job = Job(request=request, output=out, backend=self.backend, progress=progress,
                  ingredients=_ingredients(request.inputs))
        run_chain(self.stages(request), job)
        assert job.video is not None and job.manifest is not None and job.sha256 is not None
        return GenerationResult(
            path=out, video=job.video, manifest=job.manifest, watermark_id=job.watermark_id,
            backend=self.backend.name, sha256=job.sha256, timings=dict(job.timings))


# --- watermark -------------------------------------------------------------------------


def _watermarker(given: Watermarker | None, key: bytes | None, method: str | None,
                 keys_dir: str | Path | None) -> Watermarker:
    """The pipeline's watermarker: the one given, or ``method`` keyed with the deployment key."""
    if given is not None:
        if key is not None or method is not None:
            raise ConfigurationError(
                "pass either watermarker= or watermark_key=/watermark_method=, not both")
        if not (isinstance(getattr(given, "name", None), str) and callable(
                getattr(given, "embed", None))):
            raise ConfigurationError("watermarker must have a name and an embed(video, payload)")
        return given
    from vidgen.provenance.watermark import available_methods, watermarker

    name = method or configured_watermark_method()
    methods = available_methods()
    if name not in methods:
        raise WatermarkError(
            f"watermarking method {name!r} is not available in this installation "
            f"(available: {', '.join(methods) or 'none'}). Every output must carry a "
            "watermark, so the pipeline refuses to run without one: install or choose an "
            "available method (watermark_method=, $VIDGEN_WATERMARK_METHOD) or pass "
            "watermarker=", stage="watermark")
    resolved_key = key if key is not None else default_watermark_key(keys_dir)
    try:
        return watermarker(resolved_key, name)
    except ConfigurationError as exc:
        raise WatermarkError(f"cannot set up watermarking method {name!r}: {exc.message}",
                             stage="watermark") from exc


# --- input normalisation ---------------------------------------------------------------


def _output_path(output: str | Path | None, seed: int) -> Path:
    if output is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        output = Path.cwd() / f"vidgen-{stamp}-seed{seed}.mp4"
    path = Path(output).expanduser()
    if path.suffix.lower() not in {".mp4", ".m4v"}:
        raise ConfigurationError(f"output must be an .mp4 file, got {path.name!r}")
    if path.is_dir():
        raise ConfigurationError(f"output {path} is a directory")
    if not path.parent.is_dir():
        raise ConfigurationError(f"output directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {path.parent} is not writable (read-only "
                          "directory or file system); nothing was generated")
    # The directory is resolved (symlinks, ".."), the name is not: an output that is a
    # symlink is replaced by the new file, never written through.
    return path.parent.resolve() / path.name


def _image(image: ImageInput) -> tuple[Frames, Path | None]:
    if isinstance(image, str | Path):
        from vidgen.video_io import read_image

        return read_image(image), Path(image)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ConfigurationError(
            f"image must be uint8 (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr, None


def _video(video: VideoInput) -> tuple[Video, Path | None]:
    if isinstance(video, Video):
        return video, None
    if isinstance(video, str | Path):
        return Video.read(video), Path(video)
    raise ConfigurationError(f"video must be a Video or a path, got {type(video).__name__}")


def _mask(mask: MaskInput, shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """A boolean (T, H, W) mask; a (H, W) mask applies to every frame."""
    arr = np.asarray(mask)
    if arr.ndim == 2:
        arr = np.broadcast_to(arr, (shape[0], *arr.shape))
    if arr.shape != tuple(shape):
        raise ConfigurationError(f"mask shape {arr.shape} does not match the input {tuple(shape)}")
    return arr.astype(bool)


def _input_sizes(task: Task, inputs: Inputs) -> dict[str, Any]:
    """The sizes an input fixes unless the caller gives them: its frame size, and its frame
    count for the tasks that keep it (edit, inpaint, stylize)."""
    if inputs.video is not None:
        sizes: dict[str, Any] = {"height": inputs.video.height, "width": inputs.video.width}
        if task in (Task.EDIT, Task.INPAINT, Task.STYLIZE):
            sizes["num_frames"] = inputs.video.num_frames
        return sizes
    if inputs.image is not None:
        return {"height": int(inputs.image.shape[0]), "width": int(inputs.image.shape[1])}
    return {}


def _ingredients(inputs: Inputs) -> tuple[Ingredient, ...]:
    """Inputs become C2PA ingredients; files keep their own manifests."""
    out: list[Ingredient] = []
    if inputs.image is not None:
        if inputs.image_source is not None:
            out.append(Ingredient(title=inputs.image_source.name,
                                  mime=_mime(inputs.image_source), relationship="inputTo",
                                  path=inputs.image_source))
        else:
            from vidgen.video_io import encode_png

            out.append(Ingredient(title="input image", mime="image/png",
                                  relationship="inputTo", data=encode_png(inputs.image)))
    if inputs.video is not None:
        if inputs.video_source is not None:
            out.append(Ingredient(title=inputs.video_source.name,
                                  mime=_mime(inputs.video_source), relationship="parentOf",
                                  path=inputs.video_source))
        else:
            from vidgen.video_io import encode_video_bytes

            out.append(Ingredient(title="input video", mime="video/mp4",
                                  relationship="parentOf",
                                  data=encode_video_bytes(inputs.video)))
    return tuple(out)


_MIMES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
          ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
          ".webp": "image/webp"}


def _mime(path: Path) -> str:
    mime = _MIMES.get(path.suffix.lower())
    if mime is None:
        raise ConfigurationError(
            f"{path.name}: unsupported input type for C2PA ingredients "
            f"(supported: {', '.join(sorted(_MIMES))})")
    return mime
