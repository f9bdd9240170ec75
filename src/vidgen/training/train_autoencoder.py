"""Train the causal video autoencoder (``vidgen.training.autoencoder``) on scene clips.

    python -m vidgen.training.train_autoencoder --preset tiny --steps 1600 --out runs/vae-tiny \\
        --export src/vidgen/weights/vae-tiny.safetensors

Training clips are rendered once per run into a uint8 cache (a pure function of ``seed`` and
``cache_clips``), then each step takes random crops in time and space with flips, transposes,
time reversal (the autoencoder never sees captions, so these cannot teach it wrong words).
The batch of step ``i`` depends only on (seed, i), and the learning rate only on i, so a
resumed run continues exactly where the last checkpoint left off. Checkpoints in ``--out``
are ``step-NNNNNN.safetensors`` (model) plus ``step-NNNNNN.pt`` (optimizer state and step);
``log.jsonl`` gets one JSON line per log interval. The export writes only the weights, with
the config and the latent scaling as metadata.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt
import torch

from vidgen.errors import ConfigurationError
from vidgen.training.autoencoder import (
    AUTOENCODER_PRESETS,
    AutoencoderConfig,
    VideoAutoencoder,
    edge_loss,
    load_autoencoder,
    num_parameters,
    psnr,
    save_autoencoder,
)
from vidgen.training.data import SceneDataset, Split

Schedule = Literal["cosine", "constant"]
ExportDtype = Literal["auto", "float16", "float32"]
_CHECKPOINT = re.compile(r"^step-(\d{6,})\.safetensors$")


@attrs.frozen
class TrainConfig:
    """Everything that decides a training run (saved in every checkpoint)."""

    preset: str = "tiny"
    steps: int = 1600
    batch_size: int = 8
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 50
    schedule: Schedule = "cosine"
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    edge_weight: float = 1.0
    crop_size: int = 32
    crop_frames: tuple[int, int] = (9, 10)
    """Clip lengths are drawn from this inclusive range; odd lengths end on a full group of
    ``temporal_down`` frames, even ones on a partial group (as T=16 does)."""
    num_frames: int = 16
    height: int = 64
    width: int = 64
    object_crop_prob: float = 0.75
    """Share of crops centred on a pixel that differs from the frame's corner (background)
    colour; the rest are uniform. Small shapes on black would otherwise fill few crops."""
    permute_colors: bool = False
    """Also permute the RGB channels of each crop (off: the palette is learnt faster)."""
    cache_clips: int = 3000
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    eval_clips: int = 16
    eval_seed: int = 1
    calibration_clips: int = 64

    def __attrs_post_init__(self) -> None:
        if self.preset not in AUTOENCODER_PRESETS:
            raise ConfigurationError(
                f"unknown preset {self.preset!r}; use one of {', '.join(AUTOENCODER_PRESETS)}")
        if min(self.steps, self.batch_size, self.cache_clips, self.log_every,
               self.checkpoint_every, self.keep_checkpoints) < 1:
            raise ConfigurationError("steps, batch_size, cache_clips and intervals must be >= 1")
        if not 0.0 <= self.object_crop_prob <= 1.0:
            raise ConfigurationError("object_crop_prob must be in [0, 1]")
        lo, hi = self.crop_frames
        if not 1 <= lo <= hi <= self.num_frames:
            raise ConfigurationError(f"crop_frames {self.crop_frames} outside 1..{self.num_frames}")
        down = self.model_config.spatial_down
        if self.crop_size % down or not down <= self.crop_size <= min(self.height, self.width):
            raise ConfigurationError(f"crop_size must be a multiple of {down} within the frame")

    @property
    def model_config(self) -> AutoencoderConfig:
        return AUTOENCODER_PRESETS[self.preset]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr`` (or constant)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


# ----------------------------------------------------------------------------- data


def render_clips(split: Split, n: int, *, seed: int, num_frames: int = 16, height: int = 64,
                 width: int = 64) -> torch.Tensor:
    """Items 0..n-1 of a ``SceneDataset`` as one uint8 tensor (n, T, H, W, 3)."""
    dataset = SceneDataset(split=split, num_frames=num_frames, height=height, width=width,
                           seed=seed)
    out = torch.empty((n, num_frames, height, width, 3), dtype=torch.uint8)
    for i in range(n):
        out[i] = torch.from_numpy(dataset.item(i)[1])
    return out


def to_model_input(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) -> float32 (N, 3, T, H, W) in [-1, 1]."""
    return clips.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def training_batch(cache: torch.Tensor, config: TrainConfig, step: int) -> torch.Tensor:
    """The augmented batch of ``step`` (B, 3, T, S, S): a pure function of (cache, seed, step)."""
    rng = np.random.default_rng([config.seed, step])
    n, frames, height, width, _ = cache.shape
    length = int(rng.integers(config.crop_frames[0], config.crop_frames[1] + 1))
    size = config.crop_size
    crops = []
    for _ in range(config.batch_size):
        i = int(rng.integers(n))
        t0 = int(rng.integers(frames - length + 1))
        y0, x0 = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
        # centre the crop on a non-background pixel (no draw at 0: older runs' stream)
        if config.object_crop_prob > 0 and rng.random() < config.object_crop_prob:
            frame = cache[i, t0 + length // 2]  # (H, W, 3)
            foreground = (frame != frame[0, 0]).any(dim=-1).nonzero()  # (K, 2): not the corner
            if len(foreground):
                cy, cx = foreground[int(rng.integers(len(foreground)))].tolist()
                y0 = min(max(cy - size // 2, 0), height - size)
                x0 = min(max(cx - size // 2, 0), width - size)
        clip = cache[i, t0:t0 + length, y0:y0 + size, x0:x0 + size]  # (T, S, S, 3)
        flips: list[int] = [d for d, p in zip((0, 1, 2), rng.random(3), strict=True) if p < 0.5]
        if flips:
            clip = clip.flip(flips)  # time reversal and mirror images
        if rng.random() < 0.5:
            clip = clip.transpose(1, 2)  # swap height and width
        perm: npt.NDArray[np.int64] = rng.permutation(3)  # drawn either way: same stream
        if config.permute_colors:
            clip = clip[..., torch.from_numpy(perm)]  # colour channels permuted
        crops.append(clip)
    return to_model_input(torch.stack(crops))


# ----------------------------------------------------------------------------- checkpoints


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = []
    for path in out.glob("step-*.safetensors"):
        match = _CHECKPOINT.match(path.name)
        if match and path.with_suffix(".pt").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(out: str | Path) -> tuple[int, Path] | None:
    """(step, model path) of the newest complete checkpoint in ``out``, if any."""
    found = _checkpoints(Path(out))
    return found[-1] if found else None


def save_checkpoint(out: Path, model: VideoAutoencoder, optimizer: torch.optim.Optimizer,
                    config: TrainConfig, step: int) -> Path:
    """Model weights (fp32 safetensors) and optimizer state; older checkpoints are pruned."""
    model_path = out / f"step-{step:06d}.safetensors"
    state_path = model_path.with_suffix(".pt")
    tmp_state = state_path.with_suffix(".pt.tmp")
    torch.save({"step": step, "optimizer": optimizer.state_dict(),
                "train_config": config.to_dict()}, tmp_state)
    save_autoencoder(model, model_path.with_suffix(".tmp"),
                     extra_metadata={"step": str(step), "preset": config.preset})
    os.replace(model_path.with_suffix(".tmp"), model_path)
    os.replace(tmp_state, state_path)  # the .pt appears last: it marks the checkpoint complete
    for _, old in _checkpoints(out)[:-config.keep_checkpoints]:
        old.with_suffix(".pt").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return model_path


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: VideoAutoencoder, clips: torch.Tensor, batch_size: int = 4
             ) -> dict[str, float]:
    """Reconstruction PSNR (posterior mean) of uint8 clips (N, T, H, W, 3): mean, min and the
    mean over the first frame and over the other frames."""
    was_training = model.training
    model.eval()
    per_clip, first, rest = [], [], []
    for i in range(0, clips.shape[0], batch_size):
        x = to_model_input(clips[i:i + batch_size]).to(model.scaling_factor.device)
        x_hat = model(x, sample=False).reconstruction.clamp(-1.0, 1.0)
        per_clip.append(psnr(x_hat, x, dims=(1, 2, 3, 4)))
        per_frame = psnr(x_hat, x, dims=(1, 3, 4))  # (b, T)
        first.append(per_frame[:, 0])
        rest.append(per_frame[:, 1:].flatten())
    model.train(was_training)
    clip_psnr = torch.cat(per_clip)
    return {"psnr_mean": float(clip_psnr.mean()), "psnr_min": float(clip_psnr.min()),
            "psnr_first_frame": float(torch.cat(first).mean()),
            "psnr_other_frames": float(torch.cat(rest).mean()) if rest[0].numel() else math.nan}


# ----------------------------------------------------------------------------- training


def train(config: TrainConfig, out: str | Path, *, resume: bool = True,
          log: Callable[[dict[str, Any]], None] | None = None, device: str = "cpu",
          init: str | Path | None = None, max_minutes: float | None = None) -> VideoAutoencoder:
    """Train (or resume) a run in ``out`` up to ``config.steps``; returns the model with its
    latent scaling calibrated. Logs go to ``out/log.jsonl`` and to ``log`` if given.

    ``init`` starts a fresh run from existing weights (fine-tuning: the latent space
    stays close to theirs); ``max_minutes`` ends the run early at a deadline, calibrated
    and checkpointed as if it had reached ``steps``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "log.jsonl"

    def emit(record: dict[str, Any]) -> None:
        with log_file.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if log is not None:
            log(record)

    torch.manual_seed(config.seed)
    model = VideoAutoencoder(config.model_config).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.99))
    step = 0
    found = latest_checkpoint(out) if resume else None
    if found is not None:
        step, model_path = found
        model.load_state_dict(load_autoencoder(model_path).state_dict())
        state = torch.load(model_path.with_suffix(".pt"), weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        emit({"event": "resume", "step": step, "checkpoint": model_path.name})
    elif init is not None:
        start_weights = load_autoencoder(init)
        if start_weights.config != model.config:
            raise ConfigurationError(f"{init} is not a {config.preset!r} autoencoder")
        model.load_state_dict(start_weights.state_dict())
        emit({"event": "init", "weights": str(init)})
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes

    start = time.perf_counter()
    cache = render_clips("train", config.cache_clips, seed=config.seed,
                         num_frames=config.num_frames, height=config.height, width=config.width)
    eval_clips = render_clips("heldout", config.eval_clips, seed=config.eval_seed,
                              num_frames=config.num_frames, height=config.height,
                              width=config.width)
    emit({"event": "start", "step": step, "parameters": num_parameters(model),
          "cache_clips": config.cache_clips, "render_s": round(time.perf_counter() - start, 2),
          "threads": torch.get_num_threads(), "train_config": config.to_dict()})

    model.train()
    window_start, window_clips = time.perf_counter(), 0
    while step < config.steps:
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = training_batch(cache, config, step).to(device)  # (B, 3, T, S, S)
        output = model(x)
        x_hat = output.reconstruction
        l1 = (x_hat - x).abs().mean()
        mse = (x_hat - x).square().mean()
        edge = edge_loss(x_hat, x)
        loss = (config.l1_weight * l1 + config.mse_weight * mse + config.edge_weight * edge
                + model.config.kl_weight * output.kl)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        window_clips += x.shape[0]
        if deadline is not None and time.monotonic() > deadline and step < config.steps:
            emit({"event": "deadline", "step": step})
            config = attrs.evolve(config, steps=step)  # finish (calibrate, save) here
        if step % config.log_every == 0 or step == config.steps:
            elapsed = time.perf_counter() - window_start
            emit({"step": step, "loss": loss.item(), "l1": l1.item(), "mse": mse.item(),
                   "edge": edge.item(), "kl": output.kl.item(),
                   "psnr": float(10 * torch.log10(4.0 / mse.detach().clamp_min(1e-12))),
                   "grad_norm": float(grad_norm), "lr": lr, "frames": x.shape[2],
                   "clips_per_s": round(window_clips / elapsed, 2),
                   "s_per_step": round(elapsed * x.shape[0] / max(window_clips, 1), 3),
                   "elapsed_s": round(time.perf_counter() - start, 1)})
            window_start, window_clips = time.perf_counter(), 0
        if step % config.checkpoint_every == 0 or step == config.steps:
            if step == config.steps:
                model.eval()
                calibration = to_model_input(cache[:config.calibration_clips]).to(device)
                shift, scale = model.calibrate_latents(calibration)
                emit({"event": "calibrate", "shift_factor": shift, "scaling_factor": scale})
            metrics = evaluate(model, eval_clips)
            save_checkpoint(out, model, optimizer, config, step)
            emit({"event": "checkpoint", "step": step, **{f"heldout_{k}": round(v, 3)
                                                           for k, v in metrics.items()}})
            window_start, window_clips = time.perf_counter(), 0
    return model.eval()


def export(model: VideoAutoencoder, path: str | Path, *, dtype: ExportDtype = "auto",
           eval_clips: torch.Tensor | None = None, max_drop_db: float = 0.05,
           extra_metadata: dict[str, str] | None = None) -> tuple[Path, dict[str, Any]]:
    """Write just the weights to ``path``. ``auto`` picks float16 when it costs at most
    ``max_drop_db`` of held-out PSNR against float32 (measured on ``eval_clips``)."""
    report: dict[str, Any] = {}
    chosen: torch.dtype = torch.float16 if dtype == "float16" else torch.float32
    if eval_clips is not None:
        report["psnr_float32"] = evaluate(model, eval_clips)["psnr_mean"]
        half = VideoAutoencoder(model.config)
        half.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
        report["psnr_float16"] = evaluate(half.eval(), eval_clips)["psnr_mean"]
        if dtype == "auto":
            ok = report["psnr_float32"] - report["psnr_float16"] <= max_drop_db
            chosen = torch.float16 if ok else torch.float32
    elif dtype == "auto":
        raise ConfigurationError("dtype='auto' needs eval_clips to compare float16 and float32")
    metadata = {"dtype": str(chosen).removeprefix("torch."), **(extra_metadata or {})}
    if "psnr_float32" in report:
        key = "psnr_float16" if chosen == torch.float16 else "psnr_float32"
        metadata["heldout_psnr_db"] = f"{report[key]:.2f}"
    written = save_autoencoder(model, path, dtype=chosen, extra_metadata=metadata)
    report.update(dtype=metadata["dtype"], path=str(written), bytes=written.stat().st_size)
    return written, report


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vidgen.training.train_autoencoder",
        description="Train the causal video autoencoder on rendered scene clips (resumable).")
    defaults = TrainConfig()
    parser.add_argument("--preset", default=defaults.preset, choices=sorted(AUTOENCODER_PRESETS))
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--schedule", default=defaults.schedule, choices=["cosine", "constant"])
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--edge-weight", type=float, default=defaults.edge_weight)
    parser.add_argument("--crop-size", type=int, default=defaults.crop_size)
    parser.add_argument("--crop-frames", type=int, nargs=2, default=list(defaults.crop_frames),
                        metavar=("MIN", "MAX"))
    parser.add_argument("--object-crop-prob", type=float, default=defaults.object_crop_prob)
    parser.add_argument("--permute-colors", action="store_true",
                        help="also permute RGB channels as an augmentation")
    parser.add_argument("--cache-clips", type=int, default=defaults.cache_clips)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--eval-clips", type=int, default=defaults.eval_clips)
    parser.add_argument("--out", type=Path, default=Path("runs/vae"))
    parser.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from these weights (a fresh run only): fine-tuning")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="finish (calibrated, saved) at this deadline even before --steps")
    parser.add_argument("--export", type=Path, default=None,
                        help="write the final weights here, e.g. "
                             "src/vidgen/weights/vae-tiny.safetensors")
    parser.add_argument("--export-dtype", default="auto", choices=["auto", "float16", "float32"])
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    config = TrainConfig(
        preset=args.preset, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        schedule=args.schedule, warmup_steps=args.warmup_steps, edge_weight=args.edge_weight,
        crop_size=args.crop_size, crop_frames=(args.crop_frames[0], args.crop_frames[1]),
        object_crop_prob=args.object_crop_prob, permute_colors=args.permute_colors,
        cache_clips=args.cache_clips, seed=args.seed, log_every=args.log_every,
        checkpoint_every=args.checkpoint_every, eval_clips=args.eval_clips)
    started = time.perf_counter()
    model = train(config, args.out, resume=not args.no_resume,
                  log=lambda record: print(json.dumps(record), flush=True), device=args.device,
                  init=args.init, max_minutes=args.max_minutes).cpu()
    if args.export is not None:
        found = latest_checkpoint(args.out)  # a deadline may have ended the run early
        steps_done = found[0] if found is not None else config.steps
        clips = render_clips("heldout", config.eval_clips, seed=config.eval_seed)
        _, report = export(model, args.export, dtype=args.export_dtype, eval_clips=clips,
                           extra_metadata={"preset": config.preset,
                                           "train_steps": str(steps_done)})
        print(json.dumps({"event": "export", **report}), flush=True)
    print(json.dumps({"event": "done", "wall_s": round(time.perf_counter() - started, 1)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
