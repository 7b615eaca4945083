"""The headers inside coded image items of AVIF (AV1 OBUs) and HEIF (HEVC NAL units).

A decoder allocates and decodes what the codec's own header says, not what the container's `ispe`
claims: a 64x64 grid tile whose AV1 sequence header says 4096x4096 decodes 16 MP (256 such tiles in
150 KB took 5 s; HEVC tiles of 16 MP, 40 s). So the coded size is read from the sequence header
(AV1) or the sequence parameter set (HEVC), with the chroma format and bit depth that set how many
bytes each decoded pixel takes, and the pictures an item holds are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

_AV1_SEQUENCE_HEADER, _AV1_FRAME_HEADER, _AV1_FRAME = 1, 3, 6
_HEVC_SPS = 33
_HEVC_VCL_END = 32  # NAL unit types below this carry slice data
_HEADER_BYTES = 1024  # sequence headers and parameter sets are shorter; more would only be copied


class ShortHeader(Exception):
    """A header ended before the field being read: the decoder will reject it."""


@dataclass
class CodedStream:
    """What the units of one coded item say: its largest coded size and how many pictures it holds."""

    budget: int  # units to walk at most: the caller's guard refuses the file past it
    units: int = 0
    pictures: int = 0
    width: int = 0
    height: int = 0
    chroma: int = 0  # chroma_format_idc: 0 for 4:0:0, 1 for 4:2:0, 2 for 4:2:2, 3 for 4:4:4
    bit_depth: int = 8

    def coded_size(self, width: int, height: int, chroma: int, bit_depth: int) -> None:
        self.width, self.height = max(self.width, width), max(self.height, height)
        self.chroma, self.bit_depth = max(self.chroma, chroma), max(self.bit_depth, bit_depth)

    def sample_bytes(self) -> int:
        """Bytes a decoder holds per 4 pixels of a picture coded so (decoders keep > 8 bits in 16)."""
        return SAMPLES_PER_4_PIXELS[self.chroma] * (2 if self.bit_depth > 8 else 1)


# Samples per 4 pixels, by chroma_format_idc: the luma plane and two chroma planes, subsampled or not.
SAMPLES_PER_4_PIXELS = {0: 4, 1: 6, 2: 8, 3: 12}


class _Bits:
    def __init__(self, data: bytes) -> None:
        self._value, self._size, self._pos = int.from_bytes(data, "big"), 8 * len(data), 0

    def read(self, count: int) -> int:
        self._pos += count
        if self._pos > self._size:
            raise ShortHeader
        return (self._value >> (self._size - self._pos)) & ((1 << count) - 1)

    def leading_zeros(self, cap: int) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= cap:
                break
        return zeros

    def exp_golomb(self) -> int:  # HEVC ue(v)
        zeros = self.leading_zeros(32)
        return (1 << zeros) - 1 + self.read(zeros)


def av1_units(data: bytes, pos: int, end: int, stream: CodedStream) -> None:
    """Walk the OBUs in data[pos:end], reading sequence headers and counting frames."""
    while pos < end and stream.units <= stream.budget:
        stream.units += 1
        header = data[pos]
        kind, extended, sized = (header >> 3) & 15, header >> 2 & 1, header >> 1 & 1
        pos += 1 + extended
        size = end - pos
        if sized:
            size, pos = _leb128(data, pos, end)
        if kind == _AV1_SEQUENCE_HEADER:
            stream.coded_size(*_av1_sequence(data[pos : min(pos + size, pos + _HEADER_BYTES)]))
        elif kind in (_AV1_FRAME_HEADER, _AV1_FRAME):
            stream.pictures += 1
        pos += size


def _leb128(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for index in range(8):
        if pos >= end:
            raise ShortHeader
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            break
    return value, pos


def _av1_sequence(payload: bytes) -> tuple[int, int, int, int]:
    """max_frame_width, max_frame_height, chroma format and bit depth from an AV1 sequence header OBU
    (AV1 spec 5.5)."""
    bits = _Bits(payload)
    profile = bits.read(3)
    bits.read(1)  # still_picture
    reduced = bits.read(1)  # reduced_still_picture_header
    if reduced:
        bits.read(5)
    else:
        _av1_operating_points(bits)
    width_bits, height_bits = bits.read(4) + 1, bits.read(4) + 1
    width, height = bits.read(width_bits) + 1, bits.read(height_bits) + 1
    if not reduced and bits.read(1):  # frame_id_numbers_present_flag
        bits.read(7)
    bits.read(3)  # use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if not reduced:
        _av1_tools(bits)
    bits.read(3)  # enable_superres, enable_cdef, enable_restoration
    return width, height, *_av1_colour(bits, profile)


def _av1_tools(bits: _Bits) -> None:
    bits.read(4)  # interintra and masked compound, warped motion, dual filter
    order_hint = bits.read(1)
    if order_hint:
        bits.read(2)  # jnt_comp, ref_frame_mvs
    screen_content = 2 if bits.read(1) else bits.read(1)  # seq_choose_ / seq_force_screen_content_tools
    if screen_content and not bits.read(1):  # seq_choose_integer_mv
        bits.read(1)
    if order_hint:
        bits.read(3)


def _av1_colour(bits: _Bits, profile: int) -> tuple[int, int]:
    """Chroma format (as HEVC's chroma_format_idc) and bit depth from color_config (AV1 spec 5.5.2)."""
    bit_depth = 10 if bits.read(1) else 8
    if profile == 2 and bit_depth == 10 and bits.read(1):
        bit_depth = 12
    if profile != 1 and bits.read(1):  # mono_chrome
        return 0, bit_depth
    if profile == 0:
        return 1, bit_depth
    if profile == 1:
        return 3, bit_depth
    # Profile 2: 4:2:2 unless 12-bit, whose subsampling is coded; the largest of them (4:4:4) is assumed.
    return (3 if bit_depth == 12 else 2), bit_depth


def _av1_operating_points(bits: _Bits) -> None:
    decoder_model, delay_length = False, 0
    if bits.read(1):  # timing_info_present_flag
        bits.read(64)  # num_units_in_display_tick, time_scale
        if bits.read(1):  # equal_picture_interval: uvlc num_ticks_per_picture_minus_1
            zeros = bits.leading_zeros(32)
            if zeros < 32:
                bits.read(zeros)
        decoder_model = bool(bits.read(1))
        if decoder_model:
            delay_length = bits.read(5) + 1
            bits.read(32 + 5 + 5)
    initial_display_delay = bits.read(1)
    for _ in range(bits.read(5) + 1):
        bits.read(12)  # operating_point_idc
        if bits.read(5) > 7:  # seq_level_idx
            bits.read(1)  # seq_tier
        if decoder_model and bits.read(1):
            bits.read(2 * delay_length + 1)
        if initial_display_delay and bits.read(1):
            bits.read(4)


def hevc_units(data: bytes, pos: int, end: int, length_size: int, stream: CodedStream) -> None:
    """Walk length-prefixed NAL units in data[pos:end], reading SPSs and counting pictures."""
    while pos + length_size <= end and stream.units <= stream.budget:
        stream.units += 1
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        hevc_unit(data, pos, min(pos + size, end), stream)
        pos += size


def hevc_unit(data: bytes, pos: int, end: int, stream: CodedStream) -> None:
    if end - pos < 3:
        return
    kind = (data[pos] >> 1) & 0x3F
    if kind == _HEVC_SPS:
        stream.coded_size(*_hevc_sequence(data[pos : min(end, pos + _HEADER_BYTES)]))
    elif kind < _HEVC_VCL_END and data[pos + 2] & 0x80:  # first_slice_segment_in_pic_flag
        stream.pictures += 1


def _hevc_sequence(nal: bytes) -> tuple[int, int, int, int]:
    """pic_width/height_in_luma_samples, chroma_format_idc and the larger bit depth from an HEVC
    sequence parameter set (H.265 7.3.2.2)."""
    bits = _Bits(nal[2:].replace(b"\x00\x00\x03", b"\x00\x00"))  # drop emulation prevention bytes
    bits.read(4)  # sps_video_parameter_set_id
    sub_layers = bits.read(3)
    bits.read(1)
    bits.read(96)  # general profile, tier and level
    present = [(bits.read(1), bits.read(1)) for _ in range(sub_layers)]
    if sub_layers:
        bits.read(2 * (8 - sub_layers))
    for profile, level in present:
        bits.read(88 * profile + 8 * level)
    bits.exp_golomb()  # sps_seq_parameter_set_id
    chroma = bits.exp_golomb()
    if chroma == 3:
        bits.read(1)  # separate_colour_plane_flag
    width, height = bits.exp_golomb(), bits.exp_golomb()
    if bits.read(1):  # conformance_window_flag
        for _ in range(4):
            bits.exp_golomb()
    luma, chroma_depth = bits.exp_golomb(), bits.exp_golomb()
    return width, height, min(chroma, 3), 8 + max(luma, chroma_depth)
