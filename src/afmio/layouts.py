"""What the bundle layouts fix, shared by their readers and their writers: names, tags,
and the conversions between afmio's coords and attrs and playNano's metadata.

Readers and writers never import each other; what both must agree on lives here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

# --- OME-TIFF (playNano's layout) ---
#: Private tag holding the provenance as UTF-8 JSON.
OME_PROVENANCE_TAG = 65000
#: Private tag holding the processed layer names as a JSON list.
OME_LAYERS_TAG = 65001
#: Key of the per-frame metadata columns under the provenance's afmio key.
OME_FRAME_METADATA_KEY = "frame_metadata"

# --- Zarr (afmio's own, with OME-Zarr 0.5 image metadata) ---
#: ``attributes["afmio"]["format"]`` of afmio's stores and the layout version.
ZARR_STORE_FORMAT, ZARR_STORE_VERSION = "afmio-bundle", 1
#: Array paths of the current data (the NGFF level) and of the timestamps.
ZARR_DATA_PATH, ZARR_TIMESTAMPS_PATH = "0", "timestamps"
#: ``dimension_names`` of the frame arrays (the NGFF axis names).
ZARR_DIMS = ("t", "y", "x")
#: A non-finite float in afmio's Zarr metadata is ``{ZARR_FLOAT_KEY: "NaN"}`` (strict JSON).
ZARR_FLOAT_KEY = "$float"

# --- playNano's metadata (HDF5, NPZ, OME-TIFF), both ways ---
#: Key of the provenance dict under which afmio keeps what playNano's layout has no
#: place for (attrs, pixel-centre coords), so that a reopened bundle equals what was saved.
AFMIO_KEY = "afmio"


def frame_metadata(obj: xr.DataArray | xr.Dataset) -> dict[str, list[Any]]:
    """playNano's per-frame metadata as columns (one list per key, in playNano's key
    order) from the coords along ``time``; None for NaN or ""."""
    n = obj.sizes["time"]
    pixel = float(obj.attrs.get("pixel_size_nm", np.nan))

    def column(name: str) -> list[Any]:
        if name not in obj.coords:
            return [None] * n
        values = np.asarray(obj[name].values).tolist()
        return [None if v == "" or (isinstance(v, float) and v != v) else v for v in values]

    times = (
        np.asarray(obj["time"].values, dtype=np.float64).tolist()
        if "time" in obj.coords
        else list(range(n))
    )
    return {
        "timestamp": times,
        "frame_pixel_size_nm": [None if pixel != pixel else pixel] * n,
        "frame_duration_s": column("frame_duration_s"),
        "start_epoch_ms": column("start_epoch_ms"),
        "scan_direction": column("scan_direction"),
        "line_rate": column("line_rate"),
        "frame_index": column("frame_index"),
    }


def frame_metadata_rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """playNano's per-frame metadata list (one dict per frame) from its columns: the form
    its files hold."""
    n = len(next(iter(columns.values()), []))
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


def frame_coords_from_metadata(
    meta: list[dict[str, Any]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(time_s, frame_coords)`` for a Recording from playNano's per-frame metadata."""

    def column(key: str, default: float = np.nan) -> np.ndarray:
        return np.array([default if m.get(key) is None else m[key] for m in meta], dtype=np.float64)

    coords = {
        "start_epoch_ms": column("start_epoch_ms"),
        "frame_duration_s": column("frame_duration_s"),
        "line_rate": column("line_rate"),
        "scan_direction": np.array([m.get("scan_direction") or "" for m in meta], dtype=str),
    }
    if meta and all(m.get("frame_index") is not None for m in meta):
        coords["frame_index"] = np.array([m["frame_index"] for m in meta], dtype=np.int64)
    return column("timestamp"), coords


def bundle_provenance(obj: xr.DataArray) -> dict[str, Any]:
    """The provenance to store in a bundle: ``attrs["provenance"]`` plus, under
    :data:`AFMIO_KEY`, the other attrs and the x/y coords (JSON-safe)."""
    provenance = dict(obj.attrs.get("provenance", {}))
    provenance[AFMIO_KEY] = {
        "attrs": {k: v for k, v in obj.attrs.items() if k != "provenance"},
        "x_nm": np.asarray(obj["x"].values, dtype=np.float64).tolist()
        if "x" in obj.coords
        else None,
        "y_nm": np.asarray(obj["y"].values, dtype=np.float64).tolist()
        if "y" in obj.coords
        else None,
    }
    return provenance


def attrs_from_bundle(
    provenance: dict[str, Any], channel: str, pixel_size_nm: float
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Inverse of :func:`bundle_provenance`: ``(attrs, x_nm, y_nm)`` of the saved data.

    A bundle written by playNano has no afmio key: its attrs are built from what the
    layout holds (channel, pixel size, provenance) and x/y from the pixel size.
    """
    provenance = dict(provenance)
    extra = provenance.pop(AFMIO_KEY, None)
    if isinstance(extra, dict) and isinstance(extra.get("attrs"), dict):
        attrs = {**extra["attrs"], "provenance": provenance}
        x = None if extra.get("x_nm") is None else np.asarray(extra["x_nm"], dtype=np.float64)
        y = None if extra.get("y_nm") is None else np.asarray(extra["y_nm"], dtype=np.float64)
        return attrs, x, y
    attrs = {
        "units": "nm",
        "long_name": channel,
        "channel": channel,
        "native_channel": channel,
        "pixel_size_nm": float(pixel_size_nm),
        "pixel_size_y_nm": float(pixel_size_nm),
        "provenance": provenance,
    }
    return attrs, None, None
