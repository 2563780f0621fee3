"""NPZ bundle writer (playNano 0.5.0's layout), streamed into an uncompressed zip.

Entries, each ``<name>.npy`` in the zip: ``data`` (float32, ``(frames, y, x)``),
``processed__<step>`` (float32), ``masks__<name>`` (bool), ``timestamps`` (float64),
``frame_metadata_json``, ``provenance_json``, ``state_backups_json`` (only when the
content has state backups), ``pixel_size_nm`` (0-d float64) and ``channel``.

Differences from ``np.savez_compressed`` as playNano calls it, all invisible to its loader:

- entries are STORED (uncompressed) and zip64, so that afmio reads frames in place
  without decompressing from the entry's start, and entries may exceed 4 GiB;
- each frame array is streamed into its entry: the ``.npy`` header first, then one chunk
  at a time, so memory holds only the chunks in flight, never the whole video;
- strings are 0-d numpy arrays rather than pickled object arrays, so that
  ``np.load(path)`` reads every entry without ``allow_pickle``: ``channel`` is unicode
  (``<U``), the JSON entries bytes (``|S``, ASCII, a quarter of UTF-32's size), as
  playNano's ``provenance_json`` is; its loader's ``.item()`` then ``json.loads`` or
  ``str`` reads them;
- ``pixel_size_nm`` is float64 (playNano: float32), so the value reads back exactly.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

from ..model import LAYER_PREFIX, MASK_PREFIX
from ._common import BundleContent, Progress, Writer, iter_chunks
from ._target import AtomicTarget

_ENTRY_PREFIX = {"data": "", "layer": LAYER_PREFIX, "mask": MASK_PREFIX}
_DTYPE = {"data": np.dtype("<f4"), "layer": np.dtype("<f4"), "mask": np.dtype("|b1")}
_JSON_KEYS = ("frame_metadata_json", "provenance_json", "state_backups_json")


def write(
    path: Path, content: BundleContent, *, overwrite: bool = False, progress: Progress | None = None
) -> Path:
    """Write ``content`` as an NPZ bundle at ``path``, atomically (see
    :func:`afmio.save_npz_bundle`); ``progress`` counts the frames of the data, every
    layer and every mask."""
    path = Path(path)
    arrays = list(content.arrays())
    total = sum(int(arr.shape[0]) for _, _, arr in arrays)
    done = 0
    with (
        AtomicTarget(path, overwrite) as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf,
    ):
        _small(zf, "pixel_size_nm", np.array(content.pixel_size_nm, dtype="<f8"))
        _text(zf, "channel", content.channel)
        for key in _JSON_KEYS:
            if key != "state_backups_json" or content.state_backups is not None:
                # json.dumps escapes non-ASCII: the text is ASCII, so bytes hold it whole.
                _small(zf, key, np.array(content.json(key).encode("ascii"), dtype=bytes))
        _small(zf, "timestamps", np.asarray(content.timestamps, dtype="<f8"))
        for kind, name, arr in arrays:
            dtype = _DTYPE[kind]
            entry = _ENTRY_PREFIX[kind] + name + ".npy"
            with zf.open(entry, "w", force_zip64=True) as f:
                _header(f, dtype, tuple(int(s) for s in arr.shape))
                for _, block in iter_chunks(arr):
                    f.write(memoryview(np.ascontiguousarray(block, dtype=dtype)).cast("B"))
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
    return path


def _header(f: IO[bytes], dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Write a C-order ``.npy`` header (version 1.0, what ``np.save`` writes)."""
    d = {"descr": npy.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    npy.write_array_header_1_0(f, d)


def _small(zf: zipfile.ZipFile, key: str, arr: np.ndarray) -> None:
    """A small entry (metadata), written whole."""
    with zf.open(key + ".npy", "w") as f:
        _header(f, arr.dtype, arr.shape)
        f.write(arr.tobytes())


def _text(zf: zipfile.ZipFile, key: str, text: str) -> None:
    """A string as a 0-d ``<U`` array, encoded straight to UTF-32 (numpy's layout)."""
    # numpy has no zero-width unicode dtype: the empty string is one NUL character.
    data = text.encode("utf-32-le") or b"\0" * 4
    with zf.open(key + ".npy", "w") as f:
        _header(f, np.dtype(f"<U{len(data) // 4}"), ())
        f.write(data)


WRITER = Writer("npz", ".npz", write, loader="npz-bundle")
