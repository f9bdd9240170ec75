"""Train a native latent-diffusion backend on scene clips: resumable, in wall-clock chunks.

The recipe (``TrainConfig``) renders a cache of training clips once, encodes
them with the video autoencoder, and then trains the text encoder + denoiser on
the latents with the simplified diffusion loss. Everything a run needs to go
on is in its directory:

    run/config.json         the recipe (a resumed run must match it)
    run/latents.pt          the encoded training cache (captions + latents)
    run/last.safetensors    model weights; run/ema.safetensors the EMA weights
    run/state.pt            optimizer, step, RNG states
    run/log.jsonl           one JSON line per logging interval

``vidgen train --max-minutes M`` stops cleanly after a time budget, so a CPU
run can span several sessions; rerunning the same command resumes. ``export`` writes the
EMA weights (fp16) as the file a backend ships.

A LoRA run (``lora_rank > 0``, ``vidgen train --lora RANK --init BASE``) freezes the
``init`` weights and trains only LoRA adapters on them (``vidgen.backends.lora``); its
run directory keeps ``lora_last.safetensors`` and ``lora_ema.safetensors`` instead of
full weights, and ``export`` writes the EMA adapters as a LoRA file for that base.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import torch

from vidgen.backends.latent import (
    ModelSpec,
    TextConditionedDenoiser,
    load_checkpoint,
    save_checkpoint,
    with_frame_condition,
)
from vidgen.backends.lora import (
    DEFAULT_TARGETS,
    BaseModel,
    LoRAConfig,
    file_digest,
    freeze_all_but_lora,
    inject_lora,
    load_lora_state,
    lora_file,
    read_lora,
    write_lora,
)
from vidgen.backends.text_encoder import CaptionEncoderConfig
from vidgen.diffusion import add_noise, diffusion_loss, get_schedule, sample_training_t, target
from vidgen.diffusion.targets import Prediction, TimeSampling, check_prediction
from vidgen.errors import ConfigurationError
from vidgen.paths import weights_dir
from vidgen.training.data import SceneDataset

Log = Callable[[dict[str, Any]], None]


@attrs.frozen
class TrainConfig:
    """A training recipe. Changing it for an existing run directory is refused."""

    architecture: str = "dit"
    preset: str = "tiny"
    overrides: dict[str, Any] = attrs.field(factory=dict)
    text_width: int = 128
    text_depth: int = 2
    autoencoder: str = "vae-tiny.safetensors"  # in vidgen/weights, or a path
    schedule: str = "flow"
    prediction: Prediction = "flow"
    time_sampling: TimeSampling = "logit_normal"
    steps: int = 20_000
    batch_size: int = 16
    lr: float = 3e-4
    warmup: int = 250
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    caption_dropout: float = 0.1  # empty caption, so classifier-free guidance works
    num_frames: int = 16
    height: int = 64
    width: int = 64
    cache_clips: int = 4096
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25
    init: str = ""  # start a fresh run from these weights (fine-tuning), else from scratch
    conditioning: str = "none"  # "frames": masked frame conditioning (keyframe interpolation)
    frame_stride: int = 1  # train on every k-th latent frame (2: a keyframe model)
    lora_rank: int = 0  # > 0: train only LoRA adapters of this rank on the frozen init weights
    lora_alpha: float = 0.0  # the adapters' update is scaled by alpha / rank (0: alpha = rank)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.lora_rank, bool) or not isinstance(self.lora_rank, int) \
                or self.lora_rank < 0:
            raise ConfigurationError(f"lora_rank must be an integer >= 0, got {self.lora_rank!r}")
        if self.lora_rank and not self.init:
            raise ConfigurationError("a LoRA run needs init weights (--init): the base it adapts")

    def lora_config(self) -> LoRAConfig:
        """The adapters of a LoRA run (the architecture's default targets)."""
        if self.architecture not in DEFAULT_TARGETS:
            raise ConfigurationError(f"no LoRA targets for the {self.architecture!r} "
                                     "architecture")
        return LoRAConfig(rank=self.lora_rank, alpha=self.lora_alpha or self.lora_rank,
                          targets=DEFAULT_TARGETS[self.architecture])

    def spec(self, latent_channels: int) -> ModelSpec:
        return ModelSpec(
            architecture=self.architecture, preset=self.preset, schedule=self.schedule,
            prediction=self.prediction, latent_channels=latent_channels,
            text=CaptionEncoderConfig(width=self.text_width, depth=self.text_depth),
            autoencoder=Path(self.autoencoder).name, overrides=dict(self.overrides),
            conditioning=self.conditioning, frame_stride=self.frame_stride)


def resolve_weights(name: str) -> Path:
    """A weights file: an existing path, else a file shipped in ``vidgen/weights``."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = weights_dir() / name
    if shipped.is_file():
        return shipped
    raise ConfigurationError(f"weights {name!r} not found (looked at {path} and {shipped})")


# --- the latent cache -----------------------------------------------------------------------


def _render_chunk(job: tuple[int, int, int, int, int, int]) -> tuple[list[str], np.ndarray]:
    """Render training items [first, last) (a worker process's share of the cache)."""
    frames, height, width, seed, first, last = job
    data = SceneDataset("train", num_frames=frames, height=height, width=width, seed=seed)
    items = [data.item(i) for i in range(first, last)]
    return [c for c, _ in items], np.stack([clip for _, clip in items])  # (n, T, H, W, 3)


@torch.no_grad()
def build_latent_cache(config: TrainConfig, path: Path, log: Log, *, device: str = "cpu",
                       workers: int = 0) -> dict[str, Any]:
    """Render ``cache_clips`` training clips and encode them (once per run directory).

    Items are addressed by index, so the cache is the same for any number of
    render ``workers`` (forked processes, as DataLoader workers are: rendering is numpy)
    and the autoencoder runs on ``device``.
    """
    from vidgen.training.autoencoder import load_autoencoder

    vae = load_autoencoder(resolve_weights(config.autoencoder)).eval().to(device)
    chunk = 256 if workers else 32
    jobs = [(config.num_frames, config.height, config.width, config.seed, first,
             min(first + chunk, config.cache_clips))
            for first in range(0, config.cache_clips, chunk)]
    captions: list[str] = []
    latents: list[torch.Tensor] = []
    start = time.monotonic()
    pool = multiprocessing.get_context("fork").Pool(workers) if workers else None
    try:
        rendered = pool.imap(_render_chunk, jobs) if pool is not None else map(_render_chunk, jobs)
        for names, clips in rendered:
            x = torch.from_numpy(clips).to(device).permute(0, 4, 1, 2, 3)  # (b, 3, T, H, W) uint8
            for part in torch.split(x, 32 if device == "cpu" else 256):
                z = vae.encode_latents(part.float() / 127.5 - 1.0)  # (b, C, T', H', W')
                latents.append(z.half().cpu())
            captions += names
            every = max(chunk, config.cache_clips // 10)  # about ten progress lines
            if len(captions) % every < len(names) or len(captions) == config.cache_clips:
                log({"event": "cache", "clips": len(captions), "of": config.cache_clips,
                     "seconds": round(time.monotonic() - start, 1)})
    finally:
        if pool is not None:
            pool.terminate()
    cache = {"captions": captions, "latents": torch.cat(latents)}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(cache, tmp)
    tmp.replace(path)
    return cache


# --- the loop -------------------------------------------------------------------------------


def sample_frame_masks(batch: int, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Which latent frames a conditioned model is shown, per sample: (B, 1, T, 1, 1), 1 = known.

    A quarter each: none (text-to-video), the first (image-to-video), a prefix
    (extension), every other frame (keyframe interpolation: the cascade's case).
    """
    kind = torch.randint(4, (batch,), generator=generator)
    prefix = torch.randint(1, max(2, frames), (batch,), generator=generator)
    position = torch.arange(frames)
    masks = torch.stack([
        torch.zeros(batch, frames),
        (position == 0).float().expand(batch, frames),
        (position[None] < prefix[:, None]).float(),
        (position % 2 == 0).float().expand(batch, frames),
    ])  # (4, B, T)
    chosen = masks[kind, torch.arange(batch)]  # (B, T)
    return chosen[:, None, :, None, None]


def _widen_inputs(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
                  ) -> dict[str, torch.Tensor]:
    """``source`` weights for ``target``'s shapes: a layer that now reads extra input
    channels (the conditioning) keeps its old weights and gets zeros for the new ones,
    so the widened model starts as exactly the old one."""
    out = {}
    for key, value in source.items():
        want = target[key].shape
        if value.shape != want and value.ndim >= 2 and value.shape[0] == want[0] \
                and value.shape[2:] == want[2:] and value.shape[1] < want[1]:
            widened = torch.zeros(want, dtype=value.dtype)
            widened[:, :value.shape[1]] = value
            value = widened
        out[key] = value
    return out


def _lr(config: TrainConfig, step: int) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """EMA of the trained parameters (all of them, or a LoRA run's adapters)."""
    pairs = [(e, p) for e, p in zip(ema.parameters(), model.parameters(), strict=True)
             if p.requires_grad]
    torch._foreach_lerp_([e for e, _ in pairs], [p for _, p in pairs], 1.0 - decay)


def _check_config(run: Path, config: TrainConfig) -> None:
    saved = run / "config.json"
    mine = attrs.asdict(config)
    if saved.exists():
        theirs = json.loads(saved.read_text())
        defaults = {f.name: f.default for f in attrs.fields(TrainConfig)}
        changed = {k for k in mine
                   if k != "steps" and theirs.get(k, defaults[k]) != mine[k]}
        if changed:
            raise ConfigurationError(
                f"{run} holds a run with a different recipe ({', '.join(sorted(changed))}); "
                "use a new directory")
    saved.write_text(json.dumps(mine, indent=1, sort_keys=True))


@attrs.frozen
class Hardware:
    """How a run executes, not what it learns (so it may change between resumed chunks).

    ``precision="bf16"`` autocasts the forward pass (CUDA); ``compile`` wraps the
    denoiser in ``torch.compile``; ``workers`` render the latent cache in
    parallel; ``fit_to_time`` (with ``max_minutes``) times the first steps and
    then sets the step horizon, and so the learning-rate decay, to end at the
    deadline — the way to use a fixed GPU lease fully.
    """

    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False
    workers: int = 0
    fit_to_time: bool = False

    def __attrs_post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ConfigurationError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigurationError(f"device {self.device!r} asked for, but torch sees no GPU")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def train(config: TrainConfig, run: str | Path, *, max_minutes: float | None = None,
          threads: int | None = None, device: str = "cpu", hardware: Hardware | None = None,
          cache_only: bool = False, log: Log | None = None) -> int:
    """Train (or resume) the run in ``run`` up to ``config.steps``; returns the step reached.

    ``cache_only`` builds the run's latent cache and returns 0 (so several runs
    with the same data recipe can share one cache file).
    """
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    check_prediction(config.prediction)
    hardware = hardware if hardware is not None else Hardware(device=device)
    if hardware.fit_to_time and max_minutes is None:
        raise ConfigurationError("fit_to_time needs max_minutes (the deadline to fit)")
    if threads is not None:
        torch.set_num_threads(threads)
    with (run / "log.jsonl").open("a") as log_file:

        def emit(record: dict[str, Any]) -> None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            if log is not None:
                log(record)

        # Denormals made AdamW steps several times slower on CPU; the flag is process-wide
        # CPU state (it breaks float edge cases elsewhere), so it is reset afterwards.
        torch.set_flush_denormal(True)
        try:
            return _train(config, run, max_minutes, hardware, emit, cache_only)
        finally:
            torch.set_flush_denormal(False)


def _load_cache(config: TrainConfig, run: Path, hardware: Hardware, emit: Log) -> dict[str, Any]:
    cache_path = run / "latents.pt"
    if cache_path.exists():
        cache: dict[str, Any] = torch.load(cache_path, weights_only=True)
        return cache
    return build_latent_cache(config, cache_path, emit, device=hardware.device,
                              workers=hardware.workers)


def _train(config: TrainConfig, run: Path, max_minutes: float | None, hardware: Hardware,
           emit: Log, cache_only: bool) -> int:
    start_time = time.monotonic()
    deadline = None if max_minutes is None else start_time + 60 * max_minutes
    device = hardware.device
    schedule = get_schedule(config.schedule)
    _check_config(run, config)
    cache = _load_cache(config, run, hardware, emit)
    if cache_only:
        return 0
    latents: torch.Tensor = cache["latents"].to(device)  # (N, C, T', H', W') fp16
    spec = config.spec(latents.shape[1])

    torch.manual_seed(config.seed)
    model = TextConditionedDenoiser(spec).to(device)
    ema = TextConditionedDenoiser(spec).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    base = _start_lora(config, spec, model, ema) if config.lora_rank else None
    # The whole cache is tokenized once, padded to one length: fixed shapes for compile.
    ids, mask = model.text_encoder.tokenizer([*cache["captions"], ""])  # (N+1, L)
    ids, mask = ids.to(device), mask.to(device)
    empty_ids, empty_mask = ids[-1], mask[-1]
    cuda = device.startswith("cuda")
    trained = [p for p in model.parameters() if p.requires_grad]  # a LoRA run: the adapters
    optimizer = torch.optim.AdamW(trained, lr=config.lr,
                                  weight_decay=config.weight_decay, betas=(0.9, 0.99),
                                  fused=cuda or None)
    step = 0
    generator = torch.Generator().manual_seed(config.seed)
    # On a GPU the noise is drawn there (a batch of CPU normals costs more than the step).
    noise = torch.Generator(device).manual_seed(config.seed + 1) if cuda else generator
    if (run / "state.pt").exists():
        if base is not None:
            load_lora_state(model, read_lora(run / "lora_last.safetensors").state)
            load_lora_state(ema, read_lora(run / "lora_ema.safetensors").state)
        else:
            model.load_state_dict(load_checkpoint(run / "last.safetensors")[0].state_dict())
            ema.load_state_dict(load_checkpoint(run / "ema.safetensors")[0].state_dict())
        state = torch.load(run / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        generator.set_state(state["generator"])
        if cuda and "noise" in state:
            noise.set_state(state["noise"])
        emit({"event": "resume", "step": step})
    elif config.init and base is None:
        start, _ = load_checkpoint(resolve_weights(config.init))
        # Another autoencoder, frame rate or conditioning is allowed: fine-tuning to them
        # is the point (a keyframe or interpolation model starts from a text-to-video one).
        if attrs.evolve(start.spec, autoencoder=spec.autoencoder, conditioning=spec.conditioning,
                        frame_stride=spec.frame_stride) != spec:
            raise ConfigurationError(f"{config.init} holds another model ({start.spec}); "
                                     f"cannot start {spec} from it")
        state = _widen_inputs(start.state_dict(), model.state_dict())
        model.load_state_dict(state)
        ema.load_state_dict(state)
        emit({"event": "init", "weights": config.init})
    model.train()
    denoiser: Callable[..., torch.Tensor] = model.denoiser
    if hardware.compile:
        denoiser = torch.compile(model.denoiser)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    emit({"event": "start", "step": step, "device": device, "precision": hardware.precision,
          "compile": hardware.compile, "clips": len(latents),
          "parameters": sum(p.numel() for p in model.parameters()),
          "trained_parameters": sum(p.numel() for p in trained),
          "gpu": torch.cuda.get_device_name(device) if cuda else None})

    def checkpoint() -> None:
        if base is not None:
            lora = config.lora_config()
            write_lora(lora_file(model, lora, base), run / "lora_last.safetensors")
            write_lora(lora_file(ema, lora, base, {"step": str(step)}),
                       run / "lora_ema.safetensors")
        else:
            save_checkpoint(model, run / "last.safetensors")
            save_checkpoint(ema, run / "ema.safetensors", extra={"step": str(step)})
        tmp = run / "state.pt.tmp"
        torch.save({"optimizer": optimizer.state_dict(), "step": step,
                    "generator": generator.get_state(),
                    "noise": noise.get_state() if cuda else None}, tmp)
        tmp.replace(run / "state.pt")

    first_step = step
    calibrate_from, calibrate_at = first_step + 10, first_step + max(20, min(300, config.warmup))
    calibrate_time = time.monotonic()
    window_start, window_steps = time.monotonic(), 0
    window_loss = torch.zeros((), device=device)
    autocast = torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16,
                              enabled=hardware.precision == "bf16")
    prediction = config.prediction

    def forward_backward(denoiser: Callable[..., torch.Tensor], x_t: torch.Tensor,
                         t: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                         x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        with autocast:
            text = model.text_encoder.encode_ids(ids, mask)
            out = denoiser(x_t, t, text.tokens, text.mask, text.pooled)  # (B, C, T', H', W')
        loss = diffusion_loss(out.float(), target(prediction, x0, eps, t, schedule))
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    fitted = not hardware.fit_to_time
    while step < config.steps or not fitted:
        index = torch.randint(len(latents), (config.batch_size,), generator=generator)
        drop = torch.rand(config.batch_size, generator=generator) < config.caption_dropout
        t = sample_training_t(config.batch_size, generator, kind=config.time_sampling,
                              device=device)
        index, drop = index.to(device), drop.to(device)
        x0 = latents[index].float()[:, :, ::config.frame_stride]  # (B, C, T', H', W')
        eps = torch.randn(x0.shape, generator=noise, device=noise.device).to(device)
        batch_ids = torch.where(drop[:, None], empty_ids, ids[index])  # (B, L)
        batch_mask = torch.where(drop[:, None], empty_mask, mask[index])  # (B, L)
        x_t = add_noise(x0, eps, t, schedule)
        for group in optimizer.param_groups:
            group["lr"] = _lr(config, step)
        optimizer.zero_grad(set_to_none=True)

        if config.conditioning == "frames":
            known = sample_frame_masks(config.batch_size, x0.shape[2], generator).to(device)
            x_t = with_frame_condition(x_t, x0, known)  # (B, 2C+1, T', H', W')
        batch = (x_t, t, batch_ids, batch_mask, x0, eps)
        if step == first_step and denoiser is not model.denoiser:
            try:
                loss = forward_backward(denoiser, *batch)
            except Exception as exc:  # a compiler failure has many types; eager still works
                emit({"event": "compile_failed", "error": f"{type(exc).__name__}: {exc}"[:800]})
                optimizer.zero_grad(set_to_none=True)
                denoiser = model.denoiser
                loss = forward_backward(denoiser, *batch)
        else:
            loss = forward_backward(denoiser, *batch)
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        _ema_update(ema, model, config.ema_decay if step > config.warmup else 0.0)
        step += 1
        window_loss += loss.detach()
        window_steps += 1
        if step == calibrate_from:
            calibrate_time = time.monotonic()  # compile and warm-up are behind us
        if hardware.fit_to_time and deadline is not None and step == calibrate_at:
            rate = (calibrate_at - calibrate_from) / (time.monotonic() - calibrate_time)
            horizon = step + int(0.97 * rate * (deadline - time.monotonic()))
            config = attrs.evolve(config, steps=max(step + 1, horizon))
            _check_config(run, config)
            fitted = True
            emit({"event": "fit", "step": step, "steps_per_s": round(rate, 2),
                  "horizon": config.steps})
        if step % config.log_every == 0:
            elapsed = time.monotonic() - window_start
            emit({"event": "train", "step": step,
                  "loss": round(float(window_loss) / window_steps, 5),
                  "lr": _lr(config, step), "steps_per_s": round(window_steps / elapsed, 3)})
            window_start, window_steps = time.monotonic(), 0
            window_loss.zero_()
        if step % config.checkpoint_every == 0:
            checkpoint()
        if deadline is not None and time.monotonic() > deadline:
            break
    checkpoint()
    emit({"event": "stop", "step": step, "minutes": round((time.monotonic() - start_time) / 60, 2)})
    return step


def _start_lora(config: TrainConfig, spec: ModelSpec, model: TextConditionedDenoiser,
                ema: TextConditionedDenoiser) -> BaseModel:
    """A LoRA run's models: the ``init`` weights, frozen, with fresh adapters (the same in
    ``model`` and ``ema``); returns the base the adapters belong to."""
    path = resolve_weights(config.init)
    start, _ = load_checkpoint(path)
    if start.spec != spec:
        raise ConfigurationError(f"{config.init} holds {start.spec}; this LoRA recipe describes "
                                 f"{spec} (a LoRA run takes its base's recipe: lora_recipe())")
    model.load_state_dict(start.state_dict())
    for net in (model, ema):
        inject_lora(net, config.lora_config())
    freeze_all_but_lora(model)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    return BaseModel(digest=file_digest(path), architecture=spec.architecture,
                     preset=spec.preset, name=path.name)


def lora_recipe(init: str, rank: int, **fields: Any) -> TrainConfig:
    """A LoRA run's recipe on the weights ``init``: architecture, preset, overrides, text
    encoder, diffusion parametrisation and autoencoder come from its checkpoint; ``fields``
    set the rest (steps, lr, batch_size, lora_alpha, ...)."""
    path = resolve_weights(init)
    base = load_checkpoint(path)[0].spec
    beside = path.parent / base.autoencoder
    taken: dict[str, Any] = {
        "architecture": base.architecture, "preset": base.preset,
        "overrides": dict(base.overrides), "text_width": base.text.width,
        "text_depth": base.text.depth, "schedule": base.schedule,
        "prediction": base.prediction, "conditioning": base.conditioning,
        "frame_stride": base.frame_stride,
        "autoencoder": str(beside) if beside.is_file() else base.autoencoder}
    clash = sorted(k for k in taken if k in fields)
    if clash:
        raise ConfigurationError(f"a LoRA run takes {', '.join(clash)} from its base {init}")
    return TrainConfig(init=init, lora_rank=rank, **taken, **fields)


def export(run: str | Path, output: str | Path) -> Path:
    """The run's EMA weights as a shippable fp16 checkpoint (a LoRA run: its LoRA file)."""
    adapters = Path(run) / "lora_ema.safetensors"
    if adapters.is_file():
        lora = read_lora(adapters)
        return write_lora(attrs.evolve(lora, metadata={"step": lora.metadata.get("step", "?"),
                                                       "source": "vidgen train --lora"}),
                          output)
    model, metadata = load_checkpoint(Path(run) / "ema.safetensors")
    return save_checkpoint(model, output, half=True,
                           extra={"step": metadata.get("step", "?"), "source": "vidgen train"})


__all__ = ["Hardware", "TrainConfig", "build_latent_cache", "default_device", "export",
           "lora_recipe", "resolve_weights", "train"]
