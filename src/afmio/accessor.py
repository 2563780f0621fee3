"""The ``.afm`` accessors on ``xarray.DataArray`` and ``xarray.Dataset``.

Stateless: every property is derived from the object's coords and attrs on each call,
so it stays right after ``isel``, ``sel`` or arithmetic, and works on any object that
follows afmio's data model (see :mod:`afmio.model`). Methods return new objects or write
files; they never change the object.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np
import xarray as xr

from .model import LAYER_PREFIX, MASK_PREFIX, frame_interval, layer_attrs, mask_attrs
from .progressbar import progress_callback


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _fmt_num(x: float) -> str:
    return "unknown" if x is None or not math.isfinite(x) else f"{x:.6g}"


class _Exports:
    """Export methods shared by both accessors (see :mod:`afmio.export`).

    Each takes the keyword arguments of the function it names; ``progress=True`` draws a
    progress bar (a widget in Jupyter), and a callable receives ``(frames_done, total)``.
    """

    _obj: xr.DataArray | xr.Dataset

    def _run(self, func: Any, *args: Any, progress: Any = None, **kwargs: Any) -> Any:
        with progress_callback(progress, desc=func.__name__) as callback:
            return func(*args, progress=callback, **kwargs)

    def to_h5(self, path: str, raw: bool = False, **kwargs: Any) -> Any:
        """Write an HDF5 bundle; see :func:`afmio.save_h5_bundle`."""
        from .export import save_h5_bundle

        return self._run(save_h5_bundle, path, self._obj, raw, **kwargs)

    def to_npz(self, path: str, raw: bool = False, **kwargs: Any) -> Any:
        """Write an NPZ bundle; see :func:`afmio.save_npz_bundle`."""
        from .export import save_npz_bundle

        return self._run(save_npz_bundle, path, self._obj, raw, **kwargs)

    def to_ome_tiff(self, path: str, raw: bool = False, **kwargs: Any) -> Any:
        """Write an OME-TIFF stack; see :func:`afmio.save_ome_tiff_stack`."""
        from .export import save_ome_tiff_stack

        return self._run(save_ome_tiff_stack, path, self._obj, raw, **kwargs)

    def to_zarr(self, path: str, raw: bool = False, **kwargs: Any) -> Any:
        """Write a Zarr store; see :func:`afmio.save_zarr`."""
        from .export import save_zarr

        return self._run(save_zarr, path, self._obj, raw, **kwargs)

    def to_gif(self, path: str, **kwargs: Any) -> Any:
        """Write an annotated animated GIF; see :func:`afmio.export_gif`."""
        from .export import export_gif

        return self._run(export_gif, self._obj, path, **kwargs)

    def to_mp4(self, path: str, **kwargs: Any) -> Any:
        """Write an annotated MP4 video; see :func:`afmio.export_mp4`."""
        from .export import export_mp4

        return self._run(export_mp4, self._obj, path, **kwargs)

    def export(self, output_folder: str, base_name: str | None = None, **kwargs: Any) -> Any:
        """Write several formats at once; see :func:`afmio.export_bundles`."""
        from .export import export_bundles

        return self._run(export_bundles, self._obj, output_folder, base_name, **kwargs)


@xr.register_dataset_accessor("afm")
class AfmDatasetAccessor(_Exports):
    """AFM helpers on a Dataset opened by afmio: channels, processed layers and masks."""

    def __init__(self, obj: xr.Dataset) -> None:
        self._obj = obj

    @property
    def data(self) -> xr.DataArray:
        """The current data: the variable named by ``attrs["channel"]``, with its attrs."""
        name = self._obj.attrs.get("channel") or next(iter(self._obj.data_vars))
        current = self._obj[name]
        return current.assign_attrs({**self._obj.attrs, **current.attrs})

    @property
    def layers(self) -> list[str]:
        """Names of the processed layers (variables ``processed__<name>``)."""
        return [k[len(LAYER_PREFIX) :] for k in self._obj.data_vars if k.startswith(LAYER_PREFIX)]

    @property
    def masks(self) -> list[str]:
        """Names of the masks (boolean variables ``masks__<name>``)."""
        return [k[len(MASK_PREFIX) :] for k in self._obj.data_vars if k.startswith(MASK_PREFIX)]

    def layer(self, name: str) -> xr.DataArray:
        """The processed layer ``name`` (e.g. ``"raw"``)."""
        return self._obj[LAYER_PREFIX + name]

    def mask(self, name: str) -> xr.DataArray:
        """The boolean mask ``name``."""
        return self._obj[MASK_PREFIX + name]

    def with_layer(self, name: str, values: xr.DataArray) -> xr.Dataset:
        """A new Dataset with ``values`` added as processed layer ``name`` (e.g. ``"raw"``)."""
        layer = values.copy(data=values.data)
        layer.attrs = layer_attrs(name, self.data.attrs.get("units", ""))
        return self._obj.assign({LAYER_PREFIX + name: layer})

    def with_mask(self, name: str, values: xr.DataArray) -> xr.Dataset:
        """A new Dataset with the boolean ``values`` added as mask ``name``."""
        mask = values.astype(bool)
        mask.attrs = mask_attrs(name)
        return self._obj.assign({MASK_PREFIX + name: mask})


@xr.register_dataarray_accessor("afm")
class AfmAccessor(_Exports):
    """AFM helpers on a ``(time, y, x)`` DataArray opened by afmio."""

    def __init__(self, obj: xr.DataArray) -> None:
        self._obj = obj

    @property
    def pixel_size_nm(self) -> float:
        """Pixel size along x in nm (``attrs["pixel_size_nm"]``)."""
        return float(self._obj.attrs.get("pixel_size_nm", math.nan))

    @property
    def channel(self) -> str:
        """Canonical channel name, e.g. ``"height_trace"``."""
        return str(self._obj.attrs.get("channel", self._obj.name or ""))

    @property
    def n_frames(self) -> int:
        """Number of frames along ``time``."""
        return int(self._obj.sizes.get("time", 1))

    @property
    def frame_times(self) -> np.ndarray:
        """Frame times in s since the first frame, as a numpy array."""
        if "time" not in self._obj.coords:
            return np.full(self.n_frames, np.nan)
        return np.atleast_1d(np.asarray(self._obj["time"].values, dtype=np.float64))

    @property
    def frame_interval(self) -> float:
        """Typical time between frame starts in s (see :func:`afmio.model.frame_interval`)."""
        coords = self._obj.coords
        durations = coords["frame_duration_s"].values if "frame_duration_s" in coords else None
        return frame_interval(self.frame_times, durations)

    @property
    def provenance(self) -> dict[str, Any]:
        """The JSON-safe provenance dict: ``acquisition``, ``reader``, ``processing``."""
        return self._obj.attrs.get("provenance", {})

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as a 2-D numpy array; reads only that frame from disk."""
        return np.asarray(self._obj.isel(time=i).values)

    def plot(self, i: int = 0, ax: Any = None, cmap: str = "afmhot", **imshow_kw: Any) -> Any:
        """Show frame ``i`` (axes in nm, colorbar in the data's units, its time as title).

        Reads only that frame; ``imshow_kw`` go to ``Axes.imshow``. Returns the
        matplotlib ``AxesImage``.
        """
        from .notebook import plot

        return plot(self._obj, i, ax, cmap, **imshow_kw)

    def play(
        self, frames: Any = None, *, fps: float | None = None, max_frames: int = 100, **kwargs: Any
    ) -> Any:
        """An inline animation (GIF) of the video for a notebook; see
        :func:`afmio.notebook.play`. At most ``max_frames`` frames, evenly spread, and
        only those are read. ``kwargs`` are the drawing options of :func:`afmio.export_gif`.
        """
        from .notebook import play

        return play(self._obj, frames, fps=fps, max_frames=max_frames, **kwargs)

    def summary(self) -> str:
        """A short human-readable description of the video."""
        obj = self._obj
        src = obj.attrs.get("source", {})
        lines = []
        name = src.get("path", obj.name or "video")
        fmt = src.get("format", "?")
        ver = src.get("format_version")
        size = src.get("size_bytes")
        head = f"{name}\n  format      {fmt.upper()}" + (f" v{ver}" if ver else "")
        if size is not None:
            head += f", {_fmt_bytes(size)} on disk"
        lines.append(head)
        dims = ", ".join(f"{d}: {n}" for d, n in obj.sizes.items())
        chunks = ""
        if obj.chunks:
            n_chunks = len(obj.chunks[0])
            per = max(obj.chunks[0], default=0)
            chunks = f", {n_chunks} dask chunk{'s' if n_chunks != 1 else ''} of <= {per} frames"
        lines.append(f"  dims        {dims} ({obj.dtype}{chunks})")
        units = obj.attrs.get("units", "")
        native = obj.attrs.get("native_channel")
        label = self.channel + (f" ({native})" if native and native != self.channel else "")
        lines.append(f"  channel     {label} in {units}")
        if src.get("channels"):
            lines.append(f"  channels    {', '.join(src['channels'])}")
        px_y = float(obj.attrs.get("pixel_size_y_nm", self.pixel_size_nm))
        lines.append(
            f"  pixel size  {_fmt_num(self.pixel_size_nm)} nm (x), {_fmt_num(px_y)} nm (y); "
            f"scan {_fmt_num(self.pixel_size_nm * obj.sizes.get('x', 0))} x "
            f"{_fmt_num(px_y * obj.sizes.get('y', 0))} nm"
        )
        dt = self.frame_interval
        if self.n_frames == 1:
            lines.append(f"  time        1 frame, {_fmt_num(dt)} s long")
        else:
            lines.append(
                f"  time        {self.n_frames} frames, {_fmt_num(dt)} s apart, "
                f"duration {_fmt_num(dt * self.n_frames)} s"
            )
        if "start_epoch_ms" in obj.coords and obj["start_epoch_ms"].size:
            ms = float(np.atleast_1d(obj["start_epoch_ms"].values)[0])
            if math.isfinite(ms):
                start = datetime.fromtimestamp(ms / 1000, timezone.utc)
                lines.append(f"  started     {start:%Y-%m-%d %H:%M:%S} UTC")
        return "\n".join(lines)
