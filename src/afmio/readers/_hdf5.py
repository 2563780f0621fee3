"""Opening an HDF5 file for a reader, with every h5py failure turned into an afmio error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py

from ..errors import AfmIOError, AfmOSError, CorruptFileError
from .base import Recording

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


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
