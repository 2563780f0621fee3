"""OME-TIFF stack writer, in playNano 0.5.0's layout, streaming frame by frame.

Layout (what playNano's ``save_ome_tiff_stack`` writes, so each tool reads the other's):

- one image series of shape (T, C, Z, Y, X) = (frames, 1, 1, ny, nx), float32, one
  uncompressed page (a single strip) per frame, little-endian; BigTIFF when the file may
  pass 4 GiB;
- OME-XML (schema 2016-06) in the first page's ImageDescription: ``PhysicalSizeX``/``Y``
  in µm (unit ``"µm"``, U+00B5 as the OME enumeration spells it; playNano's loader
  reads the value as µm), ``TimeIncrement`` in s (mean interval between frames), one
  ``Plane`` per frame with its ``DeltaT`` (the frame's timestamp) in s, and the channel
  name; calibration that is unknown (NaN) is left out rather than written invalid;
- the resolution tags, ``25.4e6 / pixel_size_nm`` pixels per inch, as playNano writes;
- private tag 65000: the provenance as UTF-8 JSON (``NaN`` for unknown numbers, as
  Python's ``json`` and so playNano write them); its ``"afmio"`` key holds the other
  attributes, the x/y coordinates and the per-frame metadata as columns, so that afmio
  reopens the file as it was saved;
- private tag 65001: the names of the processed layers as a JSON list.

Only the current data (or the raw layer, with ``raw=True``) is stored: an OME-TIFF holds
one layer, and processed layers and masks are not written, as in playNano.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..layouts import AFMIO_KEY
from ..layouts import OME_FRAME_METADATA_KEY as FRAME_METADATA_KEY
from ..layouts import OME_LAYERS_TAG as LAYERS_TAG
from ..layouts import OME_PROVENANCE_TAG as PROVENANCE_TAG
from ._common import BundleContent, Progress, Writer, iter_chunks
from ._target import AtomicTarget

#: Classic TIFF offsets are 32-bit; beyond this size (with room for tags and the XML,
#: which tifffile appends at the end) the file is written as BigTIFF.
_CLASSIC_LIMIT = 2**32 - 2**25


def _creator() -> str:
    try:
        return f"afmio {version('afmio')}"
    except PackageNotFoundError:
        return "afmio"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and not isinstance(x, bool)


def _provenance_json(content: BundleContent) -> bytes:
    """Tag 65000: the provenance, with the frame metadata as columns under afmio's key.

    Written as playNano writes it, with Python's ``json.dumps``: a NaN (an unknown pixel
    size, say) is the ``NaN`` token that Python's ``json`` reads back.
    """
    provenance = dict(content.provenance)
    columns = content.frame_columns
    provenance[AFMIO_KEY] = {**provenance.get(AFMIO_KEY, {}), FRAME_METADATA_KEY: columns}
    return json.dumps(provenance).encode("utf-8")


def _ome_metadata(content: BundleContent) -> dict[str, Any]:
    """The OME-XML items tifffile writes: calibration, frame times and channel name."""
    times = [float(t) for t in content.timestamps]
    meta: dict[str, Any] = {
        "axes": "TCZYX",
        "Creator": _creator(),
        "Channel": {"Name": content.channel},
    }
    for axis, size in (("X", content.pixel_size_nm), ("Y", content.pixel_size_y_nm)):
        if _finite(size) and size > 0:
            meta[f"PhysicalSize{axis}"] = size * 1e-3
            meta[f"PhysicalSize{axis}Unit"] = "µm"
    if len(times) > 1 and math.isfinite(times[-1] - times[0]):
        meta["TimeIncrement"] = (times[-1] - times[0]) / (len(times) - 1)
        meta["TimeIncrementUnit"] = "s"
    if times and all(math.isfinite(t) for t in times):
        meta["Plane"] = {"DeltaT": times, "DeltaTUnit": ["s"] * len(times)}
    return meta


def write(
    path: Path, content: BundleContent, *, overwrite: bool = False, progress: Progress | None = None
) -> Path:
    """Write ``content`` as an OME-TIFF stack at ``path``, one frame per page, atomically
    (see :func:`afmio.save_ome_tiff_stack`).

    The frames are handed to a single ``TiffWriter.write`` call as an iterator, so only
    the chunks being computed are in memory; ``progress`` is called as each is written.

    Raises
    ------
    ValueError
        If the video has no frames (an OME-TIFF holds at least one plane).
    """
    n, ny, nx = content.data.shape
    if n == 0 or ny == 0 or nx == 0:
        raise ValueError(f"cannot write an OME-TIFF of shape {content.data.shape}: it is empty")
    report = progress or (lambda done, total: None)
    provenance = _provenance_json(content)
    layers = json.dumps(list(content.layers)).encode("utf-8")
    metadata = _ome_metadata(content)
    # Frame data, one IFD per page, the OME-XML (about 80 bytes per plane) and the tags.
    size = content.data.nbytes + n * 400 + len(provenance) + len(layers)
    kwargs: dict[str, Any] = {}
    if "PhysicalSizeX" in metadata:  # pixels per inch (25 400 µm), as playNano writes
        um_x = metadata["PhysicalSizeX"]
        dpi = (25_400.0 / um_x, 25_400.0 / metadata.get("PhysicalSizeY", um_x))
        if max(dpi) < 2**31:  # a TIFF rational holds 32-bit integers
            kwargs = {"resolution": dpi, "resolutionunit": "INCH"}

    def frames() -> Iterator[np.ndarray]:
        for first, block in iter_chunks(content.data):
            if first:  # tifffile asks for this chunk once the previous one is written
                report(first, n)
            yield from np.ascontiguousarray(block, dtype="<f4")

    with AtomicTarget(path, overwrite) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=size > _CLASSIC_LIMIT, ome=True) as tif:
            tif.write(
                frames(),
                shape=(n, 1, 1, ny, nx),
                dtype="<f4",
                photometric="minisblack",
                metadata=metadata,
                extratags=[
                    (PROVENANCE_TAG, 7, len(provenance), provenance, True),
                    (LAYERS_TAG, 7, len(layers), layers, True),
                ],
                **kwargs,
            )
        report(n, n)
    return Path(path)


WRITER = Writer("tif", ".ome.tif", write, loader="ome-tiff")
