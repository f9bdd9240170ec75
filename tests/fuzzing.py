"""Structure-aware fuzzing of ``vidgen.verify`` and ``vidgen.Video.read`` (shared helpers).

Used by ``benchmarks/fuzz_verify.py`` (100k+ cases in watchdog subprocesses) and by
``tests/test_fuzz_corpus.py`` (a few hundred cases in CI). Stdlib only up to
:func:`run_case`, so the mutator is cheap and deterministic: case ``i`` of run
``seed`` is always the same bytes (:func:`make_case`), which is how a crash or hang
seen in a worker is reproduced and saved by the parent.

The mutator parses a seed MP4/MOV into a box tree (containers with their fixed
prefixes: ``stsd``, sample entries, ``meta``, the C2PA ``uuid`` box and its JUMBF
superboxes), edits the tree (delete, duplicate, move, swap, retype, deep nesting,
oversized boxes, typed edits of ``stsz``/``stco``/``stsc``/``stts``/``mdhd``/``tkhd``/
``avcC``/``hvcC``/``ftyp``/``jumd``/CBOR fields, H.264 NAL payloads in ``mdat``),
serialises it with consistent sizes (re-pointing ``stco``/``co64`` at the moved
``mdat`` most of the time, so the codec path is reached), and then, for some
cases, breaks the raw bytes (box size/type fields, truncation, havoc).
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
SEEDS_DIR = Path(__file__).resolve().parent / "data" / "fuzz_seeds"
SEED_SUFFIXES = (".mp4", ".mov")

# Boxes parsed as containers, with the bytes of fixed fields before their children.
CONTAINERS: dict[bytes, tuple[int, ...]] = {
    **{k: (0,) for k in b"moov trak mdia minf stbl edts dinf mvex moof traf mfra udta "
                           b"jumb sinf schi ilst tref".split()},
    b"stsd": (8,), b"dref": (8,), b"meta": (4, 0),
    **{k: (78,) for k in b"avc1 avc3 hvc1 hev1 mp4v encv".split()},
}
KNOWN_TYPES = (b"ftyp moov mvhd trak tkhd edts elst mdia mdhd hdlr minf vmhd dinf dref url  "
               b"stbl stsd avc1 avcC hvc1 hvcC btrt pasp colr stts stss ctts stsc stsz stz2 "
               b"stco co64 sgpd sbgp udta meta ilst mdat free skip wide uuid moof mfhd traf "
               b"tfhd tfdt trun mvex trex sidx mfra tfra mfro jumb jumd cbor json bidb c2sh "
               b"emsg pssh sinf frma schm").split()
INTERESTING_32 = (0, 1, 2, 7, 8, 9, 15, 16, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF,
                  0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
INTERESTING_64 = (0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32, 0x7FFFFFFFFFFFFFFF,
                  0x8000000000000000, 0xFFFFFFFFFFFFFFFF)
# Top-level boxes the C2PA BMFF hard binding leaves out (plus the manifest's own uuid box).
UNHASHED = {b"ftyp", b"free", b"skip", b"mfra"}


# ------------------------------------------------------------------------- box tree


@dataclass
class Box:
    kind: bytes
    prefix: bytes = b""  # fixed fields before the children (containers only)
    children: list[Box] | None = None  # None: a leaf holding ``payload``
    payload: bytes = b""
    large: bool = False  # written with a 64-bit size

    def copy(self) -> Box:
        return Box(self.kind, self.prefix,
                   None if self.children is None else [c.copy() for c in self.children],
                   self.payload, self.large)


def _c2pa_prefix_len(payload: bytes) -> int | None:
    """Bytes of the C2PA uuid box before its JUMBF: uuid, version/flags, purpose, offset."""
    if payload[:16] != C2PA_UUID:
        return None
    end = payload.find(b"\0", 20)
    if end < 0:
        return None
    purpose = payload[20:end]
    return end + 1 + (8 if purpose == b"manifest" else 0)


def parse_boxes(data: bytes, start: int = 0, end: int | None = None,
                depth: int = 0) -> list[Box] | None:
    """The boxes exactly filling ``data[start:end]``, or None if they do not."""
    end = len(data) if end is None else end
    boxes: list[Box] = []
    pos = start
    while pos < end:
        if end - pos < 8:
            return None
        size, kind = struct.unpack_from(">I4s", data, pos)
        header, large = 8, False
        if size == 1:
            if end - pos < 16:
                return None
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header, large = 16, True
        elif size == 0 and depth == 0:
            size = end - pos
        if size < header or pos + size > end:
            return None
        body_start, body_end = pos + header, pos + size
        box = Box(kind, large=large)
        prefixes: tuple[int, ...] = CONTAINERS.get(kind, ())
        if kind == b"uuid":
            n = _c2pa_prefix_len(data[body_start:body_end])
            prefixes = (n,) if n is not None else ()
        for prefix in prefixes:
            if depth >= 16 or body_start + prefix > body_end:
                continue
            children = parse_boxes(data, body_start + prefix, body_end, depth + 1)
            if children is not None:
                box.prefix = data[body_start:body_start + prefix]
                box.children = children
                break
        if box.children is None:
            box.payload = data[body_start:body_end]
        boxes.append(box)
        pos = body_end
    return boxes


@dataclass
class Layout:
    """Where serialisation put each box: (absolute offset, header size, box)."""

    boxes: list[tuple[int, int, Box]] = field(default_factory=list)


def serialize(boxes: list[Box], layout: Layout | None = None, base: int = 0) -> bytes:
    """Bytes of ``boxes`` with every size recomputed; records offsets in ``layout``."""
    out = bytearray()
    for box in boxes:
        offset = base + len(out)
        header = 16 if box.large else 8
        if box.children is not None:
            inner = box.prefix + serialize(box.children, layout,
                                           offset + header + len(box.prefix))
        else:
            inner = box.payload
        if header == 16 or header + len(inner) > 0xFFFFFFFF:
            out += struct.pack(">I4sQ", 1, box.kind, 16 + len(inner))
        else:
            out += struct.pack(">I4s", header + len(inner), box.kind)
        if layout is not None:
            layout.boxes.append((offset, header, box))
        out += inner
    return bytes(out)


def walk(boxes: list[Box], depth: int = 0) -> Iterator[tuple[list[Box], int, int]]:
    """(sibling list, index, depth) of every box, depth first."""
    for i, box in enumerate(boxes):
        yield boxes, i, depth
        if box.children is not None:
            yield from walk(box.children, depth + 1)


def find_all(boxes: list[Box], kind: bytes) -> list[Box]:
    return [sib[i] for sib, i, _ in walk(boxes) if sib[i].kind == kind]


def top_level(data: bytes) -> list[tuple[bytes, int, int]] | None:
    """(type, offset, size) of each top-level box, or None if they do not tile the file."""
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 8:
            return None
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            if len(data) - pos < 16:
                return None
            (size,) = struct.unpack_from(">Q", data, pos + 8)
        elif size == 0:
            size = len(data) - pos
        if size < 8 or pos + size > len(data):
            return None
        out.append((kind, pos, size))
        pos += size
    return out


def hashed_content(data: bytes) -> bytes | None:
    """The top-level boxes a C2PA hard binding covers, concatenated (None: no structure)."""
    boxes = top_level(data)
    if boxes is None:
        return None
    digest = hashlib.sha256()
    for kind, off, size in boxes:
        if kind in UNHASHED or (kind == b"uuid" and data[off + 8:off + 24] == C2PA_UUID):
            continue
        digest.update(data[off:off + size])
    return digest.digest()


# ----------------------------------------------------------------------- primitives


def _pick_int(rng: random.Random, current: int | None = None, bits: int = 32) -> int:
    top = (1 << bits) - 1
    roll = rng.random()
    if current is not None and roll < 0.3:
        return max(0, min(top, current + rng.choice((-1, 1, -2, 2, 8, -8, 1000))))
    if roll < 0.8:
        return rng.choice(INTERESTING_64 if bits == 64 else INTERESTING_32) & top
    return rng.getrandbits(bits)


def _put(buf: bytearray, at: int, fmt: str, value: int) -> None:
    if at >= 0 and at + struct.calcsize(fmt) <= len(buf):
        struct.pack_into(fmt, buf, at, value)


def havoc(rng: random.Random, data: bytes, edits: int | None = None) -> bytes:
    """A few byte-level edits: flips, sets, interesting ints, inserts, deletes."""
    buf = bytearray(data)
    for _ in range(edits or rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 2:
            width = rng.choice((1, 2, 4, 8))
            value = _pick_int(rng, bits=width * 8)
            buf[at:at + width] = value.to_bytes(width, "big")
        elif op == 3:
            buf[at:at] = rng.randbytes(rng.randint(1, 32))
        elif op == 4:
            del buf[at:at + rng.randint(1, 64)]
        else:
            if buf:
                src = rng.randrange(len(buf))
                buf[at:at] = buf[src:src + rng.randint(1, 64)]
    return bytes(buf)


# ------------------------------------------------------------------- typed fields

# (offset, struct format) of interesting fields in full boxes, keyed by type; offsets
# are from the start of the payload (version/flags first). Version 0 layouts.
FIELDS: dict[bytes, tuple[tuple[int, str], ...]] = {
    b"mvhd": ((0, ">B"), (12, ">I"), (16, ">I"), (20, ">I"), (24, ">H"), (96, ">I")),
    b"mdhd": ((0, ">B"), (12, ">I"), (16, ">I"), (20, ">H")),
    b"tkhd": ((0, ">B"), (12, ">I"), (20, ">I"), (76, ">I"), (80, ">I")),
    b"hdlr": ((8, ">I"),),
    b"vmhd": ((0, ">I"),),
    b"elst": ((4, ">I"), (8, ">I"), (12, ">i"), (16, ">I")),
    b"stsz": ((4, ">I"), (8, ">I")),
    b"stz2": ((4, ">I"), (8, ">I")),
    b"stco": ((4, ">I"),),
    b"co64": ((4, ">I"),),
    b"stsc": ((4, ">I"),),
    b"stts": ((4, ">I"),),
    b"ctts": ((0, ">B"), (4, ">I")),
    b"stss": ((4, ">I"),),
    b"sgpd": ((4, ">I"), (8, ">I")),
    b"sbgp": ((4, ">I"), (8, ">I")),
    b"dref": ((4, ">I"),),
    b"tfhd": ((0, ">I"), (4, ">I")),
    b"trun": ((0, ">I"), (4, ">I"), (8, ">i")),
    b"tfdt": ((0, ">B"), (4, ">I")),
    b"mfhd": ((4, ">I"),),
    b"trex": ((4, ">I"), (8, ">I"), (12, ">I")),
    b"btrt": ((0, ">I"), (4, ">I")),
    b"pasp": ((0, ">I"), (4, ">I")),
    b"colr": ((0, ">I"), (4, ">H"), (6, ">H")),
}
# Tables of fixed-size entries after a 4-byte count at payload offset 4.
TABLES: dict[bytes, tuple[int, str]] = {
    b"stco": (4, ">I"), b"co64": (8, ">Q"), b"stss": (4, ">I"), b"stts": (8, ">I"),
    b"ctts": (8, ">i"), b"stsc": (12, ">I"), b"elst": (12, ">I"),
}


def _mutate_table(rng: random.Random, box: Box) -> str:
    if box.kind == b"stsz":  # sample_size, sample_count, then 4-byte entries
        first, width, fmt = 12, 4, ">I"
    elif box.kind in TABLES:
        first, (width, fmt) = 8, TABLES[box.kind]
    else:
        return _mutate_fields(rng, box)
    buf = bytearray(box.payload)
    entries = max(0, (len(buf) - first) // width)
    roll = rng.random()
    if entries and roll < 0.6:
        field_width = struct.calcsize(fmt)
        at = first + rng.randrange(entries) * width + \
            field_width * rng.randrange(width // field_width)
        (current,) = struct.unpack_from(fmt, buf, at)
        value = _pick_int(rng, abs(current), bits=field_width * 8)
        if fmt.endswith("i"):
            value = struct.unpack(">i", struct.pack(">I", value & 0xFFFFFFFF))[0]
        if fmt.endswith("Q"):
            value &= 0xFFFFFFFFFFFFFFFF
        _put(buf, at, fmt, value)
        box.payload = bytes(buf)
        return f"table_entry:{box.kind.decode('latin-1')}"
    if roll < 0.8:
        count_at = 8 if box.kind == b"stsz" else 4
        (current,) = struct.unpack_from(">I", buf, count_at) if len(buf) >= count_at + 4 else (0,)
        _put(buf, count_at, ">I", _pick_int(rng, current))
        box.payload = bytes(buf)
        return f"table_count:{box.kind.decode('latin-1')}"
    # drop or repeat entries without fixing the count
    if entries and rng.random() < 0.5:
        keep = rng.randrange(entries)
        box.payload = bytes(buf[:first + keep * width])
        return f"table_cut:{box.kind.decode('latin-1')}"
    box.payload = bytes(buf) + bytes(buf[first:first + width]) * rng.randint(1, 64)
    return f"table_grow:{box.kind.decode('latin-1')}"


def _mutate_fields(rng: random.Random, box: Box) -> str:
    fields = FIELDS.get(box.kind)
    buf = bytearray(box.payload)
    if not fields:
        box.payload = havoc(rng, box.payload)
        return "payload_havoc"
    at, fmt = rng.choice(fields)
    width = struct.calcsize(fmt)
    if at + width > len(buf):
        box.payload = havoc(rng, box.payload)
        return "payload_havoc"
    (current,) = struct.unpack_from(fmt, buf, at)
    value = _pick_int(rng, abs(current), bits=width * 8)
    if fmt.endswith("i"):
        value = struct.unpack(">i", struct.pack(">I", value & 0xFFFFFFFF))[0]
    _put(buf, at, fmt, value)
    box.payload = bytes(buf)
    return f"field:{box.kind.decode('latin-1')}@{at}"


def _mutate_avcc(rng: random.Random, box: Box) -> str:
    buf = bytearray(box.payload)
    if len(buf) < 7:
        box.payload = havoc(rng, box.payload)
        return "avcC:havoc"
    op = rng.randrange(8)
    if op == 0:
        buf[4] = 0xFC | rng.randrange(4)  # lengthSizeMinusOne
        name = "avcC:length_size"
    elif op == 1:
        buf[5] = 0xE0 | rng.choice((0, 1, 2, 31))  # numOfSequenceParameterSets
        name = "avcC:num_sps"
    elif op == 2:
        _put(buf, 6, ">H", _pick_int(rng, struct.unpack_from(">H", buf, 6)[0], 16))
        name = "avcC:sps_length"
    elif op == 3:  # SPS body: profile, level, then exp-Golomb fields (sizes, POC, refs)
        (n,) = struct.unpack_from(">H", buf, 6)
        end = min(len(buf), 8 + n)
        if end > 9:
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(9, end)
                buf[at] ^= 1 << rng.randrange(8)
        name = "avcC:sps_bits"
    elif op == 4:
        (n,) = struct.unpack_from(">H", buf, 6)
        pps_count_at = 8 + n
        if pps_count_at < len(buf):
            choice = rng.choice((0, 1, 2, 255))
            buf[pps_count_at] = choice
        name = "avcC:num_pps"
    elif op == 5:
        (n,) = struct.unpack_from(">H", buf, 6)
        pps_at = 8 + n + 3
        if pps_at < len(buf):
            at = rng.randrange(pps_at, len(buf))
            buf[at] ^= 1 << rng.randrange(8)
        name = "avcC:pps_bits"
    elif op == 6:
        buf[rng.randrange(4)] = rng.randrange(256)  # version, profile, compat, level
        name = "avcC:header"
    else:
        del buf[rng.randrange(len(buf)):]
        name = "avcC:truncate"
    box.payload = bytes(buf)
    return name


def _mutate_sample_entry(rng: random.Random, box: Box) -> str:
    buf = bytearray(box.prefix)
    at, fmt = rng.choice(((24, ">H"), (26, ">H"), (32, ">H"), (74, ">H"), (6, ">H")))
    if at + 2 <= len(buf):
        _put(buf, at, fmt, _pick_int(rng, struct.unpack_from(fmt, buf, at)[0], 16))
    box.prefix = bytes(buf)
    return f"sample_entry@{at}"


def _mutate_ftyp(rng: random.Random, box: Box) -> str:
    buf = bytearray(box.payload)
    op = rng.randrange(4)
    brands = (b"isom", b"mp42", b"qt  ", b"mif1", b"heic", b"avc1", b"3gp4", b"M4V ", b"iso6",
              b"\0\0\0\0")
    if op == 0 and len(buf) >= 4:
        buf[0:4] = rng.choice(brands)
    elif op == 1:
        buf += rng.choice(brands)
    elif op == 2 and len(buf) > 8:
        del buf[8:8 + 4 * rng.randint(1, 2)]
    else:
        buf = bytearray(havoc(rng, bytes(buf), 1))
    box.payload = bytes(buf)
    return "ftyp"


def _mutate_jumd(rng: random.Random, box: Box) -> str:
    buf = bytearray(box.payload)
    op = rng.randrange(5)
    if op == 0 and len(buf) >= 16:
        buf[rng.randrange(16)] ^= 1 << rng.randrange(8)  # content-type uuid
    elif op == 1 and len(buf) > 16:
        buf[16] = rng.randrange(256)  # toggles
    elif op == 2:  # the label: drop its terminator, replace it, or make it long
        end = buf.find(b"\0", 17)
        label = rng.choice((b"c2pa", b"c2pa.claim", b"c2pa.claim.v2", b"c2pa.signature",
                            b"c2pa.assertions", b"c2pa.actions", b"c2pa.hash.bmff.v2",
                            b"c2pa.hash.bmff.v3", b"c2pa.soft-binding", b"x" * 4096, b"",
                            b"../../etc", b"\xff\xfe"))
        if end > 0:
            buf[17:end] = label
    elif op == 3 and len(buf) > 17:
        end = buf.find(b"\0", 17)
        if end > 0:
            del buf[end]
    else:
        buf = bytearray(havoc(rng, bytes(buf), 1))
    box.payload = bytes(buf)
    return "jumbf:jumd"


def _mutate_cbor(rng: random.Random, box: Box) -> str:
    buf = bytearray(box.payload)
    if not buf:
        box.payload = b"\xbf" * 64
        return "cbor:fill"
    at = rng.randrange(len(buf))
    op = rng.randrange(7)
    if op == 0:  # a header claiming a huge length (bytes, text, array, map)
        major = rng.choice((0x40, 0x60, 0x80, 0xA0))
        buf[at:at + 9] = bytes([major | 27]) + b"\xff" * 8
        name = "cbor:huge_length"
    elif op == 1:
        buf[at:at + 5] = bytes([rng.choice((0x5A, 0x7A, 0x9A, 0xBA))]) + \
            struct.pack(">I", _pick_int(rng))
        name = "cbor:length32"
    elif op == 2:  # deep nesting
        buf[at:at] = rng.choice((b"\x81", b"\xa1\x01", b"\xd8\x18", b"\x9f")) * \
            rng.choice((64, 1000, 20000))
        name = "cbor:deep"
    elif op == 3:  # indefinite-length items, never terminated or terminated wrongly
        buf[at:at + 1] = rng.choice((b"\x5f", b"\x7f", b"\x9f", b"\xbf", b"\xff"))
        name = "cbor:indefinite"
    elif op == 4:  # floats, simple values, tags
        buf[at:at + 3] = rng.choice((b"\xf9\x7e\x00", b"\xf9\x7c\x00", b"\xf7\xf7\xf7",
                                     b"\xc1\xfb\x7f", b"\xd9\xd9\xf7", b"\xf8\x00\x00"))
        name = "cbor:special"
    elif op == 5:
        del buf[at:]
        name = "cbor:truncate"
    else:
        buf = bytearray(havoc(rng, bytes(buf)))
        name = "cbor:havoc"
    box.payload = bytes(buf)
    return name


def _mutate_c2pa_uuid(rng: random.Random, box: Box) -> str:
    buf = bytearray(box.prefix)
    op = rng.randrange(4)
    if op == 0 and len(buf) >= 20:
        buf[16] = rng.randrange(256)  # version
    elif op == 1:
        end = buf.find(b"\0", 20)
        if end > 0:
            buf[20:end] = rng.choice((b"merkle", b"original", b"update", b"", b"manifest" * 8))
    elif op == 2 and len(buf) >= 8:
        _put(buf, len(buf) - 8, ">Q", _pick_int(rng, bits=64))  # the manifest offset
    else:
        buf[rng.randrange(16)] ^= 0x01  # no longer the C2PA uuid
    box.prefix = bytes(buf)
    return "c2pa_uuid:prefix"


# -------------------------------------------------------------------- H.264 in mdat


def nal_units(payload: bytes, length_size: int = 4) -> list[tuple[int, int]] | None:
    """(offset, length) of the length-prefixed NAL units tiling ``payload``, if they do."""
    units, pos = [], 0
    while pos < len(payload):
        if pos + length_size > len(payload):
            return None
        n = int.from_bytes(payload[pos:pos + length_size], "big")
        pos += length_size
        if n == 0 or pos + n > len(payload):
            return None
        units.append((pos, n))
        pos += n
    return units


def _mutate_mdat(rng: random.Random, box: Box) -> str:
    buf = bytearray(box.payload)
    units = nal_units(bytes(buf))
    if not units:
        box.payload = havoc(rng, box.payload)
        return "mdat:havoc"
    at, n = rng.choice(units)
    op = rng.randrange(9)
    if op == 0:  # bit flips in the slice data (entropy-coded)
        for _ in range(rng.randint(1, 6)):
            buf[at + rng.randrange(n)] ^= 1 << rng.randrange(8)
        name = "nal:flip"
    elif op == 1:  # NAL header: type, ref idc, forbidden bit
        buf[at] = rng.choice((buf[at] & 0xE0 | rng.randrange(32), buf[at] ^ 0x80,
                              buf[at] ^ 0x60))
        name = "nal:header"
    elif op == 2:  # slice header: first_mb, slice_type, pps_id, frame_num, ...
        for i in range(1, min(n, 1 + rng.randint(1, 4))):
            buf[at + i] = rng.randrange(256)
        name = "nal:slice_header"
    elif op == 3:  # start codes and emulation prevention inside the payload
        pos = at + rng.randrange(n)
        code = rng.choice((b"\0\0\0", b"\0\0\1", b"\0\0\3", b"\0\0\3\0"))
        buf[pos:pos + len(code)] = code[:max(0, at + n - pos)]
        name = "nal:start_code"
    elif op == 4:  # the length prefix
        _put(buf, at - 4, ">I", _pick_int(rng, n))
        name = "nal:length"
    elif op == 5:
        buf[at + 1:at + n] = bytes(n - 1)
        name = "nal:zero"
    elif op == 6:  # duplicate a NAL (sample sizes no longer match)
        buf[at + n:at + n] = buf[at - 4:at + n]
        name = "nal:duplicate"
    elif op == 7:  # cut a NAL short, keeping its declared length
        cut = rng.randrange(1, n + 1)
        del buf[at + n - cut:at + n]
        name = "nal:truncate"
    else:  # an SEI with an absurd payload size
        sei = b"\x06\x05" + b"\xff" * rng.randint(1, 40) + rng.randbytes(rng.randint(0, 16))
        buf[at - 4:at - 4] = struct.pack(">I", len(sei)) + sei
        name = "nal:sei"
    box.payload = bytes(buf)
    return name


# ------------------------------------------------------------------- tree mutations


def _all_nodes(boxes: list[Box]) -> list[tuple[list[Box], int, int]]:
    return list(walk(boxes))


def _typed(rng: random.Random, box: Box) -> str:
    if box.kind in (b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4v") and box.children is not None:
        return _mutate_sample_entry(rng, box)
    if box.kind in (b"stsd", b"dref", b"meta") and box.children is not None \
            and len(box.prefix) >= 4:
        buf = bytearray(box.prefix)
        _put(buf, len(buf) - 4, ">I", _pick_int(rng, struct.unpack(">I", buf[-4:])[0]))
        box.prefix = bytes(buf)
        return f"entry_count:{box.kind.decode('latin-1')}"
    if box.kind == b"uuid" and box.children is not None:
        return _mutate_c2pa_uuid(rng, box)
    if box.children is not None:  # a plain container: edit one of its leaves
        leaves = [sib[i] for sib, i, _ in walk(box.children) if sib[i].children is None]
        if not leaves:
            box.prefix = havoc(rng, box.prefix, 1)
            return "payload_havoc"
        return _typed(rng, rng.choice(leaves))
    if box.kind == b"avcC":
        return _mutate_avcc(rng, box)
    if box.kind == b"mdat":
        return _mutate_mdat(rng, box)
    if box.kind == b"ftyp":
        return _mutate_ftyp(rng, box)
    if box.kind == b"jumd":
        return _mutate_jumd(rng, box)
    if box.kind == b"cbor":
        return _mutate_cbor(rng, box)
    if box.kind in (b"json", b"bidb", b"c2sh"):
        box.payload = havoc(rng, box.payload)
        return f"jumbf:{box.kind.decode('latin-1')}"
    if box.kind in TABLES or box.kind == b"stsz":
        return _mutate_table(rng, box)
    return _mutate_fields(rng, box)


# Where a typed edit is most worth making: weights by box type.
_TARGET_WEIGHTS = {
    b"mdat": 6, b"avcC": 4, b"hvcC": 2, b"stsz": 3, b"stco": 3, b"co64": 2, b"stsc": 3,
    b"stts": 3, b"ctts": 2, b"stss": 2, b"mdhd": 2, b"mvhd": 2, b"tkhd": 2, b"elst": 2,
    b"hdlr": 1, b"stsd": 2, b"avc1": 2, b"hvc1": 1, b"ftyp": 1, b"cbor": 5, b"jumd": 3,
    b"uuid": 2, b"json": 1, b"trun": 2, b"tfhd": 2, b"tfdt": 1, b"trex": 1,
}


def _weighted_node(rng: random.Random, nodes: list[tuple[list[Box], int, int]],
                   typed: bool) -> tuple[list[Box], int, int]:
    if not typed:
        return rng.choice(nodes)
    weights = [_TARGET_WEIGHTS.get(sib[i].kind, 0.3) for sib, i, _ in nodes]
    return rng.choices(nodes, weights)[0]


def _containers(boxes: list[Box]) -> list[list[Box]]:
    return [boxes] + [sib[i].children for sib, i, _ in walk(boxes)  # type: ignore[misc]
                      if sib[i].children is not None]


def mutate_tree(rng: random.Random, boxes: list[Box], donors: list[list[Box]]) -> str:
    """One edit of the box tree; returns its name."""
    nodes = _all_nodes(boxes)
    if not nodes:
        boxes.append(Box(rng.choice(KNOWN_TYPES), payload=rng.randbytes(16)))
        return "add_box"
    op = rng.choices(
        ("typed", "payload", "delete", "duplicate", "move", "swap", "retype", "nest", "big",
         "splice", "add"),
        (40, 8, 6, 6, 4, 4, 5, 2, 2, 4, 3))[0]
    sib, i, _depth = _weighted_node(rng, nodes, op == "typed")
    box = sib[i]
    if op == "typed":
        return _typed(rng, box)
    if op == "payload":
        if box.children is None:
            box.payload = havoc(rng, box.payload)
        else:
            box.prefix = havoc(rng, box.prefix, 1)
        return "payload_havoc"
    if op == "delete":
        del sib[i]
        return f"delete:{box.kind.decode('latin-1')}"
    if op == "duplicate":
        for _ in range(rng.choice((1, 1, 1, 2, 50))):
            sib.insert(i + 1, box.copy())
        return f"duplicate:{box.kind.decode('latin-1')}"
    if op == "move":
        del sib[i]
        target = rng.choice(_containers(boxes))
        target.insert(rng.randint(0, len(target)), box)
        return f"move:{box.kind.decode('latin-1')}"
    if op == "swap":
        if len(sib) > 1:
            j = rng.randrange(len(sib))
            sib[i], sib[j] = sib[j], sib[i]
        return "swap"
    if op == "retype":
        roll = rng.random()
        box.kind = (rng.choice(KNOWN_TYPES) if roll < 0.7 else
                    bytes(rng.randrange(0x20, 0x7F) for _ in range(4)) if roll < 0.85 else
                    rng.randbytes(4))
        return "retype"
    if op == "nest":
        wrapper = rng.choice((b"moov", b"trak", b"udta", b"jumb", b"meta", b"stbl"))
        inner = box
        for _ in range(rng.choice((2, 8, 20, 200))):
            inner = Box(wrapper, b"\0\0\0\0" if wrapper == b"meta" else b"", [inner])
        sib[i] = inner
        return "nest_deep"
    if op == "big":
        size = rng.choice((1 << 10, 1 << 14, 1 << 18))
        filler = rng.choice((bytes(size), b"\xff" * size, rng.randbytes(size)))
        sib.insert(i, Box(rng.choice(KNOWN_TYPES), payload=filler))
        return "big_box"
    if op == "splice" and donors:
        donor_nodes = _all_nodes(rng.choice(donors))
        if donor_nodes:
            dsib, di, _ = rng.choice(donor_nodes)
            graft = dsib[di].copy()
            if rng.random() < 0.5:
                sib[i] = graft
            else:
                sib.insert(i, graft)
            return "splice"
    kind = rng.choice(KNOWN_TYPES)
    sib.insert(i, Box(kind, payload=rng.randbytes(rng.randint(0, 64))))
    return "add_box"


def _fix_chunk_offsets(boxes: list[Box], old_mdat: int | None) -> None:
    """Re-point stco/co64 entries at where ``mdat``'s payload now starts."""
    if old_mdat is None:
        return
    layout = Layout()
    serialize(boxes, layout)
    mdats = [(off + hdr) for off, hdr, b in layout.boxes if b.kind == b"mdat"]
    if len(mdats) != 1 or mdats[0] == old_mdat:
        return
    delta = mdats[0] - old_mdat
    for box in find_all(boxes, b"stco") + find_all(boxes, b"co64"):
        width, fmt = (4, ">I") if box.kind == b"stco" else (8, ">Q")
        buf = bytearray(box.payload)
        count = (len(buf) - 8) // width
        top = (1 << (8 * width)) - 1
        for k in range(max(0, count)):
            at = 8 + k * width
            (value,) = struct.unpack_from(fmt, buf, at)
            struct.pack_into(fmt, buf, at, max(0, min(top, value + delta)))
        box.payload = bytes(buf)


