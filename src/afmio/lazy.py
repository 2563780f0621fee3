"""Turn a reader's frame source into a lazy dask array of whole frames.

This module knows no file format. A reader describes where its frames lie with a
:class:`FrameSource` (a small, picklable object that holds only a path and numbers);
:func:`to_dask` wraps it so that each dask task opens the file by path, reads its own
frames with one seek and one read, and closes it again. Graphs therefore pickle and run
under ``dask.distributed``, and no file handle outlives a task.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import dask.array as da
import numpy as np
from dask.base import tokenize

from .errors import AfmIOError, AfmOSError, CorruptFileError

#: Default bytes of output per dask chunk: large enough that per-task overhead is small,
#: small enough that a few chunks in flight per core stay far below the memory budget.
DEFAULT_CHUNK_BYTES = 32 * 2**20

DIMS = ("time", "y", "x")


class FrameSource(Protocol):
    """What a reader hands to :func:`to_dask`: frames ``[start, stop)`` on request."""

    path: str

    @property
    def shape(self) -> tuple[int, int, int]: ...

    def read(self, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
        """Return frames ``start..stop-1`` as ``dtype``, in physical units."""
        ...


class PathFrames:
    """Base of the frame sources: ``read`` allocates the output, returns zero frames at
    once, lets the subclass's :meth:`fill` write the frames, and turns what its library
    raises into afmio's errors, naming the file and the frames.

    Subclasses are frozen dataclasses with the fields ``path``, ``n_frames``, ``ny`` and
    ``nx`` (or properties of those names); each read reopens the file by path.
    """

    path: str
    n_frames: int
    ny: int
    nx: int
    #: What the library raises for damaged content (beyond afmio's own errors).
    errors: ClassVar[tuple[type[Exception], ...]] = (
        OSError,
        KeyError,
        ValueError,
        TypeError,
        RuntimeError,
    )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_frames, self.ny, self.nx)

    @property
    def what(self) -> str:
        """Where in the file the frames are, for messages."""
        return "the file"

    def read(self, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
        """Return frames ``start..stop-1`` as ``dtype``, in physical units."""
        out = np.empty((max(0, stop - start), self.ny, self.nx), dtype=dtype)
        if len(out) == 0:
            return out
        try:
            self.fill(out, start)
        except AfmIOError:
            raise
        except (FileNotFoundError, PermissionError) as exc:
            raise AfmOSError(
                self.path,
                f"cannot reopen the file to read frames {start}..{stop - 1} of {self.what} "
                f"({exc.strerror or exc})",
            ) from exc
        except self.errors as exc:
            raise CorruptFileError(
                self.path,
                f"cannot read frames {start}..{stop - 1} of {self.what} ({exc}); is it "
                f"truncated or damaged, or was it changed after it was opened?",
            ) from exc
        return out

    def fill(self, out: np.ndarray, start: int) -> None:
        """Write frames ``start..start+len(out)-1`` into ``out``."""
        raise NotImplementedError


@dataclass(frozen=True)
class StridedFrames(PathFrames):
    """Frames stored one after another at a fixed stride, each after a fixed header.

    Values are ``raw * gain + bias``; ``gain=None`` returns the raw levels unscaled.

    Parameters
    ----------
    path : str
        File to read (re-opened for every read).
    offset : int
        Byte offset of the first frame record.
    stride : int
        Bytes from one frame record to the next.
    skip : int
        Bytes of per-frame header at the start of each record, before the pixels.
    n_frames, ny, nx : int
        Frames, rows and columns.
    raw_dtype : str
        NumPy dtype string of the stored samples, e.g. ``"<i2"``.
    gain, bias : float or None
        Affine map from raw level to physical value.
    flip_y : bool
        Reverse the row order (formats that store the bottom line first).
    """

    path: str
    offset: int
    stride: int
    skip: int
    n_frames: int
    ny: int
    nx: int
    raw_dtype: str
    gain: float | None
    bias: float = 0.0
    flip_y: bool = False

    def fill(self, out: np.ndarray, start: int) -> None:
        count = len(out)
        raw = np.dtype(self.raw_dtype)
        record = np.dtype(
            {
                "names": ["pixels"],
                "formats": [(raw, (self.ny, self.nx))],
                "offsets": [self.skip],
                "itemsize": self.stride,
            }
        )
        # The last record needs only its pixels, not what follows them.
        need = (count - 1) * self.stride + self.skip + self.ny * self.nx * raw.itemsize
        out_frame = self.ny * self.nx * out.itemsize
        if self.stride <= out_frame:
            # Read the records into the tail of the output buffer and widen them frame by
            # frame: output frame i ends at or before raw frame i+1 starts (as stride <=
            # output frame size), so only frame i's own pixels are overwritten, and numpy
            # buffers that overlap. This saves a raw buffer of half the chunk per task.
            base = out.nbytes - count * self.stride
            buf = out.reshape(-1).view(np.uint8)[base:]
            _read_exact(self.path, self.offset + start * self.stride, memoryview(buf)[:need])
            pixels = buf.view(record)["pixels"]
            for i in range(count):
                _scale_into(out[i], pixels[i], self.gain, self.bias, self.flip_y)
            return
        buf = np.empty(count * self.stride, dtype=np.uint8)
        _read_exact(self.path, self.offset + start * self.stride, memoryview(buf)[:need])
        _scale_into(out, buf.view(record)["pixels"], self.gain, self.bias, self.flip_y)


@dataclass(frozen=True)
class FileFrames(PathFrames):
    """One frame per file (folders of JPK or Nanoscope files), each with its own scaling.

    Parameters
    ----------
    path : str
        The folder (or single file) the video was opened from; names the video in errors.
    files : tuple of str
        Frame files, in time order.
    offsets : tuple of int
        Byte offset of the pixels in each file.
    gains, biases : tuple of float
        Per-frame affine map from raw level to physical value (``None`` gain: raw levels).
    ny, nx : int
        Rows and columns of every frame.
    raw_dtype : str
        NumPy dtype string of the stored samples, e.g. ``">i4"``.
    flip_y : bool
        Reverse the row order.
    """

    path: str
    files: tuple[str, ...]
    offsets: tuple[int, ...]
    gains: tuple[float | None, ...]
    biases: tuple[float, ...]
    ny: int
    nx: int
    raw_dtype: str
    flip_y: bool = False

    @property
    def n_frames(self) -> int:
        return len(self.files)

    def fill(self, out: np.ndarray, start: int) -> None:
        raw = np.empty((self.ny, self.nx), dtype=self.raw_dtype)
        for k in range(len(out)):
            i = start + k
            _read_exact(self.files[i], self.offsets[i], memoryview(raw).cast("B"))
            _scale_into(out[k], raw, self.gains[i], self.biases[i], self.flip_y)


def _scale_into(
    out: np.ndarray, raw: np.ndarray, gain: float | None, bias: float, flip_y: bool
) -> None:
    """``out[...] = raw * gain + bias`` in ``out``'s dtype, rows reversed if ``flip_y``."""
    if flip_y:
        raw = raw[..., ::-1, :]
    if gain is None:
        out[...] = raw
        return
    np.multiply(raw, out.dtype.type(gain), out=out, casting="unsafe")
    if bias:
        out += out.dtype.type(bias)


