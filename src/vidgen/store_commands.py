"""``vidgen store check|recover`` and ``vidgen consent check|recover``: checking and
recovering the two SQLite files vidgen keeps (the manifest store, the consent registry).

Exit codes follow the rest of the CLI: 0 when the file is healthy or was recovered,
1 when it is damaged (``check``) or cannot be recovered; the message names the file
and what to do.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_store_commands(sub: Any) -> None:
    """Add ``vidgen store`` (check, recover) to the top-level subparsers."""
    s = sub.add_parser("store", help="check or recover the manifest store")
    ssub = s.add_subparsers(dest="store_command", required=True)
    path_help = "manifest store file (default: $VIDGEN_STORE or the user data dir)"
    sc = ssub.add_parser("check", help="run SQLite's full integrity check (exit 1 if damaged)")
    sc.add_argument("path", nargs="?", type=Path, default=None, help=path_help)
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=_cmd_store_check)
    sr = ssub.add_parser(
        "recover", help="move a damaged store aside (PATH.corrupt-<time>), start a new one "
                        "and copy over every readable record")
    sr.add_argument("path", nargs="?", type=Path, default=None, help=path_help)
    sr.add_argument("--rebuild-from", type=Path, default=None, metavar="DIR",
                    help="also record again the signed vidgen outputs found under DIR "
                         "(their C2PA manifests and watermark ids)")
    sr.add_argument("--trust", type=Path, default=None, metavar="ANCHORS.pem",
                    help="with --rebuild-from: only files whose signer chains to these anchors")
    sr.add_argument("--force", action="store_true",
                    help="start a new store even if the current one passes the check")
    sr.add_argument("--json", action="store_true")
    sr.set_defaults(func=_cmd_store_recover)


def add_consent_maintenance(csub: Any, registry_help: str) -> None:
    """Add ``vidgen consent check`` and ``vidgen consent recover``."""
    cc = csub.add_parser("check", help="full integrity check of the registry (exit 1 if damaged)")
    cc.add_argument("--registry", type=Path, default=None, help=registry_help)
    cc.add_argument("--json", action="store_true")
    cc.set_defaults(func=_cmd_consent_check)
    cr = csub.add_parser(
        "recover", help="move a damaged registry aside (PATH.corrupt-<time>) and keep every "
                        "person still readable; re-enrol the rest")
    cr.add_argument("--registry", type=Path, default=None, help=registry_help)
    cr.add_argument("--force", action="store_true",
                    help="start a new registry even if the current one passes the check")
    cr.add_argument("--json", action="store_true")
    cr.set_defaults(func=_cmd_consent_recover)


def _say(args: argparse.Namespace, data: dict[str, Any], lines: list[str]) -> None:
    from vidgen.cli import _print_json, out

    if args.json:
        _print_json(data)
    else:
        for line in lines:
            out.print(line, markup=False, highlight=False)


def _cmd_store_check(args: argparse.Namespace) -> int:
    from vidgen.provenance.store import ManifestStore, check_store

    path = ManifestStore(args.path).path
    count = check_store(path)
    note = "ok" if path.exists() else "no file yet (nothing recorded), ok"
    _say(args, {"path": str(path), "ok": True, "exists": path.exists(), "records": count},
         [f"manifest store {path}: {note} ({count} records)"])
    return 0


def _cmd_store_recover(args: argparse.Namespace) -> int:
    from vidgen.provenance.keys import load_trust_anchors
    from vidgen.provenance.store import ManifestStore, recover_store

    anchors = load_trust_anchors(args.trust) if args.trust is not None else None
    path = ManifestStore(args.path).path
    result = recover_store(path, rebuild_from=args.rebuild_from, trust_anchors=anchors,
                           force=args.force)
    lines = [f"manifest store {result.path}: new store with {result.salvaged} salvaged and "
             f"{result.rebuilt} rebuilt records"]
    if result.moved_to is not None:
        lines.append(f"  the damaged file was moved to {result.moved_to} (keep it until you "
                     "are sure nothing more is needed from it)")
    lines += [f"  skipped {s}" for s in result.skipped]
    _say(args, result.to_dict(), lines)
    return 0


def _cmd_consent_check(args: argparse.Namespace) -> int:
    from vidgen.safety.consent import check_registry, default_registry_path

    path = args.registry if args.registry is not None else default_registry_path()
    people = check_registry(path)
    _say(args, {"path": str(path), "ok": True, "people": people},
         [f"consent registry {path}: ok ({people} people)"])
    return 0


def _cmd_consent_recover(args: argparse.Namespace) -> int:
    from vidgen.safety.consent import recover_registry

    result = recover_registry(args.registry, force=args.force)
    lines = [f"consent registry {result.path}: new registry with {result.people} people and "
             f"{result.references} reference embeddings kept"]
    if result.moved_to is not None:
        lines.append(f"  the damaged file was moved to {result.moved_to}; it still holds "
                     "face embeddings: delete it securely once you no longer need it")
    lines += [f"  dropped {d}" for d in result.dropped]
    if result.dropped:
        lines.append("  re-enrol anyone missing (`vidgen consent list`): a protected person "
                     "who was lost is not refused until enrolled again")
    _say(args, result.to_dict(), lines)
    return 0


__all__ = ["add_consent_maintenance", "add_store_commands"]
