"""Reader for JPK Instruments TIFF images (``.jpk``) and folders of them as videos.

Layout (``docs/formats/jpk.md#container``): a classic big-endian TIFF. IFD 0 holds a small
thumbnail and the global JPK tags (dates, scan grid, scan rate, motion); every further IFD
holds one channel as uncompressed int32 strips forming one contiguous block, with tags that
name the channel (0x8050, retrace flag 0x8051) and list its calibration slots (0x8080 on).
The default slot's multiplier and offset map raw integers straight to that slot's unit;
lengths (``m``) are returned in nm, other units (``V``, ``deg``) as they are. A channel
whose calibration tags are missing or unusable in any frame opens in raw levels (units
``"levels"``) with a warning, rather than failing.

A folder of ``.jpk`` files (any case of the extension; hidden files such as macOS ``._``
debris are ignored) is one video, one frame per file, as JPK NanoRacer saves a run. Frames
are ordered by their start-date tag (natural file-name order when a file has none) and each
uses its own calibration, which changes from frame to frame. Files that cannot be read, or
whose geometry or channels differ from the majority, are left out with a warning naming them.

Orientation: rows come out reversed, as AFMReader's ``load_jpk`` (``flip_image=True``)
and Gwyddion's JPK module (written at JPK) return them: **row 0 is the last row stored in
the TIFF**, the top of the image as Gwyddion displays it. playNano 0.5.0's folder loader
reverses AFMReader's already reversed rows once more, so its frames are afmio's upside down
(``afmio[:, ::-1] == playNano``); playNano's own intent, ``flip_image=True`` like its
``.h5-jpk`` reader, is afmio's. Grid theta (rotation) and reflect are recorded in the
provenance, not applied.

Time: ``time`` is seconds since the first frame's start date, ``start_epoch_ms`` the start
date (0x8003, millisecond precision, its time zone honoured; the unique-id tag 0x8008, which
JPK sets to the start in epoch ms, resolves zone names that are unknown or ambiguous) and
``frame_duration_s`` is end date minus start date. ``line_rate`` is the scan-rate tag
0x8049 as the file gives it (in interlaced fast imaging a frame takes lines / (2 x rate)).

Headers are parsed by a small bounded IFD reader doing a few positioned reads of some KiB
per file rather than by tifffile, which needs about 1.5 ms a file: too slow to open folders
of thousands of frames in under a second.
"""

from __future__ import annotations

import math
import operator
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    AfmIOError,
    AfmIOWarning,
    CorruptFileError,
    TruncatedFileWarning,
    UnsupportedFormatError,
)
from ..lazy import FileFrames
from ._errors import refuse_signatures
from ._folder import MAX_LISTED, Frames, Majority, Problems, listing, read_frames, unlike
from ._tiff import IFD_READ, Ifd, IfdLoopError, Tiff, open_tiff
from .base import ChannelInfo, FormatInfo, Reader, Recording

FORMAT = FormatInfo("jpk", "JPK NanoWizard / NanoRacer TIFF images and folders of them", (".jpk",))

_MAGIC = b"MM\x00*"
_FIRST_READ = 16384  # TIFF header, IFD 0 and its values, in every sample
_MAX_PAGES = 1024  # channel IFDs per file; more means a looping or corrupt chain

