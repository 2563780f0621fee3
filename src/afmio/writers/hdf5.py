"""HDF5 bundles in playNano 0.5.0's layout, streamed chunk by chunk.

Layout (what ``playnano.io.export_data.save_h5_bundle`` writes and ``load_h5_bundle``
reads)::

    /data                     float32 (n, H, W), the current data
    /processed/<step>         float32 (n, H, W), one per processed layer
    /masks/<name>             bool (n, H, W), one per mask
    /timestamps               float64 (n,)
    /frame_metadata_json      UTF-8 JSON, a fixed-length byte-string scalar (np.bytes_)
    /provenance_json          same
    /state_backups_json       same, only when the content has state backups
    attrs: pixel_size_nm (float), channel (str)

Every frame array is chunked by whole frames (about 1 MiB per chunk, so that one frame
reads cheaply) and compressed with gzip (h5py's level 4, what playNano writes), lzf, or
not at all. h5py runs HDF5's filters on one core under its global lock, so gzip chunks
are encoded here instead, in a thread pool (zlib releases the GIL), and stored in order
with ``write_direct_chunk``: the bytes HDF5's deflate filter would store, edge chunks
padded with the fill value (0). LZF chunks, and uncompressed ones, are written by h5py
itself, one whole chunk at a time, so that HDF5 encodes each chunk once.
"""

from __future__ import annotations

import io
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import dask.array as da
import h5py
import numpy as np

from ._common import BundleContent, Progress, Writer, iter_chunks
from ._target import AtomicTarget

#: Values of ``compression=``: gzip (deflate) is what playNano reads; lzf is fast.
COMPRESSIONS = ("gzip", "lzf", None)
#: Target bytes per HDF5 chunk: HDF5's default chunk cache, so a chunk read for one
#: frame is kept for the next, and enough chunks per dask block to share between cores.
CHUNK_BYTES = 2**20
#: What h5py uses for ``compression="gzip"`` without ``compression_opts``.
GZIP_LEVEL = 4

#: ``encode(chunk) -> (stored bytes, filter mask)`` for one whole chunk.
Encoder = Callable[[np.ndarray], tuple[bytes, int]]


