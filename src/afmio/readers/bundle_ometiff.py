"""Reader for OME-TIFF stacks (afmio's and playNano's) and for other TIFF image series.

Layout written by afmio and playNano 0.5.0 (see :mod:`afmio.writers.ometiff`): one
float32 page per frame; OME-XML with the pixel size (``PhysicalSizeX``/``Y`` and their
units), a ``Plane`` per frame with its ``DeltaT`` and the channel name; private tag 65000,
the provenance as JSON, and 65001, the processed layer names. Only the current data is
stored: the file opens as **one layer**, and processed layers and masks (which playNano's
and afmio's TIFFs do not hold) are not restored.

What is restored:

- files with tag 65000 are bundles: attributes come from ``layouts.attrs_from_bundle``. In
  afmio's files the provenance's ``"afmio"`` key also holds the per-frame metadata, so
  they reopen exactly as saved; in playNano's, frame times are the planes' ``DeltaT`` and
  the pixel size is ``PhysicalSizeX`` converted from its unit (µm as playNano writes);
- other OME-TIFFs (Fiji, Bio-Formats) open with the pixel size (``PhysicalSizeY``
  defaults to ``X``), frame times (``DeltaT``, else ``TimeIncrement``) and channel name
  of their OME-XML, as a time series of one channel and one Z plane; anything else is
  refused with the sizes it has;
- a plain TIFF (no OME-XML, no tag 65000), such as ``tifffile.imwrite`` of a (T, H, W)
  array, opens with an :class:`~afmio.AfmIOWarning`: its calibration is unknown, so the
  pixel size and frame times are NaN (not 1, which would pass for a real calibration),
  and the values are the stored samples in unknown units. A TIFF that names no channel
  is named ``height_trace``, as playNano's loader names it.

Frames are read lazily: at open, tifffile parses the image directories and the strip
offsets of every page; uncompressed pages whose strips are contiguous are then read in
place, bit for bit, with one positioned read per frame (:class:`~afmio.lazy.StridedFrames`
when pages are evenly spaced, as tifffile writes them, else
:class:`~afmio.lazy.FileFrames`). Compressed or tiled pages are decoded by tifffile inside
each dask task (:class:`TiffPageFrames`). A truncated file fails at open with a
:class:`~afmio.CorruptFileError`, including where tifffile alone would silently drop the
lost pages or the OME-XML (which tifffile writes last).
"""

from __future__ import annotations

import json
import math
import os
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .. import layouts
from ..errors import AfmIOWarning, CorruptFileError, UnsupportedFormatError
from ..layouts import OME_FRAME_METADATA_KEY as FRAME_METADATA_KEY
from ..layouts import OME_PROVENANCE_TAG as PROVENANCE_TAG
from ..lazy import FileFrames, FrameSource, PathFrames, StridedFrames
from . import _bundle
from ._errors import library_errors
from ._tiff import BIG, CLASSIC, open_tiff
from .base import ChannelInfo, FormatInfo, Reader, Recording

FORMAT = FormatInfo(
    "ome-tiff",
    "OME-TIFF stack (afmio and playNano), or a plain TIFF",
    (".ome.tif", ".ome.tiff", ".tif", ".tiff"),
)

#: The channel name playNano's loader gives a TIFF that names none.
DEFAULT_CHANNEL = "height_trace"

#: OME length units (``UnitsLength``) in nm; ``μ`` (Greek mu) is not the OME spelling
#: but is accepted on reading.
_LENGTH_NM = {
    "m": 1e9,
    "dm": 1e8,
    "cm": 1e7,
    "mm": 1e6,
    "µm": 1e3,
    "μm": 1e3,
    "um": 1e3,
    "nm": 1.0,
    "pm": 1e-3,
    "Å": 0.1,
}
#: OME time units (``UnitsTime``) in s.
_TIME_S = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class TiffPageFrames(PathFrames):
    """Frames as the pages of a TIFF's first image series, decoded by tifffile.

    For pages afmio cannot read in place (compressed, tiled, bit-packed): each read opens
    the file by path and decodes pages ``start..stop-1`` of series 0.

    Parameters
    ----------
    path : str
        The TIFF file (re-opened for every read).
    n_frames, ny, nx : int
        Frames (pages), rows and columns.
    """

    path: str
    n_frames: int
    ny: int
    nx: int

    errors = (OSError, ValueError, IndexError, KeyError, struct.error)

    @property
    def what(self) -> str:
        return "TIFF image series 0"

    def fill(self, out: np.ndarray, start: int) -> None:
        with tifffile.TiffFile(self.path) as tif:
            pages = tif.asarray(key=range(start, start + len(out)), series=0)
        out[...] = pages.reshape(out.shape)


