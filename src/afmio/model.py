"""afmio's data model: the one place that builds DataArrays and Datasets from a reader's
:class:`~afmio.recording.Recording`, so every format yields the same shape of object.

- dims ``("time", "y", "x")``; values in the channel's unit (nm for heights);
- coords ``time`` (s since the first frame), ``y``/``x`` (nm, pixel centres), and along
  ``time``: ``frame_index``, ``start_epoch_ms``, ``frame_duration_s``, ``line_rate``,
  ``scan_direction`` (NaN or "" where the format does not give them);
- attrs ``units``, ``long_name``, ``channel``, ``native_channel``, ``pixel_size_nm``,
  ``pixel_size_y_nm``, ``source`` and ``provenance`` (JSON-safe dicts).

A Dataset (``open_dataset``) holds every channel as a variable; a bundle's Dataset also
holds its processed layers (``processed__<step>``, ``afm_role="layer"``) and masks
(``masks__<name>``, boolean, ``afm_role="mask"``), and ``attrs["channel"]`` names the
current data. ``encoding["source"]`` is the path the object was opened from.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from .errors import ChannelNotFoundError, TruncatedFileWarning
from .lazy import DIMS, FrameSource, to_dask
from .recording import ChannelInfo, Recording

#: Wraps frames ``0..n-1`` of a frame source as a lazy array of a dtype: ``(source, dtype,
#: n) -> array``. Dask by default; the xarray engine (afmio.backend) passes its own.
FrameWrapper = Callable[[FrameSource, np.dtype, int], Any]

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


#: Prefixes of layer and mask variables (the names of playNano's NPZ entries).
LAYER_PREFIX, MASK_PREFIX = "processed__", "masks__"
#: Attributes that describe one variable rather than the whole recording.
CHANNEL_ATTRS = ("units", "long_name", "channel", "native_channel")


def frame_interval(time_s: Any, frame_duration_s: Any = None) -> float:
    """Typical time between frame starts in s: the median of the finite, positive steps
    between the frame times; without any, the first finite, positive frame duration
    (one frame lasts that long); NaN if neither is known.
    """
    steps = np.diff(np.asarray(time_s, dtype=np.float64).reshape(-1))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if steps.size:
        return float(np.median(steps))
    durations = np.asarray([] if frame_duration_s is None else frame_duration_s, dtype=np.float64)
    durations = durations.reshape(-1)[:1]
    first = float(durations[0]) if durations.size else math.nan
    return first if 0 < first < math.inf else math.nan


def default_channel(rec: Recording) -> ChannelInfo:
    """The current data of a bundle, else the height channel, else the first channel."""
    data = [ch for ch in rec.channels if ch.role == "data"]
    for want in (rec.default_channel, "height_trace"):
        for ch in data:
            if ch.name == want:
                return ch
    return data[0]


def resolve_channel(rec: Recording, channel: str | None) -> ChannelInfo:
    """Find ``channel`` (canonical or native name, any case); ``None`` gives the default."""
    if channel is None:
        return default_channel(rec)
    want = str(channel).casefold()
    for ch in rec.channels:
        if want in (ch.name.casefold(), ch.native.casefold()):
            return ch
    listed = ", ".join(f"{c.name} ({c.native})" for c in rec.channels)
    raise ChannelNotFoundError(rec.path, f"no channel {channel!r}; available: {listed}")


def _coords(rec: Recording, n: int, ny: int, nx: int) -> dict[str, Any]:
    y = rec.y_nm if rec.y_nm is not None else (np.arange(ny) + 0.5) * rec.pixel_size_y_nm
    x = rec.x_nm if rec.x_nm is not None else (np.arange(nx) + 0.5) * rec.pixel_size_x_nm
    index = rec.frame_coords.get("frame_index")
    coords: dict[str, Any] = {
        "time": rec.time_s[:n],
        "y": y,
        "x": x,
        "frame_index": ("time", np.arange(n) if index is None else np.asarray(index)[:n]),
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
    if rec.attrs is not None:
        return {k: v for k, v in rec.attrs.items() if k not in CHANNEL_ATTRS}
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


def layer_attrs(name: str, units: str) -> dict[str, Any]:
    """Attributes of processed layer ``name`` (``processed__<name>``), in the data's units."""
    return {"units": units, "long_name": f"{name} layer", "afm_role": "layer"}


def mask_attrs(name: str) -> dict[str, Any]:
    """Attributes of boolean mask ``name`` (``masks__<name>``)."""
    return {"long_name": f"{name} mask", "afm_role": "mask"}


def _role_attrs(rec: Recording, ch: ChannelInfo) -> dict[str, Any]:
    """Layers and masks get canonical attrs, so that saving and reopening is exact."""
    if ch.role == "layer":
        return layer_attrs(ch.name.removeprefix(LAYER_PREFIX), default_channel(rec).units)
    if ch.role == "mask":
        return mask_attrs(ch.name.removeprefix(MASK_PREFIX))
    return _channel_attrs(ch)


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


def _dask_wrapper(chunks: int | Mapping[Any, Any] | None) -> FrameWrapper:
    def wrap(source: FrameSource, dtype: np.dtype, n: int) -> Any:
        data = to_dask(source, dtype, chunks)
        return data if data.shape[0] == n else data[:n]

    return wrap


def _variable(
    rec: Recording, ch: ChannelInfo, n: int, dtype: np.dtype, wrap: FrameWrapper
) -> xr.Variable:
    data = wrap(ch.frames, np.dtype(ch.dtype or dtype), n)
    return xr.Variable(DIMS, data, attrs=_role_attrs(rec, ch))


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
    var = _variable(rec, ch, n, dtype, _dask_wrapper(chunks))
    if rec.attrs is not None and ch is default_channel(rec):
        attrs = dict(rec.attrs)
    else:
        attrs = {**_channel_attrs(ch), **_shared_attrs(rec)}
    out = xr.DataArray(var, coords=_coords(rec, n, ny, nx), name=ch.name, attrs=attrs)
    out.encoding["source"] = rec.path
    return out


def build_dataset(
    rec: Recording,
    dtype: np.dtype,
    chunks: int | Mapping[Any, Any] | None,
    *,
    wrap: FrameWrapper | None = None,
) -> xr.Dataset:
    """A lazy Dataset with every channel of ``rec`` as a variable sharing the coords.

    Variables are dask arrays chunked by ``chunks``, unless ``wrap`` is given: then each
    variable's data is ``wrap(frames, dtype, n_frames)`` and ``chunks`` is not used.
    """
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
    current = default_channel(rec)
    wrap = wrap or _dask_wrapper(chunks)
    for ch in rec.channels:
        _emit(ch.warnings)
        variables[ch.name] = _variable(rec, ch, n, dtype, wrap)
    if rec.attrs is not None:
        variables[current.name].attrs = {k: rec.attrs[k] for k in CHANNEL_ATTRS if k in rec.attrs}
    _, ny, nx = rec.channels[0].frames.shape
    attrs = {**_shared_attrs(rec), "channel": current.name}
    out = xr.Dataset(variables, coords=_coords(rec, n, ny, nx), attrs=attrs)
    out.encoding["source"] = rec.path
    return out
