"""``Pipeline``: one object an application keeps, one method per task, every output signed.

The pipeline owns the chain (``vidgen.stages``): safety checks, sampling,
watermark, encoding, C2PA signing and the atomic write. A backend only returns
frames. If any stage fails, no output file exists afterwards and the caller
gets the stage's typed error.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vidgen.backends.base import Backend, ProgressCallback, load_backend
from vidgen.errors import ConfigurationError
from vidgen.provenance.c2pa import Ingredient
from vidgen.provenance.keys import Signer, default_signer
from vidgen.stages import (
    CheckCapabilities,
    CheckPrompt,
    Commit,
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

DEFAULT_BACKEND = "scene"

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
        prompt_gates: Sequence[PromptGate] = (),
        likeness_scanners: Sequence[LikenessScanner] = (),
        watermarker: Watermarker | None = None,
        store: ManifestStore | None = None,
        include_prompt: bool = False,
        crf: int = 18,
        preset: str = "medium",
    ) -> None:
        """``signer`` defaults to ``VIDGEN_SIGN_CERT``/``VIDGEN_SIGN_KEY`` or dev keys.

        ``include_prompt`` writes the prompt itself into the manifest; by default
        only its SHA-256 is recorded.
        """
        self.backend = backend
        self.signer: Signer = signer if signer is not None else default_signer(keys_dir)
        self.prompt_gates = tuple(prompt_gates)
        self.likeness_scanners = tuple(likeness_scanners)
        self.watermarker = watermarker
        self.store = store
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

    def _task(self, task: Task, prompt: str, inputs: Inputs, output: str | Path | None,
              progress: ProgressCallback | None, params: dict[str, Any]) -> GenerationResult:
        fields = {k: params.pop(k) for k in ("num_frames", "height", "width", "fps", "seed",
                                             "negative_prompt", "strength", "num_steps",
                                             "guidance") if k in params}
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
            EmbedWatermark(self.watermarker),
            Encode(crf=self.crf, preset=self.preset),
            Sign(self.signer, include_prompt=self.include_prompt,
                 watermark_method=self.watermarker.name if self.watermarker else None),
            Commit(),
            Record(self.store),
        ]

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
    return path.absolute()


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