def write(
    path: Path,
    content: BundleContent,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write ``content`` as an HDF5 bundle at ``path``, atomically (see
    :func:`afmio.save_h5_bundle`).

    Frames of the data, every layer and every mask count towards ``progress``, so its
    total is ``n_frames`` times the number of arrays.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    path = Path(path)
    arrays = list(content.arrays())
    total = content.n_frames * len(arrays)
    done = 0
    with (
        AtomicTarget(path, overwrite) as tmp,
        _GuardedFile(tmp) as fh,
        h5py.File(fh, "w") as f,
    ):
        _write_metadata(f, content)
        groups = {
            "layer": f.create_group("processed", track_order=True),
            "mask": f.create_group("masks", track_order=True),
        }
        workers = os.cpu_count() or 1
        pool = ThreadPoolExecutor(workers, thread_name_prefix="afmio-h5")
        try:
            for kind, name, arr in arrays:
                dtype = np.dtype(bool) if kind == "mask" else np.dtype("<f4")
                ds = _create(groups.get(kind, f), name, arr.shape, dtype, compression)
                encode = _gzip(ds.dtype) if compression == "gzip" else None
                for frames in _stream(ds, arr, encode, pool):
                    fh.check()
                    done += frames
                    if progress is not None:
                        progress(done, total)
        finally:
            # On an error or interruption, drop queued chunks instead of encoding them.
            pool.shutdown(wait=True, cancel_futures=True)
    return path


class _GuardedFile(io.RawIOBase):
    """The file HDF5 writes through (h5py's file-object driver), which keeps a failed
    write from reaching HDF5.

    When a write fails (a full disk), HDF5 cannot close the file, and h5py then crashes
    the process (a segfault) as it frees the file's objects. So the first error is kept
    and every later write is dropped: HDF5 finishes and closes a file that is thrown
    away, and the error is raised at :meth:`check` and on leaving the ``with`` block.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.raw = open(path, "xb", buffering=0)  # noqa: SIM115  (closed in close())
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readinto(self, buffer) -> int:
        return self.raw.readinto(buffer)

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if self.error is None:
            try:
                return self.raw.write(data)
            except OSError as exc:
                self.error = exc
        self.raw.seek(size, os.SEEK_CUR)
        return size

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self.raw.truncate(size)
            except OSError as exc:
                self.error = exc
        return self.raw.tell() if size is None else size

    def check(self) -> None:
        """Raise the write error kept, if any."""
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.raw.close()
        super().close()

    def __exit__(self, *exc_info) -> None:
        self.close()
        if exc_info[0] is None:
            self.check()


def _write_metadata(f: h5py.File, content: BundleContent) -> None:
    f.create_dataset("timestamps", data=np.asarray(content.timestamps, dtype=np.float64))
    keys = ["frame_metadata_json", "provenance_json"]
    if content.state_backups is not None:
        keys.append("state_backups_json")
    for key in keys:
        # A byte-string scalar, as playNano stores it: it reads it as [()].decode("utf-8").
        f.create_dataset(key, data=np.bytes_(content.json(key).encode("utf-8")))
    f.attrs["pixel_size_nm"] = float(content.pixel_size_nm)
    f.attrs["channel"] = content.channel


def _create(
    parent: h5py.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    compression: str | None,
) -> h5py.Dataset:
    """An empty dataset chunked by whole frames (contiguous if it holds no values)."""
    if 0 in shape:  # HDF5 chunks cannot have a zero dimension
        return parent.create_dataset(name, shape=shape, dtype=dtype)
    frame_bytes = int(np.prod(shape[1:])) * dtype.itemsize
    per_chunk = max(1, min(shape[0], CHUNK_BYTES // frame_bytes))
    return parent.create_dataset(
        name, shape=shape, dtype=dtype, chunks=(per_chunk, *shape[1:]), compression=compression
    )


def _stream(
    ds: h5py.Dataset, arr: da.Array, encode: Encoder | None, pool: ThreadPoolExecutor
) -> Iterator[int]:
    """Store ``arr`` in ``ds`` chunk by chunk, in order; yield the frames stored each time.

    With ``encode``, chunks are encoded in ``pool`` while the next dask blocks are
    computed; chunks waiting to be encoded hold at most about one dask block of frames
    beyond the block just computed, which bounds memory whatever the video's length.
    Without it h5py writes each whole chunk, running the dataset's filters (if any).
    """
    if ds.chunks is None:  # an empty array: nothing to store
        return
    n, per_chunk = arr.shape[0], ds.chunks[0]
    chunker = _Chunker(per_chunk, n, ds.dtype)
    if encode is None:
        for first, block in iter_chunks(arr):
            for index, chunk in chunker.feed(first, block):
                start = index * per_chunk
                frames = min(per_chunk, n - start)
                ds[start : start + frames] = chunk[:frames]
                yield frames
        return
    limit = max(arr.chunks[0]) * int(np.prod(arr.shape[1:])) * ds.dtype.itemsize
    queue: deque[tuple[int, Future[tuple[bytes, int]], int]] = deque()
    pending = 0

    def store(keep: int) -> Iterator[int]:
        """Write finished chunks in order, waiting while more than ``keep`` bytes wait."""
        nonlocal pending
        while queue and (pending > keep or queue[0][1].done()):
            index, future, size = queue.popleft()
            data, mask = future.result()
            ds.id.write_direct_chunk((index * per_chunk, 0, 0), data, mask)
            pending -= size
            yield min(per_chunk, n - index * per_chunk)

    for first, block in iter_chunks(arr):
        for index, chunk in chunker.feed(first, block):
            queue.append((index, pool.submit(encode, chunk), chunk.nbytes))
            pending += chunk.nbytes
        yield from store(limit)
    yield from store(0)


class _Chunker:
    """Cut consecutive dask blocks into whole HDF5 chunks of ``per_chunk`` frames.

    Dask blocks need not start or end on chunk boundaries: a chunk that spans blocks is
    gathered in a zero-filled buffer, whose zeros also pad the last, partial chunk to the
    full chunk shape, as HDF5 stores edge chunks.
    """

    def __init__(self, per_chunk: int, n_frames: int, dtype: np.dtype) -> None:
        self.per_chunk = per_chunk
        self.n_frames = n_frames
        self.dtype = dtype
        self.partial: np.ndarray | None = None

    def feed(self, first: int, block: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """``(chunk index, frames)`` for each chunk completed by ``block`` (frames
        ``first`` onwards)."""
        pos = 0
        while pos < len(block):
            index, offset = divmod(first + pos, self.per_chunk)
            take = min(self.per_chunk - offset, len(block) - pos)
            if offset == 0 and take == self.per_chunk:
                yield index, block[pos : pos + take]  # a view: no copy
            else:
                if offset == 0:
                    shape = (self.per_chunk, *block.shape[1:])
                    self.partial = np.zeros(shape, dtype=self.dtype)
                self.partial[offset : offset + take] = block[pos : pos + take]
                if offset + take == self.per_chunk or first + pos + take == self.n_frames:
                    yield index, self.partial
                    self.partial = None
            pos += take


def _gzip(dtype: np.dtype) -> Encoder:
    """Encode one chunk as HDF5's deflate filter stores it: zlib's compress2, a zlib
    stream at :data:`GZIP_LEVEL`."""

    def encode(chunk: np.ndarray) -> tuple[bytes, int]:
        return zlib.compress(np.ascontiguousarray(chunk, dtype=dtype), GZIP_LEVEL), 0

    return encode


WRITER = Writer("h5", ".h5", write, loader="h5-bundle")