def mdat_payload_offset(boxes: list[Box]) -> int | None:
    layout = Layout()
    serialize(boxes, layout)
    mdats = [(off + hdr) for off, hdr, b in layout.boxes if b.kind == b"mdat"]
    return mdats[0] if len(mdats) == 1 else None


def mutate_raw(rng: random.Random, data: bytes, layout: Layout) -> tuple[bytes, str]:
    """One edit of the serialised bytes that breaks structure on purpose."""
    buf = bytearray(data)
    op = rng.choices(("size", "type", "truncate", "havoc", "append", "large"),
                     (5, 2, 4, 3, 1, 1))[0]
    if op in ("size", "type", "large") and layout.boxes:
        off, header, _box = rng.choice(layout.boxes)
        if op == "size":
            current = struct.unpack_from(">I", buf, off)[0]
            _put(buf, off, ">I", _pick_int(rng, current))
        elif op == "type":
            buf[off + 4:off + 8] = rng.choice(KNOWN_TYPES) if rng.random() < 0.6 else \
                rng.randbytes(4)
        elif header == 16:
            _put(buf, off + 8, ">Q", _pick_int(rng, bits=64))
        else:  # claim a 64-bit size the header does not carry
            _put(buf, off, ">I", 1)
        return bytes(buf), f"raw_{op}"
    if op == "truncate":
        if layout.boxes and rng.random() < 0.5:
            off, header, _ = rng.choice(layout.boxes)
            cut = off + rng.randint(-4, header + 8)
        else:
            cut = rng.randrange(len(buf) + 1)
        return bytes(buf[:max(0, cut)]), "truncate"
    if op == "append":
        return bytes(buf) + rng.randbytes(rng.randint(1, 64)), "append"
    return havoc(rng, bytes(buf)), "raw_havoc"