# Standard TIFF tags.
_WIDTH, _LENGTH, _BITS, _COMPRESSION, _OFFSETS, _SPP, _COUNTS, _SAMPLE_FORMAT = (
    256, 257, 258, 259, 273, 277, 279, 339,
)  # fmt: skip
# JPK global tags (IFD 0).
_VERSION, _START, _END, _UNIQUE_ID, _SETTINGS, _FEEDBACK_SETTINGS = (
    0x8000, 0x8003, 0x8006, 0x8008, 0x8017, 0x803E,
)  # fmt: skip
_GRID_U, _GRID_V, _GRID_I, _GRID_J, _RATE, _MOTION = 0x8042, 0x8043, 0x8046, 0x8047, 0x8049, 0x804B
# JPK channel tags (IFD 1...n) and calibration slots: slot k's tags start at
# _SLOT0 + k * _SLOT_STRIDE; the fields below are offsets from there.
_CHANNEL, _RETRACE, _FANCY, _PROPERTIES, _N_SLOTS, _DEFAULT_SLOT = (
    0x8050, 0x8051, 0x8052, 0x8053, 0x8080, 0x8081,
)  # fmt: skip
_SLOT0, _SLOT_STRIDE, _MAX_SLOTS = 0x8090, 0x30, (0xFFFF - 0x8090) // 0x30
_SLOT_FIELDS = {
    "name": 0x00,
    "calibration": 0x01,
    "parent": 0x02,
    "display_name": 0x10,
    "encoder": 0x11,
    "unit": 0x12,
    "scaling": 0x13,
    "multiplier": 0x14,
    "offset": 0x15,
}
# Any of these in IFD 0 besides the format version marks a JPK image
# (docs/formats/jpk.md#global-tags-ifd-0).
_JPK_MARKERS = frozenset({_GRID_U, _CHANNEL})

# (bits per sample, sample format) -> (stored dtype, bytes per sample).
_DTYPES = {
    (16, 1): (">u2", 2), (16, 2): (">i2", 2), (32, 1): (">u4", 4), (32, 2): (">i4", 4),
    (32, 3): (">f4", 4),
}  # fmt: skip

# Names of the global tags in the provenance (after Gwyddion's jpk.h); others by number.
_GLOBAL_NAMES = {
    0x8000: "file_format_version", 0x8001: "program_version", 0x8002: "saved_by_program",
    0x8003: "start_date", 0x8004: "name", 0x8005: "comment", 0x8006: "end_date",
    0x8007: "sample", 0x8008: "unique_id", 0x8009: "account_name",
    0x8010: "cantilever_comment", 0x8011: "cantilever_spring_constant",
    0x8012: "cantilever_calibrated", 0x8013: "cantilever_shape", 0x8014: "cantilever_radius",
    0x8015: "approach_id", 0x801A: "approach_p_gain", 0x801B: "tipsaver_setpoint",
    0x801C: "tipsaver_active", 0x801D: "tipsaver_lower_limit", 0x8030: "feedback_mode",
    0x8031: "feedback_p_gain", 0x8032: "feedback_i_gain", 0x8033: "feedback_setpoint",
    0x8034: "feedback_var1", 0x8035: "feedback_var2", 0x8036: "feedback_var3",
    0x8037: "feedback_var4", 0x8038: "feedback_var5", 0x8039: "approach_i_gain",
    0x8040: "grid_x0_m", 0x8041: "grid_y0_m", 0x8042: "grid_u_length_m",
    0x8043: "grid_v_length_m", 0x8044: "grid_theta_rad", 0x8045: "grid_reflect",
    0x8046: "grid_i_length", 0x8047: "grid_j_length", 0x8048: "line_end_mode",
    0x8049: "scan_rate_hz", 0x804A: "duty_cycle", 0x804B: "motion",
    0x804C: "scanline_start", 0x804D: "scanline_size",
}  # fmt: skip
_INTERLACE_KEY = "fast-imaging.feed-forward-parameters.yaxis.interlace"

# Time zone names Java writes (SimpleDateFormat "z"), in minutes east of UTC. Ambiguous
# names (CST, IST, ...) are left out on purpose: the unique-id tag settles those.
_ZONES = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "WEST": 60, "BST": 60, "CET": 60,
    "CEST": 120, "MET": 60, "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180,
    "JST": 540, "KST": 540, "HKT": 480, "SGT": 480, "AWST": 480, "ACST": 570, "ACDT": 630,
    "AEST": 600, "AEDT": 660, "NZST": 720, "NZDT": 780, "EST": -300, "EDT": -240,
    "CDT": -300, "MST": -420, "MDT": -360, "PST": -480, "PDT": -420, "AKST": -540,
    "AKDT": -480, "HST": -600,
}  # fmt: skip
_DATE = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*(.*?)\s*$"
)
_NUMERIC_ZONE = re.compile(r"(?:GMT|UTC)?([+-])(\d{1,2})(?::?(\d{2}))?")
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")


