"""The one interface every format reader implements, and what the registry knows of it.

A reader module defines a :class:`FormatInfo` and its functions, and exposes them as one
:class:`Reader`, ``READER``, which the registry (:mod:`afmio.readers`) lists:

- ``sniff(path, head) -> bool`` recognises the format from ``head``, the first
  :data:`HEAD_BYTES` of the file (``path`` is there for containers such as HDF5 that need
  a look inside); it must be cheap, parse no more than it needs to decide, and never raise;
- ``read(path) -> Recording`` parses headers only and describes where the frames are,
  raising :class:`~afmio.errors.AfmIOError` subclasses for bad content;
- ``folder_member(path) -> bool``, for formats whose videos are folders of one-frame
  files: the registry hands a folder to ``read`` when most of its files are members;
- ``sniff_folder(path) -> bool``, for formats stored as a folder (a Zarr store), checked
  before folder videos; like ``sniff`` it looks at metadata only and never raises.

Formats that share a container (TIFF, HDF5, ZIP) are tried in the order of their
``priority``, the most specific first; :func:`afmio.readers.sniff` and a test pin who wins.

Everything after ``read`` (dask, coordinates, attributes) is built from the
:class:`~afmio.recording.Recording` by :mod:`afmio.model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..recording import CANONICAL_LONG_NAMES, ChannelInfo, Recording

__all__ = [
    "CANONICAL_LONG_NAMES",
    "HEAD_BYTES",
    "ChannelInfo",
    "FormatInfo",
    "Reader",
    "Recording",
]

#: Bytes read from the start of a file to recognise its format.
HEAD_BYTES = 4096


@dataclass(frozen=True)
class FormatInfo:
    """A supported format: short name, description and usual file extensions."""

    name: str
    description: str
    extensions: tuple[str, ...]


def _never(path: Path) -> bool:
    return False


@dataclass(frozen=True)
class Reader:
    """A format's reader, as the registry sees it.

    Parameters
    ----------
    format : FormatInfo
        Name, description and extensions.
    sniff : callable
        ``sniff(path, head) -> bool``: is this file of the format, by content?
    read : callable
        ``read(path) -> Recording``: parse the headers.
    container : str, optional
        The container the format shares with others (``"tiff"``, ``"hdf5"``, ``"zip"``,
        ``"zarr"``); None for a format of its own.
    priority : int
        Among formats of one container, the higher is asked first: a specific format
        (JPK's TIFFs) before a general one (any TIFF).
    folder_member : callable, optional
        ``folder_member(path) -> bool`` for formats whose videos are folders of one-frame
        files; None for formats without folder videos.
    sniff_folder : callable
        ``sniff_folder(path) -> bool`` for formats stored as a folder.
    """

    format: FormatInfo
    sniff: Callable[[Path, bytes], bool]
    read: Callable[[Path], Recording]
    container: str | None = None
    priority: int = 0
    folder_member: Callable[[Path], bool] | None = None
    sniff_folder: Callable[[Path], bool] = _never

    @property
    def name(self) -> str:
        return self.format.name

    @property
    def folder_videos(self) -> bool:
        """Whether a folder of this format's one-frame files is a video."""
        return self.folder_member is not None

    def is_member(self, path: Path) -> bool:
        """True if ``path`` is named like one frame file of a folder video."""
        return self.folder_member is not None and self.folder_member(path)
