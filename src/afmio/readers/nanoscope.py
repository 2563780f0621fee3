"""Reader for Bruker / Veeco Nanoscope images (``.spm``, ``.000``, ``.001`` ...) and folders
of them.

Layout (``docs/formats/nanoscope.md#file-structure``): a Latin-1 text header of
``\\Key: value`` lines grouped in ``\\*Section`` blocks, ``Data length`` bytes long (from
the ``File list``), then one binary block per channel at the ``Data offset`` of its ``Ciao
image list``: little-endian signed integers (2 or 4 bytes), ``Number of lines`` x
``Samps/line``, row-major.

Conventions
-----------
- One file is one frame; a folder of them is a video. Frames whose geometry (shape, pixel
  size) differs from the majority, or that cannot be read, are left out with a warning.
- Orientation: the first stored line is the bottom of the image, so rows are reversed:
  **row 0 is the top line of the image as Gwyddion and AFMReader show it, i.e. the last
  line stored in the file**. ``Frame direction`` (up/down) does not change the storage
  order; it is reported as ``scan_direction`` (``topDown``/``bottomUp``, as playNano).
- Values: ``raw / 256**Bytes/pixel * hard value * soft scale`` from ``@2:Z scale``
  (docs/formats/nanoscope.md#raw-data-and-scaling), never the hard scale in parentheses.
  Lengths are given in nm; other channels keep their units (V, deg ...). A soft scale
  missing from the header gives ``raw / 256**bpp * hard value`` in the hard unit, and a
  missing ``Z scale`` the raw levels, each with a warning.
- Storage width: ``Data length / (lines * samples)`` when that is 2 or 4 (so version 9.2+
  int32 blocks are read as such), else 4 bytes from version 9.2 on and ``Bytes/pixel``
  before. Image-list geometry wins; the scan list's is used only when the block does
  not fit the image list's (docs/formats/nanoscope.md#geometry-and-orientation).
- Pixel size: x = X scan size / samples, y = Y scan size / lines (Gwyddion's rule; the
  header states the Y extent, so non-square pixels are kept).
- Channels: canonical ``<native name>_<trace|retrace>`` in snake case (``Height Sensor``
  retrace is ``height_sensor_retrace``; a repeated one gets ``_2``...), native name = the
  quoted name of ``@2:Image Data``.
  The default channel, listed first, is ``Height`` (trace before retrace), else ``Height
  Sensor``: Height is written by every Nanoscope version, is TopoStats' default channel
  (``loading.channel: Height``) and agrees with afmio's ``height_trace`` default; Height
  Sensor (the closed-loop Z sensor, not on every scanner) is the fallback for files that
  only have it.
- Time: ``Relative frame time`` (seconds) when every frame has it, else the ``Date`` of
  each file (1 s resolution), else frame index x ``lines / Scan rate``; frames are sorted
  by the chosen clock, so a missing frame keeps its gap. ``Date`` is naive instrument
  time, taken as UTC for ``start_epoch_ms``. ``frame_duration_s`` is image lines / ``Scan
  rate`` and ``line_rate`` the ``Scan rate``.
- Truncation: a channel whose block runs past the end of the file is left out with a
  :class:`~afmio.errors.TruncatedFileWarning`; a file left with no complete channel is an
  error (in a folder, that frame is left out with a warning).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
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
from ..lazy import FileFrames
from ._errors import refuse_signatures
from ._folder import Frames, Problems, read_frames, unlike
from .base import ChannelInfo, FormatInfo, Reader, Recording

FORMAT = FormatInfo(
    "nanoscope", "Bruker / Veeco Nanoscope images and folders of them", (".spm", ".000", ".001")
)

#: Bytes read first: the header length (``Data length``) is in the first lines.
FIRST_READ = 2048
#: Real headers are 20-80 KiB; a longer declared length is read only this far.
MAX_HEADER_BYTES = 4 * 2**20
MAX_PIXELS = 1 << 16  # per side

_IMAGE_MAGICS = (b"\\*File list", b"\\*EC File list")
_MAGICS = (*_IMAGE_MAGICS, b"?*File list", b"\\*Force file list")
_END = b"\\*File list end"
#: Nanoscope files that are not binary images, and why.
_OTHER_FILES = (
    (
        b"?*File list",
        "is a Nanoscope file with text data ('?*File list'); only binary data is read",
    ),
    (b"\\*Force file list", "is a Nanoscope force-curve file, not an image"),
)
_IMAGE_SECTIONS = {
    "ciao image list",
    "afm image list",
    "stm image list",
    "ncafm image list",
    "image list",
}
# Where file-wide parameters live, most specific first (GWY-NS accepts these aliases).
_SCAN_SECTIONS = ("ciao scan list", "afm list", "stm list", "nc afm list")
_V9_2 = 0x09200000
# The default channel: the first of these (native name, direction) in a file.
_DEFAULT_CHANNELS = (
    ("height", "trace"),
    ("height", "retrace"),
    ("height sensor", "trace"),
    ("height sensor", "retrace"),
)

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LEADING_NUM = re.compile(_NUM)
_CIAO_GROUP = re.compile(r"@\d+:")
_VALUE = re.compile(
    rf"V\s*(?:\[(?P<soft>[^\]]*)\])?\s*(?:\((?P<hard>[^)]*)\))?\s*(?P<value>{_NUM})\s*(?P<unit>\S*)"
)
_SENS = re.compile(rf"V\s+(?P<value>{_NUM})\s*(?P<unit>\S*)")
_SELECT = re.compile(r'S\s*\[(?P<internal>[^\]]*)\]\s*"(?P<external>[^"]*)"')
_GROUP = re.compile(r"@(\d+):image data")
_SCAN_SIZE = re.compile(rf"(?P<x>{_NUM})(?:\s+(?P<y>{_NUM}))?\s*(?P<unit>\S*)")
_DATE = re.compile(
    r"(\d{1,2}):(\d{2}):(\d{2})\s*([AaPp][Mm])?\s+[A-Za-z]+\s+([A-Za-z]{3})[a-z]*\s+"
    r"(\d{1,2})\s+(\d{4})"
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# SI prefixes as powers of ten, so that e.g. um -> nm is exactly x 1000.
_PREFIXES = {"p": -12, "n": -9, "u": -6, "m": -3, "k": 3}
#: Header values are matched on their first characters only (they are short when valid).
_VALUE_CHARS = 256
_BASE_UNITS = {"m", "V", "A", "Hz", "N", "s", "deg"}
_DIRECTIONS = {"down": "topDown", "up": "bottomUp"}
#: The clocks that order a folder's frames, the first that every frame has: its name (for
#: the reader notes), the frame's time on it, and that time's units per second.
_CLOCKS = (
    ("Relative frame time", lambda f: f.rel_time, 1.0),
    ("Date", lambda f: f.epoch_ms, 1000.0),
)


def sniff(path: Path, head: bytes) -> bool:
    """True if ``head`` starts with a Nanoscope magic line (``\\*File list`` and kin)."""
    return head.startswith(_MAGICS)


def folder_member(path: Path) -> bool:
    """True for names a Nanoscope frame file has: ``.spm`` or a 3-digit extension, any case."""
    suffix = Path(path).suffix.lower()
    return suffix == ".spm" or (len(suffix) == 4 and suffix[1:].isascii() and suffix[1:].isdigit())


# ----------------------------------------------------------------------------- header


@dataclass
class _Section:
    """One ``\\*Section`` of the header: its fields as written and by case-folded key."""

    name: str
    fields: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, value: str) -> None:
        # The first occurrence wins: some scan lists repeat a CIAO key.
        self.fields.setdefault(key, value)
        self.keys.setdefault(key.casefold(), value)

    def get(self, key: str) -> str | None:
        return self.keys.get(key.casefold())

    @property
    def is_image(self) -> bool:
        return self.name.casefold() in _IMAGE_SECTIONS


def _parse_sections(text: str) -> list[_Section]:
    sections: list[_Section] = []
    for line in re.split(r"\r?\n", text):
        if line.startswith("\\*"):
            sections.append(_Section(line[2:].strip()))
        elif sections and (kv := _param(line)):
            sections[-1].add(*kv)
    return sections


def _param(line: str) -> tuple[str, str] | None:
    """``\\Key: value`` -> ``(key, value)``; the separator is the first colon after a CIAO
    group prefix such as ``@2:`` (plain string search: no regex backtracking on long lines)."""
    if not line.startswith("\\"):
        return None
    m = _CIAO_GROUP.match(line, 1)
    colon = line.find(":", m.end() if m else 1)
    if colon < 0:
        return None
    return line[1:colon].strip(), line[colon + 1 :].strip()


def _read_header(path: Path) -> tuple[list[_Section], int]:
    """Parse the header of ``path``, reading at most its declared length; return the
    sections and the file size."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(min(size, FIRST_READ))
            if not head:
                raise CorruptFileError(path, "file is empty (0 bytes)")
            declared = _declared_header_length(path, head)
            total = min(declared, size, MAX_HEADER_BYTES)
            buf = head[:total] + (f.read(total - len(head)) if total > len(head) else b"")
    except OSError as exc:
        raise AfmOSError(path, f"cannot be read: {exc.strerror or exc}") from exc
    end = buf.find(_END)
    if end < 0:
        if total == size < declared:
            raise CorruptFileError(
                path,
                f"truncated header: the header is declared {declared} bytes long but the "
                f"file has only {size} bytes and no '\\*File list end' line",
            )
        raise CorruptFileError(
            path,
            f"the header never ends: no '\\*File list end' line in its first {total} bytes "
            f"(declared header length {declared})",
        )
    return _parse_sections(buf[:end].decode("latin-1")), size


