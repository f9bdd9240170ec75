"""C2PA manifests for generated video: build, sign, read and validate (c2pa-python).

What a vidgen manifest says:
- ``c2pa.actions.v2``: ``c2pa.created`` (text/image-to-video) or ``c2pa.opened`` +
  ``c2pa.edited`` (tasks that start from a video), with the IPTC digital source
  type ``trainedAlgorithmicMedia`` (or ``compositeWithTrainedAlgorithmicMedia``
  when an input video is kept in part), the software agent and parameters.
- ``org.vidgen.generation``: task, backend, model identity, seed, size, the
  prompt's SHA-256 (the prompt itself only if the caller opts in).
- ``c2pa.soft-binding`` (when the frames carry a watermark): the algorithm and
  the watermark id, so a file whose manifest was stripped can be matched back
  to its manifest through the mark (``soft_binding_assertion``).
- ``org.vidgen.disclosure`` (when a visible "AI-generated" label was rendered).
- ingredients for input images and videos; their own manifests are carried over
  by the C2PA library when present.

Reading never touches the network: remote manifests and OCSP are not fetched.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

import attrs
import c2pa

from vidgen import __version__
from vidgen.errors import MediaError, OutputError, SigningError, VidgenError
from vidgen.provenance.keys import CallbackSigner, PemSigner, Signer
from vidgen.types import C2paReport

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = IPTC + "trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = IPTC + "compositeWithTrainedAlgorithmicMedia"
AI_SOURCE_TYPES = frozenset({
    TRAINED_ALGORITHMIC_MEDIA,
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    IPTC + "algorithmicMedia",
    IPTC + "compositeSynthetic",
})
GENERATION_ASSERTION = "org.vidgen.generation"
SAFETY_ASSERTION = "org.vidgen.safety"  # which safety checks ran and what they found
SOFT_BINDING_ASSERTION = "c2pa.soft-binding"
DISCLOSURE_ASSERTION = "org.vidgen.disclosure"
SOFT_BINDING_PREFIX = "org.vidgen.wm."
# alg identifiers of vidgen's watermark methods. None is on the C2PA soft-binding
# algorithm list (github.com/c2pa-org/softbinding-algorithm-list): they are
# vendor names, understood by vidgen only. A method not listed here gets
# SOFT_BINDING_PREFIX + its name.
SOFT_BINDING_ALGS = {"vidgen": SOFT_BINDING_PREFIX + "v1"}
CLAIM_GENERATOR = "vidgen"

_ALGS = {
    "es256": c2pa.C2paSigningAlg.ES256, "es384": c2pa.C2paSigningAlg.ES384,
    "es512": c2pa.C2paSigningAlg.ES512, "ps256": c2pa.C2paSigningAlg.PS256,
    "ps384": c2pa.C2paSigningAlg.PS384, "ps512": c2pa.C2paSigningAlg.PS512,
    "ed25519": c2pa.C2paSigningAlg.ED25519,
}
MIME_BY_KIND = {"mp4": "video/mp4", "mov": "video/quicktime"}

# Offline by design: never fetch remote manifests or OCSP responses while verifying.
_OFFLINE_VERIFY = {"remote_manifest_fetch": False, "ocsp_fetch": False}
SIGN_SETTINGS = {"verify": {"verify_after_sign": False}}


@attrs.frozen(eq=False)
class Ingredient:
    """An input a generation used: an image or a video, as bytes or a file."""

    title: str
    mime: str
    relationship: str  # "parentOf" (edited from) | "inputTo" (conditioned on)
    data: bytes | None = attrs.field(default=None, repr=False)
    path: Path | None = None

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        import io

        if self.path is not None:
            with open(self.path, "rb") as f:
                yield f
        elif self.data is not None:
            yield io.BytesIO(self.data)
        else:
            raise SigningError(f"ingredient {self.title!r} has neither data nor a path")


@attrs.frozen
class GenerationClaim:
    """What vidgen asserts about one output; turned into a C2PA manifest definition."""

    title: str
    task: str
    backend: str
    model_id: str
    model_version: str
    seed: int
    num_frames: int
    width: int
    height: int
    fps: float
    prompt_sha256: str
    prompt: str | None = None  # only when the caller opts in
    parameters: dict[str, Any] = attrs.field(factory=dict)
    ingredients: tuple[Ingredient, ...] = ()
    extra_assertions: tuple[dict[str, Any], ...] = ()

    @property
    def starts_from_video(self) -> bool:
        return any(i.relationship == "parentOf" for i in self.ingredients)


def manifest_definition(claim: GenerationClaim) -> dict[str, Any]:
    """The manifest definition JSON that c2pa's Builder signs."""
    agent = {"name": f"vidgen/{claim.backend}", "version": __version__}
    params = {"model": claim.model_id, "model_version": claim.model_version, "task": claim.task}
    actions: list[dict[str, Any]]
    if claim.starts_from_video:
        actions = [
            {"action": "c2pa.opened", "softwareAgent": agent,
             "parameters": {"ingredientIds": ["parent"]}},
            {"action": "c2pa.edited", "softwareAgent": agent, "parameters": params,
             "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA},
        ]
    else:
        actions = [{"action": "c2pa.created", "softwareAgent": agent, "parameters": params,
                    "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]
    generation: dict[str, Any] = {
        "task": claim.task,
        "backend": claim.backend,
        "model": {"id": claim.model_id, "version": claim.model_version},
        "seed": claim.seed,
        "num_frames": claim.num_frames,
        "width": claim.width,
        "height": claim.height,
        "fps": claim.fps,
        "prompt_sha256": claim.prompt_sha256,
        "parameters": claim.parameters,
    }
    if claim.prompt is not None:
        generation["prompt"] = claim.prompt
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": __version__}],
        "title": claim.title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": GENERATION_ASSERTION, "data": generation},
            *claim.extra_assertions,
        ],
    }


# --- soft binding (watermark id) ---------------------------------------------------------


@attrs.frozen
class SoftBinding:
    """What a ``c2pa.soft-binding`` assertion written by vidgen says."""

    alg: str
    method: str | None  # the vidgen watermark method, None for an alg vidgen does not know
    watermark_id: int | None  # None when the value is not a vidgen id


def soft_binding_alg(method: str) -> str:
    """The soft-binding ``alg`` identifier for a vidgen watermark method."""
    return SOFT_BINDING_ALGS.get(method, SOFT_BINDING_PREFIX + method)


def method_for_alg(alg: str) -> str | None:
    """The vidgen watermark method named by a soft-binding ``alg``, or None if not vidgen's."""
    for method, known in SOFT_BINDING_ALGS.items():
        if alg == known:
            return method
    if alg.startswith(SOFT_BINDING_PREFIX) and len(alg) > len(SOFT_BINDING_PREFIX):
        return alg[len(SOFT_BINDING_PREFIX):]
    return None


def encode_watermark_id(watermark_id: int) -> str:
    """The block ``value``: the id as 4 big-endian bytes, base64 (C2PA's JSON form of a bstr)."""
    return base64.b64encode(watermark_id.to_bytes(4, "big")).decode("ascii")


def decode_watermark_id(value: object) -> int | None:
    """Inverse of ``encode_watermark_id``; None when ``value`` is not such an id."""
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if len(raw) == 4 else None


def soft_binding_assertion(method: str, watermark_id: int,
                           duration_ms: int | None = None) -> dict[str, Any]:
    """A ``c2pa.soft-binding`` assertion (C2PA 2.x ``soft-binding-map``) for a watermark id.

    One block whose scope is the whole clip (the mark is spread over every
    frame) and whose value is the id. ``pad`` is written (empty) because the
    CDDL requires it and the reference reader (c2pa-rs) fails without it.
    """
    scope: dict[str, Any] = {}
    if duration_ms is not None:
        scope["timespan"] = {"start": 0, "end": int(duration_ms)}
    return {"label": SOFT_BINDING_ASSERTION, "data": {
        "alg": soft_binding_alg(method),
        "blocks": [{"scope": scope, "value": encode_watermark_id(watermark_id)}],
        "name": f"vidgen invisible watermark ({method}); value = 32-bit watermark id",
        "pad": [],
    }}


def read_soft_binding(manifest: dict[str, Any] | None) -> SoftBinding | None:
    """The first soft binding of a manifest (as the C2PA reader or ``manifest_definition``
    shows it), or None when it has none."""
    for assertion in (manifest or {}).get("assertions") or []:
        label = str(assertion.get("label", ""))
        if label != SOFT_BINDING_ASSERTION and not label.startswith(SOFT_BINDING_ASSERTION + "__"):
            continue
        data = assertion.get("data") or {}
        alg = data.get("alg")
        if not isinstance(alg, str):
            continue
        blocks = data.get("blocks") or []
        value = blocks[0].get("value") if blocks and isinstance(blocks[0], dict) else None
        method = method_for_alg(alg)
        return SoftBinding(alg=alg, method=method,
                           watermark_id=decode_watermark_id(value) if method else None)
    return None


def _ingredient_json(ingredient: Ingredient, index: int) -> dict[str, Any]:
    label = "parent" if ingredient.relationship == "parentOf" else f"input{index}"
    return {"title": ingredient.title, "relationship": ingredient.relationship, "label": label}


class _SignerFailed(Exception):
    """What the C2PA library sees when the signer fails. Its message is neutral on purpose:
    the library logs it, and the real cause (kept in ``errors``) may name a service."""


def native_signer(signer: Signer, errors: list[BaseException]) -> Any:
    """A c2pa.Signer; exceptions raised by a callback are kept to re-raise with context.

    A ``CallbackSigner`` is called through ``callback_signature``: a timeout per
    attempt, retries of transient failures, and a local check of the signature.
    """
    alg = _ALGS[signer.alg]
    tsa = signer.tsa_url
    if isinstance(signer, PemSigner):
        info = c2pa.C2paSignerInfo(
            alg.name.lower().encode(), signer.cert_chain_pem, signer.private_key_pem,
            tsa.encode() if tsa else None)
        return c2pa.Signer.from_info(info)
    if isinstance(signer, CallbackSigner):
        from vidgen.provenance.callback_signing import callback_signature

        def sign(data: bytes) -> bytes:
            try:
                return callback_signature(signer, data)
            except BaseException as exc:
                errors.append(exc)
                raise _SignerFailed("the signer failed; vidgen reports the cause") from None

        return c2pa.Signer.from_callback(sign, alg, signer.cert_chain_pem.decode(), tsa)
    raise SigningError(f"not a signer: {type(signer).__name__}")


def add_ingredients(builder: Any, claim: GenerationClaim) -> None:
    """Add the claim's inputs to a c2pa Builder (their own manifests come along)."""
    for i, ingredient in enumerate(claim.ingredients):
        with ingredient.open() as stream:
            builder.add_ingredient(_ingredient_json(ingredient, i), ingredient.mime, stream)


def raise_signer_failure(exc: BaseException) -> NoReturn:
    """Re-raise what a signer (callback, KMS, HSM) raised while signing, as a ``SigningError``
    (one the signing code made already is raised as it is; an interrupt stays one)."""
    if isinstance(exc, SigningError | KeyboardInterrupt | SystemExit):
        raise exc
    raise SigningError(f"the signer failed: {type(exc).__name__}: {exc}") from exc


# Write failures that mean "the output's file system refused", not "signing failed".
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES,
                         errno.EPERM, errno.EIO})


