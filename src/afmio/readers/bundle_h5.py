"""Reader for HDF5 bundles in playNano 0.5.0's layout, written by afmio or by playNano.

Layout (see :mod:`afmio.writers.hdf5`): ``/data`` (n, H, W), ``/processed/<step>`` and
``/masks/<name>`` of the same shape, ``/timestamps`` (n,), the UTF-8 JSON strings
``/frame_metadata_json`` and ``/provenance_json`` (and ``/state_backups_json``, which
afmio does not use), root attributes ``pixel_size_nm`` and ``channel``.

The data opens as the channel named by ``channel``, layers as ``processed__<step>`` and
masks as ``masks__<name>`` (see :mod:`afmio.model`). Times and per-frame coords come from
the frame metadata (``/timestamps`` fills frames whose metadata has no timestamp);
attributes and x/y coords are those afmio saved in the provenance, or, for playNano's
files, built from the channel and pixel size. Frames are read lazily: each dask task
opens the file by path and reads ``dataset[start:stop]`` with h5py. Every dataset and
group is reached through :func:`~afmio.readers._hdf5.member`, which refuses data stored
in other files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import layouts, model
from ..errors import CorruptFileError
from ..lazy import PathFrames
from . import _bundle
from ._hdf5 import HDF5_SIGNATURE, member, read_hdf5, reopened, root
from .base import ChannelInfo, FormatInfo, Reader, Recording

FORMAT = FormatInfo("h5-bundle", "HDF5 bundle (afmio and playNano)", (".h5", ".hdf5"))

#: Root datasets that tell a bundle from other HDF5 files.
_KEYS = ("data", "timestamps", "frame_metadata_json", "provenance_json")


@dataclass(frozen=True)
class H5DatasetFrames(PathFrames):
    """Frames ``[start, stop)`` of an ``(n, H, W)`` HDF5 dataset, read with h5py.

    Parameters
    ----------
    path : str
        The HDF5 file (re-opened for every read).
    dataset : str
        HDF5 path of the dataset, e.g. ``"data"`` or ``"masks/high"``.
    n_frames, ny, nx : int
        Its shape when the file was opened.
    """

    path: str
    dataset: str
    n_frames: int
    ny: int
    nx: int

    @property
    def what(self) -> str:
        return f"/{self.dataset}"

    def fill(self, out: np.ndarray, start: int) -> None:
        with h5py.File(self.path, "r") as f:
            ds = reopened(
                self.path,
                f,
                self.dataset,
                self.what,
                str(self.shape),
                lambda d: d.shape == self.shape,
            )
            if ds.dtype == out.dtype:
                ds.read_direct(out, np.s_[start : start + len(out)])  # decoded straight into out
            else:
                out[...] = ds[start : start + len(out)]


def sniff(path: Path, head: bytes) -> bool:
    """True for an HDF5 file with a bundle's structure: a ``data`` dataset beside
    ``timestamps`` or ``frame_metadata_json``, or both JSON strings (a bundle missing
    its data, so that :func:`read` says so); and for a truncated HDF5 file named ``.h5``
    or ``.hdf5``."""
    if not head.startswith(HDF5_SIGNATURE):
        return False
    found = root(path)
    if found.error is not None:
        # A cut HDF5 file cannot be opened at all; claim one named like a bundle so that
        # read() reports it as truncated, rather than as an HDF5 file afmio does not read.
        return "truncated file" in found.error and Path(path).suffix.lower() in FORMAT.extensions
    has = found.datasets & set(_KEYS)
    if "data" in has:
        return bool(has & {"timestamps", "frame_metadata_json"})
    return {"frame_metadata_json", "provenance_json"} <= has


def read(path: str | os.PathLike[str]) -> Recording:
    """Parse a bundle's metadata; frame data is not read."""
    path = Path(path)
    return read_hdf5(path, _read_open, "an HDF5 bundle")


