"""The native DiT against diffusers' video transformers at equal size, on CPU.

Pairs, each at the same width, depth, heads, text length and text width, and the
same number of spacetime tokens (the latent shapes and patch sizes are chosen so
the token counts match exactly):

* ``native`` (``vidgen.backends.dit.model.DiT``, full spacetime attention,
  cross-attention to the caption) against ``cogvideox``
  (``diffusers.CogVideoXTransformer3DModel``: full spacetime attention over the
  caption tokens and video tokens joined, "expert" adaLN per modality);
* ``native_factorised`` (the same DiT with ``attention="factorised"``: spatial
  then temporal attention in one block) against ``latte``
  (``diffusers.LatteTransformer3DModel``: a spatial block then a temporal block
  per layer).

Figures, each the median of ``--repeats`` runs, the models of a size timed
interleaved in one process (the order rotates each repeat), after warm-up:

* ``forward_s``: one denoising step as the samplers run it: no_grad, batch 2
  (the conditional and unconditional halves of classifier-free guidance in one
  batch, ``vidgen.diffusion.guidance.batched_cfg``);
* ``train_s`` (``--train``): forward + backward of a mean-square loss, batch 2,
  no optimizer step (flush-denormal on, as ``vidgen.training.train`` sets it);
* ``peak_rss_mib``: in a fresh subprocess per model and mode, the resident set's
  high-water mark during one step minus the resident set just before it (Linux
  ``/proc/self/clear_refs`` = 5 resets the mark, ``VmHWM`` reads it), measured on
  the second step, with glibc's mmap threshold pinned at 128 KiB
  (``MALLOC_MMAP_THRESHOLD_``) so freed tensors go back to the OS and do not
  hide the next step's peak. ``tracemalloc`` cannot see torch's allocations.
* ``gflop``: FLOPs of one forward (``torch.utils.flop_counter``: matmuls,
  convolutions, attention), so ``gflops`` is the achieved rate and
  ``ratio_per_flop`` compares time per FLOP.

    python benchmarks/backends.py --threads 1 --train --out benchmarks/results/backends_cpu1.json
    python benchmarks/backends.py --threads 2 --out benchmarks/results/backends_cpu2.json
    python benchmarks/backends.py --sizes small --repeats 3 --no-memory   # quick look

Prints one JSON object (and writes it to --out). ``ratio`` is native / diffusers
(below 1.0: the native model is faster). ``--profile`` adds each model's top ops
by self CPU time from ``torch.profiler`` for one forward.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spin-waiting on 2 busy cores

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import attrs
import torch
import torch.nn as nn
from machine import cpu_model, write_report
from torch.utils.flop_counter import FlopCounterMode

from vidgen.backends.dit.model import (
    DIT_PRESETS,
    DiT,
    DiTBlock,
    DiTConfig,
    modulate,
    parameter_count,
)

BATCH = 2  # classifier-free guidance: conditional + unconditional in one batch


@attrs.frozen
class Size:
    name: str
    width: int
    depth: int
    heads: int
    latent: tuple[int, int, int, int]  # C, T, H, W
    patch: tuple[int, int, int]  # pt, ph, pw
    text_dim: int = 128
    text_len: int = 32
    note: str = ""

    @property
    def tokens(self) -> int:
        _c, t, h, w = self.latent
        pt, ph, pw = self.patch
        return (t // pt) * (h // ph) * (w // pw)


_small = DIT_PRESETS["small"]
SIZES: dict[str, Size] = {
    # The shipped dit-small checkpoint's network (patch 1x4x4 over vae-tiny-2's 8-channel
    # latents) at the default request, 16 frames of 64x64 -> latent 9x16x16.
    "small": Size("small", _small.width, _small.depth, _small.heads, (8, 9, 16, 16), (1, 4, 4),
                  note="shipped dit-small network, default 16x64x64 request"),
    # The same network at the largest size the native backends accept (16 x 256x256).
    "small256": Size("small256", _small.width, _small.depth, _small.heads, (8, 9, 64, 64),
                     (1, 4, 4), note="shipped dit-small network at 16 frames of 256x256"),
    # The 'base' preset's width and heads (384, 6) at depth 8, on the same 2,304 tokens.
    "base": Size("base", DIT_PRESETS["base"].width, 8, DIT_PRESETS["base"].heads,
                 (8, 9, 64, 64), (1, 4, 4),
                 note="'base' preset width/heads, depth 8, 16 frames of 256x256"),
}

PAIRS = {"native": "cogvideox", "native_factorised": "latte",
         "native_contiguous": "cogvideox", "native_no_cross": "cogvideox"}
NATIVE = ("native", "native_factorised", "native_contiguous", "native_no_cross")


class TokenMajorPatchEmbed(nn.Module):
    """A diagnostic of one layout change: the same patch embedding, its output (B, D, T, H, W)
    laid out so that ``DiT.forward``'s ``flatten(2).transpose(1, 2)`` is a contiguous
    (B, N, D) tensor. As shipped, that transpose is a view with strides (N*D, 1, N), and every
    elementwise op of the residual stream keeps that layout through all blocks: the residual
    adds are strided and each LayerNorm first copies. Same numbers, other memory order: what
    ``.contiguous()`` after the transpose in ``DiT.forward`` would do."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.inner(x)  # (B, D, T, H, W)
        return y.flatten(2).transpose(1, 2).contiguous().transpose(1, 2).reshape(y.shape)


