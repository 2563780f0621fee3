"""Exporting videos to bundles (HDF5, NPZ, OME-TIFF, Zarr) and loading them back, and
rendering them as annotated GIF or MP4 animations.

The HDF5, NPZ and OME-TIFF layouts are playNano's, so each tool reads the other's files.
Every writer streams chunk by chunk, writes to a temporary file beside the target and
renames it when complete, refuses to replace an existing target unless
``overwrite=True``, and reports ``progress(frames_done, frames_total)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from . import readers
from .errors import UnsupportedFormatError
from .model import LAYER_PREFIX, build_dataset
from .writers import gif, hdf5, mp4, npz, ometiff, zarr
from .writers._common import Progress, bundle_content

PathLike = str | os.PathLike[str]

#: Export formats, their writer and the suffix of the files they make.
FORMATS = {
    "h5": (hdf5, ".h5"),
    "npz": (npz, ".npz"),
    "tif": (ometiff, ".ome.tif"),
    "zarr": (zarr, ".zarr"),
}


def _with_suffix(path: PathLike, suffix: str) -> Path:
    """``path`` ending in ``suffix`` (kept if it already ends so, never doubled)."""
    path = Path(path)
    name = path.name
    if suffix == ".ome.tif":
        if name.lower().endswith((".ome.tif", ".ome.tiff")):
            return path
        for end in (".tiff", ".tif", ".ome"):
            if name.lower().endswith(end):
                name = name[: -len(end)]
        return path.with_name(name + suffix)
    return path if path.suffix.lower() == suffix else path.with_name(name + suffix)


#: Rendered (annotated, for viewing) formats: their writer and suffix.
_RENDER_WRITERS = {"gif": (gif, ".gif"), "mp4": (mp4, ".mp4")}


def _save(
    fmt: str, path: PathLike, obj: Any, raw: bool, overwrite: bool, progress, **options
) -> Path:
    writer, suffix = FORMATS[fmt] if fmt in FORMATS else _RENDER_WRITERS[fmt]
    content = bundle_content(obj, raw)
    return writer.write(
        _with_suffix(path, suffix), content, overwrite=overwrite, progress=progress, **options
    )


def save_h5_bundle(
    path: PathLike,
    obj: xr.DataArray | xr.Dataset,
    raw: bool = False,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write an HDF5 bundle (playNano's layout), streaming chunk by chunk.

    Parameters
    ----------
    path : str or PathLike
        Target; ``.h5`` is added unless the name ends with it.
    obj : xarray.DataArray or xarray.Dataset
        A video opened by afmio, or a Dataset with processed layers and masks.
    raw : bool
        Export the ``raw`` processed layer instead of the current data.
    overwrite : bool
        Replace an existing target.
    progress : callable, optional
        Called as ``progress(frames_done, frames_total)``.
    compression : {"gzip", "lzf", None}
        Chunk compression; gzip is what playNano reads, lzf is fast, None is fastest.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    return _save("h5", path, obj, raw, overwrite, progress, compression=compression)


def save_npz_bundle(
    path: PathLike,
    obj: xr.DataArray | xr.Dataset,
    raw: bool = False,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write an NPZ bundle (playNano's layout, stored uncompressed so it reads in place).

    Parameters are those of :func:`save_h5_bundle`; ``.npz`` is added to the name.
    """
    return _save("npz", path, obj, raw, overwrite, progress)