def folder_member(path: Path) -> bool:
    """True for a ``.jpk`` file name (any case) that is not hidden (``._x.jpk`` on macOS)."""
    name = path.name
    return name[-4:].lower() == ".jpk" and not name.startswith(".")


def sniff(path: Path, head: bytes) -> bool:
    """True if ``head`` is a big-endian TIFF whose IFD 0 carries JPK's private tags.

    A ``.jpk`` file that ends inside IFD 0 is claimed too, so that its truncation is
    reported by this reader rather than as a foreign TIFF file.
    """
    if len(head) < 8 or not head.startswith(_MAGIC):
        return False
    offset = int.from_bytes(head[4:8], "big")
    block = head[offset:]
    if len(block) < 2 or len(block) < 2 + 12 * int.from_bytes(block[:2], "big"):
        block = _peek(path, offset)  # IFD 0 runs past the head: read its entries
    n = int.from_bytes(block[:2], "big") if len(block) >= 2 else 0
    end = min(2 + 12 * n, len(block) - 1)
    codes = {int.from_bytes(block[i : i + 2], "big") for i in range(2, end, 12)}
    if _VERSION in codes and not codes.isdisjoint(_JPK_MARKERS):
        return True
    truncated = len(block) < min(IFD_READ, 2 + 12 * n) or len(block) < 2
    return truncated and path.suffix.lower() == ".jpk"


def _peek(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(IFD_READ)
    except (OSError, OverflowError, ValueError):
        return b""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, tuple):
        value = value[0]
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _integers(value: Any) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, tuple) and isinstance(value[0], int):  # one type per tag
        return value
    return ()


# --------------------------------------------------------------------------------------
# One file


@dataclass(frozen=True)
class _Page:
    """One channel image of a file and its scaling to the channel's output unit."""

    key: str  # "height_trace"
    native: str  # "Height trace"
    long_name: str
    index: int  # IFD number
    ifd_offset: int
    ny: int
    nx: int
    dtype: str
    offset: int
    gain: float | None
    bias: float
    unit: str
    slot: str
    scaling_problem: str | None


@dataclass
class _Frame:
    """What one file's headers say; problems are (warning class, message without path)."""

    path: Path
    size: int
    version: str
    start_ms: float | None
    end_ms: float | None
    line_rate: float
    motion: str
    px_x_nm: float
    px_y_nm: float
    pages: dict[str, _Page]
    problems: list[tuple[type[AfmIOWarning], str]] = field(default_factory=list)

    @property
    def geometry(self) -> tuple[int, int, str]:
        page = next(iter(self.pages.values()))
        return (page.ny, page.nx, f"{self.px_x_nm:.9g} x {self.px_y_nm:.9g}")

    @property
    def layout(self) -> tuple[tuple[str, str], ...]:
        return tuple((p.key, p.dtype) for p in self.pages.values())


def _scan(path: Path) -> _Frame:
    """Parse the headers of one ``.jpk`` file (a few positioned reads; no pixel data)."""
    with open_tiff(path) as t:
        return _parse(t)


#: TIFF kin that are not JPK images, and why.
_OTHER_TIFFS = (
    (b"II*\x00", "is a little-endian TIFF file; JPK images are big-endian TIFF ('MM')"),
    (b"MM\x00+", "is a BigTIFF file; JPK images are classic TIFF"),
)


def _not_tiff(path: Path, head: bytes) -> AfmIOError:
    refuse_signatures(path, head, _OTHER_TIFFS)
    return CorruptFileError(
        path,
        f"is not a JPK image: it starts with {head[:8]!r}, not with the big-endian TIFF "
        f"signature {_MAGIC!r} every JPK image starts with",
    )