def _read_exact(path: str, offset: int, target: memoryview) -> None:
    """Fill ``target`` from ``path`` at ``offset`` with one seek; fail clearly if short."""
    try:
        with open(path, "rb", buffering=0) as f:
            f.seek(offset)
            done = 0
            while done < len(target):
                got = f.readinto(target[done:])
                if not got:
                    raise CorruptFileError(
                        path,
                        f"file ends at byte {offset + done} but frame data runs to byte "
                        f"{offset + len(target)}; was it truncated after it was opened?",
                    )
                done += got
    except FileNotFoundError as exc:
        raise AfmOSError(path, f"file disappeared after it was opened ({exc.strerror})") from exc
    except OSError as exc:
        if isinstance(exc, CorruptFileError):
            raise
        raise AfmOSError(path, f"cannot read frame data: {exc.strerror or exc}") from exc


class LazyFrames:
    """Array-like view of a :class:`FrameSource` for :func:`dask.array.from_array`.

    Indexing reads only the frames the key touches; dask fuses user slicing into this
    getter, so ``video[5]`` reads one frame, not the whole chunk around it.
    """

    def __init__(self, source: FrameSource, dtype: np.dtype) -> None:
        self.source = source
        self.dtype = np.dtype(dtype)
        self.shape = tuple(source.shape)
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        key = _expand_key(key, self.ndim)
        t = key[0]
        n = self.shape[0]
        if isinstance(t, (int, np.integer)):
            i = int(t) + n if t < 0 else int(t)
            if not 0 <= i < n:
                raise IndexError(f"frame index {t} out of range for {n} frames")
            return self.source.read(i, i + 1, self.dtype)[(0, *key[1:])]
        if isinstance(t, slice):
            start, stop, step = t.indices(n)
            if step == 1:
                return self.source.read(start, max(start, stop), self.dtype)[
                    (slice(None), *key[1:])
                ]
            t = np.arange(start, stop, step)
        idx = np.asarray(t)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size == 0:
            return self.source.read(0, 0, self.dtype)[(slice(None), *key[1:])]
        if idx.min() < 0 or idx.max() >= n:
            raise IndexError(f"frame indices out of range for {n} frames")
        lo, hi = int(idx.min()), int(idx.max()) + 1
        return self.source.read(lo, hi, self.dtype)[(idx - lo, *key[1:])]


