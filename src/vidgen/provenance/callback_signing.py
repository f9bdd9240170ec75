"""Calling a ``CallbackSigner`` (KMS, HSM, remote service) safely from inside C2PA signing.

The C2PA library calls the signer synchronously while it builds the manifest.
``callback_signature`` is what it calls:

- each attempt runs the user's callback in a daemon worker thread and waits at
  most ``signer.timeout`` seconds for it, so a hung network call cannot hold the
  job (the abandoned call's late answer is discarded);
- timeouts, ``TimeoutError``, ``ConnectionError`` and
  ``vidgen.errors.TransientSignerError`` are retried up to ``signer.retries``
  times with exponential backoff and jitter; any other exception is permanent
  and fails at once, as does an invalid signature;
- the signature is converted to the COSE form (raw ``r || s`` for ECDSA) and
  verified against the leaf certificate's public key before it is handed back,
  so a truncated, garbled or wrong-key signature is never embedded.

Every failure is a ``SigningError`` naming the signer (``SignerUnavailable``
with the number of attempts for an outage); the pipeline then removes every
file the job made. Nothing here logs or raises the data being signed.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from vidgen.errors import SignerUnavailable, SigningError, TransientSignerError
from vidgen.provenance.keys import (
    _CURVE_ALG,
    _EC_SIZES,
    CallbackSigner,
    der_to_raw_ecdsa,
    load_certificates,
)

log = logging.getLogger(__name__)

RETRYABLE: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError,
                                              TransientSignerError)
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "es256": hashes.SHA256, "es384": hashes.SHA384, "es512": hashes.SHA512,
    "ps256": hashes.SHA256, "ps384": hashes.SHA384, "ps512": hashes.SHA512,
}
_MAX_DETAIL = 300


class SignerTimeout(TimeoutError):
    """One attempt did not answer within the signer's timeout."""


def backoff_delay(signer: CallbackSigner, retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (1-based): ``backoff * 2**(retry-1)``,
    capped at ``max_backoff``, times a jitter factor in [0.5, 1)."""
    base = min(signer.max_backoff, signer.backoff * 2.0 ** (retry - 1))
    jitter = min(max(float(signer.jitter()), 0.0), 1.0)
    return base * (0.5 + 0.5 * jitter)


def callback_signature(signer: CallbackSigner, data: bytes) -> bytes:
    """Sign ``data`` through ``signer`` with its timeout and retries; return the checked
    COSE signature. Raises ``SignerUnavailable`` after an outage, ``SigningError`` for a
    permanent failure or an invalid signature."""
    name = signer.display_name
    attempts = signer.retries + 1
    failures: list[str] = []
    last: BaseException | None = None
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            signer.sleep(backoff_delay(signer, attempt - 1))
        started = time.monotonic()
        try:
            raw = _call(signer.sign, data, signer.timeout)
        except RETRYABLE as exc:
            last = exc
            failures.append(f"attempt {attempt}: {_describe(exc)}")
            log.warning("signer %r: attempt %d of %d failed after %.2f s (%s)%s", name,
                        attempt, attempts, time.monotonic() - started, _describe(exc),
                        "; retrying" if attempt < attempts else "")
            continue
        except Exception as exc:
            raise SigningError(
                f"signer {name!r} failed on attempt {attempt} of {attempts} with a permanent "
                f"error (not retried): {_describe(exc)}") from exc
        return checked_signature(signer, data, raw, name)
    limit = f"{signer.timeout:g} s per attempt" if signer.timeout is not None else "no timeout"
    raise SignerUnavailable(
        f"signer {name!r} is unavailable: {attempts} attempt(s) failed ({limit}; "
        f"{'; '.join(failures)}); nothing was signed and no file was written",
        signer=name, attempts=attempts) from last


def _call(sign: Callable[[bytes], bytes], data: bytes, timeout: float | None) -> Any:
    """``sign(data)``, abandoned after ``timeout`` seconds (inline when None)."""
    if timeout is None:
        return sign(data)
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = sign(data)
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="vidgen-signer-call", daemon=True).start()
    if not done.wait(timeout):
        raise SignerTimeout(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > _MAX_DETAIL:
        text = text[:_MAX_DETAIL] + "..."
    if isinstance(exc, SignerTimeout):
        return f"timed out ({text})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@functools.lru_cache(maxsize=32)
def _leaf_public_key(cert_chain_pem: bytes) -> Any:
    return load_certificates(cert_chain_pem, "the signer's certificate chain")[0].public_key()


def checked_signature(signer: CallbackSigner, data: bytes, signature: object,
                      name: str | None = None) -> bytes:
    """The COSE form of ``signature`` if it verifies over ``data`` with the leaf
    certificate's public key; ``SigningError`` otherwise."""
    name = name or signer.display_name

    def refuse(why: str) -> SigningError:
        return SigningError(f"signer {name!r} returned an unusable signature ({why}); "
                            "refused: nothing was signed with it and no file was written")

    if not isinstance(signature, bytes | bytearray | memoryview):
        raise refuse(f"a {type(signature).__name__}, not bytes")
    sig = bytes(signature)
    if not sig:
        raise refuse("empty")
    public = _leaf_public_key(signer.cert_chain_pem)
    alg = signer.alg
    try:
        if alg in _EC_SIZES:
            if not isinstance(public, ec.EllipticCurvePublicKey) \
                    or _CURVE_ALG.get(public.curve.name) != alg:
                raise refuse(f"alg {alg} does not match the certificate's "
                             f"{_key_kind(public)} key")
            size = _EC_SIZES[alg]
            raw = der_to_raw_ecdsa(sig, alg)
            if len(raw) != 2 * size:
                raise refuse(f"{len(sig)} bytes: neither a raw r||s of {2 * size} bytes nor "
                             f"a DER ECDSA signature for {alg}")
            r = int.from_bytes(raw[:size], "big")
            s = int.from_bytes(raw[size:], "big")
            if r == 0 or s == 0:
                raise refuse("r or s is zero")
            public.verify(encode_dss_signature(r, s), data, ec.ECDSA(_HASHES[alg]()))
            return raw
        if alg in ("ps256", "ps384", "ps512"):
            if not isinstance(public, rsa.RSAPublicKey):
                raise refuse(f"alg {alg} does not match the certificate's "
                             f"{_key_kind(public)} key")
            h = _HASHES[alg]()
            public.verify(sig, data, padding.PSS(padding.MGF1(h), padding.PSS.AUTO), h)
            return sig
        if alg == "ed25519":
            if not isinstance(public, ed25519.Ed25519PublicKey):
                raise refuse(f"alg ed25519 does not match the certificate's "
                             f"{_key_kind(public)} key")
            public.verify(sig, data)
            return sig
    except InvalidSignature:
        raise refuse("it does not verify against the signing certificate's public key: a "
                     "different key, or corrupted in transit") from None
    raise refuse(f"unsupported alg {alg!r}")


def _key_kind(public: Any) -> str:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {public.curve.name}"
    if isinstance(public, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(public).__name__


__all__ = ["RETRYABLE", "SignerTimeout", "backoff_delay", "callback_signature",
           "checked_signature"]
