"""Reader for Ando-lab / RIBM high-speed AFM ``.asd`` files (versions 0, 1 and 2).

Layout (see ``docs/formats/asd.md#versions``): a little-endian file header, then every frame
of channel 1, then every frame of channel 2 (channel-major). Each frame is a fixed-size
frame header followed by ``y_pixels * x_pixels`` int16 levels, row-major. A level ``L``
becomes a physical value through one affine map per channel, ``a * L + b``.
"""

from __future__ import annotations

import codecs
import math
import os
import struct
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    AfmIOWarning,
    AfmOSError,
    CorruptFileError,
    TruncatedFileWarning,
    UnsupportedFormatError,
)
from ..lazy import StridedFrames
from .base import CANONICAL_LONG_NAMES, ChannelInfo, FormatInfo, Reader, Recording

FORMAT = FormatInfo("asd", "Ando lab / RIBM high-speed AFM (versions 0, 1, 2)", (".asd",))

MAX_PIXELS = 16384  # per side; larger values are a corrupt header, not a real scan
MAX_FRAME_HEADER = 1 << 16

# (name, struct code) of the fixed header fields, in file order (no padding anywhere).
_V1_FIELDS = [
    ("file_version", "i"),
    ("file_header_size", "i"),
    ("frame_header_size", "i"),
    ("text_encoding", "i"),
    ("operator_name_size", "i"),
    ("comment_size", "i"),
    ("data_kind_ch1", "i"),
    ("data_kind_ch2", "i"),
    ("frames_recorded", "i"),
    ("frames_current", "i"),
    ("scan_direction", "i"),
    ("file_id", "i"),
    ("x_pixels", "i"),
    ("y_pixels", "i"),
    ("x_range_nm", "i"),
    ("y_range_nm", "i"),
    ("is_averaged", "?"),
    ("average_window", "i"),
    ("year", "i"),
    ("month", "i"),
    ("day", "i"),
    ("hour", "i"),
    ("minute", "i"),
    ("second", "i"),
    ("x_rounding_degree", "i"),
    ("y_rounding_degree", "i"),
    ("frame_time_ms", "f"),
    ("sensor_sensitivity", "f"),
    ("phase_sensitivity", "f"),
    ("offset", "i"),
    (None, "12x"),
    ("machine_id", "i"),
    ("ad_range_code", "I"),
    ("ad_resolution_bits", "i"),
    ("x_max_range_nm", "f"),
    ("y_max_range_nm", "f"),
    ("x_piezo_extension", "f"),
    ("y_piezo_extension", "f"),
    ("z_piezo_extension", "f"),
    ("z_piezo_gain", "f"),
]
_V0_FIELDS = [
    ("file_version", "i"),
    ("data_kind_ch1", "h"),
    ("data_kind_ch2", "h"),
    ("file_header_size", "i"),
    ("frame_header_size", "i"),
    ("operator_name_size", "i"),
    ("comment_offset_size", "i"),
    ("comment_size", "i"),
    ("x_pixels", "h"),
    ("y_pixels", "h"),
    ("x_range_nm", "h"),
    ("y_range_nm", "h"),
    ("frame_time_ms", "f"),
    ("z_piezo_extension", "f"),
    ("z_piezo_gain", "f"),
    ("ad_range_code", "I"),
    ("ad_resolution_bits", "i"),
    ("is_averaged", "?"),
    ("average_window", "i"),
    ("legacy", "h"),
    ("year", "h"),
    ("month", "B"),
    ("day", "B"),
    ("hour", "B"),
    ("minute", "B"),
    ("second", "B"),
    ("rounding_degree", "B"),
    ("x_max_range_nm", "f"),
    ("y_max_range_nm", "f"),
    (None, "12x"),
    ("frames_recorded", "i"),
    ("frames_current", "i"),
    ("machine_id", "i"),
    ("file_id", "h"),
]
_V0_AFTER_NAME = [
    ("sensor_sensitivity", "f"),
    ("phase_sensitivity", "f"),
    ("scan_direction", "i"),
]


def _struct(fields: list[tuple[str | None, str]]) -> tuple[struct.Struct, list[str]]:
    return (
        struct.Struct("<" + "".join(code for _, code in fields)),
        [name for name, _ in fields if name],
    )