class NoCrossBlock(DiTBlock):
    """A diagnostic, not a usable model: the DiT block without its cross-attention sublayer
    (the caption then reaches the network only through the pooled vector in adaLN). The
    forward time it saves is what the separate cross-attention costs."""

    def forward(self, x: torch.Tensor, c: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN(c).chunk(6, dim=1)
        x = x + gate1[:, None] * self._self_attention(modulate(self.norm1(x), shift1, scale1),
                                                      grid)
        out: torch.Tensor = x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2,
                                                                   scale2))
        return out


# --- models ---------------------------------------------------------------------------------


def build(kind: str, s: Size) -> nn.Module:
    c, t, h, w = s.latent
    pt, ph, pw = s.patch
    if kind in NATIVE:
        model = DiT(DiTConfig(in_channels=c, patch=s.patch, width=s.width, depth=s.depth,
                              heads=s.heads, text_dim=s.text_dim,
                              attention="factorised" if kind == "native_factorised" else "full"))
        if kind == "native_no_cross":
            for block in model.blocks:
                block.__class__ = NoCrossBlock
        if kind == "native_contiguous":
            model.patch_embed = TokenMajorPatchEmbed(model.patch_embed)  # type: ignore[assignment]
        return model
    assert pt == 1 and ph == pw, "the diffusers peers patch space only, square patches"
    if kind == "cogvideox":
        from diffusers import CogVideoXTransformer3DModel

        return cast(nn.Module, CogVideoXTransformer3DModel(  # type: ignore[no-untyped-call]
            num_attention_heads=s.heads, attention_head_dim=s.width // s.heads,
            in_channels=c, out_channels=c, time_embed_dim=s.width, text_embed_dim=s.text_dim,
            num_layers=s.depth, sample_width=w, sample_height=h,
            sample_frames=(t - 1) * 4 + 1, temporal_compression_ratio=4,  # latent T frames
            patch_size=ph, patch_size_t=None, max_text_seq_length=s.text_len))
    if kind == "latte":
        from diffusers import LatteTransformer3DModel

        assert h == w, "Latte needs square latents"
        return cast(nn.Module, LatteTransformer3DModel(  # type: ignore[no-untyped-call]
            num_attention_heads=s.heads, attention_head_dim=s.width // s.heads,
            in_channels=c, out_channels=c, num_layers=s.depth, cross_attention_dim=s.width,
            attention_bias=True, sample_size=h, patch_size=ph,
            activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
            norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
            caption_channels=s.text_dim, video_length=t))  # Latte-1's choices, at this size
    raise ValueError(kind)


