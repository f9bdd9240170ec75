"""``DiffusersBackend``: a Hugging Face diffusers video pipeline as a vidgen backend.

The backend returns frames only; the vidgen ``Pipeline`` around it checks the
prompt and the likeness of inputs and outputs, watermarks, signs and records
every clip, as for any backend.

Weights come from a local directory or the local Hugging Face cache, found
when the backend is made (so its capabilities and version are known without
loading anything) and loaded at the first ``sample`` (or ``load()``). A task
whose pipeline class differs from the loaded one (edit after text-to-video)
gets that class built over the same modules, not a second copy of the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from vidgen.backends.base import Capabilities, ProgressCallback
from vidgen.backends.diffusers import calls, loading
from vidgen.backends.diffusers.families import (
    FAMILIES,
    Family,
    Profile,
    family_of_class,
    family_of_repo,
    get_family,
)
from vidgen.backends.diffusers.options import TORCH_DTYPES, DiffusersOptions, parse_options
from vidgen.backends.diffusers.weights import (
    LocalWeights,
    file_digest,
    is_repo_id,
    locate,
    missing_message,
)
from vidgen.backends.latent_tasks import Settings
from vidgen.errors import BackendError, ConfigurationError, UnsupportedTask, VidgenError
from vidgen.types import GenerationRequest, Task, Video

DEFAULT_FAMILY = "cogvideox"
MISSING = "missing"  # model_version while the weights are not on this machine


class DiffusersBackend:
    """A diffusers text/image/video-to-video pipeline behind the vidgen Backend protocol."""

    def __init__(self, model: str | Path | None = None, *, family: str | None = None,
                 name: str = "diffusers", **options: Any) -> None:
        """``model``: a local pipeline directory or a Hugging Face repo id in the local cache
        (default: the family's repo; CogVideoX-2b without a family). ``family``: one of
        ``FAMILIES``, inferred from model_index.json's ``_class_name`` (or a known repo id)
        when None. ``options``: see ``DiffusersOptions``."""
        opts = parse_options(options)
        chosen = get_family(family) if family is not None else None
        ref = str(model) if model is not None else (chosen or FAMILIES[DEFAULT_FAMILY]).repo
        weights = locate(ref)
        fam = chosen or _infer_family(ref, weights)
        class_name = weights.class_name if weights is not None else fam.class_for(ref)
        adapter = None
        self._adapter_ref = opts.motion_adapter or fam.motion_adapter or ""
        if class_name in fam.needs_adapter:
            adapter = locate(self._adapter_ref, marker="config.json")
        elif opts.motion_adapter is not None:
            raise ConfigurationError(
                f"motion_adapter applies to AnimateDiff on a Stable Diffusion base, not to "
                f"{fam.label} ({class_name})")
        model_id = weights.model_id if weights is not None else (
            ref if is_repo_id(ref) else Path(ref).expanduser().name)
        version = weights.version if weights is not None else MISSING
        if adapter is not None:
            version += f"+motion:{adapter.version}"
        self._ref = ref
        self._init(fam, class_name, fam.profile_for(ref if is_repo_id(ref) else None), opts,
                   model_id, version, name)
        self.weights: LocalWeights | None = weights
        self.adapter: LocalWeights | None = adapter

    @classmethod
    def from_pipeline(cls, pipe: Any, *, model_id: str, family: str | None = None,
                      model_version: str | None = None, name: str = "diffusers",
                      **options: Any) -> DiffusersBackend:
        """Wrap an already built diffusers pipeline (its weights are the caller's to name).

        ``model_version`` should identify the weights; by default it is a digest of the
        pipeline's component configs, which does not tell apart weights of one shape.
        """
        opts = parse_options(options)
        if opts.dtype != "auto":
            raise ConfigurationError("from_pipeline runs the pipeline in its own dtype; build "
                                     "it in the dtype you want instead of passing dtype=")
        class_name = type(pipe).__name__
        fam = get_family(family) if family is not None else family_of_class(class_name)
        if fam is None:
            raise ConfigurationError(f"{class_name} is not a pipeline of a known family; pass "
                                     f"family= one of {', '.join(FAMILIES)}")
        self = cls.__new__(cls)
        dtype = next((k for k, v in TORCH_DTYPES.items() if v == pipe.dtype), "fp32")
        self._init(fam, class_name, fam.profile, opts, model_id,
                   model_version or _config_digest(pipe), name, dtype=dtype)
        self.weights = self.adapter = None
        self._ref = self._adapter_ref = model_id
        loading.set_up(pipe, opts, fam)
        loading.place(pipe, opts)
        self._pipe = pipe
        return self

    def _init(self, family: Family, class_name: str, profile: Profile,
              options: DiffusersOptions, model_id: str, version: str, name: str,
              dtype: str | None = None) -> None:
        self.name = name
        self.family = family
        self.profile = profile
        self.options = options
        self.tasks: Mapping[Task, str] = family.tasks_for(class_name)
        self.model_id = model_id
        self.device = options.resolved_device()
        self.dtype = dtype or options.resolved_dtype(profile.dtype)
        if options.lora is not None:
            version += f"+lora:{file_digest(Path(options.lora).expanduser())}@{options.lora_scale}"
        self.model_version = version
        self._pipe: Any = None
        self._lock = threading.RLock()

    # --- Backend protocol --------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        p = self.profile
        return Capabilities(
            tasks=frozenset(self.tasks), min_frames=self.family.frame_rule.minimum,
            max_frames=p.max_frames, max_height=p.max_height, max_width=p.max_width,
            default_frames=p.frames, default_height=p.height, default_width=p.width,
            default_fps=p.fps, size_multiple=self.family.size_multiple, device=str(self.device),
            model_id=self.model_id, model_version=self.model_version,
            deterministic=self.device.type == "cpu", dtype=self.dtype)

    def sample(self, request: GenerationRequest, progress: ProgressCallback | None = None
               ) -> Video:
        self.capabilities().check(request, self.name)
        s = self._settings(request)
        with self._lock:
            pipe = self.load(request.task)
            extras = dict(self.options.call_kwargs)
            params = calls.parameters(pipe)
            calls.check_extras(extras, params, "call_kwargs",
                               allowed_inputs=frozenset({"prompt_template"}))
            calls.check_extras(request.options, params, "request option")
            kwargs = calls.build(pipe, request, s, {**extras, **request.options})
            strength = request.strength if request.task == Task.EDIT else None
            expected = max(1, int(s.steps * strength)) if strength else s.steps
            raised: list[BaseException] = []

            def report(done: int, total: int) -> None:
                assert progress is not None
                try:
                    progress(done, total)
                except BaseException as exc:  # the caller cancels: let it through unchanged
                    raised.append(exc)
                    raise

            try:
                with calls.progress_hooks(pipe, report if progress else None, expected) as hooks, \
                        _seeded(request.seed, self.device) as generator:
                    output = pipe(**kwargs, **hooks, generator=generator)
            except VidgenError:
                raise
            except torch.OutOfMemoryError as exc:
                raise BackendError(f"{self.family.label} ran out of memory: "
                                   f"{loading.MEMORY_HINT}") from exc
            except Exception as exc:
                if raised and exc is raised[-1]:
                    raise
                raise BackendError(f"{self.family.label} ({type(pipe).__name__}) failed: "
                                   f"{type(exc).__name__}: {_short(exc)}") from exc
        frames = calls.frames_of(output)
        if frames.shape[:3] != (s.frames, s.height, s.width):
            raise BackendError(f"{type(pipe).__name__} returned (T,H,W)={frames.shape[:3]}, "
                               f"expected {(s.frames, s.height, s.width)}")
        return Video(frames, fps=s.fps)

    # --- loading -----------------------------------------------------------------------------

    def load(self, task: Task | None = None) -> Any:
        """The ready diffusers pipeline for ``task`` (default: the first the weights serve);
        the weights are loaded on first use."""
        task = task if task is not None else next(iter(self.tasks))
        if task not in self.tasks:
            raise UnsupportedTask(f"{self.family.label} weights {self.model_id!r} do not serve "
                                  f"{task.value!r}")
        class_name = self.tasks[task]
        with self._lock:
            if self._pipe is None:
                self._pipe = self._load(class_name)
            elif type(self._pipe).__name__ != class_name:
                self._pipe = loading.derive(self._pipe, class_name, self.options)
            return self._pipe

    def _load(self, class_name: str) -> Any:
        fam = self.family
        if self.weights is None:
            raise ConfigurationError(missing_message(self._ref, fam.label, fam.components,
                                                     fam.repo))
        if self.weights.class_name in fam.needs_adapter and self.adapter is None:
            raise ConfigurationError(missing_message(
                self._adapter_ref, f"{fam.label} motion adapter", (), self._adapter_ref,
                marker="config.json"))
        return loading.load(self.weights, fam, class_name, self.options, self.dtype,
                            self.adapter)

    def _settings(self, request: GenerationRequest) -> Settings:
        p, rule = self.profile, self.family.frame_rule
        frames = request.num_frames or p.frames
        source = request.inputs.video
        if request.task == Task.EDIT and source is not None:
            if request.num_frames not in (None, source.num_frames):
                raise UnsupportedTask(f"edit keeps the input's {source.num_frames} frames; "
                                      f"{request.num_frames} requested")
            frames = source.num_frames
        if not rule.allows(frames, p.max_frames):
            near = rule.nearest(frames, p.max_frames)
            hint = f"; nearest: {' or '.join(map(str, near))}" if near else ""
            raise UnsupportedTask(
                f"{self.family.label} makes {rule.describe()} frames from {rule.minimum} to "
                f"{p.max_frames}; {frames} requested{hint}")
        return Settings(
            frames=frames, height=request.height or p.height, width=request.width or p.width,
            fps=request.fps or p.fps, steps=request.num_steps or self.options.steps or p.steps,
            guidance=next(g for g in (request.guidance, self.options.guidance, p.guidance)
                          if g is not None))


def _infer_family(ref: str, weights: LocalWeights | None) -> Family:
    if weights is not None:
        fam = family_of_class(weights.class_name)
        if fam is None:
            raise ConfigurationError(
                f"{weights.path} holds a {weights.class_name or 'unnamed'} pipeline, which is "
                f"not a video family vidgen serves; pass family= one of {', '.join(FAMILIES)}")
        return fam
    fam = family_of_repo(ref) if is_repo_id(ref) else None
    if fam is None:
        raise ConfigurationError(
            missing_message(ref, "diffusers", ("transformer or unet", "vae", "scheduler", "..."),
                            ref if is_repo_id(ref) else "ORG/NAME")
            + f"; or pass family= one of {', '.join(FAMILIES)} to list it without weights")
    return fam


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """A generator seeded with ``seed`` on ``device``, and the global RNG seeded too for the
    call (I2VGen-XL samples its image latents from it) and restored afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield torch.Generator(device=device).manual_seed(seed)


def _config_digest(pipe: Any) -> str:
    """A digest of the pipeline's and its components' configs (not of their weights)."""
    configs = {"pipeline": dict(pipe.config)}
    for key, component in pipe.components.items():
        config = getattr(component, "config", None)
        to_dict = getattr(config, "to_dict", None)
        configs[key] = to_dict() if callable(to_dict) else dict(config or {})
    blob = json.dumps(configs, sort_keys=True, default=str).encode()
    return "config:" + hashlib.sha256(blob).hexdigest()[:16]


def _short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