def _declared_header_length(path: Path, head: bytes) -> int:
    """The ``Data length`` of the File list, which leads the header (GWY-NS)."""
    refuse_signatures(path, head, _OTHER_FILES)
    magic = next((m for m in _IMAGE_MAGICS if head.startswith(m)), None)
    if magic is None:
        raise CorruptFileError(path, "not a Nanoscope file: it does not start with '\\*File list'")
    if head[len(magic) : len(magic) + 2] != b"\r\n":
        raise CorruptFileError(
            path,
            "damaged Nanoscope file: its header lines do not end in CR LF, so its line "
            "endings were converted and the binary data is destroyed",
        )
    # Only the File list section, i.e. up to the next section line.
    first = head.split(b"\r\n\\*", 1)[0].decode("latin-1")
    for line in first.split("\r\n")[1:]:
        kv = _param(line)
        if kv and kv[0].casefold() == "data length":
            try:
                n = int(kv[1].split()[0])
            except (ValueError, IndexError):
                break
            if n <= 0:
                break
            return n
    raise CorruptFileError(
        path,
        "no valid '\\Data length' in the File list at the start of the header, so the "
        "header length is unknown",
    )


# ----------------------------------------------------------------------------- values


def _match(pattern: re.Pattern[str], value: str | None) -> re.Match[str] | None:
    return pattern.match((value or "")[:_VALUE_CHARS].strip())


