"""A small Nanoscope writer for the tests: one file per frame, several channel images.

The file follows ``docs/formats/nanoscope.md#file-structure``: a CR LF text header of
``\\*Section`` and ``\\Key: value`` lines (``File list``, ``Scanner list``, ``Ciao scan
list``, one ``Ciao image list`` per image), ended by ``\\*File list end``, padded to ``Data
length`` bytes, then the images as little-endian int16 or int32 blocks. Pixels are written
exactly as given, i.e. in file order: the first row given is the first line stored (the
bottom of the image as viewers show it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

#: Header lengths are rounded up to this, as the instrument does (20480, 40960 ...).
HEADER_BLOCK = 4096

#: Soft scales written by default: a Z sensitivity in nm/V, the others without a unit.
DEFAULT_SENSITIVITIES = {"Sens. Zsens": (10.0, "nm/V"), "Sens. Amplitude": (1.0, "")}
#: The ``\\Date`` written by default: the first file of the FastScan series in
#: docs/formats/nanoscope.md#time-single-frames-and-folders-as-videos.
DEFAULT_DATE = datetime(2019, 9, 26, 16, 6, 25)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class NanoscopeImage:
    """One channel image of a Nanoscope file.

    Parameters
    ----------
    name : str
        External channel name, the quoted part of ``@2:Image Data`` (``"Height"``).
    raw : numpy.ndarray
        ``(lines, samples)`` int16 or int32 levels, in file order.
    z_scale : float
        Hard value of ``@2:Z scale``, in ``hard_unit``.
    soft_scale : str or None
        Name in brackets in ``@2:Z scale`` (``"Sens. Zsens"``), or None for none.
    hard_unit : str
        Unit of the hard value as the header spells it (``"V"``, ``"º"``).
    line_direction : str
        ``"Trace"`` or ``"Retrace"``.
    """

    name: str
    raw: np.ndarray
    z_scale: float = 1.0
    soft_scale: str | None = "Sens. Zsens"
    hard_unit: str = "V"
    line_direction: str = "Trace"


def _date_text(date: datetime) -> str:
    # Built by hand so the month and day names do not depend on the locale.
    clock = f"{date.hour % 12 or 12:02d}:{date.minute:02d}:{date.second:02d}"
    ampm = "PM" if date.hour >= 12 else "AM"
    day, month = _DAYS[date.weekday()], _MONTHS[date.month - 1]
    return f"{clock} {ampm} {day} {month} {date.day:02d} {date.year}"


def write_nanoscope(
    path: str | os.PathLike[str],
    images: Sequence[NanoscopeImage],
    *,
    version: str = "0x09010201",
    date: datetime | None = DEFAULT_DATE,
    relative_frame_time: float | None = None,
    scan_size: tuple[float, float, str] = (100.0, 100.0, "nm"),
    scan_rate: float | None = 2.0,
    frame_direction: str = "Down",
    sensitivities: Mapping[str, tuple[float, str]] = DEFAULT_SENSITIVITIES,
) -> Path:
    """Write one Nanoscope file holding ``images`` (one frame of a video).

    Parameters
    ----------
    path : str or PathLike
        Output file.
    images : sequence of NanoscopeImage
        The channel images, stored in this order, each block right after the previous.
    version : str
        ``\\Version`` value. From ``0x06...`` on keys are written in the v9 spelling
        (``Scan Size``, ``Line Direction``), before in the v5 one (``Scan size``).
    date : datetime or None
        ``\\Date`` of the File list; None leaves the line out.
    relative_frame_time : float or None
        ``\\Relative frame time`` of every image list (s); None leaves it out.
    scan_size : (float, float, str)
        X, Y and unit as the header spells it (``"nm"``, ``"~m"``).
    scan_rate : float or None
        ``\\Scan Rate`` of the scan list (lines per second); None leaves it out.
    frame_direction : str
        ``\\Frame direction`` of every image list.
    sensitivities : mapping
        Soft-scale parameters ``name -> (value, unit)`` written as ``\\@name: V value unit``
        in the Scanner list.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    v9 = int(version, 16) >= 0x06000000
    size_key, dir_key, rate_key, aspect_key = (
        ("Scan Size", "Line Direction", "Scan Rate", "Aspect Ratio")
        if v9
        else ("Scan size", "Line direction", "Scan rate", "Aspect ratio")
    )
    blocks = [
        np.ascontiguousarray(im.raw, dtype=f"<i{np.dtype(im.raw.dtype).itemsize}") for im in images
    ]
    for im, raw in zip(images, blocks, strict=True):
        if raw.ndim != 2 or raw.dtype.itemsize not in (2, 4):
            raise ValueError(f"image {im.name}: raw must be 2-D int16 or int32")
    rows, cols = blocks[0].shape
    x, y, unit = scan_size

    def header(length: int) -> list[str]:
        lines = ["\\*File list", f"\\Version: {version}"]
        if date is not None:
            lines.append(f"\\Date: {_date_text(date)}")
        lines += ["\\Start context: OL2", f"\\Data length: {length}", "\\Text: "]
        lines += ["\\*Scanner list", "\\Scanner type: Synthetic"]
        lines += [f"\\@{k}: V {v:.7g} {u}" for k, (v, u) in sensitivities.items()]
        lines += ["\\*Ciao scan list", "\\Operating mode: Image", f"\\{size_key}: {x:g} {unit}"]
        lines += [f"\\Samps/line: {cols}", f"\\Lines: {rows}"]
        if scan_rate is not None:
            lines.append(f"\\{rate_key}: {scan_rate:g}")
        offset = length
        for im, raw in zip(images, blocks, strict=True):
            soft = f"[{im.soft_scale}] " if im.soft_scale else ""
            lines += [
                "\\*Ciao image list",
                f"\\Data offset: {offset}",
                f"\\Data length: {raw.nbytes}",
                f"\\Bytes/pixel: {raw.dtype.itemsize}",
                f"\\Frame direction: {frame_direction}",
                f"\\Samps/line: {raw.shape[1]}",
                f"\\Number of lines: {raw.shape[0]}",
                f"\\{aspect_key}: 1:1",
                f"\\{size_key}: {x:g} {y:g} {unit}",
                f"\\{dir_key}: {im.line_direction}",
            ]
            if relative_frame_time is not None:
                lines.append(f"\\Relative frame time: {relative_frame_time:.3f}")
            lines += [
                f'\\@2:Image Data: S [{im.name.replace(" ", "")}] "{im.name}"',
                f"\\@2:Z scale: V {soft}(0.0003750000 {im.hard_unit}/LSB) {im.z_scale:.7g} "
                f"{im.hard_unit}",
                # Written as instruments do; no reader applies it
                # (docs/formats/nanoscope.md#fields-used).
                f"\\@2:Z offset: V {soft}(0.0003750000 {im.hard_unit}/LSB) 0 {im.hard_unit}",
            ]
            offset += raw.nbytes
        return [*lines, "\\*File list end"]

    # The header states its own length, so size it with a placeholder of the same width.
    text = "\r\n".join(header(10**9)).encode("latin-1") + b"\r\n\x1a"
    length = -(-len(text) // HEADER_BLOCK) * HEADER_BLOCK
    text = "\r\n".join(header(length)).encode("latin-1") + b"\r\n\x1a"
    path = Path(path)
    with open(path, "wb") as f:
        f.write(text.ljust(length, b"\x00"))
        for raw in blocks:
            f.write(raw.tobytes())
    return path
