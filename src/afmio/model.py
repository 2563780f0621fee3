"""afmio's data model: the one place that builds DataArrays and Datasets from a reader's
:class:`~afmio.readers.base.Recording`, so every format yields the same shape of object.

- dims ``("time", "y", "x")``; values in the channel's unit (nm for heights);
- coords ``time`` (s since the first frame), ``y``/``x`` (nm, pixel centres), and along
  ``time``: ``frame_index``, ``start_epoch_ms``, ``frame_duration_s``, ``line_rate``,
  ``scan_direction`` (NaN or "" where the format does not give them);
- attrs ``units``, ``long_name``, ``channel``, ``native_channel``, ``pixel_size_nm``,
  ``pixel_size_y_nm``, ``source`` and ``provenance`` (JSON-safe dicts).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from .errors import ChannelNotFoundError, TruncatedFileWarning
from .lazy import DIMS, to_dask
from .readers.base import ChannelInfo, Recording

_COORD_ATTRS = {
    "time": {"units": "s", "long_name": "time since the first frame"},
    "y": {"units": "nm", "long_name": "y (slow scan axis), pixel centres"},
    "x": {"units": "nm", "long_name": "x (fast scan axis), pixel centres"},
    "frame_index": {"long_name": "frame number in the file, from 0"},
    "start_epoch_ms": {"units": "ms", "long_name": "frame start, ms since 1970-01-01 UTC"},
    "frame_duration_s": {"units": "s", "long_name": "acquisition time of one frame"},
    "line_rate": {"units": "Hz", "long_name": "scan lines per second"},
    "scan_direction": {"long_name": "scan direction as the file gives it"},
}
FRAME_COORDS = ("start_epoch_ms", "frame_duration_s", "line_rate", "scan_direction")


def resolve_channel(rec: Recording, channel: str | None) -> ChannelInfo:
    """Find ``channel`` (canonical or native name, any case); ``None`` gives the height."""
    if channel is None:
        for ch in rec.channels:
            if ch.name == "height_trace":
                return ch
        return rec.channels[0]
    want = str(channel).casefold()
    for ch in rec.channels:
        if want in (ch.name.casefold(), ch.native.casefold()):
            return ch
    listed = ", ".join(f"{c.name} ({c.native})" for c in rec.channels)
    raise ChannelNotFoundError(rec.path, f"no channel {channel!r}; available: {listed}")


def _coords(rec: Recording, n: int, ny: int, nx: int) -> dict[str, Any]:
    coords: dict[str, Any] = {
        "time": rec.time_s[:n],
        "y": (np.arange(ny) + 0.5) * rec.pixel_size_y_nm,
        "x": (np.arange(nx) + 0.5) * rec.pixel_size_x_nm,
        "frame_index": ("time", np.arange(n)),
    }
    for name in FRAME_COORDS:
        values = rec.frame_coords.get(name)
        if values is None:
            values = np.full(n, "" if name == "scan_direction" else np.nan)
        coords[name] = ("time", np.asarray(values)[:n])
    out = {}
    for name, value in coords.items():
        dims, data = value if isinstance(value, tuple) else (name, value)
        out[name] = xr.Variable(dims, data, attrs=_COORD_ATTRS[name])
    return out


def _shared_attrs(rec: Recording) -> dict[str, Any]:
    return {
        "pixel_size_nm": float(rec.pixel_size_x_nm),
        "pixel_size_y_nm": float(rec.pixel_size_y_nm),
        "source": {
            "path": rec.path,
            "format": rec.format,
            "format_version": rec.format_version,
            "size_bytes": int(rec.size_bytes),
            "channels": [c.name for c in rec.channels],
        },
        "provenance": {
            "acquisition": rec.acquisition,
            "reader": rec.reader_notes,
            "processing": [],
        },
    }


def _channel_attrs(ch: ChannelInfo) -> dict[str, Any]:
    return {
        "units": ch.units,
        "long_name": ch.long_name,
        "channel": ch.name,
        "native_channel": ch.native,
    }


def _emit(items) -> None:
    for w in items:
        warnings.warn(w, stacklevel=4)


def _variable(ch: ChannelInfo, n: int, dtype: np.dtype, chunks) -> xr.Variable:
    data = to_dask(ch.frames, dtype, chunks)
    if data.shape[0] != n:
        data = data[:n]
    return xr.Variable(DIMS, data, attrs=_channel_attrs(ch))


def build_dataarray(
    rec: Recording,
    channel: str | None,
    dtype: np.dtype,
    chunks: int | Mapping[Any, Any] | None,
) -> xr.DataArray:
    """The lazy DataArray of one channel of ``rec``."""
    ch = resolve_channel(rec, channel)
    _emit(rec.warnings)
    _emit(ch.warnings)
    n, ny, nx = ch.frames.shape
    var = _variable(ch, n, dtype, chunks)
    return xr.DataArray(
        var,
        coords=_coords(rec, n, ny, nx),
        name=ch.name,
        attrs={**_channel_attrs(ch), **_shared_attrs(rec)},
    )


def build_dataset(
    rec: Recording,
    dtype: np.dtype,
    chunks: int | Mapping[Any, Any] | None,
) -> xr.Dataset:
    """A lazy Dataset with every channel of ``rec`` as a variable sharing the coords."""
    _emit(rec.warnings)
    counts = [ch.frames.shape[0] for ch in rec.channels]
    n = min(counts)
    if len(set(counts)) > 1:
        warnings.warn(
            TruncatedFileWarning(
                f"{rec.path}: channels have {counts} frames; the dataset keeps the first "
                f"{n} of each (open one channel with afmio.open to get all of its frames)"
            ),
            stacklevel=3,
        )
    variables = {}
    for ch in rec.channels:
        _emit(ch.warnings)
        variables[ch.name] = _variable(ch, n, dtype, chunks)
    _, ny, nx = rec.channels[0].frames.shape
    return xr.Dataset(variables, coords=_coords(rec, n, ny, nx), attrs=_shared_attrs(rec))