def _parse(t: Tiff) -> _Frame:
    """The global tags of IFD 0 and the channel pages of the IFDs after it."""
    path = t.path
    if t.size == 0:
        raise CorruptFileError(path, "file is empty (0 bytes)")
    if t.size < 8:
        raise CorruptFileError(path, f"file has only {t.size} bytes, too few for a TIFF header")
    head = t.read(0, 8, "TIFF header", ahead=_FIRST_READ)
    if not head.startswith(_MAGIC):
        raise _not_tiff(path, head)
    g = t.ifd(t.first_ifd(_FIRST_READ), 0)
    if _VERSION not in g.entries and _JPK_MARKERS.isdisjoint(g.entries):
        raise UnsupportedFormatError(
            path, "is a big-endian TIFF file without JPK tags (0x8000...) in IFD 0"
        )
    pages, problems = _pages(t, g)
    get = g.get
    ny, nx = next(iter(pages.values())).ny, next(iter(pages.values())).nx
    start_ms, end_ms, zone_problem = _dates(get(_START), get(_END), get(_UNIQUE_ID))
    if zone_problem:
        problems.append((AfmIOWarning, zone_problem))
    rate = _number(get(_RATE))
    return _Frame(
        path=path,
        size=t.size,
        version=_text(get(_VERSION)) or "",
        start_ms=start_ms,
        end_ms=end_ms,
        line_rate=rate if rate is not None and rate > 0 else math.nan,
        motion=_text(get(_MOTION)) or "",
        px_x_nm=_pixel_nm(_number(get(_GRID_U)), _number(get(_GRID_I)) or nx),
        px_y_nm=_pixel_nm(_number(get(_GRID_V)), _number(get(_GRID_J)) or ny),
        pages=pages,
        problems=problems,
    )


def _pages(t: Tiff, first: Ifd) -> tuple[dict[str, _Page], list[tuple[type[AfmIOWarning], str]]]:
    """The usable channel pages by key, following the IFD chain after IFD 0 (``first``).

    A damaged page is skipped and a broken chain ends the list; both are recorded as
    problems. Raises CorruptFileError if no page is usable.
    """
    pages: dict[str, _Page] = {}
    problems: list[tuple[type[AfmIOWarning], str]] = []
    chain = t.following(first, _MAX_PAGES)
    while True:
        try:
            ifd = next(chain, None)
        except IfdLoopError as exc:
            problems.append((AfmIOWarning, f"{exc.problem}; the rest is ignored"))
            break
        except CorruptFileError as exc:
            problems.append((TruncatedFileWarning, exc.problem))
            break  # the rest of the chain is lost
        if ifd is None:
            break
        try:
            page = _page(t, ifd)
        except CorruptFileError as exc:
            problems.append((TruncatedFileWarning, exc.problem))
        except UnsupportedFormatError as exc:
            problems.append((AfmIOWarning, exc.problem))
        else:
            first_page = next(iter(pages.values()), page)
            if page.key in pages:
                problems.append(
                    (AfmIOWarning, f"IFD {ifd.index} repeats channel {page.key}; the first is used")
                )
            elif (page.ny, page.nx) != (first_page.ny, first_page.nx):
                problems.append(
                    (AfmIOWarning, f"IFD {ifd.index} ({page.key}) is {page.ny}x{page.nx}, unlike "
                     f"the first channel's {first_page.ny}x{first_page.nx}; ignored")
                )  # fmt: skip
            else:
                pages[page.key] = page
    if not pages:
        why = "; ".join(msg for _, msg in problems) or "it has no channel IFD after IFD 0"
        raise CorruptFileError(t.path, f"no readable channel image: {why}")
    return pages, problems


def _pixel_nm(length_m: float | None, pixels: float) -> float:
    """Pixel size in nm from a scan length in m; NaN when the length is missing or absurd."""
    if length_m is None or not math.isfinite(length_m) or length_m <= 0 or pixels <= 0:
        return math.nan
    return length_m / pixels * 1e9  # AFMReader's order of operations: identical floats