def make_call(kind: str, model: nn.Module, s: Size, seed: int = 0
              ) -> Callable[[], torch.Tensor]:
    """A closure running one batch-2 step of ``model`` on fixed random inputs."""
    g = torch.Generator().manual_seed(seed)
    c, t, h, w = s.latent
    x = torch.randn(BATCH, c, t, h, w, generator=g)  # (B, C, T, H, W)
    text = torch.randn(BATCH, s.text_len, s.text_dim, generator=g)  # (B, L, Dt)
    times = torch.rand(BATCH, generator=g)  # (B,) in [0, 1)
    if kind in NATIVE:
        mask = torch.ones(BATCH, s.text_len, dtype=torch.bool)  # (B, L)
        mask[1, 2:] = False  # the unconditional half: the empty caption, padded
        pooled = torch.randn(BATCH, s.text_dim, generator=g)  # (B, Dt)
        return lambda: model(x, times, text, mask, pooled)
    if kind == "cogvideox":
        xf = x.transpose(1, 2).contiguous()  # CogVideoX reads (B, T, C, H, W)
        return lambda: model(xf, text, times * 1000, return_dict=False)[0]
    if kind == "latte":  # its pipeline passes no caption mask (one is not repeated per frame)
        return lambda: model(x, timestep=times * 1000, encoder_hidden_states=text,
                             return_dict=False)[0]
    raise ValueError(kind)


def params_breakdown(kind: str, model: nn.Module) -> dict[str, int]:
    blocks = 0
    for name in ("blocks", "transformer_blocks", "temporal_transformer_blocks"):
        sub = getattr(model, name, None)
        if sub is not None:
            blocks += parameter_count(sub)
    total = parameter_count(model)
    return {"total": total, "blocks": blocks, "embed_and_output": total - blocks}


def forward_flops(call: Callable[[], torch.Tensor]) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        call()
    return int(counter.get_total_flops())


