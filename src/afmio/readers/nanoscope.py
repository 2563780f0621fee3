"""Placeholder, being written: see issue 3."""

from __future__ import annotations

from pathlib import Path

from ..errors import UnsupportedFormatError
from .base import FormatInfo, Recording

FORMAT = FormatInfo(
    "nanoscope", "Bruker / Veeco Nanoscope images and folders of them", (".spm", ".000", ".001")
)


def sniff(path: Path, head: bytes) -> bool:
    """Not implemented yet."""
    return False


def read(path: Path) -> Recording:
    """Not implemented yet."""
    raise UnsupportedFormatError(path, "reader not implemented yet")
