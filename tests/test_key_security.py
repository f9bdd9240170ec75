"""Key custody: insecure key files refused on every load path, keys and key directories
created private, no secret (private key, its numbers, the watermark key) in any log record
or exception, prompts only as hashes in logs, and what output paths may be."""

from __future__ import annotations

import logging
import os
import stat
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from vidgen import errors
from vidgen.cli import main
from vidgen.errors import KeyMaterialError, VidgenError
from vidgen.pipeline import Pipeline
from vidgen.provenance import keys
from vidgen.provenance.keys import CallbackSigner, DevKeys, local_key_callback
from vidgen.provenance.watermark import key_from_env, new_key, read_key_file, write_key_file
from vidgen.safety.prompt import load_policy

from .conftest import GradientBackend

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
INSECURE = [0o640, 0o604, 0o620, 0o602, 0o660, 0o644]


@pytest.fixture
def fresh_keys(tmp_path: Path) -> DevKeys:
    return keys.init_dev_keys(tmp_path / "keys")


# --- insecure key files are refused on every load path ----------------------------------


def _load_paths(k: DevKeys, monkeypatch: pytest.MonkeyPatch
                ) -> dict[str, Callable[[], object]]:
    def env_signer() -> object:
        monkeypatch.setenv(keys.ENV_SIGN_CERT, str(k.signer_cert))
        monkeypatch.setenv(keys.ENV_SIGN_KEY, str(k.signer_key))
        try:
            return keys.default_signer()
        finally:
            monkeypatch.delenv(keys.ENV_SIGN_CERT)
            monkeypatch.delenv(keys.ENV_SIGN_KEY)

    return {
        "PemSigner.from_files": lambda: keys.PemSigner.from_files(k.signer_cert, k.signer_key),
        "PemSigner.from_env": env_signer,
        "DevKeys.signer": k.signer,
        "default_signer(keys_dir)": lambda: keys.default_signer(k.directory),
        "Pipeline(keys_dir=)": lambda: Pipeline(GradientBackend(), keys_dir=k.directory),
    }