def _page(t: Tiff, ifd: Ifd) -> _Page:
    """Describe a channel IFD; unusable layouts raise
    UnsupportedFormatError, pixels past the end of the file CorruptFileError."""
    index, get = ifd.index, ifd.get
    where = f"IFD {index}"

    nx, ny = _number(get(_WIDTH)), _number(get(_LENGTH))
    if not nx or not ny or nx < 1 or ny < 1:
        raise UnsupportedFormatError(t.path, f"{where} has no image width and length")
    nx, ny = int(nx), int(ny)
    bits, sample_format = int(_number(get(_BITS)) or 0), int(_number(get(_SAMPLE_FORMAT)) or 1)
    dtype, itemsize = _DTYPES.get((bits, sample_format), (None, 0))
    if dtype is None:
        raise UnsupportedFormatError(
            t.path,
            f"{where} holds {bits}-bit samples of sample format {sample_format}, not a 16- or "
            f"32-bit data channel",
        )
    compression, spp = _number(get(_COMPRESSION)) or 1, _number(get(_SPP)) or 1
    if compression != 1 or spp != 1:
        raise UnsupportedFormatError(
            t.path,
            f"{where} is compressed (scheme {compression:g}) or has {spp:g} samples per pixel; "
            f"JPK channels are uncompressed single-sample images",
        )
    offsets, counts = _integers(get(_OFFSETS)), _integers(get(_COUNTS))
    nbytes = ny * nx * itemsize
    contiguous = (
        offsets
        and len(counts) == len(offsets)
        and all(map(operator.eq, offsets[1:], map(operator.add, offsets, counts)))
        and sum(counts) >= nbytes
    )
    if not contiguous:
        raise UnsupportedFormatError(
            t.path, f"{where}: its {ny}x{nx} pixels are not stored as one contiguous block"
        )
    if offsets[0] + nbytes > t.size:
        raise CorruptFileError(
            t.path,
            f"truncated frame data: the pixels of {where} run to byte {offsets[0] + nbytes} "
            f"but the file has only {t.size} bytes",
        )
    name = _text(get(_CHANNEL)) or f"channel{index}"
    direction = "retrace" if _number(get(_RETRACE)) else "trace"
    key = f"{name}_{direction}"
    fancy = _text(get(_FANCY)) or name
    gain, bias, unit, slot, problem = _scaling(get)
    return _Page(
        key=key,
        native=f"{fancy} {direction}",
        long_name=f"{fancy}, {direction}",
        index=index,
        ifd_offset=ifd.offset,
        ny=ny,
        nx=nx,
        dtype=dtype,
        offset=offsets[0],
        gain=gain,
        bias=bias,
        unit=unit,
        slot=slot,
        scaling_problem=problem,
    )


def _scaling(get: Callable[[int], Any]) -> tuple[float | None, float, str, str, str | None]:
    """(gain, bias, unit, default slot, problem) of a channel from its default slot.

    Each slot's multiplier and offset already map raw integers to its unit
    (docs/formats/jpk.md#channel-tags-and-calibration-slots),
    so the default slot is used alone, never chained through its parents. A ``NullScaling``
    slot without a unit means raw levels on purpose; a slot that cannot be used is a problem.
    """
    n, default = _number(get(_N_SLOTS)), _text(get(_DEFAULT_SLOT))
    if n is None or default is None:
        return None, 0.0, "levels", "", "no calibration slot tags (0x8080, 0x8081)"
    for k in range(min(int(max(n, 0)), _MAX_SLOTS)):
        base = _SLOT0 + k * _SLOT_STRIDE
        if _text(get(base)) == default:
            break
    else:
        return (
            None,
            0.0,
            "levels",
            default,
            f"default slot {default!r} is not among its {n:g} slots",
        )
    kind, unit = _text(get(base + 0x13)), _text(get(base + 0x12)) or ""
    if kind == "NullScaling":
        gain, bias = 1.0, 0.0
    elif kind == "LinearScaling":
        gain, bias = _number(get(base + 0x14)), _number(get(base + 0x15)) or 0.0
        if gain is None or not (math.isfinite(gain) and math.isfinite(bias)):
            return None, 0.0, "levels", default, f"slot {default!r} has no finite multiplier/offset"
    else:
        return None, 0.0, "levels", default, f"slot {default!r} has scaling type {kind!r}"
    if unit == "m":
        return gain * 1e9, bias * 1e9, "nm", default, None
    if not unit and kind == "NullScaling":
        return None, 0.0, "levels", default, None
    return gain, bias, unit, default, None


