"""C2PA manifests for generated video: build, sign, read and validate (c2pa-python).

What a vidgen manifest says:
- ``c2pa.actions.v2``: ``c2pa.created`` (text/image-to-video) or ``c2pa.opened`` +
  ``c2pa.edited`` (tasks that start from a video), with the IPTC digital source
  type ``trainedAlgorithmicMedia`` (or ``compositeWithTrainedAlgorithmicMedia``
  when an input video is kept in part), the software agent and parameters.
- ``org.vidgen.generation``: task, backend, model identity, seed, size, the
  prompt's SHA-256 (the prompt itself only if the caller opts in).
- ingredients for input images and videos; their own manifests are carried over
  by the C2PA library when present.

Reading never touches the network: remote manifests and OCSP are not fetched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import attrs
import c2pa

from vidgen import __version__
from vidgen.errors import MediaError, SigningError
from vidgen.provenance.keys import CallbackSigner, PemSigner, Signer, der_to_raw_ecdsa
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


def _ingredient_json(ingredient: Ingredient, index: int) -> dict[str, Any]:
    label = "parent" if ingredient.relationship == "parentOf" else f"input{index}"
    return {"title": ingredient.title, "relationship": ingredient.relationship, "label": label}


def native_signer(signer: Signer, errors: list[BaseException]) -> Any:
    """A c2pa.Signer; exceptions raised by a callback are kept to re-raise with context."""
    alg = _ALGS[signer.alg]
    tsa = signer.tsa_url
    if isinstance(signer, PemSigner):
        info = c2pa.C2paSignerInfo(
            alg.name.lower().encode(), signer.cert_chain_pem, signer.private_key_pem,
            tsa.encode() if tsa else None)
        return c2pa.Signer.from_info(info)
    if isinstance(signer, CallbackSigner):
        user_sign = signer.sign

        def sign(data: bytes) -> bytes:
            try:
                return der_to_raw_ecdsa(user_sign(data), signer.alg)
            except BaseException as exc:
                errors.append(exc)
                raise

        return c2pa.Signer.from_callback(sign, alg, signer.cert_chain_pem.decode(), tsa)
    raise SigningError(f"not a signer: {type(signer).__name__}")


def add_ingredients(builder: Any, claim: GenerationClaim) -> None:
    """Add the claim's inputs to a c2pa Builder (their own manifests come along)."""
    for i, ingredient in enumerate(claim.ingredients):
        with ingredient.open() as stream:
            builder.add_ingredient(_ingredient_json(ingredient, i), ingredient.mime, stream)


def signer_failure(exc: BaseException) -> SigningError:
    """The error for a signer (callback, KMS, HSM) that raised while signing."""
    return SigningError(f"the signer failed: {type(exc).__name__}: {exc}")


def sign_mp4(source: Path, dest: Path, claim: GenerationClaim, signer: Signer) -> dict[str, Any]:
    """Sign ``source`` (an MP4) into a new file ``dest``; return the manifest definition.

    This copies the media through the C2PA library's streams. For files vidgen
    writes itself, ``c2pa_inplace.sign_mp4_in_place`` is 3-9x faster. Raises
    ``SigningError`` on any failure; ``dest`` may then hold partial bytes.
    """
    definition = manifest_definition(claim)
    errors: list[BaseException] = []
    try:
        signer_handle = native_signer(signer, errors)
        context = c2pa.Context(settings=c2pa.Settings.from_dict(SIGN_SETTINGS))
        builder = c2pa.Builder(json.dumps(definition), context=context)
        add_ingredients(builder, claim)
        with open(source, "rb") as src, open(dest, "w+b") as dst:
            builder.sign(signer_handle, "video/mp4", src, dst)
    except SigningError:
        raise
    except Exception as exc:
        if errors:
            raise signer_failure(errors[0]) from errors[0]
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
