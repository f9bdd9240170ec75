"""Remote signers (KMS/HSM over the network) through the whole chain: timeouts, bounded
retries with backoff, permanent errors, and signatures that come back wrong."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

import vidgen
from vidgen import errors
from vidgen.pipeline import Pipeline
from vidgen.provenance import c2pa_inplace
from vidgen.provenance.callback_signing import backoff_delay, checked_signature
from vidgen.provenance.keys import CallbackSigner, DevKeys, local_key_callback
from vidgen.provenance.store import ManifestStore


class FakeKms:
    """An in-process stand-in for a remote signing service: scripted outcomes per call."""

    def __init__(self, dev_keys: DevKeys, script: list[Any] | None = None) -> None:
        self._sign = local_key_callback(dev_keys.signer_key.read_bytes())
        self.script = list(script or [])
        self.calls = 0
        self.release = threading.Event()  # ends a "hung" call when the test is done

    def __call__(self, data: bytes) -> Any:  # bytes, or garbage on purpose
        self.calls += 1
        step = self.script.pop(0) if self.script else "ok"
        if step == "ok":
            return self._sign(data)
        if step == "hang":
            self.release.wait(30)
            return self._sign(data)
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step(data)
        return step  # bytes: a garbage signature


@pytest.fixture
def kms(dev_keys: DevKeys) -> Iterator[FakeKms]:
    fake = FakeKms(dev_keys)
    yield fake
    fake.release.set()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _signer(kms: FakeKms, dev_keys: DevKeys, sleeps: list[float], **options: Any) -> CallbackSigner:
    return CallbackSigner(kms, dev_keys.signer_cert.read_bytes(), name="test-kms",
                          sleep=sleeps.append, jitter=lambda: 0.0, **options)


def _run(signer: CallbackSigner, tmp_path: Path) -> tuple[Path, ManifestStore, Callable[[], Any]]:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    store = ManifestStore(tmp_path / "manifests.sqlite3")
    pipe = Pipeline.from_backend("scene", signer=signer, store=store)

    def generate() -> Any:
        return pipe.generate("a red circle moving right", num_frames=4, height=32, width=32,
                             output=out_dir / "clip.mp4")

    return out_dir, store, generate


def _nothing_written(out_dir: Path, store: ManifestStore) -> None:
    assert sorted(p.name for p in out_dir.iterdir()) == []  # no output, no temporaries
    assert store.count() == 0


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "copy"])
def test_timeout_fails_closed(kms: FakeKms, dev_keys: DevKeys, sleeps: list[float],
                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              in_place: bool) -> None:
    if not in_place:
        monkeypatch.setattr(c2pa_inplace, "available", lambda: False)
    kms.script = ["hang", "hang"]
    signer = _signer(kms, dev_keys, sleeps, timeout=0.2, retries=1, backoff=0.5)
    out_dir, store, generate = _run(signer, tmp_path)
    start = time.monotonic()
    with pytest.raises(errors.SignerUnavailable) as info:
        generate()
    in_sign = time.monotonic() - start
    assert in_sign < 10  # the hung calls (30 s each) did not hold the job
    err = info.value
    assert isinstance(err, errors.SigningError) and err.stage == "sign"
    assert err.signer == "test-kms" and err.attempts == 2 and kms.calls == 2
    assert "'test-kms'" in err.message and "2 attempt(s)" in err.message
    assert "timed out" in err.message and "0.2 s" in err.message
    assert isinstance(err.__cause__, TimeoutError)
    assert sleeps == [0.25]  # one backoff before the one retry (jitter 0 -> half the base)
    _nothing_written(out_dir, store)


def test_timeout_bounds_wall_time_of_one_call(kms: FakeKms, dev_keys: DevKeys,
                                              sleeps: list[float]) -> None:
    from vidgen.provenance.callback_signing import callback_signature

    kms.script = ["hang"]
    signer = _signer(kms, dev_keys, sleeps, timeout=0.3, retries=0)
    start = time.monotonic()
    with pytest.raises(errors.SignerUnavailable, match="1 attempt"):
        callback_signature(signer, b"to be signed")
    assert time.monotonic() - start < 2.0


def test_succeeds_after_two_transient_failures(kms: FakeKms, dev_keys: DevKeys,
                                               sleeps: list[float], tmp_path: Path,
                                               anchors: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    kms.script = [errors.TransientSignerError("503 Service Unavailable"),
                  ConnectionResetError("connection reset by peer"), "ok"]
    signer = _signer(kms, dev_keys, sleeps, timeout=5, retries=2, backoff=0.5)
    out_dir, store, generate = _run(signer, tmp_path)
    with caplog.at_level("WARNING", logger="vidgen.provenance.callback_signing"):
        res = generate()
    assert kms.calls == 3
    assert sleeps == [0.25, 0.5]  # exponential: 0.5 * 2**k, jitter 0 -> half
    assert res.path.is_file() and store.count() == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["clip.mp4"]
    assert vidgen.verify(res.path, trust=anchors, store=store).verdict == "confirmed"
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 2 and all("test-kms" in m for m in retries)


def test_retries_exhausted_by_transient_errors(kms: FakeKms, dev_keys: DevKeys,
                                               sleeps: list[float], tmp_path: Path) -> None:
    kms.script = [errors.TransientSignerError("throttled")] * 3
    signer = _signer(kms, dev_keys, sleeps, retries=2)
    out_dir, store, generate = _run(signer, tmp_path)
    with pytest.raises(errors.SignerUnavailable, match="3 attempt") as info:
        generate()
    assert info.value.attempts == 3 and kms.calls == 3 and len(sleeps) == 2
    assert "throttled" in info.value.message
    _nothing_written(out_dir, store)


def test_permanent_error_is_not_retried(kms: FakeKms, dev_keys: DevKeys, sleeps: list[float],
                                        tmp_path: Path) -> None:
    denied = PermissionError("AccessDenied: kms:Sign not allowed for this role")
    kms.script = [denied]
    signer = _signer(kms, dev_keys, sleeps, retries=3)
    out_dir, store, generate = _run(signer, tmp_path)
    with pytest.raises(errors.SigningError, match="permanent error") as info:
        generate()
    assert not isinstance(info.value, errors.SignerUnavailable)
    assert "AccessDenied" in info.value.message and "'test-kms'" in info.value.message
    assert info.value.__cause__ is denied
    assert kms.calls == 1 and sleeps == []
    _nothing_written(out_dir, store)


def _other_key_signature(data: bytes) -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).sign(data, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("garbage", [
    b"\x01" * 10,                               # wrong length, not DER
    b"\x00" * 64,                               # right length, r = s = 0
    bytes(range(64)),                           # right length, does not verify
    b"\x30\x44\x02\x20" + b"\x7f" * 32 + b"\x02\x20",  # truncated DER
    _other_key_signature,                        # valid ECDSA, wrong key
    "not bytes",                                 # wrong type
], ids=["short", "zeros", "random", "truncated-der", "wrong-key", "str"])
def test_malformed_signature_refused(kms: FakeKms, dev_keys: DevKeys, sleeps: list[float],
                                     tmp_path: Path, garbage: Any) -> None:
    kms.script = [garbage]
    signer = _signer(kms, dev_keys, sleeps, retries=2)
    out_dir, store, generate = _run(signer, tmp_path)
    with pytest.raises(errors.SigningError, match="unusable signature"):
        generate()
    assert kms.calls == 1 and sleeps == []  # refused at once, never retried
    _nothing_written(out_dir, store)


def test_checked_signature_accepts_der_and_raw(dev_keys: DevKeys) -> None:
    key = dev_keys.signer_key.read_bytes()
    signer = CallbackSigner(local_key_callback(key), dev_keys.signer_cert.read_bytes())
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(key, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    der = private.sign(b"payload", ec.ECDSA(hashes.SHA256()))
    raw = checked_signature(signer, b"payload", der)
    assert len(raw) == 64
    assert checked_signature(signer, b"payload", raw) == raw
    with pytest.raises(errors.SigningError, match="does not verify"):
        checked_signature(signer, b"other payload", raw)
    es384 = CallbackSigner(signer.sign, signer.cert_chain_pem, alg="es384")
    with pytest.raises(errors.SigningError, match="does not match the certificate"):
        checked_signature(es384, b"payload", raw)


def test_backoff_is_exponential_capped_and_jittered(dev_keys: DevKeys) -> None:
    cert = dev_keys.signer_cert.read_bytes()
    low = CallbackSigner(bytes, cert, backoff=1.0, max_backoff=3.0, jitter=lambda: 0.0)
    high = CallbackSigner(bytes, cert, backoff=1.0, max_backoff=3.0, jitter=lambda: 0.999)
    assert [backoff_delay(low, k) for k in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    assert [round(backoff_delay(high, k), 2) for k in (1, 2, 3)] == [1.0, 2.0, 3.0]
    wild = CallbackSigner(bytes, cert, jitter=lambda: 7.0)  # clamped to [0, 1]
    assert backoff_delay(wild, 1) == pytest.approx(0.5)


@pytest.mark.parametrize("options", [{"timeout": 0}, {"timeout": -1}, {"timeout": True},
                                     {"timeout": float("inf")}, {"retries": -1},
                                     {"retries": 11}, {"retries": 1.5}, {"backoff": -0.1},
                                     {"max_backoff": float("nan")}])
def test_bad_options_are_configuration_errors(dev_keys: DevKeys,
                                              options: dict[str, Any]) -> None:
    with pytest.raises(errors.ConfigurationError):
        CallbackSigner(bytes, dev_keys.signer_cert.read_bytes(), **options)


def test_no_timeout_calls_inline(dev_keys: DevKeys, sleeps: list[float]) -> None:
    from vidgen.provenance.callback_signing import callback_signature

    seen: list[str] = []
    inner = local_key_callback(dev_keys.signer_key.read_bytes())

    def thread_bound(data: bytes) -> bytes:  # e.g. a PKCS#11 session tied to its thread
        seen.append(threading.current_thread().name)
        return inner(data)

    signer = CallbackSigner(thread_bound, dev_keys.signer_cert.read_bytes(), timeout=None)
    assert len(callback_signature(signer, b"x")) == 64
    assert seen == [threading.current_thread().name]