def _only(fields: list[tuple[str | None, str]], names: set[str]) -> list[tuple[str | None, str]]:
    """``fields`` up to the last of ``names``, the others as padding of their size."""
    out = [(n, c) if n in names else (None, f"{struct.calcsize('<' + c)}x") for n, c in fields]
    while out[-1][0] is None:
        out.pop()
    return out


_V1, _V1_NAMES = _struct(_V1_FIELDS)
_V0, _V0_NAMES = _struct(_V0_FIELDS)
#: The fields :func:`sniff` checks, read alone.
_SNIFFED = {"x_pixels", "y_pixels", "frame_header_size", "data_kind_ch1", "file_header_size"}
_V1_SNIFF, _V1_SNIFF_NAMES = _struct(_only(_V1_FIELDS, _SNIFFED))
_V0_SNIFF, _V0_SNIFF_NAMES = _struct(_only(_V0_FIELDS, _SNIFFED))
_V0B, _V0B_NAMES = _struct(_V0_AFTER_NAME)
_V2_TRAILER = struct.Struct("<i")
assert (_V1.size, _V0.size, _V0B.size) == (165, 105, 12)

# Channel code -> (native name, canonical name, unit).
_KINDS = {
    0x5054: ("TP", "height_trace", "nm"),
    0x5245: ("ER", "error_trace", "nm"),
    0x4850: ("PH", "phase_trace", "deg"),
}

# AD range code -> (bipolar?, volts). Code 3 is in no specification but in every real
# file; afmio follows AFMReader/playNano (unipolar 0..9.99 V) so heights agree with theirs.
_AD_RANGES = {
    0x1: (False, 1.0),
    0x2: (False, 2.5),
    0x3: (False, 9.99),
    0x4: (False, 5.0),
    0x10000: (True, 1.0),
    0x20000: (True, 2.5),
    0x40000: (True, 5.0),
    0x800000: (True, 80.0),
}

# LIBASD's enumeration of the header's scan direction.
_SCAN_DIRECTIONS = {1: "x-forward", 2: "x-backward", 4: "y-forward", 8: "y-backward"}

# Windows code pages used for the operator name and comment.
_CODE_PAGES = {932: "cp932", 1200: "utf-16-le", 20932: "euc_jp", 65001: "utf-8", 20127: "ascii"}


def sniff(path: Path, head: bytes) -> bool:
    """True if ``head`` starts like an ASD file: a known version and a plausible header.

    ASD has no magic number, so the version alone would match any file starting with
    0, 1 or 2; the frame geometry fields must be sane as well. Only those fields are
    unpacked: :func:`read` parses the whole header.
    """
    if len(head) < 4:
        return False
    (version,) = struct.unpack_from("<i", head)
    if version in (1, 2) and len(head) >= _V1.size:
        h = dict(zip(_V1_SNIFF_NAMES, _V1_SNIFF.unpack_from(head), strict=True))
    elif version == 0 and len(head) >= _V0.size:
        h = dict(zip(_V0_SNIFF_NAMES, _V0_SNIFF.unpack_from(head), strict=True))
    else:
        return False
    return (
        0 < h["x_pixels"] <= MAX_PIXELS
        and 0 < h["y_pixels"] <= MAX_PIXELS
        and 0 <= h["frame_header_size"] <= MAX_FRAME_HEADER
        and h["data_kind_ch1"] in _KINDS
        and h["file_header_size"] >= 0
    )


