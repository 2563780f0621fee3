"""Placeholder, being written: see issue 4."""

from __future__ import annotations

from pathlib import Path

from ..errors import UnsupportedFormatError
from .base import FormatInfo, Recording

FORMAT = FormatInfo("h5-bundle", "HDF5 bundle (afmio and playNano)", (".h5", ".hdf5"))


def sniff(path: Path, head: bytes) -> bool:
    """Not implemented yet."""
    return False


def read(path: Path) -> Recording:
    """Not implemented yet."""
    raise UnsupportedFormatError(path, "reader not implemented yet")