def train_step(model: nn.Module, call: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        call().float().square().mean().backward()  # type: ignore[no-untyped-call]

    return step


def forward_step(call: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            call()

    return step


def timed_interleaved(steps: dict[str, Callable[[], None]], repeats: int, warmup: int
                      ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and process CPU seconds of each step, per model."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[name]()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return wall, cpu


def summary(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "q1": round(q[0], 4), "q3": round(q[2], 4)}


def profile_top(call: Callable[[], torch.Tensor], top: int = 12) -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        call()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            call()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [{"op": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1000, 2),
             "share": round(e.self_cpu_time_total / total, 3)} for e in events[:top]]


# --- memory: one fresh process per model and mode ----------------------------------------


def _proc_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match is not None
    return int(match.group(1))


def memory_child(kind: str, size: str, mode: str, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    s = SIZES[size]
    model = build(kind, s).eval()
    call = make_call(kind, model, s)
    step = train_step(model, call) if mode == "train" else forward_step(call)
    if mode == "train":
        torch.set_flush_denormal(True)
    step()  # warm-up: lazily made kernels, gradients' first allocation, caches
    if mode == "train":
        model.zero_grad(set_to_none=True)
    Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark
    before = _proc_kib("VmRSS")
    step()
    peak = _proc_kib("VmHWM")
    return {"kind": kind, "size": size, "mode": mode,
            "rss_before_mib": round(before / 1024, 1),
            "peak_rss_delta_mib": round((peak - before) / 1024, 1)}


def measure_memory(kind: str, size: str, mode: str, threads: int) -> dict[str, Any] | None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.run([sys.executable, __file__, "--memory-child", kind, size, mode,
                           "--threads", str(threads)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- the run ----------------------------------------------------------------------------


def machine(threads: int) -> dict[str, Any]:
    cpu = cpu_model()
    import diffusers

    return {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "threads": threads,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "loadavg_at_end": os.getloadavg(),
            "note": "shared machine: other workers may use the cores; compare ratios "
                    "measured in the same run"}


def run_size(s: Size, kinds: list[str], args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    models = {k: build(k, s).eval() for k in kinds}
    calls = {k: make_call(k, m, s) for k, m in models.items()}
    record: dict[str, Any] = {
        "size": attrs.asdict(s), "tokens": s.tokens, "batch": BATCH,
        "models": {k: {"parameters": params_breakdown(k, m),
                       "gflop_forward": round(forward_flops(calls[k]) / 1e9, 3)}
                   for k, m in models.items()}}
    print(f"[{s.name}] tokens={s.tokens} timing forward...", file=sys.stderr, flush=True)
    fwd, fwd_cpu = timed_interleaved({k: forward_step(c) for k, c in calls.items()},
                                     args.repeats, args.warmup)
    for k in kinds:
        entry = record["models"][k]
        entry["forward_s"] = summary(fwd[k])
        entry["forward_cpu_s"] = summary(fwd_cpu[k])
        entry["forward_gflops"] = round(entry["gflop_forward"] / entry["forward_s"]["median"], 1)
    if args.train and s.name in args.train_sizes.split(","):
        print(f"[{s.name}] timing forward+backward...", file=sys.stderr, flush=True)
        torch.set_flush_denormal(True)
        train, train_cpu = timed_interleaved(
            {k: train_step(models[k], c) for k, c in calls.items()}, args.train_repeats, 1)
        torch.set_flush_denormal(False)
        for k in kinds:
            record["models"][k]["train_s"] = summary(train[k])
            record["models"][k]["train_cpu_s"] = summary(train_cpu[k])
            models[k].zero_grad(set_to_none=True)
    if args.profile:
        for k in kinds:
            record["models"][k]["profile_forward_top_ops"] = profile_top(calls[k])
    if args.memory:
        print(f"[{s.name}] memory (fresh subprocesses)...", file=sys.stderr, flush=True)
        trained = args.train and s.name in args.train_sizes.split(",")
        modes = ["forward"] + (["train"] if trained else [])
        for k in kinds:
            for mode in modes:
                mem = measure_memory(k, s.name, mode, args.threads)
                record["models"][k][f"peak_rss_delta_mib_{mode}"] = (
                    mem["peak_rss_delta_mib"] if mem else None)
    ratios: dict[str, Any] = {}
    for ours, theirs in PAIRS.items():
        if ours not in kinds or theirs not in kinds:
            continue
        a, b = record["models"][ours], record["models"][theirs]
        pair: dict[str, Any] = {
            "forward": round(a["forward_s"]["median"] / b["forward_s"]["median"], 3),
            "forward_cpu": round(a["forward_cpu_s"]["median"] / b["forward_cpu_s"]["median"], 3),
            "forward_per_flop": round((a["forward_s"]["median"] / a["gflop_forward"])
                                      / (b["forward_s"]["median"] / b["gflop_forward"]), 3),
            "parameters": round(a["parameters"]["total"] / b["parameters"]["total"], 3)}
        if "train_s" in a:
            pair["train"] = round(a["train_s"]["median"] / b["train_s"]["median"], 3)
            pair["train_cpu"] = round(a["train_cpu_s"]["median"] / b["train_cpu_s"]["median"], 3)
        for mode in ("forward", "train"):
            key = f"peak_rss_delta_mib_{mode}"
            if a.get(key) and b.get(key):
                pair[f"peak_rss_{mode}"] = round(a[key] / b[key], 3)
        ratios[f"{ours}/{theirs}"] = pair
    record["ratio_native_over_diffusers"] = ratios
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="small,small256,base")
    parser.add_argument("--models", default="native,cogvideox,native_factorised,latte",
                        help="diagnostics: native_contiguous (the DiT with a contiguous token "
                             "stream, see TokenMajorPatchEmbed), native_no_cross (without its "
                             "cross-attention sublayer: what that sublayer costs)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--train", action="store_true", help="also time forward+backward")
    parser.add_argument("--train-sizes", default="small,small256",
                        help="sizes to time forward+backward at (with --train)")
    parser.add_argument("--train-repeats", type=int, default=5)
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--memory-child", nargs=3, metavar=("KIND", "SIZE", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        kind, size, mode = args.memory_child
        print(json.dumps(memory_child(kind, size, mode, args.threads)))
        return
    kinds = args.models.split(",")
    start = time.monotonic()
    results = [run_size(SIZES[name], kinds, args) for name in args.sizes.split(",")]
    report = {
        "benchmark": "backends", "machine": machine(torch.get_num_threads()),
        "repeats": args.repeats, "warmup": args.warmup,
        "train_repeats": args.train_repeats if args.train else None,
        "pairs": PAIRS,
        "method": {
            "timing": "median of repeats, models of a size interleaved in one process, "
                      "order rotated each repeat, after warm-up; *_s wall-clock, *_cpu_s "
                      "process CPU time (all threads) of the same steps",
            "forward": "torch.no_grad, batch 2 (CFG cond+uncond), float32",
            "train": "forward + backward of mean-square loss, batch 2, no optimizer step, "
                     "flush-denormal on",
            "memory": "fresh subprocess per model and mode; VmHWM - VmRSS around the 2nd step "
                      "after resetting the high-water mark (/proc/self/clear_refs=5), glibc "
                      "MALLOC_MMAP_THRESHOLD_=131072",
            "flops": "torch.utils.flop_counter over one forward",
        },
        "seconds": round(time.monotonic() - start, 1),
        "results": results,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
