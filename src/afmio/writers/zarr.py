"""Writer of Zarr v3 stores with OME-Zarr (NGFF 0.5) image metadata.

A store is a folder, ``<name>.zarr``, holding the content of the other bundles:

- ``zarr.json``: the root group. Its attributes hold ``"ome"``, NGFF 0.5 metadata of
  one multiscale image with axes ``t`` (time, second), ``y`` and ``x`` (space,
  nanometer) and a single full-resolution level, array ``0``, scaled by
  ``[frame interval, pixel size y, pixel size x]`` (a scale that is unknown is 1 and its
  axis has no unit); and ``"afmio"``, see below.
- ``0``: the current data, float32 ``(t, y, x)``: the image OME-Zarr viewers show.
- ``processed/<step>``: the processed layers, float32 ``(t, y, x)``.
- ``masks/<name>``: the masks, bool ``(t, y, x)``.
- ``timestamps``: float64 ``(t,)``, s since the first frame; its attribute
  ``"frame_metadata"`` is playNano's per-frame metadata list (kept out of the root so
  that viewers, which read the root's ``zarr.json``, do not load it).

``attributes["afmio"]`` holds ``format`` (``"afmio-bundle"``), ``version`` (1),
``channel``, ``pixel_size_nm`` (null when unknown), ``n_frames``, ``data`` (``"0"``),
``processed`` and ``masks`` (name -> array path, in order; a name that is not a valid
Zarr node name is stored under a sanitised one), ``timestamps``, ``provenance`` and
``state_backups`` (null when absent). zarr.json files are strict JSON: a non-finite
number in the metadata (an unknown pixel size) is stored as ``{"$float": "NaN"}``.

Every array is chunked by whole frames, with the same frames per chunk in all of them:
those of the data's first dask chunk, at most 32 MiB of float32 (``afmio.open`` makes
32 MiB chunks, so smaller ones only when asked for). Chunks are compressed with Blosc
LZ4 and byte shuffle (about 15 % smaller than raw float32 for noisy AFM data, and fast
enough not to slow the export), and each is written even when it holds only the fill
value, so that a missing chunk file means a damaged store.

Chunks go to disk in parallel: a pool of one thread per core computes each block with
dask and stores it with zarr, in time order, only a few blocks ahead of the oldest one
still being written, so memory holds a few chunks whatever the video's size. Each block
is computed on its own (as :func:`afmio.writers._common.iter_chunks` does), so a layer
that depends on the whole video (``video - video.mean()``) is recomputed per block.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import LocalStore

from ..layouts import AFMIO_KEY
from ..layouts import ZARR_DATA_PATH as DATA_PATH
from ..layouts import ZARR_DIMS as DIMS
from ..layouts import ZARR_FLOAT_KEY as FLOAT_KEY
from ..layouts import ZARR_STORE_FORMAT as STORE_FORMAT
from ..layouts import ZARR_STORE_VERSION as STORE_VERSION
from ..layouts import ZARR_TIMESTAMPS_PATH as TIMESTAMPS_PATH
from ..lazy import DEFAULT_CHUNK_BYTES
from ._common import BundleContent, Progress, Writer
from ._target import AtomicTarget


def write(
    path: Path, content: BundleContent, *, overwrite: bool = False, progress: Progress | None = None
) -> Path:
    """Write ``content`` as a Zarr v3 store at ``path`` (a folder), chunks in parallel,
    atomically (see :func:`afmio.save_zarr`); ``progress`` is called each time a chunk of
    frames is on disk in every array."""
    path = Path(path)
    n, ny, nx = content.data.shape
    # The video's own chunks (about 32 MiB with afmio.open's default): memory is then
    # bounded by the chunks its reader already holds, as for every other format.
    per = max(1, min(content.data.chunks[0][0], DEFAULT_CHUNK_BYTES // max(1, ny * nx * 4)))
    layers, masks = _node_names(content.layers), _node_names(content.masks)
    afmio_attrs = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "channel": content.channel,
        "pixel_size_nm": _finite(content.pixel_size_nm),
        "n_frames": n,
        "data": DATA_PATH,
        "processed": {k: f"processed/{v}" for k, v in layers.items()},
        "masks": {k: f"masks/{v}" for k, v in masks.items()},
        "timestamps": TIMESTAMPS_PATH,
        "provenance": _strict_json(content.provenance),
        "state_backups": _strict_json(content.state_backups),
    }
    attrs = {"ome": _ngff(content), AFMIO_KEY: afmio_attrs}
    with AtomicTarget(path, overwrite, is_afmio_store, "an afmio Zarr store") as tmp:
        root = zarr.open_group(LocalStore(tmp), mode="w-", zarr_format=3, attributes=attrs)
        processed, mask_group = root.create_group("processed"), root.create_group("masks")
        jobs = [(_frames_array(root, DATA_PATH, "float32", (n, ny, nx), per), content.data)]
        for name, node in layers.items():
            target = _frames_array(processed, node, "float32", (n, ny, nx), per)
            jobs.append((target, content.layers[name]))
        for name, node in masks.items():
            target = _frames_array(mask_group, node, "bool", (n, ny, nx), per)
            jobs.append((target, content.masks[name]))
        times = root.create_array(
            TIMESTAMPS_PATH,
            shape=(n,),
            chunks=(max(1, n),),
            dtype="float64",
            fill_value=np.nan,
            dimension_names=DIMS[:1],
            attributes={"frame_metadata": _strict_json(content.frame_metadata)},
        )
        times[:] = np.asarray(content.timestamps, dtype=np.float64)
        _write_chunks(jobs, per, n, progress)
    return path


#: A larger zarr.json is not one afmio wrote (its own is tens of KB): not read to check.
_MAX_ROOT_JSON = 16 * 2**20


def is_afmio_store(path: Path) -> bool:
    """True for a folder holding a Zarr store afmio wrote (its root ``zarr.json`` has
    afmio's attributes): the only folder ``overwrite=True`` may replace."""
    meta = path / "zarr.json"
    try:
        if path.is_symlink() or not path.is_dir() or meta.stat().st_size > _MAX_ROOT_JSON:
            return False
        root = json.loads(meta.read_bytes())
        return root["attributes"][AFMIO_KEY]["format"] == STORE_FORMAT
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return False


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _strict_json(value: Any) -> Any:
    """``value`` with every non-finite float as ``{"$float": "NaN"}`` (or ``"Infinity"``,
    ``"-Infinity"``): zarr.json must be strict JSON, which viewers parse, yet an unknown
    pixel size (NaN) must come back as NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return {FLOAT_KEY: json.dumps(value)}
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def _node_names(names: dict[str, Any]) -> dict[str, str]:
    """A valid, unique Zarr node name for each name (itself when it is one).

    Zarr v3 names must not contain ``/``, be only periods or start with ``__``; the
    spec recommends ASCII letters, digits, ``-``, ``_`` and ``.``.
    """
    out: dict[str, str] = {}
    for name in names:
        node = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        if not node.strip(".") or node.startswith("__"):
            node = "n" + node
        while node in out.values():
            node += "_"
        out[name] = node
    return out


def _ngff(content: BundleContent) -> dict[str, Any]:
    """NGFF 0.5 ``"ome"`` metadata: one multiscale image, level ``0``, axes t, y, x."""
    interval = _finite(content.frame_interval_s)
    px = _finite(content.pixel_size_nm)
    py = _finite(content.pixel_size_y_nm) or px
    axes = [
        _axis("t", "time", "second" if interval else None),
        _axis("y", "space", "nanometer" if py else None),
        _axis("x", "space", "nanometer" if px else None),
    ]
    scale = [interval or 1.0, py or 1.0, px or 1.0]
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": content.channel,
                "axes": axes,
                "datasets": [
                    {
                        "path": DATA_PATH,
                        "coordinateTransformations": [{"type": "scale", "scale": scale}],
                    }
                ],
            }
        ],
    }


def _axis(name: str, kind: str, unit: str | None) -> dict[str, str]:
    return {"name": name, "type": kind, **({"unit": unit} if unit else {})}


def _frames_array(
    group: zarr.Group, name: str, dtype: str, shape: tuple[int, int, int], per: int
) -> zarr.Array:
    return group.create_array(
        name,
        shape=shape,
        chunks=(per, max(1, shape[1]), max(1, shape[2])),
        dtype=dtype,
        # NaN, not 0, for float data, so that a region never written cannot pass for data.
        fill_value=np.nan if dtype == "float32" else False,
        compressors=BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
        dimension_names=DIMS,
        config={"write_empty_chunks": True},
    )


def _write_block(target: zarr.Array, start: int, block: da.Array) -> None:
    """Compute one block (in this thread: the pool is the parallelism) and store it."""
    target[start : start + block.shape[0]] = block.compute(scheduler="synchronous")


def _blocks(arr: da.Array, per: int) -> list[da.Array]:
    """The blocks of ``arr`` along time, matching the store's chunks exactly, so that
    threads writing different blocks never touch the same chunk file."""
    if any(c != per for c in arr.chunks[0][:-1]) or arr.chunks[0][-1] > per:
        arr = arr.rechunk({0: per})
    return [arr.blocks[i] for i in range(arr.numblocks[0])]


def _write_chunks(
    jobs: list[tuple[zarr.Array, da.Array]], per: int, n: int, progress: Progress | None
) -> None:
    """Compute every block of every array and store it in its target, in parallel.

    Blocks are handed to the pool in time order (chunk ``i`` of every array, then chunk
    ``i + 1``) and at most two per thread are queued or running, so memory holds only
    the blocks being written; ``progress`` is called from this thread as each chunk is
    complete in every array, in order.
    """
    blocks = [_blocks(arr, per) for _, arr in jobs]
    tasks = [
        (i, j == len(jobs) - 1, target, b[i])
        for i in range(len(blocks[0]))
        for j, ((target, _), b) in enumerate(zip(jobs, blocks, strict=True))
    ]
    workers = os.cpu_count() or 1
    pending: deque[tuple[int, bool, Future[None]]] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="afmio-zarr")

    def finish_oldest() -> None:
        i, last_array, future = pending.popleft()
        future.result()  # re-raises the task's exception here
        if last_array and progress is not None:
            progress(min(n, (i + 1) * per), n)

    try:
        for i, last_array, target, block in tasks:
            if len(pending) >= 2 * workers:
                finish_oldest()
            pending.append((i, last_array, pool.submit(_write_block, target, i * per, block)))
        while pending:
            finish_oldest()
    finally:
        # On an error, drop the blocks not started and wait for those being written, so
        # that nothing writes into the temporary store once it is removed.
        pool.shutdown(wait=True, cancel_futures=True)


WRITER = Writer("zarr", ".zarr", write, loader="zarr")
