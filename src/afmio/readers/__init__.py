"""Format readers and the registry that picks one for a path, by content first."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from ..errors import AfmFileNotFoundError, AfmOSError, CorruptFileError, UnsupportedFormatError
from . import asd, bundle_h5, bundle_npz, bundle_ometiff, bundle_zarr, h5jpk, jpk, nanoscope
from .base import ChannelInfo, FormatInfo, Recording

__all__ = ["ChannelInfo", "FormatInfo", "Recording", "detect", "formats", "read"]

READERS: tuple[ModuleType, ...] = (
    asd,
    jpk,
    h5jpk,
    nanoscope,
    bundle_h5,
    bundle_npz,
    bundle_ometiff,
    bundle_zarr,
)

#: Bytes read from the start of a file to recognise its format.
HEAD_BYTES = 4096

# Containers afmio does not read: named in errors so that a misnamed file is reported as
# what it is rather than as a corrupt file of the format its name suggests. (TIFF is read.)
_FOREIGN_SIGNATURES = (
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
)


def formats() -> list[FormatInfo]:
    """List the formats afmio reads."""
    return [r.FORMAT for r in READERS]


def _supported() -> str:
    return ", ".join(f"{f.name} ({' '.join(f.extensions)})" for f in formats())


def detect(path: str | os.PathLike[str]) -> ModuleType:
    """Return the reader module for ``path``, recognised by content, then by extension."""
    p = Path(path)
    if not p.exists():
        raise AfmFileNotFoundError(p, "no such file or folder")
    if p.is_dir():
        return _detect_folder(p)
    try:
        with open(p, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        raise AfmOSError(p, f"cannot be read: {exc.strerror or exc}") from exc
    if not head:
        raise CorruptFileError(p, "file is empty (0 bytes)")
    for reader in READERS:
        if reader.sniff(p, head):
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
        named = suffix in reader.FORMAT.extensions
        if named or (hasattr(reader, "folder_member") and reader.folder_member(p)):
            return reader
    raise UnsupportedFormatError(p, f"is not a supported file (supported: {_supported()})")


def _detect_folder(folder: Path) -> ModuleType:
    """The reader of a folder format (Zarr), else the one whose frame files are most common."""
    for reader in READERS:
        if hasattr(reader, "sniff_folder") and reader.sniff_folder(folder):
            return reader
    try:
        names = [e for e in folder.iterdir() if e.is_file()]
    except OSError as exc:
        raise AfmOSError(folder, f"cannot list the folder: {exc.strerror or exc}") from exc
    counts = {
        reader: sum(1 for e in names if reader.folder_member(e))
        for reader in READERS
        if hasattr(reader, "folder_member")
    }
    best = max(counts, key=counts.get, default=None)
    if best is None or counts[best] == 0:
        folder_formats = ", ".join(r.FORMAT.name for r in counts) or "none yet"
        raise UnsupportedFormatError(
            folder,
            f"is a folder with no frame files afmio reads (folder videos: {folder_formats}; "
            f"single files: {_supported()})",
        )
    return best


def read(path: str | os.PathLike[str]) -> Recording:
    """Detect the format of ``path`` and parse its headers."""
    p = Path(path).expanduser().resolve()
    return detect(p).read(p)
