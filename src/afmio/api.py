"""The public functions: open files lazily as xarray objects."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from . import readers
from .model import build_dataarray, build_dataset
from .readers import FormatInfo

PathLike = str | os.PathLike[str]
Chunks = int | Mapping[Any, Any] | None


def _float_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating-point type such as 'float32', not {dt}")
    return dt


def open(
    path: PathLike,
    channel: str | None = None,
    *,
    chunks: Chunks = None,
    dtype: Any = "float32",
) -> xr.DataArray:
    """Open one channel of an AFM video lazily as an ``xarray.DataArray``.

    Only headers are read here; frames are read per dask chunk when computed.

    Parameters
    ----------
    path : str or PathLike
        The file to open.
    channel : str, optional
        Channel name, canonical (``"height_trace"``) or native (``"TP"``), any case.
        ``None`` picks the height channel.
    chunks : int or dict, optional
        Frames per dask chunk, or a dask-style dict such as ``{"time": 64}``. By default
        whole frames in chunks of about 32 MiB.
    dtype : str or numpy.dtype
        Floating-point type of the values, ``"float32"`` by default.

    Returns
    -------
    xarray.DataArray
        Dims ``(time, y, x)``, values in the channel's unit, backed by dask.

    Raises
    ------
    afmio.AfmIOError
        If the file is missing, unsupported or damaged, or has no such channel.
    """
    return build_dataarray(readers.read(path), channel, _float_dtype(dtype), chunks)


def open_dataset(path: PathLike, *, chunks: Chunks = None, dtype: Any = "float32") -> xr.Dataset:
    """Open every channel of an AFM video lazily as variables of one ``xarray.Dataset``.

    Parameters are those of :func:`open`. Variables are named by canonical channel name.
    """
    return build_dataset(readers.read(path), _float_dtype(dtype), chunks)


def channels(path: PathLike) -> list[str]:
    """List the canonical channel names of a file, reading its headers only.

    A bundle's processed layers and masks are not channels; ``open_dataset`` has them.
    """
    return [c.name for c in readers.read(path).channels if c.role == "data"]


def formats() -> list[FormatInfo]:
    """List the formats afmio reads, with their usual extensions."""
    return readers.formats()