def _float(value: str | None) -> float | None:
    """The leading number of a header value (``'1.99943'``, ``'7279.93 s'``), or None."""
    m = _match(_LEADING_NUM, value)
    return float(m[0]) if m else None


def _ints(value: str | None) -> list[int]:
    if value is None:
        return []
    out = []
    for token in value[:_VALUE_CHARS].split():
        try:
            out.append(int(float(token)))
        except ValueError:
            break
    return out


def _unit(text: str) -> str:
    """Header unit spelling to afmio's: ``~m`` -> ``um``, ``º`` -> ``deg``."""
    return text.replace("~", "u").replace("µ", "u").replace("º", "deg").replace("°", "deg")


def _split_unit(unit: str) -> tuple[int, str]:
    """``'mV'`` -> ``(-3, 'V')``: power of ten and base unit; unknown units -> ``(0, unit)``."""
    if unit not in _BASE_UNITS and unit[:1] in _PREFIXES and unit[1:] in _BASE_UNITS:
        return _PREFIXES[unit[0]], unit[1:]
    return 0, unit


def _compose(soft_unit: str, hard_unit: str) -> tuple[float, str]:
    """Factor and unit of ``soft scale x hard value`` (``nm/V`` x ``mV``), lengths in nm."""
    exp, unit = 0, hard_unit
    if "/" in soft_unit:
        num, den = soft_unit.split("/", 1)
        (ed, bd), (eh, bh) = _split_unit(den), _split_unit(hard_unit)
        exp, unit = (eh - ed, num) if bd == bh else (0, f"{soft_unit}*{hard_unit}")
    elif soft_unit:
        unit = f"{soft_unit}*{hard_unit}"
    e, base = _split_unit(unit)
    if base == "m":
        return 10.0 ** (exp + e + 9), "nm"
    return 10.0**exp, unit


def _length_nm(value: float, unit: str) -> float | None:
    e, base = _split_unit(_unit(unit))
    return value * 10.0 ** (e + 9) if base == "m" else None


