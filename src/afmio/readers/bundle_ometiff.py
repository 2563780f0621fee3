"""Placeholder, being written: see issue 4."""

from __future__ import annotations

from pathlib import Path

from ..errors import UnsupportedFormatError
from .base import FormatInfo, Recording

FORMAT = FormatInfo(
    "ome-tiff",
    "OME-TIFF stack (afmio and playNano), or a plain TIFF",
    (".ome.tif", ".ome.tiff", ".tif", ".tiff"),
)


def sniff(path: Path, head: bytes) -> bool:
    """Not implemented yet."""
    return False


def read(path: Path) -> Recording:
    """Not implemented yet."""
    raise UnsupportedFormatError(path, "reader not implemented yet")
