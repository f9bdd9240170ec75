"""Sign an MP4 in place: one hashing pass, no copy of the media.

c2pa-python's ``Builder.sign`` rewrites the whole file from a source stream to
a destination stream through Python callbacks, which costs 6-9x a SHA-256 pass
(``benchmarks/c2pa_cost.py``). The C2PA library also has an embeddable
workflow that its Python binding (0.38) does not wrap:

1. ``c2pa_builder_placeholder`` composes a C2PA ``uuid`` box of the final size;
2. we append that box to the file (after ``mdat``, so no chunk offset moves);
3. ``c2pa_builder_update_hash_from_stream`` computes the BMFF hash, which
   excludes the C2PA box by its UUID wherever it sits;
4. ``c2pa_builder_sign_embeddable`` returns the signed box, same size, which we
   write over the placeholder.

The glue uses c2pa-python's loaded library handle; ``available()`` says whether
this build exports the functions, and callers fall back to ``sign_mp4``.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from typing import Any

import c2pa

from vidgen.errors import SigningError
from vidgen.provenance.c2pa import (
    SIGN_SETTINGS,
    GenerationClaim,
    add_ingredients,
    manifest_definition,
    native_signer,
    raise_signer_failure,
    write_failure,
)
from vidgen.provenance.keys import Signer

_MIME = b"video/mp4"
_FUNCTIONS = ("c2pa_builder_placeholder", "c2pa_builder_update_hash_from_stream",
              "c2pa_builder_sign_embeddable", "c2pa_free")


def _library() -> Any | None:
    lib = getattr(getattr(c2pa, "c2pa", None), "_lib", None)
    if lib is None or not all(hasattr(lib, name) for name in _FUNCTIONS):
        return None
    out_bytes = ctypes.POINTER(ctypes.c_void_p)
    lib.c2pa_builder_placeholder.argtypes = [ctypes.c_void_p, ctypes.c_char_p, out_bytes]
    lib.c2pa_builder_placeholder.restype = ctypes.c_int64
    lib.c2pa_builder_sign_embeddable.argtypes = [ctypes.c_void_p, ctypes.c_char_p, out_bytes]
    lib.c2pa_builder_sign_embeddable.restype = ctypes.c_int64
    lib.c2pa_builder_update_hash_from_stream.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.c2pa_builder_update_hash_from_stream.restype = ctypes.c_int
    lib.c2pa_free.argtypes = [ctypes.c_void_p]
    lib.c2pa_free.restype = ctypes.c_int
    return lib


_LIB = _library()


def available() -> bool:
    """True when the loaded C2PA library exports the embeddable-signing functions."""
    return _LIB is not None


def _native_error(what: str) -> SigningError:
    reader = getattr(c2pa.c2pa, "_read_native_error", None)
    detail = reader() if callable(reader) else None
    return SigningError(f"C2PA {what} failed: {detail or 'unknown error'}")


def _take_bytes(call: Any, builder: Any, what: str) -> bytes:
    assert _LIB is not None
    ptr = ctypes.c_void_p()
    size = call(builder._handle, _MIME, ctypes.byref(ptr))
    if size < 0 or not ptr.value:
        raise _native_error(what)
    try:
        return ctypes.string_at(ptr, size)
    finally:
        _LIB.c2pa_free(ptr)


def sign_mp4_in_place(path: Path, claim: GenerationClaim, signer: Signer) -> dict[str, Any]:
    """Append a signed C2PA manifest box to the MP4 at ``path``; return the definition.

    On failure ``path`` may hold a partial placeholder; the pipeline removes it.
    """
    if _LIB is None:
        raise SigningError("this C2PA library build has no embeddable signing")
    definition = manifest_definition(claim)
    errors: list[BaseException] = []
    try:
        context = c2pa.Context(settings=c2pa.Settings.from_dict(SIGN_SETTINGS),
                               signer=native_signer(signer, errors))
        builder = c2pa.Builder(json.dumps(definition), context=context)
        add_ingredients(builder, claim)
        placeholder = _take_bytes(_LIB.c2pa_builder_placeholder, builder, "placeholder")
        with open(path, "r+b") as f:
            offset = f.seek(0, os.SEEK_END)
            f.write(placeholder)
            f.flush()
            f.seek(0)
            with c2pa.Stream(f) as stream:
                if _LIB.c2pa_builder_update_hash_from_stream(
                        builder._handle, _MIME, stream._stream) < 0:
                    raise _native_error("hashing")
            signed = _take_bytes(_LIB.c2pa_builder_sign_embeddable, builder, "signing")
            if len(signed) != len(placeholder):
                raise SigningError(
                    f"signed manifest is {len(signed)} bytes, placeholder {len(placeholder)}")
            f.seek(offset)
            f.write(signed)
            f.flush()
        builder.close()
        context.close()
    except SigningError as exc:
        if errors:
            raise_signer_failure(errors[0])
        raise exc
    except OSError as exc:
        raise write_failure(exc, path) from exc
    except Exception as exc:
        if errors:
            raise_signer_failure(errors[0])
        raise SigningError(f"C2PA signing failed: {exc}") from exc
    return definition