@posix_only
@pytest.mark.parametrize("mode", INSECURE, ids=oct)
def test_signing_key_refused_on_every_load_path(fresh_keys: DevKeys, mode: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_keys.signer_key.chmod(mode)
    for name, load in _load_paths(fresh_keys, monkeypatch).items():
        with pytest.raises(KeyMaterialError, match="chmod 600") as info:
            load()
        assert str(fresh_keys.signer_key) in info.value.message, name
    fresh_keys.signer_key.chmod(0o600)
    for load in _load_paths(fresh_keys, monkeypatch).values():
        load()  # fine again once private


@posix_only
@pytest.mark.parametrize("mode", INSECURE, ids=oct)
def test_watermark_key_refused_on_every_load_path(fresh_keys: DevKeys, mode: int,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    path = fresh_keys.watermark_key
    path.chmod(mode)
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY", raising=False)
    monkeypatch.setenv("VIDGEN_KEYS_DIR", str(fresh_keys.directory))
    loads: dict[str, Callable[[], object]] = {
        "read_key_file": lambda: read_key_file(path),
        "default_watermark_key(keys_dir)": lambda: keys.default_watermark_key(
            fresh_keys.directory),
        "existing_watermark_key": keys.existing_watermark_key,
        "default_watermark_key()": keys.default_watermark_key,
        "Pipeline(keys_dir=)": lambda: Pipeline(GradientBackend(), signer=fresh_keys.signer(),
                                                keys_dir=fresh_keys.directory),
    }
    for load in loads.values():
        with pytest.raises(KeyMaterialError, match="chmod 600"):
            load()
    monkeypatch.setenv("VIDGEN_WATERMARK_KEY_FILE", str(path))
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        key_from_env()


@posix_only
def test_cli_verify_refuses_a_readable_watermark_key(fresh_keys: DevKeys, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    fresh_keys.watermark_key.chmod(0o644)
    clip = tmp_path / "any.mp4"
    clip.write_bytes(b"\0" * 64)
    assert main(["verify", str(clip), "--key", str(fresh_keys.watermark_key)]) == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err and "Traceback" not in err


# --- keys are created private ---------------------------------------------------------------


@posix_only
def test_keys_written_0600_in_a_0700_directory_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)  # the most permissive umask: modes must not depend on it
    try:
        k = keys.init_dev_keys(tmp_path / "new" / "keys")
        wm_dir = tmp_path / "wm-only"
        keys.default_watermark_key(wm_dir)
        write_key_file(tmp_path / "explicit.key")
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(k.directory) == 0o700
    assert mode(k.signer_key) == mode(k.ca_key) == mode(k.watermark_key) == 0o600
    assert mode(k.signer_cert) == mode(k.ca_cert) == 0o644  # certificates are public
    assert mode(wm_dir) == 0o700 and mode(wm_dir / keys.WATERMARK_KEY) == 0o600
    assert mode(tmp_path / "explicit.key") == 0o600


# --- no secret in logs or exceptions --------------------------------------------------------


class Evidence:
    """Every log record and every exception seen during a test, as text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add_exception(self, exc: BaseException) -> None:
        self.texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        if isinstance(exc, VidgenError):
            self.texts.append(exc.message)

    def expect(self, kind: type[BaseException], call: Callable[[], object]) -> BaseException:
        with pytest.raises(kind) as info:
            call()
        self.add_exception(info.value)
        return info.value

    def leaks(self, secrets: dict[str, str]) -> list[str]:
        return [name for name, secret in secrets.items()
                if any(secret in text for text in self.texts)]


class _Collect(logging.Handler):
    def __init__(self, sink: Evidence) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.texts += [record.getMessage(), repr(record.args), repr(record.__dict__)]
        if record.exc_info and record.exc_info[1] is not None:
            self.sink.add_exception(record.exc_info[1])


@pytest.fixture
def evidence() -> Iterator[Evidence]:
    sink = Evidence()
    handler = _Collect(sink)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("vidgen", "c2pa", "vidgen.safety.audit")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    try:
        yield sink
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _secrets(k: DevKeys, watermark_key: bytes) -> dict[str, str]:
    out: dict[str, str] = {"watermark key hex": watermark_key.hex(),
                           "watermark key HEX": watermark_key.hex().upper()}
    for label, path in (("signer", k.signer_key), ("ca", k.ca_key)):
        pem = path.read_bytes()
        key = load_pem_private_key(pem, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        d = key.private_numbers().private_value
        body = [line for line in pem.decode().splitlines() if not line.startswith("-----")]
        out.update({f"{label} PEM line {i}": line for i, line in enumerate(body)})
        out[f"{label} private value"] = str(d)
        out[f"{label} private value hex"] = f"{d:x}"
    out["PEM marker"] = "PRIVATE KEY"
    return out


def test_no_secret_in_logs_or_exceptions(tmp_path: Path, evidence: Evidence,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    key_dir = tmp_path / "keys"  # created on first use: the warning path is logged
    wm_key = new_key()
    pipe = Pipeline(GradientBackend(), keys_dir=key_dir, watermark_key=wm_key,
                    watermark_method="vidgen", store=tmp_path / "m.sqlite3")
    k = DevKeys.at(key_dir)
    out = tmp_path / "out"
    out.mkdir()
    res = pipe.generate("a calm lake", num_frames=4, height=64, width=64,
                        output=out / "ok.mp4")
    assert res.path.is_file()
    evidence.texts += [repr(pipe.signer), repr(pipe.watermarker), repr(pipe.store),
                       repr(res), str(res.manifest)]

    # failing signers: permanent error, outage, garbage signature, and a broken callback
    cert = k.signer_cert.read_bytes()
    good = local_key_callback(k.signer_key.read_bytes())
    failing: list[tuple[type[BaseException], Callable[[bytes], Any], dict[str, Any]]] = [
        (errors.SigningError, lambda d: (_ for _ in ()).throw(PermissionError("denied")), {}),
        (errors.SignerUnavailable,
         lambda d: (_ for _ in ()).throw(errors.TransientSignerError("503")), {"retries": 1}),
        (errors.SigningError, lambda d: good(d)[:-1], {}),
        (errors.SigningError, lambda d: b"garbage", {}),
    ]
    for kind, callback, options in failing:
        signer = CallbackSigner(callback, cert, sleep=lambda s: None, **options)
        failing_pipe = Pipeline(GradientBackend(), signer=signer, watermark_key=wm_key,
                                store=tmp_path / "m.sqlite3")
        evidence.expect(kind, lambda p=failing_pipe: p.generate(  # type: ignore[misc]
            "a calm lake", num_frames=4, output=out / "bad.mp4"))
    assert sorted(p.name for p in out.iterdir()) == ["ok.mp4"]

    # key material given where a path belongs must not be echoed back
    pem = k.signer_key.read_text()
    monkeypatch.setenv(keys.ENV_SIGN_CERT, str(k.signer_cert))
    monkeypatch.setenv(keys.ENV_SIGN_KEY, pem)
    evidence.expect(KeyMaterialError, keys.default_signer)
    monkeypatch.setenv(keys.ENV_SIGN_KEY, pem.replace("\n", ""))
    evidence.expect(KeyMaterialError, keys.default_signer)
    monkeypatch.delenv(keys.ENV_SIGN_CERT)
    monkeypatch.delenv(keys.ENV_SIGN_KEY)
    evidence.expect(KeyMaterialError, lambda: keys.PemSigner.from_files(k.signer_cert, pem))
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY", raising=False)
    monkeypatch.setenv("VIDGEN_WATERMARK_KEY_FILE", wm_key.hex())
    evidence.expect(KeyMaterialError, key_from_env)
    monkeypatch.delenv("VIDGEN_WATERMARK_KEY_FILE")
    # a private key file that is not a key, and one that is readable by others
    broken = tmp_path / "broken.key"
    broken.write_text(pem[: len(pem) // 2])
    broken.chmod(0o600)
    evidence.expect(KeyMaterialError, lambda: keys.PemSigner.from_files(k.signer_cert, broken))
    k.signer_key.chmod(0o644)
    evidence.expect(KeyMaterialError, k.signer)
    k.signer_key.chmod(0o600)

    assert len(evidence.texts) > 30
    assert evidence.leaks(_secrets(k, wm_key)) == []


# --- prompts are hashed in logs ------------------------------------------------------------


PROMPT = "a portrait of my neighbour Mrs Quillfeather at 12 Larkspur Lane"


def _logged(evidence: Evidence) -> str:
    return "\n".join(evidence.texts)


def test_prompts_are_hashed_in_logs(dev_keys: DevKeys, tmp_path: Path,
                                    evidence: Evidence) -> None:
    import hashlib

    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=tmp_path / "m.sqlite3")
    pipe.generate(PROMPT, num_frames=4, negative_prompt="Quillfeather blur",
                  output=tmp_path / "o.mp4")
    refused = "a deepfake of Mrs Quillfeather"
    with pytest.raises(errors.PolicyViolation):
        pipe.generate(refused + " face swap of a politician", output=tmp_path / "r.mp4")
    text = _logged(evidence)
    assert "Quillfeather" not in text and "Larkspur" not in text
    assert hashlib.sha256(PROMPT.encode()).hexdigest() in text  # the audit record's hash


def test_prompts_logged_only_when_the_policy_says_so(dev_keys: DevKeys, tmp_path: Path,
                                                     evidence: Evidence) -> None:
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=tmp_path / "m.sqlite3",
                    policy=load_policy(log_prompts=True))
    pipe.generate(PROMPT, num_frames=4, output=tmp_path / "o.mp4")
    assert PROMPT in _logged(evidence)


# --- output paths -----------------------------------------------------------------------------


def test_relative_output_outside_the_working_directory_is_the_callers_choice(
        dev_keys: DevKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library caller names its own output path, ``..`` included (the batch runner, which
    takes names from job files, only accepts safe stems). Temporaries stay beside it."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=tmp_path / "m.sqlite3")
    res = pipe.generate("x", num_frames=4, output="../up.mp4")
    assert res.path == tmp_path / "up.mp4" and res.path.is_file()
    assert list(work.iterdir()) == []


def test_output_symlink_is_replaced_not_written_through(dev_keys: DevKeys,
                                                        tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("do not overwrite")
    link = tmp_path / "o.mp4"
    link.symlink_to(victim)
    pipe = Pipeline(GradientBackend(), signer=dev_keys.signer(), store=tmp_path / "m.sqlite3")
    pipe.generate("x", num_frames=4, output=link)
    assert victim.read_text() == "do not overwrite"
    assert not link.is_symlink() and link.stat().st_size > 1000
