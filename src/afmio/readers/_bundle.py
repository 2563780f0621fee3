"""What the bundle readers (HDF5, NPZ, OME-TIFF, Zarr) share: restoring the saved
attributes and coordinates from a bundle's provenance, and the Recording they make."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import layouts
from ..errors import AfmIOWarning, CorruptFileError
from ..lazy import FrameSource
from .base import ChannelInfo, Recording


@dataclass(frozen=True)
class Saved:
    """The current data's attributes and coordinates as a bundle saved them."""

    attrs: dict[str, Any]
    x_nm: np.ndarray | None
    y_nm: np.ndarray | None
    pixel_x_nm: float
    pixel_y_nm: float
    acquisition: dict[str, Any]

    def data(
        self, name: str, frames: FrameSource, units: str = "nm", dtype: str | None = "float32"
    ) -> ChannelInfo:
        """The channel of the current data, named ``name``; ``units`` if none were saved."""
        units = str(self.attrs.get("units", units))
        long_name = str(self.attrs.get("long_name", name))
        return ChannelInfo(name, name, units, long_name, frames, role="data", dtype=dtype)


def restore(
    path: Path,
    provenance: dict[str, Any],
    channel: str,
    pixel_nm: float,
    shape: tuple[int, int, int],
    pixel_y_nm: float | None = None,
) -> Saved:
    """The saved attributes of data of ``shape`` (see :func:`layouts.attrs_from_bundle`);
    ``pixel_nm`` and ``pixel_y_nm`` (default: ``pixel_nm``) stand in for unsaved sizes."""
    attrs, x_nm, y_nm = layouts.attrs_from_bundle(provenance, channel, pixel_nm)
    for axis, coord, count in (("x", x_nm, shape[2]), ("y", y_nm, shape[1])):
        if coord is not None and coord.shape != (count,):
            raise CorruptFileError(
                path, f"the provenance's {axis} coords have {coord.size} values for {count} pixels"
            )
    acquisition = provenance.get("acquisition")
    pixel_y_nm = pixel_nm if pixel_y_nm is None else pixel_y_nm
    return Saved(
        attrs=attrs,
        x_nm=x_nm,
        y_nm=y_nm,
        pixel_x_nm=float(attrs.get("pixel_size_nm", pixel_nm)),
        pixel_y_nm=float(
            attrs.get("pixel_size_y_nm", pixel_nm if pixel_y_nm is None else pixel_y_nm)
        ),
        acquisition=acquisition if isinstance(acquisition, dict) else {},
    )


def recording(
    path: Path,
    format: str,
    format_version: str,
    size: int,
    saved: Saved,
    channels: list[ChannelInfo],
    time_s: np.ndarray,
    frame_coords: dict[str, np.ndarray],
    reader_notes: dict[str, Any] | None = None,
    warnings: list[AfmIOWarning] | None = None,
) -> Recording:
    """The Recording of a bundle whose first channel is the current data."""
    return Recording(
        path=str(path),
        format=format,
        format_version=format_version,
        size_bytes=size,
        channels=tuple(channels),
        pixel_size_x_nm=saved.pixel_x_nm,
        pixel_size_y_nm=saved.pixel_y_nm,
        time_s=time_s,
        frame_coords=frame_coords,
        acquisition=saved.acquisition,
        reader_notes=reader_notes or {},
        warnings=warnings or [],
        default_channel=channels[0].name,
        attrs=saved.attrs,
        x_nm=saved.x_nm,
        y_nm=saved.y_nm,
    )
