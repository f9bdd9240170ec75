"""Building a ready diffusers pipeline: import, load from local files, set up, place on a device.

diffusers is imported here and only here, inside functions, so importing vidgen
(or listing backends) never pays for it. Loading always passes
``local_files_only=True``; ``vidgen.backends.diffusers.weights`` has already
found the directory.

Set-up runs once per loaded weights (LoRA, attention backend, compile, VAE
tiling/slicing: they act on the shared modules); placement (device or offload)
runs for each pipeline object, since a task that needs another pipeline class
over the same weights gets one built from the same modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path
from typing import Any

import torch

from vidgen.backends.diffusers import compat
from vidgen.backends.diffusers.families import Family
from vidgen.backends.diffusers.options import TORCH_DTYPES, DiffusersOptions
from vidgen.backends.diffusers.weights import LocalWeights
from vidgen.errors import BackendError, ConfigurationError, VidgenError

INSTALL_HINT = "pip install 'vidgen[diffusers]'"
MEMORY_HINT = ("try offload='model' (or 'sequential'/'group'), vae_tiling=True, "
               "vae_slicing=True, fewer frames or a smaller size")


def import_diffusers() -> Any:
    """The diffusers module, or a ConfigurationError that says how to install it."""
    try:
        import diffusers
        import transformers  # noqa: F401  (the pipelines' text and image encoders)
    except ImportError as exc:
        raise ConfigurationError(
            f"the diffusers backends need diffusers and transformers ({exc.name} is not "
            f"installed): {INSTALL_HINT}") from exc
    return diffusers


def attention_backends() -> tuple[str, ...]:
    """Attention backends this diffusers offers that run without downloading kernels."""
    import_diffusers()
    from diffusers.models.attention_dispatch import AttentionBackendName

    return tuple(sorted(b.value for b in AttentionBackendName if not b.value.endswith("_hub")))


def diffusers_class(name: str) -> Any:
    """The diffusers class (pipeline, model, scheduler) called ``name``."""
    diffusers = import_diffusers()
    cls = getattr(diffusers, name, None)
    if cls is None:
        raise ConfigurationError(f"this diffusers ({diffusers.__version__}) has no {name}; "
                                 f"{INSTALL_HINT} (0.42 or later)")
    return cls


def load(weights: LocalWeights, family: Family, class_name: str, options: DiffusersOptions,
         dtype: str, adapter: LocalWeights | None = None) -> Any:
    """Load ``class_name`` from ``weights`` (local files only), set it up and place it."""
    cls = diffusers_class(class_name)
    torch_dtype = TORCH_DTYPES[dtype]
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "local_files_only": True}
    try:
        if dtype != "fp32":
            kwargs.update(_fp32_components(weights, family))
        if weights.class_name in family.needs_adapter:
            kwargs["motion_adapter"] = _motion_adapter(adapter, torch_dtype)
        pipe = cls.from_pretrained(str(weights.path), **kwargs)
    except VidgenError:
        raise
    except torch.OutOfMemoryError as exc:
        raise BackendError(f"out of memory loading {family.label} from {weights.path}: "
                           f"{MEMORY_HINT}") from exc
    except Exception as exc:
        hint = "" if importlib.util.find_spec("accelerate") else (
            f" (diffusers loads some models, Wan's among them, only with accelerate: "
            f"{INSTALL_HINT})")
        raise ConfigurationError(
            f"cannot load {family.label} ({class_name}) from {weights.path}: "
            f"{type(exc).__name__}: {exc}{hint}") from exc
    if weights.class_name in family.needs_adapter:
        # The AnimateDiff recipe: DDIM with linear betas over the SD 1.5 base's scheduler
        pipe.scheduler = diffusers_class("DDIMScheduler").from_config(
            pipe.scheduler.config, clip_sample=False, timestep_spacing="linspace",
            beta_schedule="linear", steps_offset=1)
    set_up(pipe, options, family)
    place(pipe, options)
    return pipe


def _fp32_components(weights: LocalWeights, family: Family) -> dict[str, Any]:
    """The family's float32 components, loaded ahead so from_pretrained keeps them fp32."""
    out: dict[str, Any] = {}
    for name in family.fp32_components:
        entry = weights.config.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and all(entry)):
            continue  # not in these weights (e.g. no image encoder for text-to-video)
        library, class_name = entry
        component = getattr(importlib.import_module(library), class_name)
        out[name] = component.from_pretrained(str(weights.path / name), local_files_only=True,
                                              dtype=torch.float32)
    return out