def _expand_key(key: Any, ndim: int) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    return key + (slice(None),) * (ndim - len(key))


def frame_chunks(
    chunks: int | Mapping[Any, Any] | None, shape: tuple[int, int, int], itemsize: int
) -> tuple[Any, ...]:
    """Normalise the ``chunks`` argument of :func:`afmio.open` to a dask chunk spec.

    ``None`` gives whole frames in chunks of about :data:`DEFAULT_CHUNK_BYTES`; an int is
    frames per chunk; a dict maps dimension names (or axis numbers) to dask chunk sizes.
    """
    n, ny, nx = shape
    auto_time = max(1, min(n, DEFAULT_CHUNK_BYTES // max(1, ny * nx * itemsize)))
    if chunks is None:
        return (auto_time, ny, nx)
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        if chunks < 1:
            raise ValueError(f"chunks must be a positive number of frames, got {chunks}")
        return (int(chunks), ny, nx)
    if isinstance(chunks, Mapping):
        spec: list[Any] = [auto_time, ny, nx]
        for k, v in chunks.items():
            axis = DIMS.index(k) if k in DIMS else k
            if axis not in (0, 1, 2):
                raise ValueError(f"unknown dimension {k!r} in chunks; use {DIMS}")
            # -1 / None mean "whole axis" as in dask; "auto" keeps afmio's default.
            if v is None or v == -1:
                v = shape[axis]
            elif v == "auto":
                v = spec[axis]
            spec[axis] = v
        return tuple(spec)
    raise TypeError(f"chunks must be None, an int or a dict, not {type(chunks).__name__}")


def to_dask(
    source: FrameSource,
    dtype: np.dtype,
    chunks: int | Mapping[Any, Any] | None = None,
) -> da.Array:
    """Wrap ``source`` as a dask array; nothing is read until it is computed."""
    dtype = np.dtype(dtype)
    spec = frame_chunks(chunks, source.shape, dtype.itemsize)
    # Named from paths, file states and layout, so reopening unchanged files yields the
    # same graph keys (and reuses cached results), while a rewritten file does not.
    stamp = []
    for path in getattr(source, "files", (source.path,)):
        try:
            st = os.stat(path)
            stamp.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append(None)
    name = "afmio-" + tokenize(source, stamp, dtype.str, spec)
    return da.from_array(
        LazyFrames(source, dtype),
        chunks=spec,
        name=name,
        meta=np.empty((0, 0, 0), dtype=dtype),
        inline_array=True,
    )
