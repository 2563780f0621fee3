"""A small writer of JPK TIFF images (``.jpk``) for the tests and the benchmarks.

Files are laid out like the instrument's (``docs/formats/jpk.md#byte-layout``): a big-endian
classic TIFF whose IFD 0 holds a small 8-bit thumbnail and the global JPK tags, followed by
one IFD per channel, each directly followed by its tag values and then its pixels in
contiguous strips of 8 rows. Each channel carries calibration slots (``raw``, ``volts``,
``nominal``, ``calibrated``) of which the default one maps the stored levels to values.
Pixels are written in the order given: the first row of ``levels`` is the first row stored.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

# TIFF field types.
_ASCII, _SHORT, _LONG, _SSHORT, _SLONG, _DOUBLE = 2, 3, 4, 8, 9, 12
_CODES = {_SHORT: "H", _LONG: "I", _SSHORT: "h", _SLONG: "i", _DOUBLE: "d"}
_ROWS_PER_STRIP = 8
_SAMPLE_FORMATS = {"u": 1, "i": 2, "f": 3}


@dataclass(frozen=True)
class JpkChannel:
    """One channel image and the calibration of its default slot.

    Parameters
    ----------
    name : str
        JPK channel name, e.g. ``"height"`` or ``"measuredHeight"``.
    retrace : bool
        Retrace (True) or trace (False) image.
    levels : numpy.ndarray
        ``(rows, cols)`` stored values (int32 as the instrument writes; int16 also works).
    multiplier, offset : float
        Default slot's map from level to value, ``level * multiplier + offset``.
    unit : str
        Unit of the default slot (``"m"``, ``"V"``, ``"deg"``).
    default_slot : str
        Name of the default slot: ``"calibrated"`` (4 slots), ``"nominal"`` (3),
        ``"volts"`` (2) or ``"raw"``.
    scaling : str
        Scaling type of the default slot, ``"LinearScaling"`` as in real files.
    display_name : str, optional
        JPK's display name (tag 0x8052); the name with a capital by default.
    """

    name: str
    retrace: bool
    levels: np.ndarray
    multiplier: float = 1e-12
    offset: float = 0.0
    unit: str = "m"
    default_slot: str = "calibrated"
    scaling: str = "LinearScaling"
    display_name: str | None = None


def format_date(epoch_ms: int, zone: str = "GMT", utc_offset_h: float = 0.0) -> str:
    """A JPK date string, e.g. ``'2023-02-16 12:08:46.436 GMT'``, for ``epoch_ms`` shown in a
    zone ``utc_offset_h`` hours east of UTC."""
    local = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc) + timedelta(hours=utc_offset_h)
    return f"{local:%Y-%m-%d %H:%M:%S}.{epoch_ms % 1000:03d} {zone}".rstrip()


def _slots(ch: JpkChannel) -> tuple[list[tuple[int, int, Any]], int]:
    """Slot tags (0x8090 + 0x30 k ...) ending with the default slot, and the slot count."""
    chain = ["raw", "volts", "nominal", "calibrated"]
    if ch.default_slot in chain:
        names = chain[: chain.index(ch.default_slot) + 1]
    else:
        names = [*chain[:3], ch.default_slot]
    entries: list[tuple[int, int, Any]] = []
    for k, slot in enumerate(names):
        base = 0x8090 + 0x30 * k
        entries += [
            (base, _ASCII, slot),
            (base + 0x01, _ASCII, "AbsoluteCalibration" if k == 0 else "RelativeCalibration"),
            (base + 0x11, _ASCII, "SignedInteger"),
        ]
        if k:
            entries.append((base + 0x02, _ASCII, names[k - 1]))
        if slot == ch.default_slot:
            kind, mult, off, unit = ch.scaling, ch.multiplier, ch.offset, ch.unit
        elif k == 0:
            kind, mult, off, unit = "NullScaling", None, None, ""
        else:
            # Decoys: plausible values of the non-default slots, which must not be used.
            kind, mult, off = "LinearScaling", ch.multiplier * (3.0 + k), ch.offset + 1e-7 * k
            unit = "V" if slot == "volts" else ch.unit
        entries.append((base + 0x13, _ASCII, kind))
        if unit:
            entries.append((base + 0x12, _ASCII, unit))
        if mult is not None:
            entries += [(base + 0x14, _DOUBLE, mult), (base + 0x15, _DOUBLE, off)]
    return entries, len(names)


def _tag(code: int, value: Any) -> tuple[int, int, Any]:
    """A tag with its TIFF type chosen from the Python value."""
    if isinstance(value, str):
        return (code, _ASCII, value)
    if isinstance(value, float):
        return (code, _DOUBLE, value)
    return (code, _SLONG, value)


def _encode(kind: int, value: Any) -> tuple[int, bytes]:
    if kind == _ASCII:
        data = value.encode() + b"\x00"
        return len(data), data
    values = value if isinstance(value, (list, tuple)) else [value]
    return len(values), struct.pack(f">{len(values)}{_CODES[kind]}", *values)


def _ifd(entries: list[tuple[int, int, Any]], at: int, following: int) -> bytes:
    """IFD bytes at offset ``at``: entries, next-IFD offset, then the out-of-line values."""
    entries = sorted(entries)
    values_at = at + 2 + 12 * len(entries) + 4
    table, values = [struct.pack(">H", len(entries))], bytearray()
    for code, kind, value in entries:
        count, data = _encode(kind, value)
        if len(data) <= 4:
            table.append(struct.pack(">HHI", code, kind, count) + data.ljust(4, b"\x00"))
        else:
            table.append(struct.pack(">HHII", code, kind, count, values_at + len(values)))
            values += data + b"\x00" * (len(data) % 2)  # keep values on word boundaries
    table.append(struct.pack(">I", following))
    return b"".join(table) + bytes(values)


def _image_tags(
    ny: int, nx: int, dtype: np.dtype, first_pixel: int, photometric: int
) -> list[tuple[int, int, Any]]:
    strip = _ROWS_PER_STRIP * nx * dtype.itemsize
    n_strips = -(-ny // _ROWS_PER_STRIP)
    counts = [strip] * (n_strips - 1) + [ny * nx * dtype.itemsize - strip * (n_strips - 1)]
    return [
        (256, _LONG, nx),
        (257, _LONG, ny),
        (258, _SHORT, 8 * dtype.itemsize),
        (259, _SHORT, 1),
        (262, _SHORT, photometric),
        (273, _LONG, [first_pixel + k * strip for k in range(n_strips)]),
        (277, _SHORT, 1),
        (278, _LONG, _ROWS_PER_STRIP),
        (279, _LONG, counts),
        (339, _SHORT, _SAMPLE_FORMATS[dtype.kind]),
    ]


def _channel_tags(ch: JpkChannel) -> list[tuple[int, int, Any]]:
    direction = "retrace" if ch.retrace else "trace"
    slot_tags, n_slots = _slots(ch)
    return [
        (0x8050, _ASCII, ch.name),
        (0x8051, _SSHORT, int(ch.retrace)),
        (0x8052, _ASCII, ch.display_name or ch.name[:1].upper() + ch.name[1:]),
        (0x8053, _ASCII, f"channel.name : {ch.name}\nretrace : {str(ch.retrace).lower()}\n"
                         f"type : channel-{direction}"),
        (0x8080, _SLONG, n_slots),
        (0x8081, _ASCII, ch.default_slot),
        *slot_tags,
    ]  # fmt: skip


def write_jpk(
    path: str | os.PathLike[str],
    channels: Sequence[JpkChannel],
    *,
    start_ms: int = 1_715_941_800_000,
    duration_s: float = 2.5,
    zone: str = "GMT",
    utc_offset_h: float = 0.0,
    scan_size_m: tuple[float, float] = (1e-7, 1e-7),
    scan_rate_hz: float = 100.0,
    motion: str = "topDown",
    settings: Mapping[str, str] | None = None,
    extra: Mapping[int, Any] | None = None,
    omit: Collection[int] = (),
) -> Path:
    """Write one JPK TIFF image.

    Parameters
    ----------
    path : str or PathLike
        Output file.
    channels : sequence of JpkChannel
        Channel images, stored in this order (IFD 1, 2, ...), all of one shape.
    start_ms, duration_s : int, float
        Start of the scan in ms since the epoch and its length: written as the start and
        end dates (tags 0x8003, 0x8006) and the unique id (0x8008).
    zone, utc_offset_h : str, float
        Time zone name written after the dates and its offset east of UTC in hours.
    scan_size_m : (float, float)
        Fast (x) and slow (y) scan lengths in metres (grid tags 0x8042, 0x8043).
    scan_rate_hz, motion : float, str
        Scan-rate (0x8049) and motion (0x804B) tags.
    settings : mapping, optional
        ``key : value`` lines of the experiment settings text (tag 0x8017).
    extra : mapping, optional
        Further or replacement tags of IFD 0, by code (str, float or int values).
    omit : collection of int
        Tag codes to leave out of every IFD (to make incomplete files).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    if not channels:
        raise ValueError("a JPK image needs at least one channel")
    levels = [np.asarray(ch.levels) for ch in channels]
    ny, nx = levels[0].shape
    if any(lv.shape != (ny, nx) for lv in levels):
        raise ValueError("all channels of a JPK image have the same shape")
    end_ms = start_ms + round(duration_s * 1000)
    text = "\n".join(f"{k} : {v}" for k, v in (settings or {}).items())
    tags = {
        0x8000: "8.0.33",
        0x8001: 2.0,
        0x8002: 1,
        0x8003: format_date(start_ms, zone, utc_offset_h),
        0x8004: "<empty>",
        0x8006: format_date(end_ms, zone, utc_offset_h),
        0x8008: str(start_ms),
        0x8009: "afmio",
        0x8017: text,
        0x8040: 0.0,
        0x8041: 0.0,
        0x8042: float(scan_size_m[0]),
        0x8043: float(scan_size_m[1]),
        0x8044: 0.0,
        0x8045: 0,
        0x8046: nx,
        0x8047: ny,
        0x8048: "lineend-pause",
        0x8049: float(scan_rate_hz),
        0x804A: 0.7,
        0x804B: motion,
        0x8050: "thumbnail",
        **(extra or {}),
    }
    thumb = np.zeros((16, 16), np.uint8)
    pages = [(thumb, [_tag(c, v) for c, v in tags.items()], 1)]
    pages += [(lv, _channel_tags(ch), 1) for lv, ch in zip(levels, channels, strict=True)]
    # Sizes first (values do not depend on offsets), then offsets, then the bytes.
    at, blocks = 8, []
    for k, (pixels, page_tags, photometric) in enumerate(pages):
        dtype = pixels.dtype.newbyteorder(">")
        probe = _ifd(_image_tags(*pixels.shape, dtype, 0, photometric) + page_tags, at, 0)
        first_pixel = at + len(probe) + len(probe) % 2
        following = first_pixel + pixels.nbytes
        following += following % 2
        entries = _image_tags(*pixels.shape, dtype, first_pixel, photometric) + page_tags
        entries = [e for e in entries if e[0] not in omit]
        last = k == len(pages) - 1
        blocks.append((at, _ifd(entries, at, 0 if last else following), first_pixel, pixels))
        at = following
    path = Path(path)
    with open(path, "wb") as f:
        f.write(b"MM\x00*" + struct.pack(">I", 8))
        for at, ifd, first_pixel, pixels in blocks:
            f.seek(at)
            f.write(ifd)
            f.seek(first_pixel)
            f.write(np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder(">")).tobytes())
    return path
