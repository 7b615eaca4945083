"""AVIF and HEIF (ISO-BMFF): boxes, items, properties and references, then what the decoders will
derive from them.

libavif and libheif parse the boxes in C, but four things cost far more than the bytes they take:
grids and overlays decode every tile they reference; each coded item, and the first sample of an
image sequence, decodes at the size its codec header gives, whatever the container declares
(coded.py); what is decoded may be far more than what is shown (an alpha plane larger than its
image, a clean aperture cropping a large picture to a few pixels); and pi-heif copies each image's
metadata and ICC profile once per image that refers to it. So the walk follows the primary image to
every picture the decoder will decode, with its coded size, chroma and bit depth, and bounds their
pixels against the pixels shown and their bytes (`Survey.decoder_bytes`).

What the decoders read as text must be text: pi-heif turns item types, content types and auxiliary
types into Python strings without checking the conversion, and crashes on bytes that are not UTF-8.
Boxes are walked with an explicit stack (no recursion).
"""

from __future__ import annotations

import contextlib
import struct
from collections import Counter
from dataclasses import dataclass, field

from chalicelib.imaging.structure.coded import (
    SAMPLES_PER_4_PIXELS,
    CodedStream,
    ShortHeader,
    av1_units,
    hevc_unit,
    hevc_units,
)
from chalicelib.imaging.structure.guards import CANVAS_FLOOR, RGBA_BYTES, Tally
from chalicelib.imaging.structure.icc import check_icc
from chalicelib.imaging.structure.tiff import check_exif

