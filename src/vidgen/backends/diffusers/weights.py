"""Finding weights on this machine: a local directory or the local Hugging Face cache.

Nothing here touches the network or imports diffusers: the cache layout
(``models--ORG--NAME/refs/main`` -> ``snapshots/COMMIT/``) is read directly, so
the backend can say what it would load, and which version, before loading it.

The version recorded in every manifest identifies the weights:
- from the cache, the commit the snapshot came from;
- from a directory made by ``huggingface-cli download --local-dir``, the commit
  in its ``.cache/huggingface/download`` metadata;
- otherwise a SHA-256 over the JSON configs and, for each weight file, its name,
  size and first and last MiB (hashing many GB at every start would be slow; a
  fine-tune of the same shapes still differs in those bytes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import attrs

from vidgen.errors import ConfigurationError

MODEL_INDEX = "model_index.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf"}
_SAMPLE = 1 << 20


@attrs.frozen
class LocalWeights:
    """A diffusers directory on this machine and what identifies it."""

    path: Path  # the directory holding model_index.json (or config.json for one model)
    model_id: str  # the repo id, or the directory's name
    version: str
    config: dict[str, Any]  # model_index.json (or config.json)

    @property
    def class_name(self) -> str:
        return str(self.config.get("_class_name", ""))


def hub_cache() -> Path:
    """The Hugging Face hub cache directory, as huggingface_hub resolves it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def is_repo_id(model: str) -> bool:
    """``ORG/NAME`` that is not an existing path."""
    return bool(_REPO_ID.match(model)) and not Path(model).expanduser().exists()


def locate(model: str, marker: str = MODEL_INDEX) -> LocalWeights | None:
    """The local weights for ``model`` (a directory, or a repo id in the HF cache), or None.

    A directory that exists but lacks ``marker`` is a ConfigurationError: it is
    not something a missing download would fix.
    """
    if is_repo_id(model):
        snapshot = _cached_snapshot(model, marker)
        if snapshot is None:
            return None
        return LocalWeights(snapshot, model, snapshot.name, _read_json(snapshot / marker))
    path = Path(model).expanduser()
    if not path.exists():
        return None
    if not (path / marker).is_file():
        raise ConfigurationError(
            f"{path} has no {marker}: it is not a diffusers "
            f"{'pipeline' if marker == MODEL_INDEX else 'model'} directory")
    return LocalWeights(path.resolve(), path.resolve().name, _directory_version(path),
                        _read_json(path / marker))


def _cached_snapshot(repo: str, marker: str) -> Path | None:
    repo_dir = hub_cache() / ("models--" + repo.replace("/", "--"))
    ref = repo_dir / "refs" / "main"
    candidates: list[Path] = []
    if ref.is_file():
        candidates.append(repo_dir / "snapshots" / ref.read_text().strip())
    snapshots = repo_dir / "snapshots"
    if snapshots.is_dir():  # a cache copied without refs: newest snapshot first
        candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((c for c in candidates if (c / marker).is_file()), None)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} is not a JSON object")
    return data


def _directory_version(path: Path) -> str:
    for marker in (MODEL_INDEX, "config.json"):
        meta = path / ".cache" / "huggingface" / "download" / f"{marker}.metadata"
        if meta.is_file():
            commit = meta.read_text(encoding="utf-8").split("\n", 1)[0].strip()
            if re.fullmatch(r"[0-9a-f]{40}", commit):
                return commit
    return "sha256:" + content_digest(path)


def content_digest(path: Path) -> str:
    """SHA-256 (16 hex digits) over a directory's configs and weight-file samples."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts):
        rel = file.relative_to(path).as_posix()
        if file.suffix in _WEIGHT_SUFFIXES:
            size = file.stat().st_size
            digest.update(f"{rel}\0{size}\0".encode())
            with file.open("rb") as fh:
                digest.update(fh.read(_SAMPLE))
                if size > 2 * _SAMPLE:
                    fh.seek(size - _SAMPLE)
                    digest.update(fh.read(_SAMPLE))
        elif file.suffix in {".json", ".txt", ".model"}:  # configs, vocabularies
            digest.update(f"{rel}\0".encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """SHA-256 (16 hex digits) of a whole file (a LoRA: small enough to hash)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def missing_message(model: str, label: str, components: tuple[str, ...], repo: str,
                    marker: str = MODEL_INDEX) -> str:
    """What to tell a user whose weights are not here: where we looked and how to get them."""
    where = (f"the Hugging Face cache {hub_cache()} has no snapshot of {model!r}"
             if is_repo_id(model) else f"{Path(model).expanduser()} does not exist")
    source = model if is_repo_id(model) else repo
    layout = (f"{marker} plus one subfolder per component ({', '.join(components)}/)"
              if marker == MODEL_INDEX else f"{marker} and the weights file")
    return (f"no {label} weights: {where}. vidgen loads only local files (no downloads at run "
            f"time). Expected a diffusers directory: {layout}. Get one on a machine with "
            f"network: `huggingface-cli download {source} --local-dir DIR`, copy DIR here and "
            f"pass model=DIR (or fill the cache: run the same command without --local-dir "
            f"and copy {hub_cache()})")
