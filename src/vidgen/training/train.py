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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from vidgen.backends.latent import (
    ModelSpec,
    TextConditionedDenoiser,
    load_checkpoint,
    save_checkpoint,
)
from vidgen.backends.text_encoder import CaptionEncoderConfig
from vidgen.diffusion import add_noise, diffusion_loss, get_schedule, sample_training_t, target
from vidgen.diffusion.targets import Prediction, TimeSampling, check_prediction
from vidgen.errors import ConfigurationError
from vidgen.paths import weights_dir
from vidgen.training.data import SceneDataset, clip_to_tensor

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

    def spec(self, latent_channels: int) -> ModelSpec:
        return ModelSpec(
            architecture=self.architecture, preset=self.preset, schedule=self.schedule,
            prediction=self.prediction, latent_channels=latent_channels,
            text=CaptionEncoderConfig(width=self.text_width, depth=self.text_depth),
            autoencoder=Path(self.autoencoder).name, overrides=dict(self.overrides))


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


@torch.no_grad()
def build_latent_cache(config: TrainConfig, path: Path, log: Log) -> dict[str, Any]:
    """Render ``cache_clips`` training clips and encode them (once per run directory)."""
    from vidgen.training.autoencoder import load_autoencoder

    vae = load_autoencoder(resolve_weights(config.autoencoder)).eval()
    data = SceneDataset("train", num_frames=config.num_frames, height=config.height,
                        width=config.width, seed=config.seed)
    captions: list[str] = []
    latents: list[torch.Tensor] = []
    start = time.monotonic()
    for first in range(0, config.cache_clips, 32):
        items = [data.item(i) for i in range(first, min(first + 32, config.cache_clips))]
        x = torch.stack([clip_to_tensor(clip) for _, clip in items])  # (b, 3, T, H, W)
        latents.append(vae.encode_latents(x).half())  # (b, C, T', H', W')
        captions += [c for c, _ in items]
        if first % 512 == 0:
            log({"event": "cache", "clips": len(captions), "of": config.cache_clips,
                 "seconds": round(time.monotonic() - start, 1)})
    cache = {"captions": captions, "latents": torch.cat(latents)}
    torch.save(cache, path)
    return cache


# --- the loop -------------------------------------------------------------------------------


def _lr(config: TrainConfig, step: int) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, 1.0 - decay)


def _check_config(run: Path, config: TrainConfig) -> None:
    saved = run / "config.json"
    mine = attrs.asdict(config)
    if saved.exists():
        theirs = json.loads(saved.read_text())
        changed = {k for k in mine if k != "steps" and theirs.get(k) != mine[k]}
        if changed:
            raise ConfigurationError(
                f"{run} holds a run with a different recipe ({', '.join(sorted(changed))}); "
                "use a new directory")
    saved.write_text(json.dumps(mine, indent=1, sort_keys=True))


def train(config: TrainConfig, run: str | Path, *, max_minutes: float | None = None,
          threads: int | None = None, device: str = "cpu", log: Log | None = None) -> int:
    """Train (or resume) the run in ``run`` up to ``config.steps``; returns the step reached."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    check_prediction(config.prediction)
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
            return _train(config, run, max_minutes, device, emit)
        finally:
            torch.set_flush_denormal(False)


def _train(config: TrainConfig, run: Path, max_minutes: float | None, device: str,
           emit: Log) -> int:
    schedule = get_schedule(config.schedule)
    _check_config(run, config)

    cache_path = run / "latents.pt"
    cache = (torch.load(cache_path, weights_only=True) if cache_path.exists()
             else build_latent_cache(config, cache_path, emit))
    latents: torch.Tensor = cache["latents"]
    captions: Sequence[str] = cache["captions"]
    spec = config.spec(latents.shape[1])

    torch.manual_seed(config.seed)
    model = TextConditionedDenoiser(spec).to(device)
    ema = TextConditionedDenoiser(spec).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay, betas=(0.9, 0.99))
    step = 0
    generator = torch.Generator().manual_seed(config.seed)
    if (run / "state.pt").exists():
        model.load_state_dict(load_checkpoint(run / "last.safetensors")[0].state_dict())
        ema.load_state_dict(load_checkpoint(run / "ema.safetensors")[0].state_dict())
        state = torch.load(run / "state.pt", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        generator.set_state(state["generator"])
        emit({"event": "resume", "step": step})
    model.train()

    def checkpoint() -> None:
        save_checkpoint(model, run / "last.safetensors")
        save_checkpoint(ema, run / "ema.safetensors", extra={"step": str(step)})
        tmp = run / "state.pt.tmp"
        torch.save({"optimizer": optimizer.state_dict(), "step": step,
                    "generator": generator.get_state()}, tmp)
        tmp.replace(run / "state.pt")

    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    window_start, window_loss, window_steps = time.monotonic(), 0.0, 0
    while step < config.steps:
        index = torch.randint(len(captions), (config.batch_size,), generator=generator)
        x0 = latents[index].float().to(device)  # (B, C, T', H', W')
        drop = torch.rand(config.batch_size, generator=generator) < config.caption_dropout
        batch_captions = ["" if d else captions[i] for i, d in zip(index.tolist(), drop.tolist(),
                                                                 strict=True)]
        t = sample_training_t(config.batch_size, generator, kind=config.time_sampling,
                              device=device)
        eps = torch.randn(x0.shape, generator=generator).to(device)
        x_t = add_noise(x0, eps, t, schedule)
        out = model(x_t, t, batch_captions)
        loss = diffusion_loss(out, target(config.prediction, x0, eps, t, schedule))
        for group in optimizer.param_groups:
            group["lr"] = _lr(config, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        _ema_update(ema, model, config.ema_decay if step > config.warmup else 0.0)
        step += 1
        window_loss += float(loss.detach())
        window_steps += 1
        if step % config.log_every == 0:
            elapsed = time.monotonic() - window_start
            emit({"event": "train", "step": step, "loss": round(window_loss / window_steps, 5),
                  "lr": _lr(config, step), "steps_per_s": round(window_steps / elapsed, 3)})
            window_start, window_loss, window_steps = time.monotonic(), 0.0, 0
        if step % config.checkpoint_every == 0:
            checkpoint()
        if deadline is not None and time.monotonic() > deadline:
            break
    checkpoint()
    emit({"event": "stop", "step": step})
    return step


def export(run: str | Path, output: str | Path) -> Path:
    """The run's EMA weights as a shippable fp16 checkpoint."""
    model, metadata = load_checkpoint(Path(run) / "ema.safetensors")
    return save_checkpoint(model, output, half=True,
                           extra={"step": metadata.get("step", "?"), "source": "vidgen train"})


__all__ = ["TrainConfig", "build_latent_cache", "export", "resolve_weights", "train"]
