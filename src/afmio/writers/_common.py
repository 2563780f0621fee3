"""What every writer shares: its registry entry, what a bundle holds, progress, and
streaming a dask array chunk by chunk with bounded memory (the atomic target is in
:mod:`._target`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..layouts import bundle_provenance, frame_metadata, frame_metadata_rows
from ..lazy import DEFAULT_CHUNK_BYTES
from ..model import LAYER_PREFIX, MASK_PREFIX, frame_interval
from ..render import FrameRenderer, RenderOptions
from ._target import AtomicTarget

#: ``progress(frames_done, frames_total)``; an exception raised in it aborts the export.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Writer:
    """A format afmio writes, as export, batch, the CLI and the accessor see it.

    Parameters
    ----------
    name : str
        The format's name in ``formats=`` and ``afmio convert --to`` (``"h5"``).
    suffix : str
        Ending of the files written (``".ome.tif"``).
    write : callable
        ``write(path, content, *, overwrite=False, progress=None, **options) -> Path``,
        ``content`` a :class:`BundleContent`; a rendering takes ``render=``, a
        :class:`~afmio.render.RenderOptions`.
    rendering : bool
        A picture for people (GIF, MP4) rather than a bundle afmio reads back.
    loader : str, optional
        For a bundle, the name of the reader format its files open as.
    """

    name: str
    suffix: str
    write: Callable[..., Path]
    rendering: bool = False
    loader: str | None = None


@dataclass
class BundleContent:
    """Everything a bundle stores, whatever its format (playNano's layout), and what
    the writers derive from it.

    Arrays are dask arrays chunked by whole frames; nothing is computed until written.
    ``frame_columns`` is playNano's per-frame metadata as columns (see
    :func:`afmio.layouts.frame_metadata`); ``frame_interval_s`` is NaN when unknown.
    """

    data: da.Array
    timestamps: np.ndarray
    frame_columns: dict[str, list[Any]]
    provenance: dict[str, Any]
    pixel_size_nm: float
    pixel_size_y_nm: float
    frame_interval_s: float
    channel: str
    layers: dict[str, da.Array] = field(default_factory=dict)
    masks: dict[str, da.Array] = field(default_factory=dict)
    state_backups: dict[str, Any] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def frame_metadata(self) -> list[dict[str, Any]]:
        """playNano's per-frame metadata list, as its files hold it."""
        return frame_metadata_rows(self.frame_columns)

    def arrays(self) -> Iterator[tuple[str, str, da.Array]]:
        """``(kind, name, array)`` for the data, each layer and each mask."""
        yield "data", "data", self.data
        for name, arr in self.layers.items():
            yield "layer", name, arr
        for name, arr in self.masks.items():
            yield "mask", name, arr

    def json(self, key: str) -> str:
        """One of the bundle's JSON strings: frame metadata, provenance, state backups."""
        value = {
            "frame_metadata_json": self.frame_metadata,
            "provenance_json": self.provenance,
            "state_backups_json": self.state_backups,
        }[key]
        # NaN (an uncalibrated pixel size, say) is written as the NaN token that Python's
        # json module, and so playNano, read back: the value round-trips.
        return json.dumps(value)