# --------------------------------------------------------------------------- cases


@dataclass
class Seed:
    name: str
    data: bytes
    tree: list[Box]


def load_seeds(directory: Path = SEEDS_DIR) -> list[Seed]:
    seeds = []
    for path in sorted(directory.iterdir()):
        if path.suffix in SEED_SUFFIXES and path.is_file():
            data = path.read_bytes()
            tree = parse_boxes(data)
            if tree is None:
                raise ValueError(f"seed {path} does not parse as boxes")
            seeds.append(Seed(path.name, data, tree))
    if not seeds:
        raise FileNotFoundError(f"no fuzz seeds in {directory} (run benchmarks/make_fuzz_seeds.py)")
    return seeds


@dataclass
class Case:
    index: int
    seed: str
    ops: list[str]
    data: bytes


def case_rng(run_seed: int, index: int) -> random.Random:
    return random.Random(hashlib.sha256(f"{run_seed}:{index}".encode()).digest())


def make_case(seeds: list[Seed], run_seed: int, index: int) -> Case:
    """Case ``index`` of run ``run_seed``: the same bytes every time."""
    rng = case_rng(run_seed, index)
    # The signed seed carries the C2PA/JUMBF structures: mutate it more often.
    seed = rng.choices(seeds, [3 if s.name == "signed.mp4" else 1 for s in seeds])[0]
    ops: list[str] = []
    if rng.random() < 0.03:  # the seed itself, unmodified: every outcome must be stable
        return Case(index, seed.name, ["none"], seed.data)
    tree = [b.copy() for b in seed.tree]
    old_mdat = mdat_payload_offset(tree)
    donors = [s.tree for s in seeds if s is not seed]
    for _ in range(1 + min(3, int(rng.expovariate(1.2)))):
        ops.append(mutate_tree(rng, tree, donors))
    if rng.random() < 0.8:
        _fix_chunk_offsets(tree, old_mdat)
    layout = Layout()
    data = serialize(tree, layout)
    if rng.random() < 0.2:
        data, raw = mutate_raw(rng, data, layout)
        ops.append(raw)
    return Case(index, seed.name, ops, data)


