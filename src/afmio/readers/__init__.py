"""Format readers and the registry that picks one for a path, by content first.

Adding a format is one module here that defines ``READER`` (see :mod:`.base`) and one
line in :data:`READERS`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import AfmFileNotFoundError, AfmOSError, CorruptFileError, UnsupportedFormatError
from . import asd, bundle_h5, bundle_npz, bundle_ometiff, bundle_zarr, h5jpk, jpk, nanoscope
from .base import HEAD_BYTES, ChannelInfo, FormatInfo, Reader, Recording

__all__ = [
    "HEAD_BYTES",
    "READERS",
    "ChannelInfo",
    "FormatInfo",
    "Reader",
    "Recording",
    "detect",
    "formats",
    "read",
    "sniff",
]

#: Every reader, in the order :func:`formats` lists them.
READERS: tuple[Reader, ...] = (
    asd.READER,
    jpk.READER,
    h5jpk.READER,
    nanoscope.READER,
    bundle_h5.READER,
    bundle_npz.READER,
    bundle_ometiff.READER,
    bundle_zarr.READER,
)

#: The order in which readers are asked: within a container the most specific format
#: first (JPK before any TIFF, h5-jpk before an HDF5 bundle); ties as listed.
_BY_PRIORITY: tuple[Reader, ...] = tuple(sorted(READERS, key=lambda r: -r.priority))

# Containers afmio does not read: named in errors so that a misnamed file is reported as
# what it is rather than as a corrupt file of the format its name suggests. (TIFF is read.)
_FOREIGN_SIGNATURES = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
)
#: Files at the root of a folder that make it a store of a container (Zarr v3 and v2).
_STORE_MARKS = {"zarr": ("zarr.json", ".zgroup", ".zarray")}


def formats() -> list[FormatInfo]:
    """List the formats afmio reads."""
    return [r.format for r in READERS]


def _supported() -> str:
    return ", ".join(f"{f.name} ({' '.join(f.extensions)})" for f in formats())


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES)


def _sniff_file(path: Path, head: bytes) -> Reader | None:
    return next((r for r in _BY_PRIORITY if r.sniff(path, head)), None)


def _sniff_store(folder: Path) -> Reader | None:
    return next((r for r in _BY_PRIORITY if r.sniff_folder(folder)), None)


def sniff(path: str | os.PathLike[str]) -> Reader | None:
    """The reader of ``path`` by content, or None; never raises and parses no header.

    A file is recognised from its first bytes (and, for HDF5 and ZIP, a look at its
    members); a folder is a store (Zarr) by its root metadata, or a folder video when most
    of its files are frame files of one format.
    """
    p = Path(path)
    try:
        if p.is_dir():
            return _sniff_store(p) or _folder_video(p)
        if not p.is_file():
            return None
        head = _head(p)
    except OSError:
        return None
    return _sniff_file(p, head) if head else None


def detect(path: str | os.PathLike[str]) -> Reader:
    """The reader for ``path``, recognised by content, then by name; errors say why not."""
    p = Path(path)
    if not p.exists():
        raise AfmFileNotFoundError(p, "no such file or folder")
    if p.is_dir():
        return _detect_folder(p)
    if not p.is_file():
        # A FIFO, socket or device would block or never end: only regular files are data.
        raise UnsupportedFormatError(p, "is not a regular file (a pipe, socket or device)")
    try:
        head = _head(p)
    except OSError as exc:
        raise AfmOSError(p, f"cannot be read: {exc.strerror or exc}") from exc
    if not head:
        raise CorruptFileError(p, "file is empty (0 bytes)")
    reader = _sniff_file(p, head)
    if reader is not None:
        return reader
    for magic, what in _FOREIGN_SIGNATURES:
        if head.startswith(magic):
            raise UnsupportedFormatError(
                p, f"is {what}, not a file afmio reads (supported: {_supported()})"
            )
    suffix = p.suffix.lower()
    for reader in READERS:
        # The content did not match, but the name claims this format: let the reader
        # parse it so that its error says precisely what is wrong.
        if suffix in reader.format.extensions or reader.is_member(p):
            return reader
    raise UnsupportedFormatError(p, f"is not a supported file (supported: {_supported()})")


def _folder_video(folder: Path) -> Reader | None:
    """The folder-video reader whose frame files are most common in ``folder``, if any."""
    names = [e for e in folder.iterdir() if e.is_file()]
    counts = {r: sum(1 for e in names if r.is_member(e)) for r in READERS if r.folder_videos}
    best = max(counts, key=counts.__getitem__, default=None)
    return best if best is not None and counts[best] else None


def _detect_folder(folder: Path) -> Reader:
    """The reader of a store (Zarr), else the one whose frame files are most common."""
    reader = _sniff_store(folder)
    if reader is not None:
        return reader
    suffix = folder.suffix.lower()
    for reader in READERS:
        # A store (or named like one) that its reader did not claim: let it say why.
        marks = _STORE_MARKS.get(reader.container or "", ())
        if suffix in reader.format.extensions or any((folder / m).is_file() for m in marks):
            return reader
    try:
        reader = _folder_video(folder)
    except OSError as exc:
        raise AfmOSError(folder, f"cannot list the folder: {exc.strerror or exc}") from exc
    if reader is None:
        folder_formats = ", ".join(r.name for r in READERS if r.folder_videos) or "none yet"
        raise UnsupportedFormatError(
            folder,
            f"is a folder with no frame files afmio reads (folder videos: {folder_formats}; "
            f"single files: {_supported()})",
        )
    return reader


def read(path: str | os.PathLike[str]) -> Recording:
    """Detect the format of ``path`` and parse its headers."""
    p = Path(path).expanduser().resolve()
    return detect(p).read(p)