def _dates(start: Any, end: Any, unique_id: Any) -> tuple[float | None, float | None, str | None]:
    """Start and end in ms since the epoch (UTC), and a problem with the time zone if any.

    The unique id (0x8008) holds the start in epoch ms in every sample: it fixes the UTC
    offset when the zone name is unknown, and stands in for a missing or unreadable start.
    """
    start_local, start_zone, zone_name = _local_ms(start)
    end_local, end_zone, _ = _local_ms(end)
    uid = float(unique_id) if isinstance(unique_id, str) and unique_id.isdigit() else None
    problem = None
    if start_local is not None and start_zone is None:
        diff = None if uid is None else uid - start_local
        if diff is not None and abs(diff) <= 15 * 3600_000:
            start_zone = round(-diff / 900_000) * 15  # whole quarter hours east of UTC
        else:
            start_zone = 0
            problem = (
                f"time zone of the dates ({zone_name or 'none given'}) is unknown; taken as UTC"
            )
    start_ms = uid if start_local is None else start_local - start_zone * 60_000
    end_ms = None
    if end_local is not None:
        end_ms = end_local - (end_zone if end_zone is not None else start_zone or 0) * 60_000
    return start_ms, end_ms, problem


def _local_ms(text: Any) -> tuple[float | None, int | None, str]:
    """A JPK date ('2023-02-16 12:08:46.436 GMT') as (wall-clock ms read as UTC, zone minutes
    east of UTC or None if unknown, zone name)."""
    match = _DATE.match(text) if isinstance(text, str) else None
    if match is None:
        return None, None, ""
    *fields, fraction, zone = match.groups()
    try:
        wall = datetime(*map(int, fields), tzinfo=timezone.utc)
    except ValueError:
        return None, None, zone
    ms = float(int(wall.timestamp()) * 1000 + int((fraction or "0")[:3].ljust(3, "0")))
    if zone in _ZONES:
        return ms, _ZONES[zone], zone
    numeric = _NUMERIC_ZONE.fullmatch(zone)
    if numeric:
        sign, hours, minutes = numeric.groups()
        return ms, (1 if sign == "+" else -1) * (int(hours) * 60 + int(minutes or 0)), zone
    return ms, None, zone


# --------------------------------------------------------------------------------------
# Provenance of the first frame


def _key_values(text: Any) -> dict[str, str]:
    """JPK's 'key : value' text lines (Java properties escapes) as a dict of strings."""
    out: dict[str, str] = {}
    if not isinstance(text, str):
        return out
    for line in text.splitlines():
        key, sep, value = line.partition(" :")
        if sep:
            out[_unescape(key.strip())] = _unescape(value.strip())
    return out


def _unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        return chr(int(s[1:], 16)) if len(s) == 5 else {"n": "\n", "t": "\t"}.get(s, s)

    return _ESCAPE.sub(one, text)


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _describe(frame: _Frame) -> dict[str, Any]:
    """Every JPK tag of one file as JSON-safe provenance (one more read of its headers)."""
    with open_tiff(frame.path) as t:
        g = t.ifd(t.first_ifd(_FIRST_READ), 0)
        tags: dict[str, Any] = {}
        for tag in sorted(g.entries):
            if 0x8000 <= tag < _CHANNEL and tag not in (_SETTINGS, _FEEDBACK_SETTINGS):
                tags[_GLOBAL_NAMES.get(tag, f"tag_{tag:#06x}")] = _json_value(g.get(tag))
        channels = {
            key: _describe_channel(t.ifd(page.ifd_offset, page.index), page)
            for key, page in frame.pages.items()
        }
        return {
            "file": frame.path.name,
            "tags": tags,
            "settings": _key_values(g.get(_SETTINGS)),
            "feedback_settings": _key_values(g.get(_FEEDBACK_SETTINGS)),
            "channels": channels,
        }


