"""Test helpers that edit ISO-BMFF files at the box level (tamper, strip manifests)."""

from __future__ import annotations

import struct
from pathlib import Path

C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")


def top_level_boxes(data: bytes) -> list[tuple[str, int, int]]:
    """(type, offset, size) of each top-level box."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        boxes.append((kind.decode("latin-1"), pos, size))
        pos += size
    return boxes


def flip_byte_in_mdat(src: Path, dst: Path, offset_in_mdat: int = 64) -> None:
    data = bytearray(src.read_bytes())
    _kind, off, size = next(b for b in top_level_boxes(bytes(data)) if b[0] == "mdat")
    assert size > offset_in_mdat + 16
    data[off + 16 + offset_in_mdat] ^= 0x01
    dst.write_bytes(bytes(data))


def strip_c2pa(src: Path, dst: Path) -> int:
    """Remove the top-level C2PA uuid box(es); returns how many were removed.

    The file stays playable only if no chunk offsets moved, which holds when the
    manifest box follows moov (faststart) ... so tests re-read it to check.
    """
    data = src.read_bytes()
    out, removed = bytearray(), 0
    for kind, off, size in top_level_boxes(data):
        box = data[off:off + size]
        if kind == "uuid" and box[8:24] == C2PA_UUID:
            removed += 1
            out += struct.pack(">I4s", size, b"free") + b"\0" * (size - 8)
            continue
        out += box
    dst.write_bytes(bytes(out))
    return removed