def sniff(path: Path, head: bytes) -> bool:
    """True if ``head`` starts with a TIFF or BigTIFF signature, either byte order.

    Any TIFF matches: JPK's TIFFs are claimed first by the JPK reader, of higher priority.
    """
    return head[:4] in CLASSIC + BIG


def read(path: Path) -> Recording:
    """Parse the image directories and metadata of a TIFF; frames stay on disk."""
    kind = "TIFF"
    with library_errors(
        path,
        (OSError, ValueError, IndexError, KeyError, struct.error),  # TiffFileError: ValueError
        lambda exc: f"is a {kind} file but cannot be parsed ({exc}); is it truncated or damaged?",
    ):
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            kind = "BigTIFF" if f.read(4) in BIG else "TIFF"
        with tifffile.TiffFile(path) as tif:
            return _read_open(path, size, tif)


# --- metadata ------------------------------------------------------------------------


def _check_directories(path: Path, tif: tifffile.TiffFile) -> None:
    """Fail clearly where tifffile would drop what a truncated file lacks without error:
    a tag of the first page whose value lies past the end (the OME-XML, which tifffile
    writes last), or pages whose directories are gone."""
    with open_tiff(path) as t:
        t.first_ifd()
        for code, end in t.ifd(tif.pages.first.offset, 0).value_ends():
            if end > t.size:
                name = tifffile.TIFF.TAGS.get(code, "private")
                raise CorruptFileError(
                    path,
                    f"tag {code} ({name}) of the first image directory runs to byte {end} but "
                    f"the file ends at byte {t.size}; is it truncated?",
                )
        last = len(tif.pages)
        following = t.ifd(tif.pages[last - 1].offset, last - 1).next
        if following:
            raise CorruptFileError(
                path,
                f"its chain of image directories breaks after {last}: the last points to "
                f"byte {following} but the file has {t.size} bytes; is it truncated?",
            )


