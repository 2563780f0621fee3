"""Exporting videos to bundles (HDF5, NPZ, OME-TIFF, Zarr) and loading them back, and
rendering them as annotated GIF or MP4 animations.

The HDF5, NPZ and OME-TIFF layouts are playNano's, so each tool reads the other's files.
Every writer streams chunk by chunk, writes to a temporary file beside the target and
renames it when complete, refuses to replace an existing target unless
``overwrite=True``, and reports ``progress(frames_done, frames_total)``. The ``save_*``
functions take ``(path, obj)`` as playNano's do and the ``export_*`` ones ``(obj, path)``;
each accepts the other order too.
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
from .render import RenderOptions
from .writers import BUNDLES, WRITERS
from .writers._common import Progress, bundle_content

PathLike = str | os.PathLike[str]
Video = xr.DataArray | xr.Dataset


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


def video_and_path(first: Any, second: Any) -> tuple[Video, PathLike]:
    """A video and a target path given in either order: ``save_*`` take ``(path, obj)``,
    ``export_*`` take ``(obj, path)``, and each accepts the other's order too.

    Raises
    ------
    TypeError
        Unless one is an ``xarray.DataArray`` or ``Dataset`` and the other a path.
    """
    for obj, path in ((first, second), (second, first)):
        if isinstance(obj, Video) and isinstance(path, str | os.PathLike):
            return obj, path
    raise TypeError(
        "expected a video (an xarray.DataArray or Dataset, as afmio.open gives) and a "
        f"target path (str or os.PathLike), in either order; got {type(first).__name__} "
        f"and {type(second).__name__}"
    )


def write(fmt: str, obj: Video, path: PathLike, raw: bool = False, **options: Any) -> Path:
    """Write ``obj`` in the format named ``fmt`` (a key of :data:`afmio.writers.WRITERS`):
    what the functions below run.

    ``obj`` and ``path`` may come in either order (see :func:`video_and_path`). The
    format's suffix is added to ``path`` unless it ends with it; ``raw`` is theirs;
    ``options`` go to the writer: ``overwrite``, ``progress``, and its own
    (``compression`` for ``"h5"``, ``render``, a :class:`~afmio.render.RenderOptions`,
    for ``"gif"`` and ``"mp4"``).
    """
    obj, path = video_and_path(obj, path)
    writer = WRITERS[fmt]
    return writer.write(_with_suffix(path, writer.suffix), bundle_content(obj, raw), **options)


def save_h5_bundle(
    path: PathLike,
    obj: Video,
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
    return write(
        "h5", obj, path, raw=raw, overwrite=overwrite, progress=progress, compression=compression
    )


def save_npz_bundle(
    path: PathLike,
    obj: Video,
    raw: bool = False,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write an NPZ bundle (playNano's layout, stored uncompressed so it reads in place).

    Parameters are those of :func:`save_h5_bundle` but ``compression``; ``.npz`` is
    added to the name.
    """
    return write("npz", obj, path, raw=raw, overwrite=overwrite, progress=progress)


