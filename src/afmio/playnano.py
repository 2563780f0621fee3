"""playNano's names, for code written against it: ``load_afm_stack`` (of
``playnano.io.loader``) and the two functions of ``playnano.io.gif_export``.

Replace ``from playnano.io.gif_export import ...`` with ``from afmio.playnano import ...``;
the calls stay the same. Both GIF functions stream through afmio's GIF writer and, as the
originals did, replace an existing file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from . import export, readers
from .api import Chunks, _float_dtype
from .model import build_dataarray
from .readers import Recording
from .render import RenderOptions

#: playNano's default channel, which stands for the file's height channel.
PLAYNANO_HEIGHT = "height_trace"
#: The height channels, in the order taken when a file lacks ``height_trace``: Nanoscope
#: files record only the retrace, some only the Z sensor.
HEIGHTS = (PLAYNANO_HEIGHT, "height_retrace", "height_sensor_trace", "height_sensor_retrace")


def _height_channel(rec: Recording) -> str:
    """The first of :data:`HEIGHTS` the file has, else its first ``height*`` channel, else
    ``height_trace`` (so that the error lists the channels there are)."""
    names = [c.name for c in rec.channels if c.role == "data"]
    found = (n for n in (*HEIGHTS, *names) if n in names and n.startswith("height"))
    return next(found, PLAYNANO_HEIGHT)


def load_afm_stack(
    path: str | os.PathLike[str],
    channel: str | None = PLAYNANO_HEIGHT,
    *,
    chunks: Chunks = None,
    dtype: Any = "float32",
) -> xr.DataArray:
    """:func:`afmio.open` under playNano's name and default channel.

    ``"height_trace"`` (the default) stands for the file's height channel: when the file
    has no ``height_trace`` (a Nanoscope file records only ``height_retrace`` or
    ``height_sensor_retrace``), the first of :data:`HEIGHTS` it has is opened, and
    ``attrs["channel"]`` says which. Other names, ``None``, ``chunks`` and ``dtype`` are
    those of :func:`afmio.open`.
    """
    rec = readers.read(path)
    if channel is not None and str(channel).casefold() == PLAYNANO_HEIGHT:
        channel = _height_channel(rec)
    return build_dataarray(rec, channel, _float_dtype(dtype), chunks)


def create_gif_with_scale_and_timestamp(
    image_stack: Any,
    pixel_size_nm: float | Sequence[float],
    timestamps: Sequence[float] | None = None,
    scale_bar_length_nm: float = 100,
    output_path: str | os.PathLike[str] = "output",
    duration: float = 0.5,
    cmap_name: str = "afmhot",
    zmin: float | str | None = None,
    zmax: float | str | None = None,
    draw_ts: bool = True,
    draw_scale: bool = True,
) -> Path:
    """Write an annotated GIF of a ``(frames, y, x)`` stack, each frame shown ``duration`` s.

    Parameters
    ----------
    image_stack : numpy array, dask array or xarray.DataArray
        The frames; a dask array or DataArray is read chunk by chunk.
    pixel_size_nm : float or sequence of float
        Pixel size in nm (a per-frame list uses its first value).
    timestamps : sequence of float, optional
        Frame times in s for the labels; without them frames are labelled by index.
    scale_bar_length_nm : float
        Scale bar length.
    output_path : str or PathLike
        Target; ``.gif`` is added unless the name ends with it. Replaced if it exists.
    duration : float
        Seconds each frame is shown.
    cmap_name, zmin, zmax, draw_ts, draw_scale
        As in :func:`afmio.export_gif`.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if not duration > 0:
        raise ValueError(f"duration must be a positive number of seconds, not {duration!r}")
    data = image_stack.data if isinstance(image_stack, xr.DataArray) else image_stack
    n = data.shape[0]
    if timestamps is None:
        times = np.full(n, np.nan)
    else:
        times = np.asarray(timestamps, dtype=np.float64)
        if times.shape != (n,):
            raise ValueError(f"timestamps has {times.size} values for {n} frames")
    pixel = np.ravel(np.asarray(pixel_size_nm, dtype=np.float64))
    stack = xr.DataArray(
        data,
        dims=("time", "y", "x"),
        coords={"time": times},
        attrs={"pixel_size_nm": float(pixel[0]) if pixel.size else np.nan},
    )
    render = RenderOptions(
        cmap_name, 1.0 / duration, zmin, zmax, scale_bar_length_nm, draw_ts, draw_scale
    )
    return export.write("gif", stack, output_path, overwrite=True, render=render)


def export_gif(
    afm_stack: xr.DataArray | xr.Dataset,
    make_gif: bool,
    output_folder: str | os.PathLike[str] | None,
    output_name: str | None,
    scale_bar_nm: float | None,
    cmap_name: str = "afmhot",
    raw: bool = False,
    zmin: float | str | None = None,
    zmax: float | str | None = None,
    draw_ts: bool = True,
    draw_scale: bool = True,
) -> Path | None:
    """Write ``<output_folder>/<output_name>[_filtered].gif`` of a video opened by afmio.

    Nothing is done when ``make_gif`` is False. ``output_folder`` defaults to ``output``,
    ``output_name`` to the source file's stem, ``scale_bar_nm`` to a round length about a
    fifth of the frame width (playNano's fixed 100 nm spans a whole 100 nm scan); ``_filtered``
    is added when processed layers other than ``raw`` exist and ``raw`` is False (see
    :func:`afmio.export.export_stem`). Frames are shown for their real durations.

    Returns
    -------
    pathlib.Path or None
        The file written, or None when ``make_gif`` is False.
    """
    if not make_gif:
        return None
    stem = export.export_stem(afm_stack, output_name, raw)
    path = Path(output_folder or "output") / f"{stem}.gif"
    render = RenderOptions(cmap_name, None, zmin, zmax, scale_bar_nm, draw_ts, draw_scale)
    return export.write("gif", afm_stack, path, raw=raw, overwrite=True, render=render)