def write_failure(exc: OSError, path: Path) -> VidgenError:
    """The typed error for an OSError while writing a signed file: ``OutputError`` (stage
    ``sign``) when the file system refused (disk full, quota, read-only), else
    ``SigningError``."""
    reason = exc.strerror or str(exc)
    if exc.errno in DISK_ERRNOS:
        return OutputError(f"cannot write the signed file in {path.parent}: {reason}; "
                           "no output was written", stage="sign")
    return SigningError(f"C2PA signing failed writing {path}: {reason}")


class _RecordingFile:
    """A file for the C2PA library's streams that remembers the first OSError: the library
    turns exceptions from its stream callbacks into an opaque I/O error."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.error: OSError | None = None

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._file, name)(*args)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            raise

    def read(self, *args: Any) -> Any:
        return self._call("read", *args)

    def write(self, *args: Any) -> Any:
        return self._call("write", *args)

    def seek(self, *args: Any) -> Any:
        return self._call("seek", *args)

    def tell(self) -> Any:
        return self._call("tell")

    def flush(self) -> Any:
        return self._call("flush")


def sign_mp4(source: Path, dest: Path, claim: GenerationClaim, signer: Signer) -> dict[str, Any]:
    """Sign ``source`` (an MP4) into a new file ``dest``; return the manifest definition.

    This copies the media through the C2PA library's streams. For files vidgen
    writes itself, ``c2pa_inplace.sign_mp4_in_place`` is 3-9x faster. Raises
    ``SigningError`` on any failure; ``dest`` may then hold partial bytes.
    """
    definition = manifest_definition(claim)
    errors: list[BaseException] = []
    recorder: _RecordingFile | None = None
    try:
        signer_handle = native_signer(signer, errors)
        context = c2pa.Context(settings=c2pa.Settings.from_dict(SIGN_SETTINGS))
        builder = c2pa.Builder(json.dumps(definition), context=context)
        add_ingredients(builder, claim)
        with open(source, "rb") as src, open(dest, "w+b") as dst:
            recorder = _RecordingFile(dst)
            builder.sign(signer_handle, "video/mp4", src, recorder)
    except SigningError:
        raise
    except OSError as exc:
        raise write_failure(exc, dest) from exc
    except Exception as exc:
        if errors:
            raise_signer_failure(errors[0])
        if recorder is not None and recorder.error is not None:
            raise write_failure(recorder.error, dest) from recorder.error
        raise SigningError(f"C2PA signing failed: {exc}") from exc
    return definition


# --- reading and validation ------------------------------------------------------------


def _reader_context(trust_anchors: str | None) -> Any:
    settings: dict[str, Any] = {"verify": dict(_OFFLINE_VERIFY)}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
        settings["verify"]["verify_trust"] = True
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def _codes(results: dict[str, Any] | None) -> tuple[str, ...]:
    """Failure codes of the active manifest and of ingredient deltas, in order, unique."""
    if not results:
        return ()
    seen: list[str] = []
    active = results.get("activeManifest") or {}
    entries = list(active.get("failure") or [])
    for delta in results.get("ingredientDeltas") or []:
        entries.extend((delta.get("validationDeltas") or {}).get("failure") or [])
    for entry in entries:
        code = entry.get("code")
        if isinstance(code, str) and code not in seen:
            seen.append(code)
    return tuple(seen)


def is_ai_generated(manifest: dict[str, Any]) -> bool:
    """True when an actions assertion declares an AI digital source type."""
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if action.get("digitalSourceType") in AI_SOURCE_TYPES:
                return True
    return False


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info:
        first = info[0]
        name, version = first.get("name"), first.get("version")
        if name:
            return f"{name}/{version}" if version else str(name)
    gen = manifest.get("claim_generator")
    return str(gen) if gen else None


_UNTRUSTED_NOTE = (
    "signature and content hashes are intact, but the signing certificate does not chain to a "
    "configured trust anchor (signingCredential.untrusted is about who signed, not tampering; "
    "pass --trust ANCHORS.pem)"
)


def read_c2pa(path: Path, mime: str, trust_anchors: str | None = None) -> C2paReport:
    """Read and validate the C2PA manifest of a media file, offline.

    ``absent`` when the file has no manifest; ``invalid`` when one is present but a
    hash or the signature fails or it cannot be parsed; ``valid`` when intact but
    the signer is not trusted; ``trusted`` when intact and chained to an anchor.
    """
    try:
        with open(path, "rb") as f:
            reader = c2pa.Reader(mime, f, context=_reader_context(trust_anchors))
            try:
                state = (reader.get_validation_state() or "").lower()
                results = reader.get_validation_results()
                store = json.loads(reader.json())
            finally:
                reader.close()
    except c2pa.C2paError.ManifestNotFound:
        return C2paReport(state="absent", explanation="no C2PA manifest in the file")
    except c2pa.C2paError as exc:
        message = str(exc)
        return C2paReport(state="invalid", codes=(_error_code(message),),
                          explanation=f"a C2PA manifest is present but unreadable: {message}")
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    active_label = store.get("active_manifest")
    manifest = (store.get("manifests") or {}).get(active_label) if active_label else None
    if manifest is None:
        return C2paReport(state="invalid", codes=_codes(results) or ("claim.missing",),
                          explanation="the manifest store has no active manifest")
    codes = _codes(results)
    signature = manifest.get("signature_info") or {}
    if state not in {"trusted", "valid", "invalid"}:
        state = "invalid" if codes else "valid"
    explanation = None
    if state == "valid" and "signingCredential.untrusted" in codes:
        explanation = _UNTRUSTED_NOTE
    elif state == "invalid":
        explanation = "the manifest does not match the file or its signature fails: " + \
            ", ".join(c for c in codes if c != "signingCredential.untrusted")
    elif state == "trusted":
        explanation = "intact manifest signed by a trusted signer"
    return C2paReport(
        state=state,
        signer=signature.get("common_name"),
        issuer=signature.get("issuer"),
        claim_generator=_claim_generator(manifest),
        codes=codes,
        ai_generated=is_ai_generated(manifest),
        manifest=manifest,
        explanation=explanation,
    )


def _error_code(message: str) -> str:
    """A stable code for a reader error (the C2PA error kind before the colon)."""
    head = message.split(":", 1)[0].strip()
    return "c2pa." + (head[0].lower() + head[1:] if head else "error")