def _describe_channel(ifd: Ifd, page: _Page) -> dict[str, Any]:
    slots = []
    for k in range(min(int(max(_number(ifd.get(_N_SLOTS)) or 0, 0)), _MAX_SLOTS)):
        base = _SLOT0 + k * _SLOT_STRIDE
        slots.append({name: _json_value(ifd.get(base + d)) for name, d in _SLOT_FIELDS.items()})
    return {
        "ifd": page.index,
        "channel": _text(ifd.get(_CHANNEL)),
        "retrace": page.key.endswith("_retrace"),
        "display_name": _text(ifd.get(_FANCY)),
        "properties": _key_values(ifd.get(_PROPERTIES)),
        "default_slot": page.slot,
        "slots": slots,
    }


# --------------------------------------------------------------------------------------
# Recording


def read(path: str | os.PathLike[str]) -> Recording:
    """Parse the headers of a ``.jpk`` file or of a folder of them; no pixel data is read."""
    path = Path(path)
    found = read_frames(
        path,
        _scan,
        member=folder_member,
        what=".jpk",
        stages=(unlike(lambda f: f.geometry, _geometry_text), Majority(_layout, _misfit)),
        clocks=(lambda f: f.start_ms,),
    )
    return _recording(path, found)


def _geometry_text(geometry: tuple[int, int, str]) -> str:
    return f"{geometry[0]}x{geometry[1]} px of {geometry[2]} nm"


def _layout(frame: _Frame) -> tuple[tuple[str, str], ...]:
    return frame.layout


def _misfit(frame: _Frame, layout: tuple[tuple[str, str], ...]) -> str | None:
    """Why ``frame`` lacks channels of the majority's ``layout`` (key, dtype), None if not."""
    missing = [k for k, dtype in layout if k not in frame.pages or frame.pages[k].dtype != dtype]
    if not missing:
        return None
    why = "; ".join(msg for _, msg in frame.problems)
    return f"no usable {', '.join(missing)}" + (f" ({why})" if why else "")


def _timing(
    path: Path, kept: list[_Frame], ny: int, interlaced: bool
) -> tuple[dict[str, np.ndarray], np.ndarray, str, list[AfmIOWarning]]:
    """Per-frame coordinates, ``time`` in s, the rule used and warnings (frames in order)."""
    starts = np.array([math.nan if f.start_ms is None else f.start_ms for f in kept])
    ends = np.array([math.nan if f.end_ms is None else f.end_ms for f in kept])
    rates = np.array([f.line_rate for f in kept])
    # playNano's fallback: a frame takes lines / rate, half that when interlaced.
    nominal = ny / rates / (2.0 if interlaced else 1.0)
    warnings: list[AfmIOWarning] = []
    if not np.isnan(starts).any():
        time_s = (starts - starts[0]) / 1000.0
        rule = "start date tags (0x8003) relative to the first frame"
    else:
        time_s = np.arange(len(kept)) * nominal[0]
        rule = "frame index x lines / scan rate (no start date in some files)"
        warnings.append(
            AfmIOWarning(
                f"{path}: {int(np.isnan(starts).sum())} of {len(kept)} files have no readable "
                f"start date; frames are in file-name order and {nominal[0]:.6g} s apart "
                f"(lines / scan rate{' / 2, interlaced' if interlaced else ''})"
            )
        )
    coords = {
        "start_epoch_ms": starts,
        "frame_duration_s": np.where(np.isnan(ends - starts), nominal, (ends - starts) / 1000.0),
        "line_rate": rates,
        "scan_direction": np.array([f.motion for f in kept]),
    }
    return coords, time_s, rule, warnings


