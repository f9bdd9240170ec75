"""Job ids are file stems: ``DIR/<id>.mp4``. Only ids that are safe everywhere are accepted.

A safe id is 1 to ``MAX_ID_LENGTH`` ASCII letters, digits, ``_``, ``-`` and ``.``,
starting with a letter or digit and not ending with ``.``, and not a name Windows
reserves (``CON``, ``NUL``, ``COM1``...). So an id can never name a directory
(no separators, no ``..``), an absolute path, a hidden file (vidgen's temporaries
start with ``.``) or a device. Ids are unique case-insensitively, since
``A.mp4`` and ``a.mp4`` are one file on case-insensitive file systems.
"""

from __future__ import annotations

import re

from vidgen.batch.errors import UnsafeJobId

MAX_ID_LENGTH = 128
"""Leaves room under the usual 255-byte name limit for the ``.<id>.mp4.<token>.signed.mp4``
temporaries the pipeline writes beside the output."""

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CLOCK$", "CONIN$", "CONOUT$",
                       *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))})


def check_job_id(value: object, *, line: int | None = None, path: str | None = None) -> str:
    """``value`` if it is a safe job id, else ``UnsafeJobId`` saying why."""

    def refuse(why: str) -> UnsafeJobId:
        return UnsafeJobId(f"job id {value!r} is not a safe file stem: {why}", line=line,
                           path=path)

    if not isinstance(value, str):
        raise UnsafeJobId(f"job id must be a string, got {type(value).__name__}", line=line,
                          path=path)
    if not value:
        raise refuse("it is empty")
    if "\x00" in value:
        raise refuse("it contains a NUL character")
    if "/" in value or "\\" in value:
        raise refuse("it contains a path separator (ids name one file in the output "
                     "directory, not a path)")
    if value in (".", "..") or value.startswith("."):
        raise refuse("it starts with '.' (path traversal or a hidden file)")
    if len(value.encode("utf-8")) > MAX_ID_LENGTH:
        raise refuse(f"it is longer than {MAX_ID_LENGTH} bytes")
    if not _SAFE.fullmatch(value):
        raise refuse("use only ASCII letters, digits, '_', '-' and '.', starting with a "
                     "letter or digit")
    if value.endswith("."):
        raise refuse("it ends with '.'")
    if value.split(".", 1)[0].upper() in _RESERVED:
        raise refuse("it is a reserved device name on Windows")
    return value


__all__ = ["MAX_ID_LENGTH", "check_job_id"]