def _motion_adapter(adapter: LocalWeights | None, torch_dtype: torch.dtype) -> Any:
    if adapter is None:  # DiffusersBackend says where it looked before it gets here
        raise ConfigurationError("AnimateDiff on a Stable Diffusion base needs motion_adapter=")
    return diffusers_class("MotionAdapter").from_pretrained(
        str(adapter.path), dtype=torch_dtype, local_files_only=True)


def denoisers(pipe: Any) -> list[Any]:
    """The pipeline's transformer(s) or UNet: what attention backends and compile act on."""
    return [m for name in ("transformer", "transformer_2", "unet")
            if (m := getattr(pipe, name, None)) is not None]


def set_up(pipe: Any, options: DiffusersOptions, family: Family) -> None:
    """Module-level settings, once per loaded weights: LoRA, attention, compile, VAE."""
    if options.lora is not None:
        _load_lora(pipe, Path(options.lora).expanduser(), options.lora_scale, family)
    if options.attention is not None:
        for module in denoisers(pipe):
            if not hasattr(module, "set_attention_backend"):
                raise ConfigurationError(
                    f"{family.label}'s {type(module).__name__} cannot switch attention backend "
                    "in this diffusers; leave attention unset")
            try:
                module.set_attention_backend(options.attention)
            except Exception as exc:
                raise ConfigurationError(
                    f"attention={options.attention!r} is not usable here: {exc}") from exc
    if options.compile:
        for module in denoisers(pipe):
            module.compile()
    vae = getattr(pipe, "vae", None)
    for option, wanted, method in (("vae_tiling", options.vae_tiling, "enable_tiling"),
                                   ("vae_slicing", options.vae_slicing, "enable_slicing")):
        if wanted:
            try:
                getattr(vae, method)()
            except (AttributeError, NotImplementedError):
                raise ConfigurationError(f"{family.label}'s VAE ({type(vae).__name__}) has no "
                                         f"{method}(); leave {option} off") from None


def _load_lora(pipe: Any, path: Path, scale: float, family: Family) -> None:
    if not hasattr(pipe, "load_lora_weights"):
        raise ConfigurationError(f"diffusers has no LoRA loader for {family.label} "
                                 f"({type(pipe).__name__}); leave lora unset")
    try:
        pipe.load_lora_weights(str(path), adapter_name="vidgen")
        pipe.set_adapters(["vidgen"], adapter_weights=[scale])
    except Exception as exc:
        hint = " (LoRA needs peft: pip install peft)" if "peft" in str(exc).lower() else ""
        raise ConfigurationError(f"cannot apply LoRA {path}{hint}: {exc}") from exc


def place(pipe: Any, options: DiffusersOptions, *, derived: bool = False) -> None:
    """Put ``pipe`` on its device, or set up offloading; quiet diffusers' own progress bars.

    A pipeline ``derived`` from a placed one shares its modules: sequential and group
    offload hooks live on those modules and carry over; model offload keeps a
    per-pipeline hook chain, so it is set up again.
    """
    compat.apply(pipe)
    pipe.set_progress_bar_config(disable=True)
    device = options.resolved_device()
    try:
        if options.offload == "none":
            pipe.to(device)
        elif options.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif derived:
            pass
        elif options.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            if not hasattr(pipe, "enable_group_offload"):
                raise ConfigurationError("this diffusers has no group offload; use "
                                         "offload='model' or 'sequential'")
            pipe.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                      offload_type="leaf_level", use_stream=True)
    except ImportError as exc:
        raise ConfigurationError(f"offload={options.offload!r} needs accelerate: "
                                 f"{INSTALL_HINT}") from exc


def derive(pipe: Any, class_name: str, options: DiffusersOptions) -> Any:
    """A ``class_name`` pipeline over the same modules as ``pipe`` (no reload, no copy)."""
    cls = diffusers_class(class_name)
    accepted = inspect.signature(cls.__init__).parameters
    new = cls(**{k: v for k, v in pipe.components.items() if k in accepted})
    place(new, options, derived=True)
    return new