def _provenance(path: Path, page: Any) -> dict[str, Any] | None:
    """The provenance dict of tag 65000 (bytes or ASCII), None if the tag is absent."""
    tag = page.tags.get(PROVENANCE_TAG)
    if tag is None:
        return None
    raw = tag.value.encode("utf-8") if isinstance(tag.value, str) else bytes(tag.value)
    try:
        value = json.loads(raw.rstrip(b"\x00").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptFileError(path, f"tag 65000 (provenance) is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise CorruptFileError(
            path, f"tag 65000 (provenance) holds a JSON {type(value).__name__}, not an object"
        )
    return value


@dataclass
class _Ome:
    """What afmio uses of an OME-XML document (its first Image)."""

    pixel_x_nm: float = math.nan
    pixel_y_nm: float = math.nan
    times_s: np.ndarray | None = None
    channel: str | None = None
    creator: str = ""
    image_name: str = ""
    schema: str = ""
    problems: tuple[str, ...] = ()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _float(value: str | None) -> float | None:
    try:
        x = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _parse_ome(path: Path, xml: str, n: int) -> _Ome:
    """Calibration, frame times and channel name of the first Image of ``xml``."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise CorruptFileError(path, f"its OME-XML is not well-formed ({exc})") from exc
    images = [e for e in root if _local(e.tag) == "Image"]
    pixels = next((e for e in images[0] if _local(e.tag) == "Pixels"), None) if images else None
    if pixels is None:
        raise CorruptFileError(path, "its OME-XML has no Image with a Pixels element")
    sizes = {axis: pixels.get(f"Size{axis}", "") for axis in "ZCT"}
    if (sizes["Z"], sizes["C"]) != ("1", "1"):
        raise UnsupportedFormatError(
            path,
            f"is an OME-TIFF of SizeZ={sizes['Z']}, SizeC={sizes['C']}, SizeT={sizes['T']}; "
            f"afmio reads time series of one channel and one Z plane",
        )
    if sizes["T"] != str(n):
        raise CorruptFileError(
            path,
            f"its OME-XML declares SizeT={sizes['T']} frames but the file holds {n} image "
            f"pages; is it truncated?",
        )
    ome = _Ome(
        creator=root.get("Creator", ""),
        image_name=images[0].get("Name", ""),
        schema=root.tag[1:].split("}")[0].rsplit("/", 1)[-1] if root.tag[:1] == "{" else "",
    )
    problems = []
    for axis in "XY":
        value = _float(pixels.get(f"PhysicalSize{axis}"))
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")  # the schema's default
        if value is None:
            if axis == "X":
                problems.append("no PhysicalSizeX: pixel size unknown (NaN)")
        elif unit not in _LENGTH_NM:
            problems.append(f"PhysicalSize{axis}Unit {unit!r} is no OME length unit (NaN)")
        else:
            setattr(ome, f"pixel_{axis.lower()}_nm", value * _LENGTH_NM[unit])
    if pixels.get("PhysicalSizeY") is None:  # square pixels, as playNano assumes
        ome.pixel_y_nm = ome.pixel_x_nm
    channel = next((e for e in pixels if _local(e.tag) == "Channel"), None)
    if channel is not None and channel.get("Name"):
        ome.channel = channel.get("Name")
    ome.times_s = _plane_times(path, pixels, n, problems)
    ome.problems = tuple(problems)
    return ome


def _plane_times(path: Path, pixels: ET.Element, n: int, problems: list[str]) -> np.ndarray | None:
    """Frame times in s: the planes' DeltaT, else TimeIncrement steps, else None."""
    deltas = {}
    for plane in (e for e in pixels if _local(e.tag) == "Plane"):
        value = _float(plane.get("DeltaT"))
        unit = plane.get("DeltaTUnit", "s")
        if value is None or plane.get("TheC", "0") != "0" or plane.get("TheZ", "0") != "0":
            continue
        if unit not in _TIME_S:
            problems.append(f"DeltaTUnit {unit!r} is no OME time unit")
            continue
        deltas[plane.get("TheT", "0")] = value * _TIME_S[unit]
    if deltas:
        if len(deltas) != n or set(deltas) != {str(t) for t in range(n)}:
            raise CorruptFileError(
                path,
                f"its OME-XML gives DeltaT for {len(deltas)} planes but the file holds {n} frames",
            )
        return np.array([deltas[str(t)] for t in range(n)], dtype=np.float64)
    step = _float(pixels.get("TimeIncrement"))
    unit = pixels.get("TimeIncrementUnit", "s")
    if step is not None and unit in _TIME_S:
        return np.arange(n) * step * _TIME_S[unit]
    if n > 1:
        problems.append("no Plane DeltaT nor TimeIncrement: frame times unknown (NaN)")
    return None


def _afmio_frame_metadata(path: Path, provenance: dict[str, Any], n: int) -> list[dict] | None:
    """The per-frame metadata afmio keeps under its provenance key, None if absent."""
    extra = provenance.get(layouts.AFMIO_KEY)
    columns = extra.get(FRAME_METADATA_KEY) if isinstance(extra, dict) else None
    if columns is None:
        return None
    if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
        raise CorruptFileError(path, "tag 65000 (provenance) has malformed afmio frame metadata")
    lengths = {k: len(v) for k, v in columns.items() if len(v) != n}
    if lengths:
        raise CorruptFileError(
            path,
            f"tag 65000 (provenance) has frame metadata for {sorted(set(lengths.values()))} "
            f"frames but the file holds {n} frames",
        )
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


# --- frames --------------------------------------------------------------------------


def _frame_pages(path: Path, tif: tifffile.TiffFile) -> tuple[list[Any], int, int]:
    """The pages of the first image series, one per frame, and the frame shape."""
    series = tif.series[0]
    extra = {
        ax: s for ax, s in zip(series.axes, series.shape, strict=True) if ax not in "YX" and s > 1
    }
    what = f"an image of shape {tuple(series.shape)} (axes {series.axes!r})"
    if len(extra) > 1 or set(extra) & set("CS"):
        raise UnsupportedFormatError(
            path, f"holds {what}; afmio reads a time series of one-channel 2-D frames"
        )
    pages = list(series.pages)
    missing = sum(p is None for p in pages)
    if missing:
        raise CorruptFileError(
            path, f"{missing} of the {len(pages)} image directories are missing; truncated?"
        )
    shape = tuple(series.keyframe.shape)
    if len(shape) != 2 or len(pages) != max([1, *extra.values()]):
        raise UnsupportedFormatError(
            path, f"holds {what} in {len(pages)} pages of shape {shape}, not one 2-D frame a page"
        )
    return pages, shape[0], shape[1]


def _frame_source(
    path: Path, tif: tifffile.TiffFile, pages: list[Any], ny: int, nx: int, size: int
) -> tuple[FrameSource, str]:
    """Where the frames are, and how they are read (for the reader notes)."""
    for i, page in enumerate(pages):
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True) if c]
        if ends and max(ends) > size:
            raise CorruptFileError(
                path,
                f"frame {i} runs to byte {max(ends)} but the file ends at byte {size}; "
                f"is it truncated?",
            )
    key = tif.series[0].keyframe
    n = len(pages)
    in_place = key.is_final and key.dtype is not None and key.dtype.kind in "iuf"
    offsets = []
    if in_place:
        frame_bytes = ny * nx * key.dtype.itemsize
        for page in pages:
            offs, counts = page.dataoffsets, page.databytecounts
            contiguous = all(offs[k] + counts[k] == offs[k + 1] for k in range(len(offs) - 1))
            if not contiguous or sum(counts) < frame_bytes:
                in_place = False
                break
            offsets.append(int(offs[0]))
    if not in_place:
        return TiffPageFrames(str(path), n, ny, nx), "decoded by tifffile, page by page"
    raw = key.dtype.newbyteorder(tif.byteorder).str
    steps = set(np.diff(offsets).tolist())
    if len(steps) <= 1 and min(steps, default=frame_bytes) >= frame_bytes:
        stride = steps.pop() if steps else frame_bytes
        source = StridedFrames(str(path), offsets[0], stride, 0, n, ny, nx, raw, gain=None)
        return source, "read in place: evenly spaced uncompressed pages"
    files = (str(path),) * n
    source = FileFrames(str(path), files, tuple(offsets), (None,) * n, (0.0,) * n, ny, nx, raw)
    return source, "read in place: uncompressed pages at their strip offsets"