def save_ome_tiff_stack(
    path: PathLike,
    obj: xr.DataArray | xr.Dataset,
    raw: bool = False,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write an OME-TIFF stack (T, C, Z, Y, X) with calibration, as playNano does.

    Parameters are those of :func:`save_h5_bundle`; the name is made to end ``.ome.tif``.
    """
    return _save("tif", path, obj, raw, overwrite, progress)


def save_zarr(
    path: PathLike,
    obj: xr.DataArray | xr.Dataset,
    raw: bool = False,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write a Zarr v3 store with OME-Zarr (NGFF) image metadata, chunks in parallel.

    Parameters are those of :func:`save_h5_bundle`; ``.zarr`` is added to the name.
    """
    return _save("zarr", path, obj, raw, overwrite, progress)


#: The bundle formats' save functions, by format name.
SAVERS = {
    "h5": save_h5_bundle,
    "npz": save_npz_bundle,
    "tif": save_ome_tiff_stack,
    "zarr": save_zarr,
}


def export_stem(obj: xr.DataArray | xr.Dataset, base_name: str | None, raw: bool) -> str:
    """The file stem of an export: ``base_name`` (or the source's stem), plus
    ``_filtered`` when processed layers other than ``raw`` exist (never twice)."""
    stem = base_name or Path(obj.attrs.get("source", {}).get("path", "afmio_export")).stem
    for end in (".ome", ".zarr"):
        if stem.lower().endswith(end):
            stem = stem[: -len(end)]
    names = list(obj.data_vars) if isinstance(obj, xr.Dataset) else []
    filtered = any(n.startswith(LAYER_PREFIX) and n != LAYER_PREFIX + "raw" for n in names)
    if filtered and not raw and not stem.endswith("_filtered"):
        stem += "_filtered"
    return stem


def export_bundles(
    obj: xr.DataArray | xr.Dataset,
    output_folder: PathLike,
    base_name: str | None = None,
    formats: Iterable[str] = ("h5", "npz", "tif", "zarr"),
    raw: bool = False,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Export to several formats in ``output_folder``; returns ``{format: path}``.

    Raises
    ------
    afmio.UnsupportedFormatError
        If a format is not one of ``"h5"``, ``"npz"``, ``"tif"``, ``"zarr"``.
    """
    formats = list(formats)
    bad = sorted(set(formats) - set(FORMATS))
    if bad:
        raise UnsupportedFormatError(
            None, f"cannot export to {', '.join(map(repr, bad))}; choose from {sorted(FORMATS)}"
        )
    stem = export_stem(obj, base_name, raw)
    folder = Path(output_folder)
    return {
        fmt: _save(fmt, folder / (stem + FORMATS[fmt][1]), obj, raw, overwrite, progress)
        for fmt in formats
    }


def export_gif(
    obj: xr.DataArray | xr.Dataset,
    path: PathLike,
    *,
    cmap: str = "afmhot",
    fps: float | None = None,
    zmin: float | str | None = None,
    zmax: float | str | None = None,
    scale_bar_nm: float | None = None,
    draw_ts: bool = True,
    draw_scale: bool = True,
    raw: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write an animated GIF with a timestamp and a scale bar, streaming frame by frame.

    Every frame becomes a GIF frame; frames smaller than 512 px are enlarged by a whole
    factor so the annotations read well (see :mod:`afmio.render`).

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        A video opened by afmio (a Dataset exports its current data).
    path : str or PathLike
        Target; ``.gif`` is added unless the name ends with it.
    cmap : str
        Matplotlib colormap name.
    fps : float, optional
        Frames per second; by default each frame is shown for the real time to the next.
    zmin, zmax : float, "auto" or None
        Data values at the colormap's ends: a number, ``"auto"`` for the 1st / 99th
        percentile of the whole video, or None for its min / max. One scale for the whole
        video unless both are None: then each frame is scaled to its own range.
    scale_bar_nm : float, optional
        Scale bar length; by default a round length about a fifth of the frame width.
    draw_ts, draw_scale : bool
        Draw the time (top left) and the scale bar with its length (bottom right).
    raw : bool
        Export the ``raw`` processed layer instead of the current data.
    overwrite : bool
        Replace an existing target.
    progress : callable, optional
        Called as ``progress(frames_done, frames_total)``.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If ``zmin`` is not below ``zmax``, or an option is out of range.
    afmio.AfmFileExistsError
        If the target exists and ``overwrite`` is False.
    """
    return _save(
        "gif",
        path,
        obj,
        raw,
        overwrite,
        progress,
        cmap=cmap,
        fps=fps,
        zmin=zmin,
        zmax=zmax,
        scale_bar_nm=scale_bar_nm,
        draw_ts=draw_ts,
        draw_scale=draw_scale,
    )


def export_mp4(
    obj: xr.DataArray | xr.Dataset,
    path: PathLike,
    *,
    cmap: str = "afmhot",
    fps: float | None = None,
    zmin: float | str | None = None,
    zmax: float | str | None = None,
    scale_bar_nm: float | None = None,
    draw_ts: bool = True,
    draw_scale: bool = True,
    raw: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write an H.264 MP4 video of the same frames as :func:`export_gif`.

    Parameters are those of :func:`export_gif`; ``.mp4`` is added to the name. A video has
    one frame rate: ``fps``, or by default one frame per median frame interval. Needs the
    ``imageio-ffmpeg`` package (``pip install afmio[video]``).

    Raises
    ------
    afmio.AfmIOError
        If imageio-ffmpeg is not installed, or ffmpeg fails.
    """
    return _save(
        "mp4",
        path,
        obj,
        raw,
        overwrite,
        progress,
        cmap=cmap,
        fps=fps,
        zmin=zmin,
        zmax=zmax,
        scale_bar_nm=scale_bar_nm,
        draw_ts=draw_ts,
        draw_scale=draw_scale,
    )


#: Rendered (annotated, for viewing) export formats: their function and suffix.
RENDERED = {"gif": (export_gif, ".gif"), "mp4": (export_mp4, ".mp4")}


def _load(path: PathLike, fmt: str) -> xr.Dataset:
    path = Path(path).expanduser().resolve()
    reader = readers.detect(path)
    if reader.name != fmt:
        raise UnsupportedFormatError(path, f"is a {reader.name} file, not a {fmt} bundle")
    return build_dataset(reader.read(path), np.dtype("float32"), None)


def load_h5_bundle(path: PathLike) -> xr.Dataset:
    """Open an HDF5 bundle lazily: data, layers, masks and metadata as one Dataset."""
    return _load(path, "h5-bundle")


def load_npz_bundle(path: PathLike) -> xr.Dataset:
    """Open an NPZ bundle lazily (stored entries are read in place)."""
    return _load(path, "npz-bundle")


def load_ome_tiff_stack(path: PathLike) -> xr.Dataset:
    """Open an OME-TIFF stack lazily."""
    return _load(path, "ome-tiff")


def load_zarr(path: PathLike) -> xr.Dataset:
    """Open a Zarr store written by afmio lazily."""
    return _load(path, "zarr")