def _channel(
    path: Path, key: str, dtype: str, kept: list[_Frame], ny: int, nx: int
) -> tuple[ChannelInfo, dict[str, Any]]:
    """One channel over the kept frames, each frame with its own scaling, and a note."""
    pages = [f.pages[key] for f in kept]
    units = sorted({p.unit for p in pages})
    bad = [
        (f.path.name, p.scaling_problem)
        for f, p in zip(kept, pages, strict=True)
        if p.scaling_problem
    ]
    warnings: tuple[AfmIOWarning, ...] = ()
    gains: tuple[float | None, ...] = tuple(p.gain for p in pages)
    biases = tuple(p.bias for p in pages)
    unit = units[0]
    if bad or len(units) > 1:
        # One unit per channel: if any frame cannot be scaled, none is.
        problem = bad[0][1] if bad else f"its unit differs between files ({', '.join(units)})"
        names = [name for name, _ in bad] or [f.path.name for f in kept]
        warnings = (
            AfmIOWarning(
                f"{path}: channel {key} cannot be scaled to physical units ({problem}; "
                f"{listing(names)}); values are raw levels"
            ),
        )
        gains, biases, unit = (None,) * len(kept), (0.0,) * len(kept), "levels"
    source = FileFrames(
        path=str(path),
        files=tuple(str(f.path) for f in kept),
        offsets=tuple(p.offset for p in pages),
        gains=gains,
        biases=biases,
        ny=ny,
        nx=nx,
        raw_dtype=dtype,
        flip_y=True,
    )
    long_name = pages[0].long_name + (" (raw levels, unscaled)" if unit == "levels" else "")
    known = [g for g in gains if g is not None]
    note = {
        "default_slot": pages[0].slot,
        "unit": unit,
        "value_per_level": [min(known), max(known)] if known else None,
        "offset": [min(biases), max(biases)],
    }
    return ChannelInfo(key, pages[0].native, unit, long_name, source, warnings), note


def _recording(path: Path, found: Frames[_Frame]) -> Recording:
    kept, (_, layout), warnings = found.frames, found.winners, list(found.warnings)
    # Problems of kept files, grouped so that 2,000 frames with one problem give one warning.
    problems = Problems(path, found)
    for f in kept:
        for cls, msg in f.problems:
            problems.add(msg, f.path, cls)
    warnings += problems.warnings()
    first = kept[0]
    acquisition = _describe(first)
    ny, nx = first.pages[layout[0][0]].ny, first.pages[layout[0][0]].nx
    interlaced = acquisition["settings"].get(_INTERLACE_KEY, "").strip().lower() == "true"
    frame_coords, time_s, time_rule, time_warnings = _timing(path, kept, ny, interlaced)
    warnings += time_warnings
    if not (math.isfinite(first.px_x_nm) and math.isfinite(first.px_y_nm)):
        warnings.append(
            AfmIOWarning(
                f"{path}: no usable scan size (grid tags 0x8042/0x8043); pixel size unknown (NaN)"
            )
        )
    channels, scaling_notes = [], {}
    for key, dtype in layout:
        channel, scaling_notes[key] = _channel(path, key, dtype, kept, ny, nx)
        channels.append(channel)
    notes: dict[str, Any] = {
        "files": len(kept),
        "first_file": first.path.name,
        "last_file": kept[-1].path.name,
        "order": "natural file-name order" if found.clock is None else "start date",
        "time": time_rule,
        "interlaced": interlaced,
        "orientation": "rows reversed as AFMReader and Gwyddion do: row 0 is the last stored row",
        "scaling": scaling_notes,
    }
    if found.left_out:
        notes["left_out"] = dict(list(found.left_out.items())[:MAX_LISTED])
        notes["left_out_count"] = len(found.left_out)
    return found.recording(
        path,
        FORMAT,
        format_version=first.version,
        channels=tuple(channels),
        pixel_size_x_nm=first.px_x_nm,
        pixel_size_y_nm=first.px_y_nm,
        time_s=time_s,
        frame_coords=frame_coords,
        acquisition=acquisition,
        reader_notes=notes,
        warnings=warnings,
    )


READER = Reader(FORMAT, sniff, read, container="tiff", priority=20, folder_member=folder_member)
