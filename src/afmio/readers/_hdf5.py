"""HDF5 for the readers: one shared look at a file's root for the sniffers, and opening a
file to parse it with every h5py failure turned into an afmio error."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import AfmIOError, AfmOSError, CorruptFileError
from .base import Recording

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Root:
    """What the sniffers need of an HDF5 file: its root's members and scalar attributes.

    ``error`` says why h5py could not open the file (the other fields are then empty).
    """

    datasets: frozenset[str] = frozenset()
    #: Each root group and the names of the groups it holds.
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Root attributes holding one value (arrays of more are left out).
    attrs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(cls, f: h5py.File) -> Root:
        """The root of an open file."""
        datasets, groups = set(), {}
        for name in f:
            kind = f.get(name, getclass=True)
            if kind is h5py.Dataset:
                datasets.add(name)
            elif kind is h5py.Group:
                g = f[name]
                groups[name] = frozenset(k for k in g if g.get(k, getclass=True) is h5py.Group)
        attrs = {}
        for key in f.attrs:
            try:
                value = f.attrs[key]
            except (OSError, TypeError, ValueError):
                continue  # a type h5py cannot convert: no sniffer relies on it
            if np.size(value) == 1:
                attrs[key] = value
        return cls(frozenset(datasets), groups, attrs)


def root(path: Path) -> Root:
    """The :class:`Root` of the HDF5 file at ``path``; never raises.

    Cached on the file's identity and state, so that the HDF5 sniffers of one detection
    open the file once between them.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return Root(error=str(exc))
    return _root(str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@lru_cache(maxsize=8)
def _root(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> Root:
    try:
        with h5py.File(path, "r") as f:
            return Root.of(f)
    except Exception as exc:  # whatever h5py makes of a damaged file, sniffing must not raise
        return Root(error=str(exc))


def read_hdf5(
    path: Path, parse: Callable[[Path, int, h5py.File], Recording], what: str
) -> Recording:
    """Check the signature, open ``path`` with h5py and ``parse(path, size, file)`` it.

    ``what`` names the format in the error for a file that is not HDF5 at all.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        raise AfmOSError(path, f"cannot be read: {exc.strerror or exc}") from exc
    if size == 0:
        raise CorruptFileError(path, "file is empty (0 bytes)")
    if head != HDF5_SIGNATURE:
        raise CorruptFileError(
            path, f"is not an HDF5 file (no HDF5 signature at its start), so not {what}"
        )
    try:
        with h5py.File(path, "r") as f:
            return parse(path, size, f)
    except AfmIOError:
        raise
    except (FileNotFoundError, PermissionError) as exc:
        raise AfmOSError(path, f"cannot be opened: {exc.strerror or exc}") from exc
    except OSError as exc:
        raise CorruptFileError(
            path, f"HDF5 file is truncated or damaged; h5py cannot read it: {exc}"
        ) from exc
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CorruptFileError(path, f"damaged HDF5 structure: {exc}") from exc