# --- the whole file ------------------------------------------------------------------


def _read_open(path: Path, size: int, tif: tifffile.TiffFile) -> Recording:
    if not len(tif.pages):
        kind = "BigTIFF" if tif.is_bigtiff else "TIFF"
        raise CorruptFileError(
            path, f"is a {kind} file without a readable image directory (no image in it)"
        )
    _check_directories(path, tif)
    first = tif.pages.first
    provenance = _provenance(path, first)
    pages, ny, nx = _frame_pages(path, tif)
    n = len(pages)
    ome = _parse_ome(path, tif.ome_metadata, n) if tif.is_ome else None
    source, how = _frame_source(path, tif, pages, ny, nx, size)
    meta = None if provenance is None else _afmio_frame_metadata(path, provenance, n)

    warnings = []
    if len(tif.series) > 1:
        warnings.append(
            AfmIOWarning(f"{path}: holds {len(tif.series)} image series; the first is read")
        )
    if meta is None and ome is None:  # afmio's files restore all from their provenance
        kind = "plain TIFF" if provenance is None else "TIFF with tag 65000"
        warnings.append(
            AfmIOWarning(
                f"{path}: {kind} without OME-XML, so its calibration is unknown: pixel size "
                f"and frame times are NaN (not guessed), values are the stored samples"
                + (" in unknown units" if provenance is None else "")
            )
        )
    elif meta is None and ome.problems:
        warnings.append(AfmIOWarning(f"{path}: OME-XML: {'; '.join(ome.problems)}"))
    channel = (ome and ome.channel) or DEFAULT_CHANNEL
    times = ome.times_s if ome and ome.times_s is not None else np.full(n, math.nan)
    px_x, px_y = (ome.pixel_x_nm, ome.pixel_y_nm) if ome else (math.nan, math.nan)
    version = ("BigTIFF" if tif.is_bigtiff else "TIFF") + (f", OME {ome.schema}" if ome else "")
    notes = {"frames": how}

    if provenance is None:  # no bundle: attrs are built from the Recording
        info = ChannelInfo(channel, channel, "", channel, source)
        acquisition = {
            "ome_creator": ome.creator if ome else None,
            "image_name": ome.image_name if ome else None,
            "tiff_software": first.software or None,
        }
        return Recording(
            path=str(path),
            format=FORMAT.name,
            format_version=version,
            size_bytes=size,
            channels=(info,),
            pixel_size_x_nm=px_x,
            pixel_size_y_nm=px_y,
            time_s=times,
            frame_coords={},
            acquisition=acquisition,
            reader_notes=notes,
            warnings=warnings,
        )

    if meta is None:  # written by playNano: what the OME-XML gives
        meta = [{"timestamp": float(t), "frame_pixel_size_nm": px_x} for t in times]
    saved = _bundle.restore(path, provenance, channel, px_x, (n, ny, nx), px_y)
    channel = str(saved.attrs.get("channel") or channel)
    time_s, coords = layouts.frame_coords_from_metadata(meta)
    # A bundle's float32 values are read bit for bit, whatever type the caller asks.
    dtype = "float32" if tif.series[0].keyframe.dtype == np.float32 else None
    channels = [saved.data(channel, source, dtype=dtype)]
    return _bundle.recording(
        path, FORMAT.name, version, size, saved, channels, time_s, coords, notes, warnings
    )


READER = Reader(FORMAT, sniff, read, container="tiff", priority=10)