class _HeaderBytes:
    """Bounded, checked access to the start of a file: no raw ``struct.error`` escapes."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        self.buf = b""

    def need(self, end: int, what: str) -> bytes:
        if end > self.size:
            raise CorruptFileError(
                self.path,
                f"truncated header: the {what} ends at byte {end} but the file has "
                f"only {self.size} bytes",
            )
        if end > len(self.buf):
            # Read at least 64 KiB at a time, never past the end of the file.
            want = min(self.size, max(end, 65536))
            with open(self.path, "rb") as f:
                self.buf = f.read(want)
        return self.buf

    def unpack(self, s: struct.Struct, names: list[str], at: int, what: str) -> dict[str, Any]:
        buf = self.need(at + s.size, what)
        return dict(zip(names, s.unpack_from(buf, at), strict=True))

    def text(self, at: int, length: int, encoding: str, what: str) -> str:
        if length < 0:
            raise CorruptFileError(self.path, f"negative {what} length {length}")
        raw = self.need(at + length, what)[at : at + length]
        return raw.decode(encoding, errors="replace").replace("\x00", "")


def _codec(code_page: int | None) -> str:
    name = _CODE_PAGES.get(code_page or 932, f"cp{code_page}")
    try:
        codecs.lookup(name)
    except LookupError:
        return "cp932"
    return name


def _parse_header(path: Path, size: int) -> tuple[dict[str, Any], int]:
    """Return the header fields and the byte offset where frame data starts."""
    hb = _HeaderBytes(path, size)
    (version,) = struct.unpack_from("<i", hb.need(4, "version field"))
    if version in (1, 2):
        h = hb.unpack(_V1, _V1_NAMES, 0, f"version-{version} fixed header")
        enc = _codec(h["text_encoding"])
        n, m = h["operator_name_size"], h["comment_size"]
        h["operator_name"] = hb.text(165, n, enc, "operator name")
        h["comment"] = hb.text(165 + n, m, enc, "comment")
        data_start = h["file_header_size"]
        if version == 2 and 165 + n + m + 4 <= data_start:
            # Only the first field of the v2 trailer is agreed on by all sources (see
            # docs/formats/asd.md#version-2-file-header); the frame data start comes
            # from file_header_size anyway.
            h.update(hb.unpack(_V2_TRAILER, ["number_of_frames"], 165 + n + m, "v2 trailer"))
        if data_start < 165:
            raise CorruptFileError(
                path, f"header size field says {data_start} bytes, less than the 165 it must hold"
            )
    elif version == 0:
        h = hb.unpack(_V0, _V0_NAMES, 0, "version-0 fixed header")
        n, k, m = h["operator_name_size"], h["comment_offset_size"], h["comment_size"]
        h["operator_name"] = hb.text(105, n, "cp932", "operator name")
        if n < 0 or k < 0:
            raise CorruptFileError(path, "negative string length in the version-0 header")
        h.update(hb.unpack(_V0B, _V0B_NAMES, 105 + n, "version-0 header after the name"))
        h["comment"] = hb.text(117 + n + k, m, "cp932", "comment")
        # Some v0 writers got file_header_size wrong (LIBASD); the data follows the comment.
        data_start = 117 + n + k + m
    else:
        raise UnsupportedFormatError(
            path, f"unknown ASD file version {version} (afmio reads versions 0, 1 and 2)"
        )
    for key in (
        "frame_time_ms",
        "sensor_sensitivity",
        "phase_sensitivity",
        "x_max_range_nm",
        "y_max_range_nm",
        "x_piezo_extension",
        "y_piezo_extension",
        "z_piezo_extension",
        "z_piezo_gain",
    ):
        if key in h:
            h[key] = _f32(h[key])
    return h, data_start


def _f32(x: float) -> float | None:
    """A float32 header value, exactly as stored; None for NaN or infinity (JSON-safe)."""
    return x if math.isfinite(x) else None


def _check_geometry(path: Path, h: dict[str, Any], data_start: int, size: int) -> None:
    for axis in ("x_pixels", "y_pixels"):
        if not 0 < h[axis] <= MAX_PIXELS:
            raise CorruptFileError(
                path, f"header gives {h[axis]} {axis.replace('_', ' ')}, outside 1..{MAX_PIXELS}"
            )
    if not 0 <= h["frame_header_size"] <= MAX_FRAME_HEADER:
        raise CorruptFileError(
            path, f"header gives a frame header of {h['frame_header_size']} bytes"
        )
    if h["data_kind_ch1"] not in _KINDS:
        raise CorruptFileError(
            path, f"unknown channel-1 data kind {h['data_kind_ch1']:#x} (expected TP, ER or PH)"
        )
    if data_start > size:
        raise CorruptFileError(
            path,
            f"header says frame data starts at byte {data_start}, past the end of "
            f"the {size}-byte file",
        )


def _count_frames(
    path: Path, h: dict[str, Any], n_channels: int, stride: int, available: int
) -> tuple[list[int], int, list[AfmIOWarning], str]:
    """Frames per channel, the channel block length, warnings, and the rule used.

    Channels are stored one after the other, each block ``block`` frames long. A header
    count is trusted when the file size matches it exactly; otherwise the file was cut
    short or has extra bytes, and only whole frames are read
    (docs/formats/asd.md#frame-counts-and-file-size).
    """
    counts = [h.get(k) for k in ("frames_current", "frames_recorded", "number_of_frames")]
    for c in counts:
        if c is not None and c >= 0 and available == n_channels * c * stride:
            return [c] * n_channels, c, [], "header count matches the file size"
    declared = h["frames_current"]
    if declared >= 0 and n_channels * declared * stride < available:
        extra = available - n_channels * declared * stride
        msg = (
            f"{path}: {extra} bytes after the last of the {declared} declared frames per "
            f"channel were ignored (the file is longer than its header says)"
        )
        return [declared] * n_channels, declared, [TruncatedFileWarning(msg)], "extra bytes ignored"
    # Missing bytes: the file was cut short, so channel blocks keep the declared length
    # and the last channels lose frames (a negative count leaves only what fits).
    fit = available // stride
    block = declared if declared >= 0 else fit // n_channels
    per = [max(0, min(block, fit - c * block)) for c in range(n_channels)]
    if sum(per) == 0:
        raise CorruptFileError(
            path,
            f"truncated frame data: header declares {declared} frames of {stride} "
            f"bytes but only {available} bytes follow the header, not one whole frame",
        )
    msg = (
        f"{path}: truncated frame data: header declares {declared} frames per channel "
        f"({n_channels * declared * stride} bytes after the header) but the file holds "
        f"{available}; reading {', '.join(map(str, per))} whole frames per channel and "
        f"ignoring {available - sum(per) * stride} trailing bytes"
    )
    return per, block, [TruncatedFileWarning(msg)], "truncated: whole frames that fit"


def _scaling(
    path: Path, h: dict[str, Any], kind: int
) -> tuple[float | None, float, str, AfmIOWarning | None]:
    """(gain, bias, unit, warning) turning levels of channel ``kind`` into its unit."""
    native, _, unit = _KINDS[kind]
    code, bits = h["ad_range_code"], h["ad_resolution_bits"]
    factor = {
        "TP": (h.get("z_piezo_gain") or 0.0) * (h.get("z_piezo_extension") or 0.0),
        "ER": -(h.get("sensor_sensitivity") or 0.0),
        "PH": -(h.get("phase_sensitivity") or 0.0),
    }[native]
    problem = None
    if code not in _AD_RANGES:
        problem = f"unknown AD range code {code:#x}"
    elif not 1 <= bits <= 24:
        problem = f"implausible AD resolution of {bits} bits"
    elif factor == 0.0:
        problem = f"its {native} conversion factor in the header is 0"
    if problem:
        warning = AfmIOWarning(
            f"{path}: channel {native} cannot be scaled to {unit} ({problem}); "
            f"values are raw ADC levels"
        )
        return None, 0.0, "levels", warning
    bipolar, volts = _AD_RANGES[code]
    levels = float(2**bits)
    # Height falls as the level rises (every reader but LIBASD's unipolar branch agrees):
    # unipolar V = -span*L/R, bipolar V = span - 2*span*L/R; value = V * factor.
    if bipolar:
        return -2.0 * volts / levels * factor, volts * factor, unit, None
    return -volts / levels * factor, 0.0, unit, None


def _epoch_ms(h: dict[str, Any]) -> float | None:
    try:
        dt = datetime(
            h["year"],
            h["month"],
            h["day"],
            h["hour"],
            h["minute"],
            h["second"],
            tzinfo=timezone.utc,
        )
    except (ValueError, OverflowError):
        return None
    return dt.timestamp() * 1000.0


def read(path: str | os.PathLike[str]) -> Recording:
    """Parse the headers of an ASD file; no frame data is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        h, data_start = _parse_header(path, size)
    except OSError as exc:
        raise AfmOSError(path, f"cannot be read: {exc.strerror or exc}") from exc
    _check_geometry(path, h, data_start, size)
    ny, nx, fh = h["y_pixels"], h["x_pixels"], h["frame_header_size"]
    stride = fh + 2 * nx * ny
    kinds = [h["data_kind_ch1"]]
    if h["data_kind_ch2"] != 0:
        if h["data_kind_ch2"] not in _KINDS:
            raise CorruptFileError(path, f"unknown channel-2 data kind {h['data_kind_ch2']:#x}")
        kinds.append(h["data_kind_ch2"])
    available = size - data_start
    if h["frames_current"] > 0 and available < stride:
        raise CorruptFileError(
            path,
            f"truncated frame data: one frame needs {stride} bytes "
            f"({nx}x{ny} int16 + {fh}-byte frame header) but only {available} bytes "
            f"follow the {data_start}-byte header",
        )
    per, block, warns, rule = _count_frames(path, h, len(kinds), stride, available)

    channels = []
    scaling_notes: dict[str, Any] = {}
    for c, (kind, n) in enumerate(zip(kinds, per, strict=True)):
        native, canonical, _ = _KINDS[kind]
        gain, bias, unit, warning = _scaling(path, h, kind)
        source = StridedFrames(
            path=str(path),
            offset=data_start + c * block * stride,
            stride=stride,
            skip=fh,
            n_frames=n,
            ny=ny,
            nx=nx,
            raw_dtype="<i2",
            gain=gain,
            bias=bias,
        )
        long_name = CANONICAL_LONG_NAMES[canonical]
        if unit == "levels":
            long_name += " (raw ADC levels, unscaled)"
        channels.append(
            ChannelInfo(canonical, native, unit, long_name, source, (warning,) if warning else ())
        )
        scaling_notes[native] = {"value_per_level": gain, "offset": bias, "unit": unit}

    n_max = max(per)
    frame_ms = h["frame_time_ms"]
    if frame_ms is None or frame_ms <= 0:
        warns.append(AfmIOWarning(f"{path}: header frame time is {frame_ms} ms; time is NaN"))
        frame_s = math.nan
    else:
        frame_s = frame_ms / 1000.0
    idx = np.arange(n_max, dtype=np.float64)
    epoch = _epoch_ms(h)
    # playNano's convention: the header date is when the file was written, at the end
    # of the recording, so frame 0 started (declared frames x frame time) earlier.
    start0 = (
        epoch - max(h["frames_current"], 0) * frame_ms
        if epoch is not None and frame_s == frame_s
        else math.nan
    )
    direction = _SCAN_DIRECTIONS.get(h["scan_direction"], "")

    px_x = h["x_range_nm"] / nx if h["x_range_nm"] > 0 else math.nan
    px_y = h["y_range_nm"] / ny if h["y_range_nm"] > 0 else math.nan
    if not (px_x == px_x and px_y == px_y):
        warns.append(
            AfmIOWarning(
                f"{path}: header scan range is {h['x_range_nm']} x {h['y_range_nm']} nm; "
                f"pixel size unknown (NaN)"
            )
        )

    acquisition = dict(h)
    acquisition["ad_range_code_hex"] = f"{h['ad_range_code']:#x}"
    acquisition["channel_names"] = [_KINDS[k][0] for k in kinds]
    acquisition["scan_direction_name"] = direction
    if epoch is not None:
        acquisition["date"] = datetime.fromtimestamp(epoch / 1000, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
    notes = {
        "data_offset": data_start,
        "frame_stride_bytes": stride,
        "frame_count_rule": rule,
        "frames_read": {_KINDS[k][0]: n for k, n in zip(kinds, per, strict=True)},
        "scaling": scaling_notes,
        "date_convention": "header date taken as naive UTC at the end of the recording",
    }
    if h["ad_range_code"] == 0x3:
        notes["height_offset_note"] = (
            "AD range code 3 is undocumented; scaled as unipolar 0-9.99 V like AFMReader "
            "and playNano, so absolute heights are defined only up to a constant"
        )
    return Recording(
        path=str(path),
        format="asd",
        format_version=str(h["file_version"]),
        size_bytes=size,
        channels=tuple(channels),
        pixel_size_x_nm=px_x,
        pixel_size_y_nm=px_y,
        time_s=idx * frame_s,
        frame_coords={
            "start_epoch_ms": start0 + idx * (frame_ms or math.nan),
            "frame_duration_s": np.full(n_max, frame_s),
            "line_rate": np.full(n_max, ny / frame_s),
            "scan_direction": np.full(n_max, direction),
        },
        acquisition=acquisition,
        reader_notes=notes,
        warnings=warns,
    )


READER = Reader(FORMAT, sniff, read)