_CONTAINERS = {b"iprp", b"ipco", b"dinf", b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"grpl", b"mvex"}
_METADATA_ITEMS = {b"Exif", b"mime", b"uri "}
_ICC_TYPES = (b"prof", b"rICC")
_CODED = {b"av01", b"hvc1", b"hev1"}
_CONFIGURATION = {b"av01": b"av1C", b"hvc1": b"hvcC", b"hev1": b"hvcC"}
_TRACK_BOXES = {b"stsd", b"stsz", b"stco", b"co64"}
_CODED_SLACK = 64  # coded sizes round up to whole coding blocks (up to 64 px) before cropping
_DERIVED = {b"grid", b"iovl", b"iden"}  # images made from the items they reference (dimg)
_ALPHA = {b"urn:mpeg:hevc:2015:auxid:1", b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha"}
_WORST_SAMPLES = SAMPLES_PER_4_PIXELS[3] * 2  # an item whose coding is not read: 4:4:4 at 16 bits
_VISUAL_SAMPLE_ENTRY = 78  # the fields of a VisualSampleEntry; its child boxes follow


@dataclass
class _Item:
    kind: bytes = b""
    extents: list[tuple[int, int, int]] = field(default_factory=list)  # construction method, offset, length
    properties: list[int] = field(default_factory=list)  # 1-based indices into the ipco box
    picture: tuple[int, int, int] | None = None  # a coded item's width, height and bytes per 4 pixels


@dataclass
class _Track:
    """Where an image sequence's first sample is, and the sample entry that declares its size."""

    entry: tuple[bytes, int, int] | None = None  # sample entry type, its payload's start and stop
    first_size: int | None = None
    first_offset: int | None = None


@dataclass
class _File:
    data: bytes
    tally: Tally
    items: dict[int, _Item] = field(default_factory=dict)
    properties: list[tuple[bytes, int, int]] = field(default_factory=list)  # kind, payload start, stop
    references: list[tuple[bytes, int, list[int]]] = field(default_factory=list)  # kind, from, to
    reference_id_size: int = 2
    idat: tuple[int, int] = (0, 0)
    tracks: list[_Track] = field(default_factory=list)
    brand: bytes = b""
    primary: int | None = None
    sequence: tuple[int, int, int] | None = None  # the first sample's picture, as _Item.picture

    def item(self, item_id: int) -> _Item:
        return self.items.setdefault(item_id, _Item())


class _Reader:
    """Big-endian fields of one box; reading past its end raises ShortHeader."""

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def uint(self, size: int) -> int:
        if self.pos + size > self.end:
            raise ShortHeader
        self.pos += size
        return int.from_bytes(self.data[self.pos - size : self.pos], "big")

    def fourcc(self) -> bytes:
        self.uint(4)
        return self.data[self.pos - 4 : self.pos]

    def string(self) -> bytes:
        """A null-terminated string (what is left of the box if it has no terminator)."""
        stop = self.data.find(b"\x00", self.pos, self.end)
        start, self.pos = self.pos, self.end if stop < 0 else stop + 1
        return self.data[start : self.end if stop < 0 else stop]


def walk_bmff(data: bytes, tally: Tally) -> None:
    walk = _File(data, tally)
    _walk_boxes(walk)
    _check_derived_images(walk)
    _check_coded_items(walk)
    _check_sequences(walk)
    _check_decoded(walk)
    _check_metadata(walk)


def _walk_boxes(walk: _File) -> None:
    data, tally = walk.data, walk.tally
    stack = [(0, len(data), 1, b"")]  # position, end of the parent, depth, parent type
    while stack:
        pos, end, depth, parent = stack.pop()
        if pos + 8 > end:
            continue
        tally.step()
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        header += 16 if kind == b"uuid" else 0
        if size < header or pos + size > end:
            continue  # cut short: the decoders refuse it
        tally.add("bmff.boxes")
        tally.peak("bmff.depth", depth)
        stack.append((pos + size, end, depth, parent))
        try:
            children = _box(walk, kind, parent, pos + header, pos + size)
        except ShortHeader:
            children = None
        if children is not None:
            stack.append((children, pos + size, depth + 1, kind))


def _box(walk: _File, kind: bytes, parent: bytes, start: int, stop: int) -> int | None:
    """Record what one box says; return where its child boxes start, if it has any."""
    if parent == b"ipco":
        walk.tally.add("bmff.references")
        _check_code(walk, kind, "a property type")
        if kind == b"auxC":
            _check_text(walk, _Reader(walk.data, start + 4, stop).string(), "an auxiliary type")
        walk.properties.append((kind, start, stop))
        return None
    if parent == b"iref":
        _reference(walk, kind, _Reader(walk.data, start, stop))
        return None
    if parent == b"iinf" and kind == b"infe":
        _item_info(walk, _Reader(walk.data, start, stop))
        return None
    if kind == b"trak":
        walk.tracks.append(_Track())
    if kind in _CONTAINERS or kind == b"trak":
        return start
    reader = _Reader(walk.data, start, stop)
    if kind in _TRACK_BOXES and walk.tracks:
        _track_box(walk.tracks[-1], kind, reader)
        return None
    if kind == b"meta":
        return start + 4
    if kind == b"ftyp":
        walk.brand = reader.fourcc()
    elif kind == b"pitm":
        walk.primary = reader.uint(2 if reader.uint(4) >> 24 == 0 else 4)
    if kind == b"iinf":
        return start + 4 + (2 if reader.uint(1) == 0 else 4)
    if kind == b"iref":
        walk.reference_id_size = 2 if reader.uint(1) == 0 else 4
        return start + 4
    if kind == b"iloc":
        _locations(walk, reader)
    elif kind == b"ipma":
        _associations(walk, reader)
    elif kind == b"idat":
        walk.idat = (start, stop)
    return None


def _track_box(track: _Track, kind: bytes, reader: _Reader) -> None:
    if kind == b"stsd":  # version and flags, entry count, then the first entry (a box)
        reader.uint(8)
        size, entry = reader.uint(4), reader.fourcc()
        track.entry = (entry, reader.pos, min(reader.pos - 8 + size, reader.end))
    elif kind == b"stsz":  # version and flags, a size for every sample (or 0), count, then sizes
        reader.uint(4)
        size = reader.uint(4)
        reader.uint(4)
        track.first_size = size or reader.uint(4)
    elif reader.uint(8) & 0xFFFFFFFF:  # stco or co64: version and flags, count, then chunk offsets
        track.first_offset = reader.uint(4 if kind == b"stco" else 8)


def _item_info(walk: _File, reader: _Reader) -> None:
    version = reader.uint(4) >> 24
    if version < 2:
        item_id, kind = reader.uint(2), b""
    else:
        item_id = reader.uint(2 if version == 2 else 4)
        reader.uint(2)
        kind = reader.fourcc()
        _check_code(walk, kind, "an item type")
        _check_text(walk, reader.string(), "an item name")
        if kind == b"mime":
            _check_text(walk, reader.string(), "a content type")
            _check_text(walk, reader.string(), "a content encoding")
        elif kind == b"uri ":
            _check_text(walk, reader.string(), "an item URI type")
    walk.tally.add("bmff.items")
    walk.item(item_id).kind = kind


def _check_code(walk: _File, code: bytes, what: str) -> None:
    """A four-character code of printable ASCII, as the standard defines them."""
    if not all(0x20 <= byte < 0x7F for byte in code):
        raise walk.tally.refuse(f"has {what} that is not a four-character code ({code!r}).")


def _check_text(walk: _File, text: bytes, what: str) -> None:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        raise walk.tally.refuse(f"has {what} that is not UTF-8 text ({text[:40]!r}).") from None


def _locations(walk: _File, reader: _Reader) -> None:
    version = reader.uint(4) >> 24
    sizes = reader.uint(2)
    offset_size, length_size, base_size = sizes >> 12, sizes >> 8 & 15, sizes >> 4 & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    for _ in range(reader.uint(2 if version < 2 else 4)):
        walk.tally.step()
        item = walk.item(reader.uint(2 if version < 2 else 4))
        method = reader.uint(2) & 15 if version in (1, 2) else 0
        reader.uint(2)  # data_reference_index
        base, extents = reader.uint(base_size), reader.uint(2)
        walk.tally.add("bmff.references", 1 + extents)
        for _ in range(extents):
            reader.uint(index_size)
            offset, length = reader.uint(offset_size), reader.uint(length_size)
            item.extents.append((method, base + offset, length))


def _associations(walk: _File, reader: _Reader) -> None:
    flags = reader.uint(4)
    version, wide = flags >> 24, flags & 1
    for _ in range(reader.uint(4)):
        walk.tally.step()
        properties = walk.item(reader.uint(2 if version < 1 else 4)).properties
        count = reader.uint(1)
        walk.tally.add("bmff.references", 1 + count)
        for _ in range(count):
            properties.append(reader.uint(2) & 0x7FFF if wide else reader.uint(1) & 0x7F)


def _reference(walk: _File, kind: bytes, reader: _Reader) -> None:
    size = walk.reference_id_size
    source, count = reader.uint(size), reader.uint(2)
    walk.tally.add("bmff.references", count)
    walk.references.append((kind, source, [reader.uint(size) for _ in range(count)]))


def _property(walk: _File, item: _Item | None, kind: bytes) -> tuple[int, int] | None:
    for index in item.properties if item is not None else ():
        if 0 < index <= len(walk.properties) and walk.properties[index - 1][0] == kind:
            return walk.properties[index - 1][1:]
    return None


def _size(walk: _File, item: _Item | None) -> tuple[int, int] | None:
    """An item's `ispe`: the width and height it declares."""
    found = _property(walk, item, b"ispe")
    if found is None or found[1] - found[0] < 12:
        return None
    width, height = struct.unpack_from(">II", walk.data, found[0] + 4)
    return width, height


def _spans(walk: _File, item: _Item) -> list[tuple[int, int]]:
    """Where an item's data lies in the file (construction methods 0 and 1), clipped to the data."""
    spans = []
    for method, offset, length in item.extents:
        if method == 0:
            base, end = 0, len(walk.data)
        elif method == 1:
            base, end = walk.idat
        else:
            continue
        start = base + offset
        stop = end if length == 0 else min(end, start + length)
        if start < stop:
            spans.append((start, stop))
    return spans


def _check_derived_images(walk: _File) -> None:
    """Grids and overlays decode every image they reference, once per reference."""
    for kind, _source, inputs in walk.references:
        if kind == b"dimg":
            walk.tally.add("bmff.tiles", len(inputs))


def _check_coded_items(walk: _File) -> None:
    for item in walk.items.values():
        if item.kind in _CODED:
            configuration = _property(walk, item, _CONFIGURATION[item.kind])
            declared = _size(walk, item)
            stream = _check_coded(walk, item.kind, declared, configuration, _spans(walk, item))
            item.picture = _picture(declared, stream)


def _picture(declared: tuple[int, int] | None, stream: CodedStream) -> tuple[int, int, int]:
    """The size a decoder allocates for a coded picture: the larger of the declared and coded sizes."""
    width, height = declared or (0, 0)
    return max(width, stream.width), max(height, stream.height), stream.sample_bytes()


def _check_sequences(walk: _File) -> None:
    """The first sample of each image sequence track: the one frame Pillow decodes from it."""
    data = walk.data
    for track in walk.tracks:
        if track.entry is None or track.first_size is None or track.first_offset is None:
            continue
        kind, start, stop = track.entry
        if kind not in _CODED or stop - start < _VISUAL_SAMPLE_ENTRY:
            continue
        declared = struct.unpack_from(">HH", data, start + 24)
        configuration = _child(walk, start + _VISUAL_SAMPLE_ENTRY, stop, _CONFIGURATION[kind])
        sample = (track.first_offset, min(len(data), track.first_offset + track.first_size))
        stream = _check_coded(walk, kind, declared, configuration, [sample])
        if walk.sequence is None:
            walk.sequence = _picture(declared, stream)


def _child(walk: _File, pos: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """The payload of the first child box of that type in [pos, end)."""
    while pos + 8 <= end:
        walk.tally.step()
        walk.tally.add("bmff.boxes")
        size, found = struct.unpack_from(">I4s", walk.data, pos)
        if size < 8:
            return None
        if found == kind:
            return pos + 8, min(pos + size, end)
        pos += size
    return None


def _check_coded(
    walk: _File,
    kind: bytes,
    declared: tuple[int, int] | None,
    configuration: tuple[int, int] | None,
    spans: list[tuple[int, int]],
) -> CodedStream:
    """Refuse coded data whose codec headers give a larger picture than the container declares."""
    stream = CodedStream(budget=walk.tally.remaining("bmff.units"))
    with contextlib.suppress(ShortHeader):  # a header the decoder cannot read either
        _read_coded(walk.data, kind, configuration, spans, stream)
    walk.tally.add("bmff.units", stream.units)
    walk.tally.peak("bmff.pictures", stream.pictures)
    if declared is not None and (
        stream.width > declared[0] + _CODED_SLACK or stream.height > declared[1] + _CODED_SLACK
    ):
        raise walk.tally.refuse(
            f"has an image declared {declared[0]}x{declared[1]} whose coded pictures are"
            f" {stream.width}x{stream.height}."
        )
    return stream


def _read_coded(
    data: bytes, kind: bytes, configuration: tuple[int, int] | None, spans: list[tuple[int, int]], stream: CodedStream
) -> None:
    if kind == b"av01":
        if configuration is not None:
            av1_units(data, configuration[0] + 4, configuration[1], stream)
        for start, stop in spans:
            av1_units(data, start, stop, stream)
        return
    length_size = 4 if configuration is None else _hevc_configuration(data, *configuration, stream)
    for start, stop in spans:
        hevc_units(data, start, stop, length_size, stream)


def _hevc_configuration(data: bytes, start: int, stop: int, stream: CodedStream) -> int:
    """Read the parameter sets of an hvcC box; return the size of the NAL unit length fields."""
    if stop - start < 23:
        raise ShortHeader
    length_size, arrays, pos = (data[start + 21] & 3) + 1, data[start + 22], start + 23
    for _ in range(arrays):
        if pos + 3 > stop:
            break
        (count,) = struct.unpack_from(">H", data, pos + 1)
        pos += 3
        for _ in range(count):
            if pos + 2 > stop or stream.units > stream.budget:
                break
            (size,) = struct.unpack_from(">H", data, pos)
            stream.units += 1
            hevc_unit(data, pos + 2, min(pos + 2 + size, stop), stream)
            pos += 2 + size
    return length_size


def _check_decoded(walk: _File) -> None:
    """Every picture the decoder decodes to show the primary image (each tile or input of a derived
    image, and its alpha plane), or an image sequence's first sample: their pixels against the pixels
    shown, and the bytes the decoder holds for them (their planes, each derived image's canvas, and
    the RGBA image it converts them to)."""
    primary = walk.items.get(walk.primary) if walk.primary is not None else None
    pictures: list[tuple[int, int, int]] = []
    held = 0
    if walk.sequence is not None and (primary is None or walk.brand == b"avis"):
        pictures.append(walk.sequence)
        shown = walk.sequence[0] * walk.sequence[1]
    elif primary is not None and walk.primary is not None:
        held = _decode(walk, walk.primary, pictures, 0)
        for kind, source, targets in walk.references:
            if kind == b"auxl" and walk.primary in targets and _auxiliary_type(walk, source) in _ALPHA:
                held += _decode(walk, source, pictures, 0)
        shown = _shown_pixels(walk, primary)
    else:
        return
    decoded = sum(width * height for width, height, _ in pictures)
    if decoded > CANVAS_FLOOR:
        walk.tally.peak("bmff.decoded_ratio", decoded // max(shown, 1))
    held += sum(width * height * samples // 4 for width, height, samples in pictures)
    walk.tally.survey.decoder_bytes += held + RGBA_BYTES * shown


def _decode(walk: _File, item_id: int, pictures: list[tuple[int, int, int]], depth: int) -> int:
    """Add the pictures decoded to make item `item_id` to `pictures`; return the bytes of the canvases
    derived images are drawn on (in the planes of their first input)."""
    item = walk.items.get(item_id)
    if item is None or depth > 2:  # decoders refuse deeper derivations
        return 0
    if item.kind not in _DERIVED:
        width, height = item.picture[:2] if item.picture else _size(walk, item) or (0, 0)
        pictures.append((width, height, item.picture[2] if item.picture else _WORST_SAMPLES))
        return 0
    walk.tally.step()
    first = len(pictures)
    held = sum(_decode(walk, i, pictures, depth + 1) for i in _inputs(walk, item_id))
    width, height = _size(walk, item) or (0, 0)
    samples = max((p[2] for p in pictures[first:]), default=_WORST_SAMPLES)
    return held + (0 if item.kind == b"iden" else width * height * samples // 4)


def _inputs(walk: _File, item_id: int) -> list[int]:
    for kind, source, targets in walk.references:
        if kind == b"dimg" and source == item_id:
            return targets
    return []


def _auxiliary_type(walk: _File, item_id: int) -> bytes:
    found = _property(walk, walk.items.get(item_id), b"auxC")
    return _Reader(walk.data, found[0] + 4, found[1]).string() if found and found[1] - found[0] > 4 else b""


def _shown_pixels(walk: _File, item: _Item) -> int:
    """The pixels of the image shown: its `ispe`, cropped by a clean aperture (`clap`) if it has one."""
    width, height = _size(walk, item) or (0, 0)
    crop = _property(walk, item, b"clap")
    if crop is not None and crop[1] - crop[0] >= 16:
        width_n, width_d, height_n, height_d = struct.unpack_from(">4I", walk.data, crop[0])
        width = min(width, width_n // max(width_d, 1))
        height = min(height, height_n // max(height_d, 1))
    return width * height


def _check_metadata(walk: _File) -> None:
    """pi-heif copies each metadata item and ICC profile once per image that refers to it."""
    described: Counter[int] = Counter()
    for kind, source, targets in walk.references:
        if kind == b"cdsc":
            described[source] += len(targets)
    for item_id, item in walk.items.items():
        if item.kind not in _METADATA_ITEMS:
            continue
        spans = _spans(walk, item)
        walk.tally.add("bmff.metadata_bytes", sum(b - a for a, b in spans) * max(1, described[item_id]))
        if item.kind == b"Exif" and spans:
            _check_exif_item(walk, spans)
    users = Counter(index for item in walk.items.values() for index in item.properties)
    for index, (kind, start, stop) in enumerate(walk.properties, 1):
        if kind == b"colr" and walk.data[start : start + 4] in _ICC_TYPES:
            walk.tally.add("icc.bytes", (stop - start - 4) * max(1, users[index]))
            check_icc(walk.data, start + 4, stop, walk.tally)


def _check_exif_item(walk: _File, spans: list[tuple[int, int]]) -> None:
    """An Exif item: a 4-byte offset to the TIFF header, then the EXIF (pi-heif's reading of it)."""
    if len(spans) == 1:
        data, start, stop = walk.data, *spans[0]
    else:
        data = b"".join(walk.data[a:b] for a, b in spans)
        start, stop = 0, len(data)
    if stop - start < 8:
        return
    tiff = start + 4 + int.from_bytes(data[start : start + 4], "big")
    check_exif(data, tiff if stop - tiff > 4 else start + 4, stop, walk.tally)