def save_ome_tiff_stack(
    path: PathLike,
    obj: Video,
    raw: bool = False,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write an OME-TIFF stack (T, C, Z, Y, X) with calibration, as playNano does.

    Parameters are those of :func:`save_h5_bundle` but ``compression``; the name is
    made to end ``.ome.tif``.
    """
    return write("tif", obj, path, raw=raw, overwrite=overwrite, progress=progress)


def save_zarr(
    path: PathLike,
    obj: Video,
    raw: bool = False,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write a Zarr v3 store with OME-Zarr (NGFF) image metadata, chunks in parallel.

    Parameters are those of :func:`save_h5_bundle` but ``compression``; ``.zarr`` is
    added to the name.
    """
    return write("zarr", obj, path, raw=raw, overwrite=overwrite, progress=progress)


def export_stem(obj: Video, base_name: str | None, raw: bool) -> str:
    """The file stem of an export: ``base_name`` (or the source's stem), plus
    ``_filtered`` when processed layers other than ``raw`` exist (never twice)."""
    stem = base_name or Path(obj.attrs.get("source", {}).get("path", "afmio_export")).stem
    for end in (".ome", ".zarr"):
        if stem.lower().endswith(end):
            stem = stem[: -len(end)]
    return with_filtered(obj, stem, raw)


def with_filtered(obj: Video, stem: str, raw: bool) -> str:
    """``stem`` plus ``_filtered`` when ``obj`` has processed layers other than ``raw``
    and ``raw`` is False (never twice)."""
    names = list(obj.data_vars) if isinstance(obj, xr.Dataset) else []
    filtered = any(n.startswith(LAYER_PREFIX) and n != LAYER_PREFIX + "raw" for n in names)
    if filtered and not raw and not stem.endswith("_filtered"):
        stem += "_filtered"
    return stem


def export_bundles(
    obj: Video,
    output_folder: PathLike,
    base_name: str | None = None,
    formats: Iterable[str] = BUNDLES,
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
    obj, output_folder = video_and_path(obj, output_folder)
    formats = list(formats)
    bad = sorted(set(formats) - set(BUNDLES))
    if bad:
        raise UnsupportedFormatError(
            None, f"cannot export to {', '.join(map(repr, bad))}; choose from {sorted(BUNDLES)}"
        )
    stem = export_stem(obj, base_name, raw)
    folder = Path(output_folder)
    return {
        fmt: write(
            fmt,
            obj,
            folder / (stem + WRITERS[fmt].suffix),
            raw=raw,
            overwrite=overwrite,
            progress=progress,
        )
        for fmt in formats
    }


def export_gif(
    obj: Video,
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
    cmap, fps, zmin, zmax, scale_bar_nm, draw_ts, draw_scale
        How the video looks and plays: see :class:`afmio.render.RenderOptions`.
    raw, overwrite, progress
        As in :func:`save_h5_bundle`: export the ``raw`` layer, replace an existing
        target, report ``progress(frames_done, frames_total)``.

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
    render = RenderOptions(cmap, fps, zmin, zmax, scale_bar_nm, draw_ts, draw_scale)
    return write("gif", obj, path, render=render, raw=raw, overwrite=overwrite, progress=progress)


def export_mp4(
    obj: Video,
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

    Parameters are those of :func:`export_gif`; ``.mp4`` is added to the name. A video
    has one frame rate: ``fps``, or by default one frame per median frame interval.
    Needs the ``imageio-ffmpeg`` package (``pip install "afmio[video]"``).

    Raises
    ------
    afmio.AfmIOError
        If imageio-ffmpeg is not installed, or ffmpeg fails.
    """
    render = RenderOptions(cmap, fps, zmin, zmax, scale_bar_nm, draw_ts, draw_scale)
    return write("mp4", obj, path, render=render, raw=raw, overwrite=overwrite, progress=progress)


def _load(path: PathLike, fmt: str) -> xr.Dataset:
    path = Path(path).expanduser().resolve()
    reader, loader = readers.detect(path), WRITERS[fmt].loader
    if reader.name != loader:
        raise UnsupportedFormatError(path, f"is a {reader.name} file, not a {loader} bundle")
    return build_dataset(reader.read(path), np.dtype("float32"), None)


def load_h5_bundle(path: PathLike) -> xr.Dataset:
    """Open an HDF5 bundle lazily: data, layers, masks and metadata as one Dataset."""
    return _load(path, "h5")


def load_npz_bundle(path: PathLike) -> xr.Dataset:
    """Open an NPZ bundle lazily (stored entries are read in place)."""
    return _load(path, "npz")


def load_ome_tiff_stack(path: PathLike) -> xr.Dataset:
    """Open an OME-TIFF stack lazily."""
    return _load(path, "tif")


def load_zarr(path: PathLike) -> xr.Dataset:
    """Open a Zarr store written by afmio lazily."""
    return _load(path, "zarr")