def _frames(path: Path, f: h5py.File, name: str, shape: tuple[int, ...] | None) -> H5DatasetFrames:
    """The frame source of dataset ``name``, checked to be numbers of ``shape``."""
    ds = member(path, f, name)
    if not isinstance(ds, h5py.Dataset):
        raise CorruptFileError(path, f"HDF5 bundle has no /{name} dataset")
    if ds.ndim != 3:
        raise CorruptFileError(path, f"/{name} has shape {ds.shape}, not (frames, y, x)")
    if shape is not None and ds.shape != shape:
        raise CorruptFileError(path, f"/{name} has shape {ds.shape} but /data has {shape}")
    if ds.dtype.kind not in "biuf":
        raise CorruptFileError(path, f"/{name} holds {ds.dtype} values, not numbers")
    return H5DatasetFrames(str(path), name, *ds.shape)


def _json(path: Path, f: h5py.File, name: str, kind: type) -> Any:
    """The JSON document stored as the string dataset ``name``, checked to be ``kind``."""
    ds = member(path, f, name)
    if not isinstance(ds, h5py.Dataset):
        raise CorruptFileError(path, f"HDF5 bundle has no /{name} (its metadata)")
    raw = ds[()]
    if isinstance(raw, np.ndarray) and raw.size == 1:  # a one-element array, not a scalar
        raw = raw.reshape(()).item()
    try:
        value = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (TypeError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise CorruptFileError(path, f"/{name} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(value, kind):
        raise CorruptFileError(
            path, f"/{name} holds a JSON {type(value).__name__}, not a {kind.__name__}"
        )
    return value


def _root_attr(path: Path, f: h5py.File, name: str) -> Any:
    if name not in f.attrs:
        raise CorruptFileError(path, f"HDF5 bundle has no root attribute {name!r}")
    value = f.attrs[name]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _read_open(path: Path, size: int, f: h5py.File) -> Recording:
    data = _frames(path, f, "data", None)
    n = data.shape[0]
    meta = _json(path, f, "frame_metadata_json", list)
    provenance = _json(path, f, "provenance_json", dict)
    if len(meta) != n:
        raise CorruptFileError(
            path, f"/frame_metadata_json has {len(meta)} entries but /data has {n} frames"
        )
    if not all(isinstance(m, dict) for m in meta):
        raise CorruptFileError(path, "/frame_metadata_json is not a list of JSON objects")
    time_s, coords = layouts.frame_coords_from_metadata(meta)
    timestamps = member(path, f, "timestamps")
    if timestamps is not None:
        stamps = np.asarray(timestamps[()], dtype=np.float64)
        if stamps.shape != (n,):
            raise CorruptFileError(
                path, f"/timestamps has shape {stamps.shape} but /data has {n} frames"
            )
        time_s = np.where(np.isnan(time_s), stamps, time_s)
    channel = str(_root_attr(path, f, "channel"))
    try:
        pixel = float(_root_attr(path, f, "pixel_size_nm"))
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(
            path, f"root attribute pixel_size_nm is not a number: {exc}"
        ) from exc
    saved = _bundle.restore(path, provenance, channel, pixel, data.shape)
    channels = [saved.data(channel, data)]
    for group, prefix, role, dtype in (
        ("processed", model.LAYER_PREFIX, "layer", "float32"),
        ("masks", model.MASK_PREFIX, "mask", "bool"),
    ):
        members = member(path, f, group)
        if not isinstance(members, h5py.Group):
            continue
        for name in members:
            source = _frames(path, f, f"{group}/{name}", data.shape)
            channels.append(
                ChannelInfo(prefix + name, f"{group}/{name}", "", name, source, (), role, dtype)
            )
    version = "playNano 0.5.0 layout"
    return _bundle.recording(path, FORMAT.name, version, size, saved, channels, time_s, coords)


READER = Reader(FORMAT, sniff, read, container="hdf5", priority=10)
