"""Looking at a video in a notebook: one frame with matplotlib, or an inline animation.

Behind ``da.afm.plot`` and ``da.afm.play``. Both read only the frames they show.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .render import RenderOptions, chunk_stats, levels_from_stats, merge_stats, time_decimals
from .writers.gif import gif_delays, write_frames


def _frame_time(obj: xr.DataArray, i: int) -> float:
    return float(obj["time"].values[i]) if "time" in obj.coords else math.nan


def _edges(obj: xr.DataArray, dim: str) -> tuple[float, float]:
    """Outer edges of the first and last pixel along ``dim`` (pixel index if no coord)."""
    n = obj.sizes[dim]
    c = np.asarray(obj[dim].values, dtype=np.float64) if dim in obj.coords else np.arange(n)
    step = (c[-1] - c[0]) / (n - 1) if n > 1 else 1.0
    return float(c[0] - step / 2), float(c[-1] + step / 2)


def plot(obj: xr.DataArray, i: int = 0, ax: Any = None, cmap: str = "afmhot", **imshow_kw: Any):
    """Show frame ``i`` with x/y axes in nm, a colorbar in the data's units and its time.

    Row 0 is drawn at the top, as in the exported GIFs. Extra keyword arguments go to
    :meth:`matplotlib.axes.Axes.imshow`. Returns the ``AxesImage``.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    n = obj.sizes["time"]
    i = int(i) + n if i < 0 else int(i)
    x0, x1 = _edges(obj, "x")
    y0, y1 = _edges(obj, "y")
    xunit = obj["x"].attrs.get("units", "px") if "x" in obj.coords else "px"
    yunit = obj["y"].attrs.get("units", "px") if "y" in obj.coords else "px"
    image = ax.imshow(
        np.asarray(obj.isel(time=i).values),
        cmap=cmap,
        extent=(x0, x1, y1, y0),
        origin="upper",
        **imshow_kw,
    )
    ax.set_xlabel(f"x ({xunit})")
    ax.set_ylabel(f"y ({yunit})")
    t = _frame_time(obj, i)
    decimals = time_decimals(obj.afm.frame_interval)
    ax.set_title(f"frame {i}" + (f", {t:.{decimals}f} s" if math.isfinite(t) else ""))
    channel = obj.attrs.get("channel", obj.name or "")
    units = obj.attrs.get("units", "")
    ax.figure.colorbar(image, ax=ax, label=f"{channel} ({units})" if units else channel)
    return image


@dataclass(frozen=True)
class Animation:
    """An animated GIF held in memory; notebooks show it inline (``_repr_html_``)."""

    data: bytes
    n_frames: int

    def _repr_html_(self) -> str:
        encoded = base64.b64encode(self.data).decode("ascii")
        return f'<img src="data:image/gif;base64,{encoded}">'


def shown_frames(n: int, frames: Any, max_frames: int) -> np.ndarray:
    """Indices of the frames to show: ``frames`` (all by default), thinned evenly to at
    most ``max_frames``."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, not {max_frames}")
    index = np.arange(n)
    chosen = index if frames is None else np.atleast_1d(index[frames])
    if chosen.size > max_frames:
        chosen = chosen[np.unique(np.linspace(0, chosen.size - 1, max_frames).round().astype(int))]
    return chosen


def play(
    obj: xr.DataArray,
    frames: Any = None,
    *,
    fps: float | None = None,
    max_frames: int = 100,
    cmap: str = "afmhot",
    zmin: float | str | None = None,
    zmax: float | str | None = None,
    scale_bar_nm: float | None = None,
    draw_ts: bool = True,
    draw_scale: bool = True,
) -> Animation:
    """Render the video (or ``frames``: an index, slice or list) as an in-memory GIF.

    A video longer than ``max_frames`` is shown as an even subset of its frames, each
    shown until the next one's real time (or at ``fps``); only those frames are read,
    one at a time (twice when ``zmin``/``zmax`` need the data's statistics). The other
    options are those of :func:`afmio.export_gif`.
    """
    render = RenderOptions(cmap, fps, zmin, zmax, scale_bar_nm, draw_ts, draw_scale)
    chosen = shown_frames(obj.sizes["time"], frames, max_frames)
    times = (
        np.asarray(obj["time"].values, dtype=np.float64)[chosen]
        if "time" in obj.coords
        else np.full(chosen.size, np.nan)
    )

    def read(i: int) -> np.ndarray:
        # One frame per compute: dask then reads just that frame, not its whole chunk.
        return np.asarray(obj.isel(time=int(i)).values)

    stats = merge_stats(chunk_stats(read(i)) for i in chosen) if render.needs_stats else None
    levels = levels_from_stats(zmin, zmax, stats)
    renderer = render.renderer(obj.shape[1:], levels, obj.afm.pixel_size_nm, obj.afm.frame_interval)
    buf = io.BytesIO()
    shown = ((k, read(i)) for k, i in enumerate(chosen))
    delays = gif_delays(render.durations(times))
    count = write_frames(buf, shown, renderer, render.palette(), times, delays, numbers=chosen)
    return Animation(buf.getvalue(), count)
