"""The ``vidgen`` command: generate, verify, keys, backends, eval.

Exit codes: ``generate``/``keys``/``backends``/``eval`` return 0 on success and 1 when
vidgen refused or failed (the message names the stage); ``eval`` succeeds whether or not
the backend meets the goals, which its report states. ``verify`` follows the
contract: 0 confirmed, 1 no or broken provenance, 2 file could not be processed.
Usage errors exit 2. No command prints a traceback unless ``VIDGEN_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vidgen import __version__
from vidgen.errors import ConfigurationError, OutputError, VidgenError

# No emoji codes (":x:" in a file name is not an emoji), no hard wrapping of messages.
err = Console(stderr=True, emoji=False, soft_wrap=True)
out = Console(emoji=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


# --- generate --------------------------------------------------------------------------


def _backend_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value that parses as JSON is taken as JSON (``steps=8``,
    ``step_cache=0.1``), anything else as a string (``model=/models/CogVideoX-2b``)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigurationError(f"--backend-option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _cmd_generate(args: argparse.Namespace) -> int:
    from vidgen.pipeline import Pipeline

    disclose = None
    if args.disclose is not None:
        from vidgen.provenance.disclosure import DisclosureLabel

        disclose = DisclosureLabel(language=args.disclose, position=args.disclose_position)
    pipe = Pipeline.from_backend(args.backend, keys_dir=args.keys,
                                 backend_options=_backend_options(args.backend_option),
                                 include_prompt=args.include_prompt, crf=args.crf,
                                 watermark_method=args.watermark_method, store=args.store,
                                 disclose=disclose)
    show = not args.json and err.is_terminal
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=err, disable=not show, transient=True) as bar:
        task = bar.add_task(f"sampling ({args.backend})", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = pipe.generate(args.prompt, output=args.output, num_frames=args.frames,
                               height=args.height, width=args.width, fps=args.fps,
                               seed=args.seed, progress=progress)
    summary = {
        "path": str(result.path),
        "sha256": result.sha256,
        "backend": result.backend,
        "num_frames": result.video.num_frames,
        "width": result.video.width,
        "height": result.video.height,
        "fps": result.video.fps,
        "watermark_id": result.watermark_id,
        "watermark_method": pipe.watermarker.name,
        "store": str(getattr(pipe.store, "path", "")) or None,
        "signer": pipe.signer.signer_name,
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "manifest": result.manifest,
    }
    if args.json:
        _print_json(summary)
    else:
        out.print(f"[green]wrote[/] {escape(str(result.path))} ({result.video.num_frames} frames,"
                  f" {result.video.width}x{result.video.height} @ {result.video.fps:g} fps)")
        out.print(f"  signed by {summary['signer']!r}, sha256 {result.sha256[:16]}…",
                  markup=False)
        out.print(f"  watermark {summary['watermark_method']} id {result.watermark_id}, "
                  f"recorded in {summary['store']}", markup=False, highlight=False)
    return 0


# --- verify ----------------------------------------------------------------------------


def _cmd_verify(args: argparse.Namespace) -> int:
    from vidgen.provenance.sweep import is_sweep, run_sweep_command

    if is_sweep(args):  # directories, several files, --jsonl/--html/--workers/--resume
        return run_sweep_command(args, out=out, err=err, print_report=_print_report)
    from vidgen.provenance.keys import load_trust_anchors
    from vidgen.provenance.store import ManifestStore
    from vidgen.provenance.verify import verify
    from vidgen.provenance.watermark import read_key_file

    anchors = load_trust_anchors(args.trust)
    key = read_key_file(args.key) if args.key is not None else None
    store = ManifestStore(args.store)
    reports = [verify(f, trust_anchors_pem=anchors, key=key, store=store,
                      watermark_method=args.watermark_method, max_frames=args.max_frames)
               for f in args.files]
    if args.json:
        data = [r.to_dict() for r in reports]
        _print_json(data[0] if len(data) == 1 else data)
    else:
        for r in reports:
            _print_report(r)
    codes = [r.exit_code for r in reports]
    return 2 if 2 in codes else max(codes)


_VERDICT_STYLE = {"confirmed": "green", "unconfirmed": "yellow", "tampered": "red",
                  "error": "red"}


def _print_report(r: Any) -> None:
    style = _VERDICT_STYLE.get(r.verdict, "white")
    out.print(f"[bold]{escape(r.file)}[/]: [{style}]{r.verdict}[/]")
    if r.error:
        err.print(f"  vidgen: {r.error}", markup=False, highlight=False)
        return
    c = r.c2pa
    lines = ["C2PA: " + c.state + (f" — signer {c.signer!r}" if c.signer else "")
             + (f", generator {c.claim_generator}" if c.claim_generator else "")]
    if c.ai_generated is not None:
        lines.append(f"AI-generated (digitalSourceType): {'yes' if c.ai_generated else 'no'}")
    if c.codes:
        lines.append(f"codes: {', '.join(c.codes)}")
    if c.explanation:
        lines.append(c.explanation)
    w = r.watermark
    if w is not None:
        if w.detected:
            state = f"detected ({w.method}), id {w.payload}, p = {w.p_value:.3g}"
            if w.matches_manifest is not None:
                state += ", matches the manifest" if w.matches_manifest else \
                    ", does NOT match the manifest"
        else:
            state = "not detected" if w.checked else "not checked"
        lines.append("watermark: " + state)
        if w.explanation:
            lines.append("  " + w.explanation)
    if r.recovered_manifest is not None:
        title = r.recovered_manifest.get("title")
        lines.append(f"recovered manifest: {title!r} (from the manifest store; "
                     "see --json for all of it)")
    for line in lines:
        out.print("  " + line, markup=False, highlight=False)


# --- keys, backends --------------------------------------------------------------------


def _cmd_keys_init(args: argparse.Namespace) -> int:
    from vidgen.provenance.keys import init_dev_keys

    keys = init_dev_keys(args.directory, organization=args.org, overwrite=args.force)
    out.print(f"development CA and signer written to {escape(str(keys.directory))}")
    out.print(f"  trust anchor (give to verifiers): {escape(str(keys.ca_cert))}")
    out.print(f"  signer chain: {escape(str(keys.signer_cert))}; private keys are 0600")
    out.print(f"  watermark key (vidgen verify --key): {escape(str(keys.watermark_key))}; "
              "kept by --force, since marks made with it need it to be found")
    out.print("  [yellow]development identity: anyone holding these keys can sign as you[/]")
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    from vidgen.backends.base import list_backends

    infos = list_backends()
    if args.json:
        _print_json([i.to_dict() for i in infos])
        return 0
    table = Table("name", "source", "tasks", "max size", "frames", "device", "model")
    for i in infos:
        c = i.capabilities
        if c is None:
            table.add_row(i.name, i.source, f"[red]failed to load: {i.error}[/]", "", "", "", "")
            continue
        table.add_row(i.name, i.source, ", ".join(sorted(t.value for t in c.tasks)),
                      f"{c.max_width}x{c.max_height}", f"{c.min_frames}-{c.max_frames}",
                      c.device, f"{c.model_id} {c.model_version}")
    out.print(table)
    return 0


# --- safety: prompt policy and consent registry -------------------------------------------


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from vidgen.safety.prompt import check_prompt, load_policy

    policy = load_policy(args.policy)
    decision = check_prompt(args.text, policy, kind=args.kind)
    if args.json:
        _print_json({"allowed": decision.allowed, "category": decision.category,
                     "reason": decision.reason, "matched": list(decision.matched),
                     "policy_version": policy.version})
    elif decision.allowed:
        out.print(f"allowed (policy {escape(policy.version)})")
    else:
        out.print(f"refused: {escape(decision.category or '')}: {escape(decision.reason)} "
                  f"(policy {escape(policy.version)})", markup=False)
    return 0 if decision.allowed else 1


def _registry(args: argparse.Namespace) -> Any:
    from vidgen.safety.consent import ConsentRegistry

    return ConsentRegistry(args.registry)


def _cmd_consent_enrol(args: argparse.Namespace) -> int:
    import datetime as dt

    from vidgen.safety.consent import ConsentScope
    from vidgen.safety.likeness import enrol_from_files

    if args.protected == bool(args.tasks):
        raise ConfigurationError("give either --protected or --tasks (with --granted-by)")
    consent = None
    if args.tasks:
        if not args.granted_by:
            raise ConfigurationError("--tasks needs --granted-by (who granted the consent)")
        try:
            until = (dt.datetime.fromisoformat(args.until).astimezone(dt.UTC)
                     if args.until else None)
        except ValueError as exc:
            raise ConfigurationError(f"--until {args.until!r} is not an ISO 8601 date") from exc
        consent = ConsentScope(frozenset(t.strip() for t in args.tasks.split(",")), until,
                               args.granted_by)
    registry = _registry(args)
    try:
        enrol_from_files(registry, args.person_id, args.name, args.images, consent)
    finally:
        registry.close()
    kind = "protected person" if consent is None else "consenting person"
    out.print(f"enrolled {escape(args.person_id)} as a {kind} from {len(args.images)} image(s)")
    return 0


def _cmd_consent_revoke(args: argparse.Namespace) -> int:
    registry = _registry(args)
    try:
        (registry.forget if args.forget else registry.revoke)(args.person_id)
    finally:
        registry.close()
    out.print(f"{'forgot' if args.forget else 'revoked consent of'} {escape(args.person_id)}")
    return 0


def _cmd_consent_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    try:
        people = registry.people()
    finally:
        registry.close()
    rows = [{"person_id": p.person_id, "name": p.name, "protected": p.protected,
             "consent": None if p.consent is None else {
                 "tasks": sorted(p.consent.tasks), "granted_by": p.consent.granted_by,
                 "until": p.consent.until.isoformat() if p.consent.until else None},
             "revoked_at": p.revoked_at.isoformat() if p.revoked_at else None,
             "references": p.references} for p in people]
    if args.json:
        _print_json(rows)
        return 0
    table = Table("id", "name", "status", "tasks", "until", "references")
    for r in rows:
        c = r["consent"]
        status = ("protected" if r["protected"] else
                  "revoked" if r["revoked_at"] else "consenting")
        table.add_row(escape(r["person_id"]), escape(r["name"]), status,
                      ", ".join(c["tasks"]) if c else "", (c or {}).get("until") or "",
                      str(r["references"]))
    out.print(table)
    return 0


# --- train -----------------------------------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    from vidgen.training.train import (
        Hardware,
        TrainConfig,
        default_device,
        export,
        lora_recipe,
        train,
    )

    overrides = {}
    for item in args.override:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(f"--override {item!r}: expected FIELD=JSON")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"--override {item!r}: {value!r} is not JSON") from exc
    common = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
              "cache_clips": args.cache_clips, "seed": args.seed, "warmup": args.warmup}
    if args.lora:
        given = [flag for flag, value in (("--preset", args.preset),
                                          ("--override", overrides or None),
                                          ("--autoencoder", args.autoencoder),
                                          ("--conditioning", args.conditioning),
                                          ("--frame-stride", args.frame_stride))
                 if value is not None]
        if given:
            raise ConfigurationError(f"--lora takes {', '.join(given)} from the --init weights; "
                                     "leave them out")
        if not args.init:
            raise ConfigurationError("--lora needs --init: the base weights the LoRA adapts")
        config = lora_recipe(args.init, args.lora, lora_alpha=args.lora_alpha, **common)
    else:
        config = TrainConfig(architecture=args.backend, preset=args.preset or "tiny",
                             overrides=overrides,
                             autoencoder=args.autoencoder or "vae-tiny.safetensors",
                             init=args.init, conditioning=args.conditioning or "none",
                             frame_stride=1 if args.frame_stride is None else args.frame_stride,
                             **common)

    def log(record: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(record), flush=True)
        elif record.get("event") == "train":
            err.print(f"step {record['step']}  loss {record['loss']:.4f}  "
                      f"{record['steps_per_s']:.2f} steps/s", highlight=False)
        else:
            err.print(json.dumps(record), highlight=False)

    hardware = Hardware(device=default_device() if args.device == "auto" else args.device,
                        precision=args.precision, compile=args.compile, workers=args.workers,
                        fit_to_time=args.fit_to_time)
    step = train(config, args.out, max_minutes=args.max_minutes, threads=args.threads,
                 hardware=hardware, cache_only=args.cache_only, log=log)
    if args.cache_only:
        err.print(f"latent cache ready in {escape(str(args.out))}")
        return 0
    if args.export is not None:
        path = export(args.out, args.export)
        what = "LoRA" if args.lora else "weights"
        err.print(f"exported the EMA {what} at step {step} to {escape(str(path))}")
    return 0


# --- eval ------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    """``HxW`` (e.g. ``64x64``) for ``--size``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected HxW such as 64x64, got {text!r}")
    return int(match[1]), int(match[2])


