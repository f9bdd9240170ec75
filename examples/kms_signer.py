"""Sign through a callback, as with a KMS or HSM: the private key stays outside vidgen.

Here the "KMS" is a local function holding the key that fails once with a
throttling error, as a real service sometimes does; in production it would call
your key service and return its (DER or raw) ECDSA signature.

vidgen calls it with a deadline per attempt (``timeout``), retries timeouts,
connection errors and ``TransientSignerError`` (``retries``, with exponential
``backoff`` and jitter), never retries other errors, and checks every signature
against the certificate before embedding it. If the service stays down, the job
fails closed with ``SignerUnavailable`` and no file is written.

    python examples/kms_signer.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

import vidgen
from vidgen.errors import TransientSignerError
from vidgen.provenance.keys import CallbackSigner, init_dev_keys


def main(out_dir: Path) -> None:
    keys = init_dev_keys(out_dir / "keys")
    kms_key = load_pem_private_key(keys.signer_key.read_bytes(), password=None)
    assert isinstance(kms_key, ec.EllipticCurvePrivateKey)
    calls = []

    def kms_sign(data: bytes) -> bytes:
        # A real callback would POST `data` (or its digest) to the key service, with its
        # own network timeout, and map HTTP 429/5xx to TransientSignerError.
        calls.append(len(data))
        if len(calls) == 1:
            raise TransientSignerError("429 Too Many Requests")
        # A KMS API returns a DER-encoded ECDSA signature; vidgen converts it for COSE.
        return kms_key.sign(data, ec.ECDSA(hashes.SHA256()))

    signer = CallbackSigner(kms_sign, cert_chain_pem=keys.signer_cert.read_bytes(), alg="es256",
                            name="example-kms", timeout=10.0, retries=2, backoff=0.2)
    pipe = vidgen.Pipeline.from_backend("scene", signer=signer)
    result = pipe.generate("a yellow square falling", output=out_dir / "square.mp4")
    report = vidgen.verify(result.path, trust=keys.ca_cert)
    signer_name = report.c2pa.signer if report.c2pa else None
    print(f"{result.path.name}: {report.verdict} (signer {signer_name}, "
          f"{len(calls)} calls to the KMS)")
    assert report.verdict == "confirmed" and len(calls) == 2


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
