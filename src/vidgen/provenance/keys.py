"""Signing identities for C2PA: a development CA, PEM signers, callback (KMS/HSM) signers.

C2PA validators require an end-entity certificate with the digitalSignature key
usage, an allowed extended key usage (emailProtection here), not a CA, chained
to an anchor the verifier trusts. ``init_dev_keys`` makes exactly that for
development. Production deployments load PEM files or hand vidgen a callback so
the private key never enters the process.

Private keys are never logged (``repr=False``), written 0600, and refused when
group or world readable.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import random
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vidgen.errors import ConfigurationError, KeyMaterialError
from vidgen.provenance.watermark.base import (
    DEFAULT_METHOD,
    key_from_env,
    read_key_file,
    write_key_file,
)

log = logging.getLogger(__name__)

SigningAlg = Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"]

_EC_SIZES = {"es256": 32, "es384": 48, "es512": 66}
_CURVE_ALG = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}

DEV_CA_CERT = "ca.pem"
DEV_CA_KEY = "ca.key"
DEV_SIGNER_CERT = "signer.pem"
DEV_SIGNER_KEY = "signer.key"
WATERMARK_KEY = "watermark.key"

ENV_SIGN_CERT = "VIDGEN_SIGN_CERT"
ENV_SIGN_KEY = "VIDGEN_SIGN_KEY"
ENV_TSA_URL = "VIDGEN_TSA_URL"
ENV_KEYS_DIR = "VIDGEN_KEYS_DIR"
ENV_TRUST_ANCHORS = "VIDGEN_TRUST_ANCHORS"
ENV_WATERMARK_METHOD = "VIDGEN_WATERMARK_METHOD"


# --- files and permissions -------------------------------------------------------------


# A PEM block, a line break, a hex key, or a whole value that is one base64 token of 40+
# characters not starting with "/" (a 32-byte key is 44; a deep absolute path is not a key).
_KEYISH = re.compile(r"-----BEGIN|[\r\n]|[0-9A-Fa-f]{40,}|^(?!/)[A-Za-z0-9+/=_-]{40,}$")
_NOT_A_PATH = "<a value that looks like key material, not a file path; it is not shown>"


def shown_path(path: str | Path) -> str:
    """``path`` for an error message, unless it looks like key material given where a path
    belongs (a PEM block or a hex key in ``VIDGEN_SIGN_KEY``): that is never echoed."""
    text = str(path)
    if _KEYISH.search(text) and not os.path.lexists(text):
        return _NOT_A_PATH
    return text


def check_private_key_permissions(path: Path) -> None:
    """Refuse a private key file that group or others can read or write."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a usable file path"
        raise KeyMaterialError(
            f"cannot read private key {shown_path(path)}: {reason}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(
            f"private key {path} is accessible by group/others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (no window where it is readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_public(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a usable file path"
        raise KeyMaterialError(f"cannot read {what} {shown_path(path)}: {reason}") from None


def load_certificates(pem: bytes, source: str = "certificate data") -> list[x509.Certificate]:
    """Parse one or more PEM certificates; raise ``KeyMaterialError`` on anything else."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise KeyMaterialError(f"{source} holds no valid PEM certificate: {exc}") from exc
    return certs


def load_private_key(pem: bytes, source: str = "private key") -> Any:
    """Parse an unencrypted PEM private key (EC, RSA or Ed25519)."""
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyMaterialError(f"{source} is not a usable unencrypted PEM private key") from exc


def algorithm_for_key(key: Any) -> SigningAlg:
    """The C2PA signing algorithm that matches a private or public key."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        alg = _CURVE_ALG.get(key.curve.name)
        if alg is None:
            raise KeyMaterialError(f"unsupported EC curve {key.curve.name}")
        return alg  # type: ignore[return-value]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    raise KeyMaterialError(f"unsupported key type {type(key).__name__}")


def check_signing_certificate(cert: x509.Certificate, source: str) -> None:
    """Check what C2PA validators check on the end-entity certificate, with readable errors."""
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        expired = cert.not_valid_after_utc
        raise KeyMaterialError(f"{source}: certificate expired on {expired:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        start = cert.not_valid_before_utc
        raise KeyMaterialError(f"{source}: certificate not valid before {start}")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            raise KeyMaterialError(f"{source}: the signing certificate must not be a CA")
    except x509.ExtensionNotFound:
        pass
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            raise KeyMaterialError(f"{source}: certificate lacks the digitalSignature key usage")
    except x509.ExtensionNotFound as exc:
        raise KeyMaterialError(f"{source}: certificate has no KeyUsage extension") from exc


# --- signers ---------------------------------------------------------------------------


@attrs.frozen
class PemSigner:
    """A certificate chain and its private key held in memory (from files or env)."""

    cert_chain_pem: bytes
    private_key_pem: bytes = attrs.field(repr=False)
    alg: SigningAlg = "es256"
    tsa_url: str | None = None

    @classmethod
    def from_files(
        cls, cert_path: str | Path, key_path: str | Path, *,
        alg: SigningAlg | None = None, tsa_url: str | None = None,
    ) -> PemSigner:
        """Load and check a PEM chain (leaf first) and its private key file (must be 0600)."""
        cert_path, key_path = Path(cert_path), Path(key_path)
        check_private_key_permissions(key_path)
        chain = _read(cert_path, "certificate chain")
        key_pem = _read(key_path, "private key")
        certs = load_certificates(chain, str(cert_path))
        key = load_private_key(key_pem, str(key_path))
        check_signing_certificate(certs[0], str(cert_path))
        pub = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        leaf_pub = certs[0].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if pub != leaf_pub:
            raise KeyMaterialError(
                f"private key {key_path} does not belong to the first certificate in {cert_path}")
        return cls(chain, key_pem, alg or algorithm_for_key(key), tsa_url)

    @classmethod
    def from_env(cls) -> PemSigner | None:
        """``VIDGEN_SIGN_CERT`` + ``VIDGEN_SIGN_KEY`` (+ ``VIDGEN_TSA_URL``), or None if unset."""
        cert, key = os.environ.get(ENV_SIGN_CERT), os.environ.get(ENV_SIGN_KEY)
        if not cert and not key:
            return None
        if not (cert and key):
            raise KeyMaterialError(f"set both {ENV_SIGN_CERT} and {ENV_SIGN_KEY}, or neither")
        for var, value in ((ENV_SIGN_CERT, cert), (ENV_SIGN_KEY, key)):
            if "-----BEGIN" in value:
                raise KeyMaterialError(
                    f"{var} holds PEM data; it must be the path of a PEM file (the value is "
                    "not shown). For a key that must not touch the disk, use a CallbackSigner")
        return cls.from_files(cert, key, tsa_url=os.environ.get(ENV_TSA_URL) or None)

    @property
    def signer_name(self) -> str:
        return _common_name(load_certificates(self.cert_chain_pem)[0])


def _positive_or_none(_instance: object, attribute: Any, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{attribute.name} must be a positive, finite number of "
                                 f"seconds or None, got {value!r}")


def _non_negative(_instance: object, attribute: Any, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{attribute.name} must be a finite number >= 0, got "
                                 f"{value!r}")


def _retry_count(_instance: object, _attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ConfigurationError(f"retries must be an integer from 0 to 10, got {value!r}")


@attrs.frozen
class CallbackSigner:
    """Signs through a callable (KMS, HSM, remote service): the key never enters vidgen.

    ``sign(data) -> signature``. For ECDSA the COSE form is raw ``r || s``; a DER
    signature (what most KMS APIs return) is converted automatically. Every
    signature is verified against the leaf certificate's public key before it is
    embedded: a wrong-length, undecodable or non-verifying one is refused
    (``SigningError``), never written.

    Remote calls: each attempt runs in a worker thread and is abandoned after
    ``timeout`` seconds (None: no limit, called inline in the signing thread, for
    libraries bound to their calling thread). A timeout, ``TimeoutError``,
    ``ConnectionError`` or ``vidgen.errors.TransientSignerError`` is retried up to
    ``retries`` times, waiting ``backoff * 2**k`` seconds (at most ``max_backoff``)
    with jitter between attempts; any other exception is permanent and fails at once.
    When every attempt fails the job fails closed with ``SignerUnavailable``. The
    longest a signature can take is therefore ``(retries + 1) * timeout`` plus the
    waits. ``name`` labels the signer in errors (default: the certificate's CN).
    ``sleep`` and ``jitter`` (a function returning a number in [0, 1)) are for tests.
    """

    sign: Callable[[bytes], bytes] = attrs.field(repr=False)
    cert_chain_pem: bytes
    alg: SigningAlg = "es256"
    tsa_url: str | None = None
    timeout: float | None = attrs.field(default=30.0, validator=_positive_or_none)
    retries: int = attrs.field(default=2, validator=_retry_count)
    backoff: float = attrs.field(default=0.5, validator=_non_negative)
    max_backoff: float = attrs.field(default=8.0, validator=_non_negative)
    name: str | None = None
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, repr=False, eq=False)
    jitter: Callable[[], float] = attrs.field(default=random.random, repr=False, eq=False)

    @property
    def signer_name(self) -> str:
        return _common_name(load_certificates(self.cert_chain_pem)[0])

    @property
    def display_name(self) -> str:
        """``name``, else the certificate's common name (for error messages)."""
        if self.name:
            return self.name
        try:
            return self.signer_name
        except KeyMaterialError:
            return "callback signer"


Signer = PemSigner | CallbackSigner


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def der_to_raw_ecdsa(signature: bytes, alg: SigningAlg) -> bytes:
    """Convert a DER ECDSA signature to the fixed-size ``r || s`` that COSE needs."""
    size = _EC_SIZES.get(alg)
    if size is None or len(signature) == 2 * size:
        return signature
    try:
        r, s = decode_dss_signature(signature)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    except (ValueError, OverflowError):
        return signature


def local_key_callback(
    private_key_pem: bytes, alg: SigningAlg = "es256"
) -> Callable[[bytes], bytes]:
    """A callback that signs with a local key, as a KMS would (for tests and examples)."""
    key = load_private_key(private_key_pem)

    def sign(data: bytes) -> bytes:
        if isinstance(key, ec.EllipticCurvePrivateKey):
            digest = {"es256": hashes.SHA256(), "es384": hashes.SHA384(), "es512": hashes.SHA512()}
            return der_to_raw_ecdsa(key.sign(data, ec.ECDSA(digest[alg])), alg)
        if isinstance(key, rsa.RSAPrivateKey):
            h = {"ps256": hashes.SHA256(), "ps384": hashes.SHA384(), "ps512": hashes.SHA512()}[alg]
            return key.sign(data, padding.PSS(padding.MGF1(h), h.digest_size), h)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        raise KeyMaterialError(f"unsupported key type {type(key).__name__}")

    return sign


# --- development CA --------------------------------------------------------------------


@attrs.frozen
class DevKeys:
    """Paths of a development CA and its signer, as written by ``init_dev_keys``."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    signer_cert: Path
    signer_key: Path
    watermark_key: Path

    @classmethod
    def at(cls, directory: str | Path) -> DevKeys:
        d = Path(directory)
        return cls(d, d / DEV_CA_CERT, d / DEV_CA_KEY, d / DEV_SIGNER_CERT, d / DEV_SIGNER_KEY,
                   d / WATERMARK_KEY)

    def exists(self) -> bool:
        return all(p.is_file() for p in (self.ca_cert, self.signer_cert, self.signer_key))

    def signer(self, tsa_url: str | None = None) -> PemSigner:
        return PemSigner.from_files(self.signer_cert, self.signer_key, tsa_url=tsa_url)


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ])


def init_dev_keys(
    directory: str | Path, *, organization: str = "vidgen development",
    signer_days: int = 825, ca_days: int = 3650, overwrite: bool = False,
) -> DevKeys:
    """Make a development CA and an ES256 signing certificate under ``directory``.

    ``ca.pem`` is the trust anchor to give verifiers; ``signer.pem`` holds the
    chain (leaf, then CA); ``watermark.key`` is the secret watermark key; keys
    are 0600. Not for production: anyone holding this directory can sign as you.

    ``overwrite`` replaces the CA and signer but keeps an existing
    ``watermark.key``: a new watermark key would make every mark made so far
    undetectable. Delete the file yourself to rotate it.
    """
    keys = DevKeys.at(directory)
    keys.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = [p for p in (keys.ca_cert, keys.ca_key, keys.signer_cert, keys.signer_key)
                if p.exists()]
    if existing and not overwrite:
        raise KeyMaterialError(
            f"{keys.directory} already holds keys ({', '.join(p.name for p in existing)}); "
            "pass overwrite=True (--force) to replace them")
    for p in existing:
        p.unlink()
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{organization} CA", organization)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{organization} signer", organization))
        .issuer_name(ca_name).public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=signer_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    _write_private(keys.ca_key, ca_key.private_bytes(pem, pkcs8, none))
    _write_private(keys.signer_key, leaf_key.private_bytes(pem, pkcs8, none))
    _write_public(keys.ca_cert, ca.public_bytes(pem))
    _write_public(keys.signer_cert, leaf.public_bytes(pem) + ca.public_bytes(pem))
    if not keys.watermark_key.exists():
        write_key_file(keys.watermark_key)
    return keys


def default_keys_dir() -> Path:
    """``$VIDGEN_KEYS_DIR``, else ``$XDG_DATA_HOME/vidgen/keys`` (``~/.local/share``)."""
    env = os.environ.get(ENV_KEYS_DIR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vidgen" / "keys"


def default_signer(keys_dir: str | Path | None = None) -> Signer:
    """The signer used when none is given.

    Order: ``VIDGEN_SIGN_CERT``/``VIDGEN_SIGN_KEY``; else the development keys in
    ``keys_dir`` (default ``default_keys_dir()``), created on first use with a warning.
    """
    if keys_dir is None:
        env_signer = PemSigner.from_env()
        if env_signer is not None:
            return env_signer
    keys = DevKeys.at(keys_dir if keys_dir is not None else default_keys_dir())
    if not keys.exists():
        log.warning("no signing key configured; creating a development CA in %s "
                    "(trust anchor: %s). Use real credentials in production.",
                    keys.directory, keys.ca_cert)
        init_dev_keys(keys.directory)
    return keys.signer(tsa_url=os.environ.get(ENV_TSA_URL) or None)


def configured_watermark_method() -> str:
    """``$VIDGEN_WATERMARK_METHOD``, else the default method (``"vidgen"``)."""
    return os.environ.get(ENV_WATERMARK_METHOD) or DEFAULT_METHOD


def default_watermark_key(keys_dir: str | Path | None = None) -> bytes:
    """The watermark key used when none is given.

    Order (as for the signer): ``keys_dir/watermark.key`` when ``keys_dir`` is
    given; else ``$VIDGEN_WATERMARK_KEY`` (hex) or ``$VIDGEN_WATERMARK_KEY_FILE``;
    else ``watermark.key`` in ``default_keys_dir()``. A missing key file is
    created (0600, random) with a warning: marks can only be detected with the
    key that made them, so keep it with your signing keys.
    """
    if keys_dir is None:
        env_key = key_from_env()
        if env_key is not None:
            return env_key
    path = DevKeys.at(keys_dir if keys_dir is not None else default_keys_dir()).watermark_key
    if not path.exists():
        log.warning("no watermark key configured; creating %s. Detecting the watermark "
                    "later needs this key (vidgen verify --key %s).", path, path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return write_key_file(path)
        except FileExistsError:  # another process made it first
            pass
    return read_key_file(path)


def existing_watermark_key() -> bytes | None:
    """The key ``verify`` uses when none is given: the environment, else an existing
    ``watermark.key`` in ``default_keys_dir()``; never creates one."""
    env_key = key_from_env()
    if env_key is not None:
        return env_key
    path = DevKeys.at(default_keys_dir()).watermark_key
    return read_key_file(path) if path.exists() else None


def load_trust_anchors(path: str | Path | None = None) -> str | None:
    """PEM trust anchors from ``path`` or ``$VIDGEN_TRUST_ANCHORS``; None when neither is set."""
    if path is None:
        env = os.environ.get(ENV_TRUST_ANCHORS)
        if not env:
            return None
        path = env
    p = Path(path).expanduser()
    pem = _read(p, "trust anchors")
    load_certificates(pem, str(p))
    return pem.decode("utf-8", errors="replace")
