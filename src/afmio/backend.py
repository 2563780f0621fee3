"""The xarray backend engine: ``xr.open_dataset(path, engine="afmio")``.

Registered under the ``xarray.backends`` entry point, so xarray's own ``open_dataset`` and
``open_mfdataset`` read every format afmio reads. The Dataset is the one
:func:`afmio.open_dataset` returns (same data, coords and attrs, built by
:mod:`afmio.model`), but its variables are xarray's lazily indexed arrays instead of
dask: nothing is read until they are indexed, and indexing reads only the frames it
selects. ``chunks={}`` turns them into dask arrays chunked like afmio's own (the
variables' ``encoding["preferred_chunks"]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from . import readers
from .api import _float_dtype
from .lazy import DIMS, FrameSource, frame_chunks
from .model import build_dataset


class FrameArray(BackendArray):
    """Frames ``0..n_frames-1`` of a frame source, read on indexing.

    Holds only the source (a path and numbers) and so pickles by path; every read opens
    and closes the file, so no handle outlives it and no lock is needed.
    """

    def __init__(self, source: FrameSource, dtype: np.dtype, n_frames: int) -> None:
        self.source = source
        self.dtype = np.dtype(dtype)
        self.shape = (n_frames, *source.shape[1:])

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        # OUTER_1VECTOR: at most one array in a key, so indexing time first and then
        # (y, x) in one numpy step keeps outer-indexing semantics.
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self._read
        )

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        frames = np.arange(self.shape[0])[key[0]]  # normalises and bounds-checks
        out = self._read_frames(np.atleast_1d(frames))
        if frames.ndim == 0:
            out = out[0]
        return out[(..., *key[1:])]

    def _read_frames(self, frames: np.ndarray) -> np.ndarray:
        """Frames ``frames`` (xarray hands them sorted), one read per run of consecutive
        frames, so a sparse selection such as ``[::100]`` skips the frames between."""
        runs = np.split(frames, np.flatnonzero(np.diff(frames) != 1) + 1)
        if len(runs) == 1:
            lo = int(frames[0]) if frames.size else 0
            return self.source.read(lo, lo + frames.size, self.dtype)
        out = np.empty((frames.size, *self.shape[1:]), dtype=self.dtype)
        done = 0
        for run in runs:
            out[done : done + run.size] = self.source.read(
                int(run[0]), int(run[-1]) + 1, self.dtype
            )
            done += run.size
        return out


def _wrap(source: FrameSource, dtype: np.dtype, n: int) -> indexing.LazilyIndexedArray:
    return indexing.LazilyIndexedArray(FrameArray(source, dtype, n))


def _nothing_to_close() -> None:
    pass


def _path(filename_or_obj: Any) -> Path | None:
    """The path of a str or PathLike; None for file objects, bytes and stores."""
    if isinstance(filename_or_obj, (str, os.PathLike)):
        return Path(filename_or_obj).expanduser()
    return None


class AfmioBackendEntrypoint(BackendEntrypoint):
    """Open AFM videos (ASD, JPK, h5-jpk, Nanoscope, afmio/playNano bundles) with afmio."""

    description = "Open high-speed AFM videos (ASD, JPK, Nanoscope, bundles) lazily with afmio"
    # The project has no published site yet: point at the page in its documentation.
    url = "docs/xarray-backend.md"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "dtype")

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        dtype: Any = "float32",
    ) -> xr.Dataset:
        """Read the headers of an AFM video and return its lazily indexed Dataset.

        Parameters
        ----------
        filename_or_obj : str or PathLike
            The file or folder to open.
        drop_variables : str or iterable of str, optional
            Variables not to return (names that are absent are ignored).
        dtype : str or numpy.dtype
            Floating-point type of the values, ``"float32"`` by default.
        """
        path = _path(filename_or_obj)
        if path is None:
            raise TypeError(
                "engine='afmio' opens files and folders by path, "
                f"not {type(filename_or_obj).__name__} objects"
            )
        ds = build_dataset(readers.read(path), _float_dtype(dtype), None, wrap=_wrap)
        if drop_variables is not None:
            names = [drop_variables] if isinstance(drop_variables, str) else drop_variables
            ds = ds.drop_vars(names, errors="ignore")
        for name in ds.data_vars:
            var = ds.variables[name]
            spec = frame_chunks(None, var.shape, var.dtype.itemsize)
            var.encoding["preferred_chunks"] = dict(zip(DIMS, spec, strict=True))
        # No handle to close (each read opens and closes its file), but xarray calls the
        # closer of every file in open_mfdataset's Dataset.close().
        ds.set_close(_nothing_to_close)
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for files and folders afmio recognises by content (:func:`afmio.readers.sniff`)."""
        path = _path(filename_or_obj)
        return path is not None and readers.sniff(path) is not None