def _epoch_ms(date: str | None) -> float | None:
    """``'04:06:25 PM Thu Sep 26 2019'`` as ms since 1970, the clock taken as UTC."""
    m = _DATE.search((date or "")[:_VALUE_CHARS])
    if not m:
        return None
    hour, minute, second = int(m[1]), int(m[2]), int(m[3])
    if m[4]:
        hour = hour % 12 + (12 if m[4].upper() == "PM" else 0)
    month = m[5].lower()
    if month not in _MONTHS:
        return None
    try:
        dt = datetime(
            int(m[7]),
            _MONTHS.index(month) + 1,
            int(m[6]),
            hour,
            minute,
            second,
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    return dt.timestamp() * 1000.0


# ----------------------------------------------------------------------------- one file


class _BlockError(ValueError):
    """One channel image of a file cannot be read; the others may be."""

    def __init__(self, problem: str, truncated: bool = False) -> None:
        super().__init__(problem)
        self.truncated = truncated


@dataclass
class _Block:
    """One channel image of one file, located and scaled."""

    native: str
    direction: str  # "trace" or "retrace"
    name: str
    offset: int
    rows: int
    cols: int
    raw_dtype: str
    gain: float | None
    unit: str
    px_x: float
    px_y: float
    problems: list[str]  # usable anyway, reported as channel warnings


@dataclass
class _Frame:
    """What one file contributes: its header, complete channel blocks and clock."""

    path: Path
    size: int
    sections: list[_Section]
    version: str
    blocks: list[_Block]
    epoch_ms: float | None
    rel_time: float | None
    scan_rate: float
    direction: str
    dropped: list[_BlockError]  # channels left out of this file, and why

    @property
    def signature(self) -> tuple[int, int, float | None, float | None]:
        """Geometry that must agree across a video; pixel sizes to 9 digits, NaN as None
        (NaN would never compare equal)."""
        b = self.blocks[0]
        px = [None if math.isnan(p) else float(f"{p:.9g}") for p in (b.px_x, b.px_y)]
        return (b.rows, b.cols, *px)

    @property
    def duration(self) -> float:
        return self.blocks[0].rows / self.scan_rate


def _find(sections: list[_Section], key: str, prefer: tuple[str, ...] = ()) -> str | None:
    """``key`` from the first of the ``prefer`` sections that has it, else any non-image one."""
    ordered = [s for p in prefer for s in sections if s.name.casefold() == p]
    ordered += [s for s in sections if not s.is_image and s not in ordered]
    for s in ordered:
        value = s.get(key)
        if value is not None:
            return value
    return None


def _version(sections: list[_Section]) -> tuple[str, int]:
    text = (_find(sections, "Version", ("file list",)) or "").strip()
    try:
        return text, int(text, 16)
    except ValueError:
        return text, 0


def _scaling(
    sections: list[_Section], image: _Section, group: str, bpp: int
) -> tuple[float | None, str, list[str]]:
    """(gain, unit, problems) turning the raw levels of ``image`` into physical values."""
    z = image.get(f"@{group}:Z scale") or image.get("@2:Z scale")
    m = _match(_VALUE, z)
    if not m:
        return None, "levels", [f"no usable '@{group}:Z scale' ({z!r}); values are raw levels"]
    hard_value, hard_unit = float(m["value"]), _unit(m["unit"])
    per_level = hard_value / 256.0**bpp
    soft = (m["soft"] or "").strip()
    if not soft:
        return per_level, hard_unit, []
    sens = _match(_SENS, _find(sections, f"@{soft}", ("scanner list", "microscope list")))
    if not sens:
        return (
            per_level,
            hard_unit,
            [
                f"soft scale '{soft}' is not in the header; values are raw x hard value "
                f"in {hard_unit or 'hardware units'}, not physical units"
            ],
        )
    factor, unit = _compose(_unit(sens["unit"]), hard_unit)
    return per_level * float(sens["value"]) * factor, unit, []


def _layout(
    image: _Section, scan_rc: tuple[int, int], version: int
) -> tuple[int, int, int, int, list[str]]:
    """(rows, cols, storage width, scaling bytes/pixel, problems) of one image block."""
    problems = []
    samps = _ints(image.get("Samps/line"))
    rows_list = _ints(image.get("Number of lines"))
    # Nanoscope E files give the lines as a second number of Samps/line (GWY-NS).
    rows = rows_list[0] if rows_list else (samps[1] if len(samps) > 1 else scan_rc[0])
    cols = samps[0] if samps else scan_rc[1]
    bpp_list = _ints(image.get("Bytes/pixel"))
    length_list = _ints(image.get("Data length"))
    default_width = 4 if version >= _V9_2 else (bpp_list[0] if bpp_list else 2)
    if length_list:
        length = length_list[0]
        for r, c in ((rows, cols), scan_rc):
            if r > 0 and c > 0 and length in (2 * r * c, 4 * r * c):
                rows, cols, width = r, c, length // (r * c)
                break
        else:
            width = default_width
            if rows > 0 and cols > 0 and length < rows * cols * width:
                raise ValueError(
                    f"Data length {length} is too small for {rows} x {cols} pixels of {width} bytes"
                )
    else:
        width = default_width
        problems.append(f"no 'Data length'; assumed {rows} x {cols} x {width} bytes")
    if not (0 < rows <= MAX_PIXELS and 0 < cols <= MAX_PIXELS):
        raise ValueError(f"implausible image size {rows} x {cols}")
    if width not in (2, 4):
        raise ValueError(f"unsupported sample width of {width} bytes")
    if bpp_list and bpp_list[0] in (2, 4):
        bpp = bpp_list[0]
    else:
        bpp = width
        problems.append(f"no valid 'Bytes/pixel'; scaled as {width} bytes/pixel")
    return rows, cols, width, bpp, problems


def _pixel_size(
    image: _Section, sections: list[_Section], rows: int, cols: int
) -> tuple[float, float, list[str]]:
    text = image.get("Scan Size") or _find(sections, "Scan Size", _SCAN_SECTIONS)
    m = _match(_SCAN_SIZE, text)
    x = _length_nm(float(m["x"]), m["unit"]) if m else None
    if x is None or x <= 0:
        return math.nan, math.nan, [f"unusable scan size {text!r}; pixel size is NaN"]
    # Old files give one number: a square scan (GWY-NS).
    y = _length_nm(float(m["y"]), m["unit"]) if m["y"] else x
    return x / cols, (y or math.nan) / rows, []


def _block(
    sections: list[_Section],
    image: _Section,
    scan_rc: tuple[int, int],
    version: int,
    size: int,
) -> _Block:
    """Locate and scale one image block; :class:`_BlockError` says why it cannot be read."""
    # The data-type selector is @2:Image Data, or @3: for a second (e.g. MFM lift) pass.
    key = next((k for k in image.keys if _GROUP.fullmatch(k)), "@2:image data")
    group = key[1 : key.index(":")]
    select = _match(_SELECT, image.get(key))
    native = (select["external"] or select["internal"]) if select else ""
    native = native or (image.get("Image Data") or "").strip('" ') or "unnamed"
    direction = (
        "retrace" if (image.get("Line Direction") or "").casefold() == "retrace" else "trace"
    )
    label = f"{native} ({direction})"
    try:
        offsets = _ints(image.get("Data offset"))
        if not offsets or offsets[0] < 0:
            raise ValueError("no valid 'Data offset'")
        rows, cols, width, bpp, problems = _layout(image, scan_rc, version)
    except ValueError as exc:
        raise _BlockError(f"channel {label} left out: {exc}") from None
    end = offsets[0] + rows * cols * width
    if end > size:
        raise _BlockError(
            f"channel {label} left out: truncated data: the image runs to byte {end} but "
            f"the file has {size} bytes",
            truncated=True,
        )
    gain, unit, scale_problems = _scaling(sections, image, group, bpp)
    px_x, px_y, size_problems = _pixel_size(image, sections, rows, cols)
    return _Block(
        native=native,
        direction=direction,
        name=re.sub(r"[^0-9a-z]+", "_", native.casefold()).strip("_") + "_" + direction,
        offset=offsets[0],
        rows=rows,
        cols=cols,
        raw_dtype=f"<i{width}",
        gain=gain,
        unit=unit,
        px_x=px_x,
        px_y=px_y,
        problems=problems + scale_problems + size_problems,
    )


def _default_first(blocks: list[_Block]) -> list[_Block]:
    """Put the default channel first (see the module docstring), the rest in file order."""
    for wanted in _DEFAULT_CHANNELS:
        for b in blocks:
            if (b.native.casefold(), b.direction) == wanted:
                return [b] + [o for o in blocks if o is not b]
    return blocks


def _read_frame(path: Path) -> _Frame:
    """Parse one file's header into a frame; raise an afmio error if nothing is usable."""
    sections, size = _read_header(path)
    version_text, version = _version(sections)
    scan_rows = _ints(_find(sections, "Lines", _SCAN_SECTIONS))
    scan_cols = _ints(_find(sections, "Samps/line", _SCAN_SECTIONS))
    scan_rc = (scan_rows[0] if scan_rows else 0, scan_cols[0] if scan_cols else 0)
    images = [s for s in sections if s.is_image]
    if not images:
        raise UnsupportedFormatError(
            path, "holds no image sections ('\\*Ciao image list'); force curves are not read"
        )
    blocks, dropped = [], []
    for image in images:
        try:
            blocks.append(_block(sections, image, scan_rc, version, size))
        except _BlockError as exc:
            dropped.append(exc)
    if not blocks:
        raise CorruptFileError(path, "no readable image: " + "; ".join(map(str, dropped)))
    seen: Counter[str] = Counter()
    for b in blocks:
        # Two images with one name and direction (e.g. main and interleave passes).
        seen[b.name] += 1
        if seen[b.name] > 1:
            b.name = f"{b.name}_{seen[b.name]}"
    blocks = _default_first(blocks)
    first = images[0]
    rate = _float(_find(sections, "Scan Rate", _SCAN_SECTIONS))
    direction = (first.get("Frame direction") or "").strip()
    return _Frame(
        path=path,
        size=size,
        sections=sections,
        version=version_text,
        blocks=blocks,
        epoch_ms=_epoch_ms(_find(sections, "Date", ("file list",))),
        rel_time=_float(first.get("Relative frame time")),
        scan_rate=rate if rate and rate > 0 else math.nan,
        direction=_DIRECTIONS.get(direction.casefold(), direction),
        dropped=dropped,
    )


# ----------------------------------------------------------------------------- a video


def _header_json(sections: list[_Section]) -> dict[str, Any]:
    """The header as plain dicts: image lists as a list, other sections by name."""
    out: dict[str, Any] = {}
    for s in sections:
        if s.is_image:
            out.setdefault(s.name, []).append(dict(s.fields))
        else:
            merged = out.setdefault(s.name, {})
            for k, v in s.fields.items():
                merged.setdefault(k, v)
    return out


def _flat(sections: list[_Section]) -> dict[str, str]:
    """``{"Section/key": value}``, image lists numbered: ``Ciao image list[1]/Data offset``."""
    out: dict[str, str] = {}
    count: Counter[str] = Counter()
    for s in sections:
        label = f"{s.name}[{count[s.name]}]" if s.is_image else s.name
        count[s.name] += 1
        for k, v in s.fields.items():
            out.setdefault(f"{label}/{k}", v)
    return out


def _frame_times(found: Frames[_Frame]) -> tuple[np.ndarray, str]:
    """The frames' times in s by the clock that ordered them, and that clock's name."""
    frames = found.frames
    if found.clock is not None:
        name, clock, per_second = _CLOCKS[found.clock]
        t = np.array([clock(f) for f in frames], dtype=np.float64) / per_second
        return t - t[0], name
    # No clock: a missing frame cannot be seen, frames are taken as back to back.
    t = np.arange(len(frames), dtype=np.float64) * frames[0].duration
    t[0] = 0.0
    return t, "frame index x lines / scan rate"


def _geometry_text(signature: tuple[int, int, float | None, float | None]) -> str:
    rows, cols, *pixel = signature
    x, y = ("?" if p is None else f"{p:g}" for p in pixel)
    return f"{rows} x {cols} px of {x} x {y} nm"


def _channel(path: Path, found: Frames[_Frame], b0: _Block, notes: Problems) -> ChannelInfo | None:
    """The channel named like ``b0`` across ``frames``, or None (with a warning) if some
    frame lacks it or has it in another layout."""
    frames = found.frames
    layout = (b0.rows, b0.cols, b0.raw_dtype, b0.unit)
    blocks = [next((b for b in f.blocks if b.name == b0.name), None) for f in frames]
    odd = [
        f
        for f, b in zip(frames, blocks, strict=True)
        if b is None or (b.rows, b.cols, b.raw_dtype, b.unit) != layout
    ]
    for f in odd:
        notes.add(
            f"channel {b0.name} left out: missing, or of another size, sample type or unit, "
            f"in some frames",
            f.path,
        )
    if odd:
        return None
    own = Problems(path, found)
    for f, b in zip(frames, blocks, strict=True):
        for problem in b.problems:
            own.add(f"channel {b0.name}: {problem}", f.path)
    source = FileFrames(
        path=str(path),
        files=tuple(str(f.path) for f in frames),
        offsets=tuple(b.offset for b in blocks),
        gains=tuple(b.gain for b in blocks),
        biases=(0.0,) * len(frames),
        ny=b0.rows,
        nx=b0.cols,
        raw_dtype=b0.raw_dtype,
        flip_y=True,
    )
    long_name = f"{b0.native} ({b0.direction.capitalize()})"
    if b0.gain is None:
        long_name += ", raw levels"
    return ChannelInfo(b0.name, b0.native, b0.unit, long_name, source, tuple(own.warnings()))


def _acquisition(frames: list[_Frame]) -> dict[str, Any]:
    """The first file's full header, and per frame only the fields that differ from it."""
    first = frames[0]
    out: dict[str, Any] = {"file": first.path.name, "header": _header_json(first.sections)}
    if len(frames) > 1:
        base = _flat(first.sections)
        out["frames"] = [
            {
                "file": f.path.name,
                "differs": {k: v for k, v in _flat(f.sections).items() if base.get(k) != v},
            }
            for f in frames
        ]
    return out


def _assemble(path: Path, found: Frames[_Frame]) -> Recording:
    """The Recording of the frames found, one frame per file, channels read lazily."""
    frames, warns = found.frames, list(found.warnings)
    time_s, time_source = _frame_times(found)
    n = len(frames)
    notes = Problems(path, found)
    for f in frames:
        for exc in f.dropped:
            notes.add(str(exc), f.path, TruncatedFileWarning if exc.truncated else AfmIOWarning)
    channels = [c for b in frames[0].blocks if (c := _channel(path, found, b, notes))]
    warns += notes.warnings()
    if n > 1 and not np.isfinite(time_s).all():
        warns.append(
            AfmIOWarning(
                f"{path}: no frame times (no Relative frame time, Date or Scan rate in every "
                f"file); time is NaN"
            )
        )
    if not channels:
        raise CorruptFileError(path, "no channel has the same size in every frame file")
    first = frames[0]
    reader_notes = {
        "time_source": time_source,
        "orientation": "rows reversed: row 0 is the last line stored (top of the image)",
        "scaling_rule": "raw / 256**Bytes/pixel x hard value x soft scale (@2:Z scale)",
        "scaling": {
            b.name: {"value_per_level": b.gain, "unit": b.unit, "sample_type": b.raw_dtype}
            for b in first.blocks
            if any(c.name == b.name for c in channels)
        },
        "date_convention": "Date header (instrument clock, 1 s resolution) taken as UTC",
        "frames_read": n,
        "files_left_out": found.listed - n,
    }
    return found.recording(
        path,
        FORMAT,
        format_version=first.version,
        channels=tuple(channels),
        pixel_size_x_nm=first.blocks[0].px_x,
        pixel_size_y_nm=first.blocks[0].px_y,
        time_s=time_s,
        frame_coords={
            "start_epoch_ms": np.array(
                [np.nan if f.epoch_ms is None else f.epoch_ms for f in frames]
            ),
            "frame_duration_s": np.array([f.duration for f in frames]),
            "line_rate": np.array([f.scan_rate for f in frames]),
            "scan_direction": np.array([f.direction for f in frames]),
        },
        acquisition=_acquisition(frames),
        reader_notes=reader_notes,
        warnings=warns,
    )


def read(path: str | os.PathLike[str]) -> Recording:
    """Parse the headers of a Nanoscope file, or of every frame file in a folder.

    No pixel data is read: each channel is a :class:`~afmio.lazy.FileFrames` that reads
    one block per frame when computed.
    """
    path = Path(path)
    found = read_frames(
        path,
        _read_frame,
        member=folder_member,
        what="Nanoscope",
        stages=(unlike(lambda f: f.signature, _geometry_text),),
        clocks=tuple(clock for _, clock, _ in _CLOCKS),
    )
    return _assemble(path, found)


READER = Reader(FORMAT, sniff, read, folder_member=folder_member)