# ----------------------------------------------------------------------- targets


@dataclass
class Config:
    """What the targets are run with: trust anchors, watermark double, a stub store."""

    anchors: str
    detector: Any
    store: Any
    limits: Any


class DictStore:
    """A manifest store lookup over a dict: no SQLite in the hot loop."""

    def __init__(self, records: dict[int, dict[str, Any]]) -> None:
        self.records = records
        self.path = "fuzz-seeds"

    def lookup(self, watermark_id: int) -> dict[str, Any] | None:
        return self.records.get(watermark_id)


def load_config(directory: Path = SEEDS_DIR) -> Config:
    """Imports vidgen (slow: torch); call once per process."""
    from vidgen.provenance.verify import SampledFrameDetector
    from vidgen.provenance.watermark import available_methods, register_method
    from vidgen.video_io import ReadLimits

    from .watermark_double import TEST_METHOD, BlockTestWatermark

    if TEST_METHOD not in available_methods():
        register_method(TEST_METHOD, BlockTestWatermark)
    meta = json.loads((directory / "seeds.json").read_text())
    key = bytes.fromhex(meta["watermark_key_hex"])
    records = {int(k): v for k, v in meta["store"].items()}
    return Config(
        anchors=(directory / meta["anchors"]).read_text(),
        detector=SampledFrameDetector(BlockTestWatermark(key), max_frames=16),
        store=DictStore(records),
        limits=ReadLimits(max_file_bytes=1 << 22, max_width=1024, max_height=1024,
                          max_frames=256, max_decoded_bytes=1 << 26, max_seconds=5.0),
    )