def _cmd_eval(args: argparse.Namespace) -> int:
    from vidgen.backends.base import load_backend
    from vidgen.training.evaluate import evaluate_backend

    backend = load_backend(args.backend)
    height, width = args.size if args.size is not None else (None, None)
    show = not args.json and err.is_terminal
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=err, disable=not show, transient=True) as bar:
        task = bar.add_task(f"evaluating ({args.backend})", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = evaluate_backend(backend, split=args.split, n=args.limit, seed=args.seed,
                                  num_frames=args.frames, height=height, width=width,
                                  caption_set=args.captions, threads=args.threads,
                                  progress=progress)
    if args.out is not None:
        try:
            args.out.write_text(report.to_json() + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write the report to {args.out}: {exc}") from exc
    if args.json:
        _print_json(report.to_dict())
        return 0
    _print_eval(report)
    if args.out is not None:
        out.print(f"report written to {escape(str(args.out))}")
    return 0


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _print_eval(report: Any) -> None:
    table = Table("metric", "value", "n", "renderer", "goal", "met",
                  title=f"{report.backend}: {report.n} {report.split} captions "
                        f"({report.caption_set}), {report.num_frames}x{report.height}x"
                        f"{report.width} @ {report.fps:g} fps, seed {report.seed}")
    marks = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}
    for m in report.metrics:
        table.add_row(m.name, _fmt(m.value), str(m.count), _fmt(m.reference),
                      escape(m.goal or ""), marks[m.met])
    out.print(table)
    t = report.timing
    rss = "n/a" if t.peak_rss_mb is None else f"{t.peak_rss_mb:.0f} MB"
    out.print(f"{t.seconds_per_clip * 1000:.1f} ms/clip sampling, "
              f"{t.measure_seconds_per_clip * 1000:.1f} ms/clip measuring, "
              f"{t.total_seconds:.1f} s total, torch threads {t.torch_threads}, peak RSS {rss}",
              markup=False, highlight=False)


# --- parser and entry point ------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidgen", description="Provenance-first text-to-video: generate, sign, verify.")
    parser.add_argument("--version", action="version", version=f"vidgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate a signed MP4 from a prompt")
    g.add_argument("prompt")
    g.add_argument("-o", "--output", type=Path, default=None, help="output .mp4 path")
    g.add_argument("--backend", default=None, help="backend name (see `vidgen backends`)")
    g.add_argument("-O", "--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option for the backend, e.g. model=DIR (diffusers), lora=FILE or "
                        "step_cache=0.1 (dit); repeatable; JSON values are parsed")
    g.add_argument("--frames", type=int, default=None, help="number of frames")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--fps", type=float, default=None)
    g.add_argument("--crf", type=int, default=18, help="H.264 quality (0-51, lower is better)")
    g.add_argument("--keys", type=Path, default=None,
                   help="directory with dev keys (default: VIDGEN_SIGN_CERT/KEY or the "
                        "user data dir)")
    g.add_argument("--include-prompt", action="store_true",
                   help="write the prompt into the manifest (default: only its SHA-256)")
    g.add_argument("--watermark-method", default=None, metavar="NAME",
                   help="watermarking method (default: $VIDGEN_WATERMARK_METHOD or vidgen)")
    g.add_argument("--store", type=Path, default=None, metavar="PATH",
                   help="manifest store (default: $VIDGEN_STORE or the user data dir)")
    g.add_argument("--disclose", default=None, metavar="LANG",
                   help="draw a visible AI-generated label: en, de, fr or ko")
    g.add_argument("--disclose-position", default="bottom-right",
                   choices=["top-left", "top-right", "bottom-left", "bottom-right"])
    g.add_argument("--json", action="store_true", help="print a JSON summary")
    g.set_defaults(func=_cmd_generate)

    v = sub.add_parser("verify", help="verify C2PA provenance (and watermark) of files")
    v.add_argument("files", nargs="+", type=Path, metavar="FILE_OR_DIR",
                   help="files to verify; directories are walked for .mp4/.mov/.m4v files")
    v.add_argument("--json", action="store_true", help="print the JSON report")
    v.add_argument("--trust", type=Path, default=None,
                   help="PEM trust anchors (default: $VIDGEN_TRUST_ANCHORS)")
    v.add_argument("--key", type=Path, default=None, metavar="WMKEY",
                   help="watermark key file (default: $VIDGEN_WATERMARK_KEY or _FILE, else "
                        "the default keys dir's watermark.key if present)")
    v.add_argument("--watermark-method", default=None, metavar="NAME",
                   help="method to detect when the manifest names none (default: "
                        "$VIDGEN_WATERMARK_METHOD or vidgen)")
    v.add_argument("--store", type=Path, default=None, metavar="PATH",
                   help="manifest store to recover stripped manifests from (default: "
                        "$VIDGEN_STORE or the user data dir)")
    v.add_argument("--max-frames", type=int, default=64, metavar="N",
                   help="decode at most N frames, spread over the clip (default 64)")
    from vidgen.provenance.sweep import add_sweep_arguments

    add_sweep_arguments(v)
    v.set_defaults(func=_cmd_verify)

    k = sub.add_parser("keys", help="manage signing keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    ki = ksub.add_parser("init", help="create a development CA, an ES256 signer and a "
                                      "watermark key in DIR")
    ki.add_argument("directory", type=Path)
    ki.add_argument("--org", default="vidgen development", help="organization name")
    ki.add_argument("--force", action="store_true", help="replace existing keys")
    ki.set_defaults(func=_cmd_keys_init)

    b = sub.add_parser("backends", help="list registered backends and their capabilities")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd_backends)

    pol = sub.add_parser("policy", help="the prompt policy")
    polsub = pol.add_subparsers(dest="policy_command", required=True)
    pc = polsub.add_parser("check", help="decide one text under the policy (exit 1 if refused)")
    pc.add_argument("text")
    pc.add_argument("--kind", default="prompt",
                    choices=["prompt", "negative_prompt", "style", "edit_instruction"])
    pc.add_argument("--policy", type=Path, default=None, help="policy TOML (default: packaged)")
    pc.add_argument("--json", action="store_true")
    pc.set_defaults(func=_cmd_policy_check)

    c = sub.add_parser("consent", help="the likeness consent registry")
    csub = c.add_subparsers(dest="consent_command", required=True)
    registry_help = "registry file (default: $VIDGEN_CONSENT_DB or the user data dir)"
    ce = csub.add_parser("enrol", help="enrol a person from reference photos (one face each)")
    ce.add_argument("person_id")
    ce.add_argument("--name", required=True)
    ce.add_argument("--image", dest="images", type=Path, action="append", required=True)
    ce.add_argument("--protected", action="store_true",
                    help="no consent: this person's face is always refused")
    ce.add_argument("--tasks", default=None, help="comma-separated tasks consented to")
    ce.add_argument("--until", default=None, help="consent end (ISO 8601)")
    ce.add_argument("--granted-by", default=None)
    ce.add_argument("--registry", type=Path, default=None, help=registry_help)
    ce.set_defaults(func=_cmd_consent_enrol)
    cr = csub.add_parser("revoke", help="withdraw consent (the face is refused from now on)")
    cr.add_argument("person_id")
    cr.add_argument("--forget", action="store_true",
                    help="erase the person and their embeddings instead")
    cr.add_argument("--registry", type=Path, default=None, help=registry_help)
    cr.set_defaults(func=_cmd_consent_revoke)
    cl = csub.add_parser("list", help="everyone enrolled")
    cl.add_argument("--json", action="store_true")
    cl.add_argument("--registry", type=Path, default=None, help=registry_help)
    cl.set_defaults(func=_cmd_consent_list)
    from vidgen.store_commands import add_consent_maintenance, add_store_commands

    add_consent_maintenance(csub, registry_help)
    add_store_commands(sub)

    t = sub.add_parser("train", help="train a native backend on scene clips (resumable)")
    t.add_argument("--backend", default="dit", help="architecture: dit or stunet")
    t.add_argument("--preset", default=None, help="model size (default: tiny)")
    t.add_argument("--out", type=Path, required=True, help="run directory; resumed if present")
    t.add_argument("--steps", type=int, default=20_000)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--cache-clips", type=int, default=4096)
    t.add_argument("--warmup", type=int, default=250, help="learning-rate warmup steps")
    t.add_argument("--conditioning", default=None, choices=["none", "frames"],
                   help="frames: masked frame conditioning (known latent frames as input "
                        "channels), for the keyframe cascade's models")
    t.add_argument("--frame-stride", type=int, default=None,
                   help="train on every k-th latent frame (2: the cascade's keyframe model; "
                        "default 1)")
    t.add_argument("--init", default="",
                   help="start a fresh run from these weights (e.g. to fine-tune onto a new "
                        "autoencoder)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--autoencoder", default=None,
                   help="autoencoder weights (shipped name or path; default "
                        "vae-tiny.safetensors)")
    t.add_argument("--lora", type=int, default=0, metavar="RANK",
                   help="train only LoRA adapters of this rank on the frozen --init weights "
                        "(which also give the preset, overrides and autoencoder); --export "
                        "writes the LoRA file (DiTBackend(lora=FILE))")
    t.add_argument("--lora-alpha", type=float, default=0.0, metavar="ALPHA",
                   help="LoRA alpha: the update is scaled by alpha / rank (default: rank)")
    t.add_argument("--override", action="append", default=[], metavar="FIELD=JSON",
                   help="change a preset field, e.g. patch=[1,4,4]")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="stop cleanly after this long (rerun to resume)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    t.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16 autocasts the forward pass (for GPUs)")
    t.add_argument("--compile", action="store_true", help="torch.compile the denoiser")
    t.add_argument("--workers", type=int, default=0,
                   help="processes rendering the latent cache (default: in-process)")
    t.add_argument("--fit-to-time", action="store_true",
                   help="with --max-minutes: time the first steps, then set the step horizon "
                        "(and the learning-rate decay) to end at the deadline")
    t.add_argument("--cache-only", action="store_true",
                   help="build the run's latent cache and stop")
    t.add_argument("--export", type=Path, default=None,
                   help="write the EMA weights (fp16) here when done")
    t.add_argument("--json", action="store_true", help="log JSON lines to stdout")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="score a backend on held-out captions (colour, shape, "
                                    "motion, physics, stability)")
    e.add_argument("--backend", default=None, help="backend name (see `vidgen backends`)")
    e.add_argument("--json", action="store_true", help="print the full JSON report")
    e.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate N captions spread over the split (default: all)")
    e.add_argument("--split", default="heldout", choices=["heldout", "train"])
    e.add_argument("--captions", default="single", choices=["single", "space"],
                   help="single: one caption per (colour, shape, motion) combination; "
                        "space: the split's whole caption space (sizes, pairs, backgrounds, "
                        "pans)")
    e.add_argument("--frames", type=int, default=None, metavar="N",
                   help="frames per clip (default: the backend's)")
    e.add_argument("--size", type=_size, default=None, metavar="HxW",
                   help="clip size, e.g. 64x64 (default: the backend's)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch intra-op threads for the run (default: torch's); recorded")
    e.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="also write the JSON report to FILE")
    e.set_defaults(func=_cmd_eval)

    from vidgen.batch.cli import add_batch_parser

    add_batch_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if getattr(args, "backend", "x") is None:
        from vidgen.pipeline import DEFAULT_BACKEND

        args.backend = DEFAULT_BACKEND
    func: Callable[[argparse.Namespace], int] = args.func
    fail_code = 2 if args.command == "verify" else 1
    try:
        return func(args)
    except VidgenError as exc:
        err.print(f"vidgen: [{exc.stage}] {exc.message}", markup=False, highlight=False)
        return fail_code
    except KeyboardInterrupt:
        err.print("vidgen: cancelled", markup=False)
        return 130
    except Exception as exc:  # never a traceback for users; VIDGEN_DEBUG=1 shows it
        if os.environ.get("VIDGEN_DEBUG"):
            raise
        err.print(f"vidgen: internal error: {type(exc).__name__}: {exc}", markup=False,
                  highlight=False)
        return fail_code


if __name__ == "__main__":
    raise SystemExit(main())
