"""Training-step speed of the native DiT: step time, tokens/s, FLOPs and MFU, eager vs compile.

Times forward + backward + AdamW on random latents at a given size, with the
FLOPs of one step counted by ``torch.utils.flop_counter`` (matmuls and
attention), so model FLOPs utilisation = FLOPs / time / the chip's peak.
On a GPU it compares fp32 (TF32 matmuls) with bf16 autocast, and bf16 with
``torch.compile`` (each block compiled once and reused: regional compilation).

    python benchmarks/dit_step.py --preset xl --batch 4 --latent 16,16,32,32 --patch 1,2,2
    python benchmarks/dit_step.py --preset test --device cpu --threads 1   # smoke run

Prints one JSON object (and writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import attrs
import torch
from torch.utils.flop_counter import FlopCounterMode

from vidgen.backends.dit.model import DIT_PRESETS, DiT, DiTConfig, parameter_count

# Dense bf16 peak by the vendors' datasheets (TFLOP/s); MFU is reported against these.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
EXTRA_PRESETS = {
    # DiT-XL/2's transformer shape (Peebles & Xie) on video latents: a realistic GPU size.
    "xl": DiTConfig(width=1152, depth=28, heads=16),
    "large": DiTConfig(width=1024, depth=24, heads=16),
}


def build(preset: str, channels: int, patch: tuple[int, int, int]) -> DiT:
    base = EXTRA_PRESETS.get(preset) or DIT_PRESETS[preset]
    return DiT(attrs.evolve(base, in_channels=channels, patch=patch))


def step_inputs(model: DiT, batch: int, latent: tuple[int, int, int, int], text_len: int,
                device: str) -> tuple[torch.Tensor, ...]:
    c, t, h, w = latent
    x = torch.randn(batch, c, t, h, w, device=device)  # (B, C, T, H, W)
    times = torch.rand(batch, device=device)  # (B,)
    text = torch.randn(batch, text_len, model.config.text_dim, device=device)  # (B, L, Dt)
    mask = torch.ones(batch, text_len, dtype=torch.bool, device=device)  # (B, L)
    pooled = torch.randn(batch, model.config.text_dim, device=device)  # (B, Dt)
    return x, times, text, mask, pooled


def run_variant(model: DiT, inputs: tuple[torch.Tensor, ...], *, bf16: bool, compiled: bool,
                steps: int, device: str) -> dict[str, Any]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda" or None)
    forward = model
    if compiled:
        for block in model.blocks:
            block.compile()  # regional: one compiled block, reused by every layer
    cuda = device == "cuda"

    def one_step() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            out = forward(*inputs)  # (B, C, T, H, W)
        loss = out.float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    start = time.perf_counter()
    one_step()  # warm-up (and compilation)
    one_step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            one_step()
            end.record()
            torch.cuda.synchronize()
            times.append(begin.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            one_step()
            times.append(time.perf_counter() - t0)
    if compiled:
        for block in model.blocks:
            block._compiled_call_impl = None  # back to eager for the next variant
    times.sort()
    return {"bf16": bf16, "compile": compiled, "warmup_s": round(first, 2),
            "step_s_median": times[len(times) // 2], "step_s_min": times[0],
            "peak_memory_gib": (torch.cuda.max_memory_allocated() / 2**30) if cuda else None}


def count_flops(model: DiT, inputs: tuple[torch.Tensor, ...]) -> int:
    with FlopCounterMode(display=False) as counter:
        model(*inputs).float().square().mean().backward()  # type: ignore[no-untyped-call]
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="xl")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--latent", default="16,16,32,32", help="C,T,H,W of one latent clip")
    parser.add_argument("--patch", default="1,2,2")
    parser.add_argument("--text-len", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variants", default="fp32,bf16,bf16+compile")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    latent = tuple(int(v) for v in args.latent.split(","))
    patch = tuple(int(v) for v in args.patch.split(","))
    assert len(latent) == 4 and len(patch) == 3
    torch.manual_seed(0)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = build(args.preset, latent[0], patch).to(args.device)  # type: ignore[arg-type]
    inputs = step_inputs(model, args.batch, latent, args.text_len, args.device)  # type: ignore[arg-type]
    tokens = (args.batch * (latent[1] // patch[0]) * (latent[2] // patch[1])
              * (latent[3] // patch[2]))
    flops = count_flops(model, inputs)
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else None
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if gpu and k in gpu), None)
    results = []
    for variant in args.variants.split(","):
        record = run_variant(model, inputs, bf16="bf16" in variant, compiled="compile" in variant,
                             steps=args.steps, device=args.device)
        seconds = record["step_s_median"]
        record.update(variant=variant, tokens_per_s=round(tokens / seconds),
                      tflops=round(flops / seconds / 1e12, 2),
                      mfu_vs_bf16_peak=(round(flops / seconds / 1e12 / peak, 3) if peak else None))
        results.append(record)
        print(json.dumps(record), flush=True)
    report = {"device": gpu or "cpu", "threads": torch.get_num_threads(),
              "torch": torch.__version__, "preset": args.preset,
              "parameters": parameter_count(model), "batch": args.batch,
              "latent": latent, "patch": patch, "tokens_per_step": tokens,
              "flops_per_step": flops, "peak_bf16_tflops": peak, "results": results}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