def _frames(arr: Any, dtype: str) -> da.Array:
    """``arr`` as a dask array of ``dtype`` chunked by whole frames (about 32 MiB)."""
    if not isinstance(arr, da.Array):
        arr = da.asarray(arr)
    arr = arr.astype(dtype)
    frame = max(1, int(np.prod(arr.shape[1:])) * arr.dtype.itemsize)
    per = max(1, min(arr.shape[0] or 1, DEFAULT_CHUNK_BYTES // frame))
    if arr.chunks[1:] != tuple((s,) for s in arr.shape[1:]) or arr.chunksize[0] > per:
        arr = arr.rechunk((per, *arr.shape[1:]))
    return arr


def bundle_content(obj: xr.DataArray | xr.Dataset, raw: bool = False) -> BundleContent:
    """Collect what a bundle stores from an afmio DataArray, or a Dataset with layers.

    ``raw=True`` stores the ``raw`` processed layer as the data (with no other layers or
    masks), as playNano does; without a raw layer the data itself is stored.
    """
    if isinstance(obj, xr.Dataset):
        current = obj[obj.attrs.get("channel") or next(iter(obj.data_vars))]
        current = current.assign_attrs({**obj.attrs, **current.attrs})
        layers = {
            k[len(LAYER_PREFIX) :]: v.data
            for k, v in obj.data_vars.items()
            if k.startswith(LAYER_PREFIX)
        }
        masks = {
            k[len(MASK_PREFIX) :]: v.data
            for k, v in obj.data_vars.items()
            if k.startswith(MASK_PREFIX)
        }
    else:
        current, layers, masks = obj, {}, {}
    if current.dims != ("time", "y", "x"):
        raise ValueError(f"expected dims ('time', 'y', 'x'), got {current.dims}")
    data = current.data
    if raw:
        data = layers.get("raw", data)
        layers, masks = {}, {}
    columns = frame_metadata(current)
    timestamps = np.array(columns["timestamp"], dtype=np.float64)
    pixel_size_nm = float(current.attrs.get("pixel_size_nm", np.nan))
    durations = current["frame_duration_s"].values if "frame_duration_s" in current.coords else None
    return BundleContent(
        data=_frames(data, "float32"),
        timestamps=timestamps,
        frame_columns=columns,
        provenance=bundle_provenance(current),
        pixel_size_nm=pixel_size_nm,
        pixel_size_y_nm=float(current.attrs.get("pixel_size_y_nm", pixel_size_nm)),
        frame_interval_s=frame_interval(timestamps, durations),
        channel=str(current.attrs.get("channel", current.name or "")),
        layers={k: _frames(v, "float32") for k, v in layers.items()},
        masks={k: _frames(v, "bool") for k, v in masks.items()},
    )


def iter_chunks(arr: da.Array, in_flight: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_frame, block)`` for each chunk along time, in order.

    Computes ``in_flight`` chunks at a time (default: one per core) so that reading and
    converting run in parallel while memory stays bounded by those chunks.
    """
    in_flight = in_flight or os.cpu_count() or 1
    starts = np.cumsum((0, *arr.chunks[0]))
    blocks = [arr.blocks[i] for i in range(len(arr.chunks[0]))]
    for i in range(0, len(blocks), in_flight):
        for k, block in enumerate(dask.compute(*blocks[i : i + in_flight])):
            yield int(starts[i + k]), np.asarray(block)


def iter_frames(arr: da.Array) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` for every frame of ``arr``, computed chunk by chunk as
    :func:`iter_chunks` does."""
    for start, block in iter_chunks(arr):
        for k, frame in enumerate(block):
            yield start + k, frame


@dataclass(frozen=True)
class Rendering:
    """What the encoder of a rendered format (GIF, MP4) is given by :func:`write_rendering`:
    the file to write (``tmp``; errors name ``target``), the content, its frames'
    renderer and the options, and the progress callback."""

    target: Path
    tmp: Path
    content: BundleContent
    renderer: FrameRenderer
    render: RenderOptions
    progress: Progress | None

    @property
    def timestamps(self) -> np.ndarray:
        return self.content.timestamps

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, frame)`` of every data frame, read chunk by chunk."""
        return iter_frames(self.content.data)


#: Writes a :class:`Rendering`'s container.
Encoder = Callable[[Rendering], None]


def write_rendering(
    path: str | os.PathLike[str],
    content: BundleContent,
    encode: Encoder,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    render: RenderOptions,
) -> Path:
    """Render ``content.data`` with ``render`` and let ``encode`` write it, atomically.

    The levels are found first (one lazy pass over the data when ``render`` needs the
    data's statistics); then the frames are read chunk by chunk as ``encode`` asks.
    """
    path = Path(path)
    levels = render.levels(content.data)
    shape = content.data.shape[1:]
    renderer = render.renderer(shape, levels, content.pixel_size_nm, content.frame_interval_s)
    with AtomicTarget(path, overwrite) as tmp:
        encode(Rendering(path, tmp, content, renderer, render, progress))
    return path
