from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from vidgen.errors import KeyMaterialError
from vidgen.provenance import keys


def test_init_dev_keys_writes_c2pa_compatible_chain(tmp_path: Path) -> None:
    k = keys.init_dev_keys(tmp_path / "k")
    assert stat.S_IMODE(k.signer_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(k.ca_key.stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates(k.signer_cert.read_bytes())
    leaf, ca = chain
    assert leaf.issuer == ca.subject
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in list(eku)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.not_valid_after_utc > datetime.datetime.now(datetime.UTC)


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    keys.init_dev_keys(tmp_path)
    with pytest.raises(KeyMaterialError, match="already holds keys"):
        keys.init_dev_keys(tmp_path)
    keys.init_dev_keys(tmp_path, overwrite=True)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_group_or_world_readable_key_refused(tmp_path: Path, mode: int) -> None:
    k = keys.init_dev_keys(tmp_path)
    k.signer_key.chmod(mode)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        keys.PemSigner.from_files(k.signer_cert, k.signer_key)


def test_key_must_match_certificate(tmp_path: Path) -> None:
    a = keys.init_dev_keys(tmp_path / "a")
    b = keys.init_dev_keys(tmp_path / "b")
    with pytest.raises(KeyMaterialError, match="does not belong"):
        keys.PemSigner.from_files(a.signer_cert, b.signer_key)


def test_ca_certificate_refused_as_signer(tmp_path: Path) -> None:
    k = keys.init_dev_keys(tmp_path)
    with pytest.raises(KeyMaterialError, match="must not be a CA"):
        keys.PemSigner.from_files(k.ca_cert, k.ca_key)


def test_garbage_files_give_typed_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    badkey = tmp_path / "bad.key"
    badkey.write_text("nope")
    badkey.chmod(0o600)
    with pytest.raises(KeyMaterialError):
        keys.PemSigner.from_files(bad, badkey)
    with pytest.raises(KeyMaterialError):
        keys.load_trust_anchors(bad)
    with pytest.raises(KeyMaterialError, match=r"no such file|cannot read"):
        keys.PemSigner.from_files(tmp_path / "missing.pem", tmp_path / "missing.key")


def test_private_key_never_in_repr(tmp_path: Path) -> None:
    k = keys.init_dev_keys(tmp_path)
    signer = k.signer()
    assert b"PRIVATE" in signer.private_key_pem
    assert "PRIVATE" not in repr(signer)
    assert signer.signer_name == "vidgen development signer"


def test_env_signer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = keys.init_dev_keys(tmp_path)
    monkeypatch.setenv(keys.ENV_SIGN_CERT, str(k.signer_cert))
    monkeypatch.setenv(keys.ENV_SIGN_KEY, str(k.signer_key))
    s = keys.default_signer()
    assert isinstance(s, keys.PemSigner)
    monkeypatch.delenv(keys.ENV_SIGN_KEY)
    with pytest.raises(KeyMaterialError, match="both"):
        keys.default_signer()


def test_default_signer_creates_dev_keys_once(tmp_path: Path) -> None:
    d = tmp_path / "auto"
    s1 = keys.default_signer(d)
    s2 = keys.default_signer(d)
    assert s1.cert_chain_pem == s2.cert_chain_pem
    assert (d / keys.DEV_CA_CERT).is_file()


def test_der_signature_converted_to_raw() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.sign(b"data", ec.ECDSA(hashes.SHA256()))
    raw = keys.der_to_raw_ecdsa(der, "es256")
    assert len(raw) == 64
    r, s = decode_dss_signature(der)
    assert encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                int.from_bytes(raw[32:], "big")) == der
    assert (r, s) == (int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    assert keys.der_to_raw_ecdsa(raw, "es256") == raw
