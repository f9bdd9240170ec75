"""Markdown tables for docs/performance.md from the benchmarks' JSON results.

    python benchmarks/perf_tables.py [benchmarks/results/backends_cpu1.json ...] \
        [benchmarks/results/provenance_overhead_cpu1.json ...]

Each file is recognised by its ``benchmark`` field (``backends`` or
``provenance_overhead``); nothing is measured here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_FILES = ("benchmarks/results/backends_cpu1.json", "benchmarks/results/backends_cpu2.json",
                 "benchmarks/results/provenance_overhead_cpu1.json")


def _s(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def backends(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"torch threads **{m['threads']}**, {m['cpu']}, {m['cpus']} cores, torch "
             f"{m['torch']}, diffusers {m['diffusers']}, OMP_WAIT_POLICY={m['OMP_WAIT_POLICY']}, "
             f"load average at the end {', '.join(f'{v:.1f}' for v in m['loadavg_at_end'])}; "
             f"median of {report['repeats']} interleaved repeats", ""]
    lines += ["| size | tokens | model | params (M) | GFLOP fwd | fwd wall s | fwd CPU s | "
              "fwd+bwd wall s | fwd+bwd CPU s | peak RSS fwd MiB | peak RSS fwd+bwd MiB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        for kind, e in r["models"].items():
            lines.append(
                f"| {r['size']['name']} | {r['tokens']} | {kind} | "
                f"{e['parameters']['total'] / 1e6:.2f} | {e['gflop_forward']:.1f} | "
                f"{_s(e['forward_s']['median'])} | {_s(e['forward_cpu_s']['median'])} | "
                f"{_s(e.get('train_s', {}).get('median'))} | "
                f"{_s(e.get('train_cpu_s', {}).get('median'))} | "
                f"{e.get('peak_rss_delta_mib_forward', '')} | "
                f"{e.get('peak_rss_delta_mib_train', '') or ''} |")
    lines += ["", "Ratios native / diffusers (below 1: native faster or smaller):", "",
              "| size | pair | fwd wall | fwd CPU | fwd CPU per FLOP | fwd+bwd wall | "
              "fwd+bwd CPU | params | peak RSS fwd | peak RSS fwd+bwd |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        for pair, q in r["ratio_native_over_diffusers"].items():
            per_flop = q["forward_per_flop"] * q["forward_cpu"] / q["forward"]
            lines.append(
                f"| {r['size']['name']} | {pair} | {q['forward']:.2f} | {q['forward_cpu']:.2f} | "
                f"{per_flop:.2f} | {q.get('train', ''):} | {q.get('train_cpu', '')} | "
                f"{q['parameters']:.2f} | {q.get('peak_rss_forward', '')} | "
                f"{q.get('peak_rss_train', '')} |")
    return "\n".join(lines)


def provenance(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"torch threads **{m['torch_threads']}** (x264: {m['x264_threads']}), {m['cpu']}, "
             f"{m['cpus']} cores, load average at the end "
             f"{', '.join(f'{v:.1f}' for v in m['loadavg_at_end'])}; x264 preset "
             f"{report.get('x264_preset', 'medium')}, CRF {report.get('crf', 18)}; chain stages: "
             f"median of {report['chain_repeats']} replays", ""]
    lines += ["| backend | size | frames | steps | generation wall s | chain wall s | "
              "fraction (wall) | generation CPU s | chain CPU s | fraction (CPU) | "
              "dominant stage |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(
            f"| {r['backend']} | {r['width']}x{r['height']} | {r['frames']} | "
            f"{r['steps'] if r['steps'] is not None else '-'} | {_s(r['generation_s'])} | "
            f"{_s(r['chain_s'])} | {100 * r['fraction']:.1f} % | {_s(r['generation_cpu_s'])} | "
            f"{_s(r['chain_cpu_s'])} | {100 * r['fraction_cpu']:.1f} % | "
            f"{r['dominant_stage']} |")
    stages = ["prompt_policy", "likeness_output", "watermark", "encode", "sign", "commit",
              "record"]
    lines += ["", "Chain stages, CPU seconds (wall seconds in brackets):", "",
              "| backend | size | " + " | ".join(stages) + " |",
              "|---|---|" + "---|" * len(stages)]
    for r in report["results"]:
        cells = [f"{r['chain_stages_cpu_s'].get(s, 0):.3f} ({r['chain_stages_s'].get(s, 0):.3f})"
                 for s in stages]
        lines.append(f"| {r['backend']} | {r['width']}x{r['height']} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def main() -> None:
    files = sys.argv[1:] or [f for f in DEFAULT_FILES if Path(f).is_file()]
    for name in files:
        report = json.loads(Path(name).read_text())
        kind = report.get("benchmark")
        print(f"<!-- {name} -->")
        print(backends(report) if kind == "backends" else provenance(report)
              if kind == "provenance_overhead" else f"(unknown benchmark {kind!r})")
        print()


if __name__ == "__main__":
    main()
