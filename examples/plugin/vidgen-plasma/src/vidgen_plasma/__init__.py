"""vidgen-plasma: an example third-party backend for vidgen.

``PlasmaBackend`` draws animated sine plasma. It is procedural (no weights), so
it shows the plugin contract without a model in the way:

* ``name`` and ``capabilities()``: what it can do; the pipeline refuses
  anything else before ``sample`` runs.
* ``sample(request, progress)``: frames only. Deterministic per seed, reports
  progress after every frame, and stops as soon as ``progress`` raises.
* No files, no keys: the vidgen pipeline does the safety checks, watermark,
  C2PA signing and the file write around it.

It registers itself through the ``vidgen.backends`` entry point in this
package's ``pyproject.toml``, so after ``pip install`` it is simply
``vidgen.Pipeline.from_backend("plasma")`` or ``vidgen generate --backend plasma``.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt

from vidgen.backends import Capabilities, ProgressCallback
from vidgen.errors import ConfigurationError
from vidgen.types import Frames, GenerationRequest, Task, Video

__version__ = "0.1.0"

__all__ = ["PlasmaBackend", "__version__"]

_TASKS = frozenset({Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO, Task.LOOP})


class PlasmaBackend:
    """Animated plasma: text-to-video, image-to-video (the image melts into plasma) and
    seamless loops.

    ``scale`` is the spatial frequency of the waves, ``speed`` how fast they move
    (radians per frame on the slowest wave).
    """

    name = "plasma"

    def __init__(self, *, scale: float = 10.0, speed: float = 0.35) -> None:
        for label, value in (("scale", scale), ("speed", speed)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value) and value > 0):
                raise ConfigurationError(f"plasma: {label} must be a positive number, "
                                         f"got {value!r}")
        self.scale = float(scale)
        self.speed = float(speed)

    def capabilities(self) -> Capabilities:
        # model_version changes whenever the output for the same request would change:
        # it is recorded in every output's C2PA manifest.
        return Capabilities(
            tasks=_TASKS, min_frames=1, max_frames=240, max_height=1024, max_width=1024,
            default_frames=24, default_height=96, default_width=96, default_fps=12.0,
            size_multiple=2, device="cpu", model_id="vidgen-plasma/plasma",
            model_version=f"{__version__}+s{self.scale:g}v{self.speed:g}", deterministic=True)

    def sample(self, request: GenerationRequest,
               progress: ProgressCallback | None = None) -> Video:
        """Render the clip; ``progress(done, total)`` after each frame (raise to cancel)."""
        caps = self.capabilities()
        caps.check(request, self.name)  # direct callers get the pipeline's refusal too
        t = request.num_frames if request.num_frames is not None else caps.default_frames
        h = request.height if request.height is not None else caps.default_height
        w = request.width if request.width is not None else caps.default_width
        fps = request.fps if request.fps is not None else caps.default_fps
        image = None
        if request.task == Task.IMAGE_TO_VIDEO:
            if request.inputs.image is None:
                raise ConfigurationError("image_to_video needs an input image")
            image = _resize(request.inputs.image, h, w).astype(np.float64)

        # Everything random comes from this generator: the seed and the prompt decide the
        # clip (hashlib, not hash(): the same in every process).
        digest = hashlib.sha256(request.prompt.encode("utf-8")).digest()
        rng = np.random.default_rng([request.seed, int.from_bytes(digest[:8], "big")])
        colour_phase = rng.uniform(0.0, 2.0 * np.pi, size=3)
        wave_phase = rng.uniform(0.0, 2.0 * np.pi, size=3)
        angle = rng.uniform(0.0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        diag = np.cos(angle) * xx + np.sin(angle) * yy

        frames = np.empty((t, h, w, 3), np.uint8)
        for i in range(t):
            if request.task == Task.LOOP:  # whole periods: frame t would equal frame 0
                tau = 2.0 * np.pi * i / t
                times = (tau, 2.0 * tau, 3.0 * tau)
            else:
                times = (self.speed * i, self.speed * i / 1.7, self.speed * i / 2.3)
            v = (np.sin(self.scale * xx + times[0] + wave_phase[0])
                 + np.sin(self.scale * yy + times[1] + wave_phase[1])
                 + np.sin(self.scale * diag + times[2] + wave_phase[2]))
            plasma = 127.5 * (1.0 + np.sin(v[..., None] + colour_phase))
            if image is not None:  # frame 0 is the image; it melts into the plasma
                a = i / max(t - 1, 1)
                plasma = (1.0 - a) * image + a * plasma
            frames[i] = np.clip(np.rint(plasma), 0, 255).astype(np.uint8)
            if progress is not None:
                progress(i + 1, t)  # an exception here propagates: that is cancellation
        return Video(frames, fps=fps)


def _resize(image: Frames, height: int, width: int) -> npt.NDArray[np.uint8]:
    """Nearest-neighbour resize of an (H, W, 3) uint8 image."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ConfigurationError(f"the input image must be uint8 (H, W, 3), got "
                                 f"{image.dtype} {image.shape}")
    rows = (np.arange(height) * image.shape[0]) // height
    cols = (np.arange(width) * image.shape[1]) // width
    out: npt.NDArray[np.uint8] = image[rows][:, cols]
    return out