def _kind_of(message: str) -> str:
    """A short, path- and number-free label for an error message (for tallies)."""
    import re

    text = message
    for marker in ("): ", ".mp4: ", ".mov: ", ".bin: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    text = re.sub(r"/\S+", "<path>", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\d+", "N", text)
    return text[:70]


def _crash(target: str, exc: BaseException) -> dict[str, Any]:
    return {"target": target, "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": str(exc)[:500],
            "traceback": "".join(traceback.format_exception(exc))[-4000:]}


def run_case(path: Path, data: bytes, seed_data: bytes, config: Config,
             targets: tuple[str, ...] = ("verify", "read")) -> dict[str, Any]:
    """Run the targets on ``path`` (holding ``data``); outcomes, crashes and oracle breaks.

    A crash is anything the contract rules out: ``verify`` raising at all (it returns
    an ``error`` verdict for a bad file), ``Video.read`` raising anything but
    ``MediaError``, a report that is not JSON-serialisable, a decoded video outside
    the limits, or a manifest confirming media other than what it signed.
    """
    import numpy as np

    import vidgen
    from vidgen.errors import MediaError
    from vidgen.types import Video

    result: dict[str, Any] = {"crashes": []}
    if "verify" in targets:
        try:
            report = vidgen.verify(path, trust_anchors_pem=config.anchors,
                                   detector=config.detector, store=config.store)
            json.dumps(report.to_dict())
        except Exception as exc:
            result["crashes"].append(_crash("verify", exc))
        else:
            result["verify"] = report.verdict
            if report.c2pa is not None:
                result["c2pa"] = report.c2pa.state
            if report.error:
                result["verify_error"] = _kind_of(report.error)
            if (report.c2pa is not None and report.c2pa.state == "trusted"
                    and hashed_content(data) != hashed_content(seed_data)):
                result["crashes"].append({
                    "target": "verify", "type": "oracle.trusted_but_changed",
                    "message": "a trusted manifest confirmed media that differs from the seed",
                    "traceback": ""})
    if "read" in targets:
        try:
            video = Video.read(path, limits=config.limits)
        except MediaError as exc:
            result["read"] = "MediaError"
            result["read_error"] = _kind_of(exc.message)
        except Exception as exc:
            result["crashes"].append(_crash("read", exc))
        else:
            frames = video.frames
            ok = (isinstance(frames, np.ndarray) and frames.dtype == np.uint8
                  and frames.ndim == 4 and frames.shape[3] == 3
                  and 1 <= frames.shape[0] <= config.limits.max_frames
                  and frames.shape[1] <= config.limits.max_height
                  and frames.shape[2] <= config.limits.max_width
                  and 0.1 <= video.fps <= 1000)
            result["read"] = "video"
            if not ok:
                result["crashes"].append({
                    "target": "read", "type": "oracle.video_outside_limits",
                    "message": f"{frames.shape} {frames.dtype} fps={video.fps}",
                    "traceback": ""})
    return result


def tally(results: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {k: Counter() for k in
                                       ("verify", "c2pa", "verify_error", "read", "read_error")}
    for r in results:
        for k, c in counts.items():
            if k in r:
                c[r[k]] += 1
    return counts


Runner = Callable[[Path, bytes, bytes, Config], dict[str, Any]]
