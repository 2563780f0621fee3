"""Animated GIF writer that streams: one frame rendered, encoded and appended at a time.

Pillow's ``save_all`` (and imageio, which uses it) keeps every frame in memory and merges
identical consecutive frames, so afmio writes the GIF container itself (GIF89a): header,
logical screen, the fixed palette as global colour table, the NETSCAPE2.0 loop block,
then for each frame a graphic control extension (its delay) and an image block, then the
trailer. Each image block (descriptor and LZW data) comes from Pillow encoding that one
frame on its own with the same palette; only the blocks are kept.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from ..errors import AfmIOWarning
from ..render import FrameRenderer
from ._common import BundleContent, Progress, Rendering, Writer, write_rendering

#: Browsers show delays below 2 centiseconds as 10 cs, so none is written shorter.
MIN_DELAY_CS = 2


def gif_delays(durations_s: np.ndarray) -> np.ndarray:
    """Frame delays in centiseconds, rounded cumulatively so the total stays right.

    Delays under :data:`MIN_DELAY_CS` are raised to it, with a warning that playback is
    slower than real time.
    """
    ends = np.rint(np.cumsum(durations_s) * 100).astype(np.int64)
    delays = np.diff(ends, prepend=0)
    if delays.size and delays.min() < MIN_DELAY_CS:
        warnings.warn(
            f"frames {1 / np.median(durations_s):.3g} per second are faster than GIF "
            f"players show (at most {100 // MIN_DELAY_CS} per second); the GIF plays slower "
            "than real time",
            AfmIOWarning,
            stacklevel=3,
        )
        delays = np.maximum(delays, MIN_DELAY_CS)
    return np.minimum(delays, 0xFFFF)


def _sub_blocks(data: bytes, pos: int) -> int:
    """Position just after the data sub-blocks starting at ``pos`` (ends with size 0)."""
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _table_size(packed: int) -> int:
    return 3 * 2 ** ((packed & 0x07) + 1) if packed & 0x80 else 0


def image_block(indices: np.ndarray, palette_bytes: bytes) -> bytes:
    """The GIF image descriptor and LZW data of one frame of palette indices.

    Pillow encodes the frame as a one-image GIF; the image block is lifted out of it by
    walking the GIF block structure, with any local colour table flag cleared (the
    indices refer to the global table, which is the same palette).
    """
    height, width = indices.shape
    image = Image.frombytes("P", (width, height), indices.tobytes())
    image.putpalette(palette_bytes)
    buf = io.BytesIO()
    image.save(buf, format="GIF", optimize=False, interlace=False)
    data = buf.getvalue()
    pos = 13 + _table_size(data[10])  # header (6) + logical screen descriptor (7)
    while pos < len(data):
        introducer = data[pos]
        if introducer == 0x21:  # extension: label byte, then sub-blocks
            pos = _sub_blocks(data, pos + 2)
        elif introducer == 0x2C:  # image descriptor: 9 bytes after the introducer
            packed = data[pos + 9]
            lzw = pos + 10 + _table_size(packed)  # LZW code size, then sub-blocks
            end = _sub_blocks(data, lzw + 1)
            descriptor = bytearray(data[pos : pos + 10])
            descriptor[9] = packed & ~0x87  # no local colour table
            return bytes(descriptor) + data[lzw:end]
        else:
            break
    raise RuntimeError("Pillow wrote a GIF without an image block")


class GifStream:
    """Writes an animated GIF to a binary file, one frame at a time.

    Parameters
    ----------
    fh : binary file
        Open for writing; the header is written at once.
    width, height : int
        Size of every frame.
    colours : (256, 3) uint8 array
        The palette the frames' indices refer to.
    """

    def __init__(self, fh: BinaryIO, width: int, height: int, colours: np.ndarray) -> None:
        self.fh = fh
        self.size = (height, width)
        self.palette = np.asarray(colours, dtype=np.uint8).tobytes()
        if len(self.palette) != 768:
            raise ValueError("a GIF palette has 256 RGB entries")
        self.n_frames = 0
        # Global colour table present, 8 bits per primary, 256 entries (2 ** (7 + 1)).
        fh.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0xF7, 0, 0) + self.palette)
        # Loop forever (count 0).
        fh.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", 0) + b"\x00")

    def add(self, indices: np.ndarray, delay_cs: int) -> None:
        """Append one frame of palette indices shown for ``delay_cs`` centiseconds."""
        if indices.shape != self.size or indices.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame of shape {self.size}")
        # Graphic control extension: disposal 1 (leave in place), no transparency.
        self.fh.write(b"\x21\xf9\x04\x04" + struct.pack("<H", int(delay_cs)) + b"\x00\x00")
        self.fh.write(image_block(np.ascontiguousarray(indices), self.palette))
        self.n_frames += 1

    def close(self) -> None:
        """Write the trailer (the file itself stays open)."""
        self.fh.write(b"\x3b")


def write_frames(
    fh: BinaryIO,
    frames: Iterable[tuple[int, np.ndarray]],
    renderer: FrameRenderer,
    colours: np.ndarray,
    timestamps: np.ndarray,
    delays_cs: np.ndarray,
    progress: Progress | None = None,
    numbers: np.ndarray | None = None,
) -> int:
    """Render and append ``(index, frame)`` pairs to a new GIF in ``fh``; returns frames.

    ``index`` numbers the frame within ``timestamps``, ``delays_cs`` and ``numbers`` (the
    frame numbers shown when a time is unknown; ``index`` by default).
    """
    stream = GifStream(fh, renderer.width, renderer.height, colours)
    total = len(delays_cs)
    for i, frame in frames:
        number = i if numbers is None else int(numbers[i])
        stream.add(renderer.render(frame, timestamps[i], number), delays_cs[i])
        if progress is not None:
            progress(i + 1, total)
    stream.close()
    return stream.n_frames


def _encode(job: Rendering) -> None:
    delays = gif_delays(job.render.durations(job.timestamps))
    colours = job.render.palette()
    with open(job.tmp, "wb") as fh:
        write_frames(fh, job.frames(), job.renderer, colours, job.timestamps, delays, job.progress)


def write(path: str | Path, content: BundleContent, **options: Any) -> Path:
    """Write ``content.data`` as an annotated animated GIF, streaming chunk by chunk;
    ``options`` are those of :func:`~afmio.writers._common.write_rendering`."""
    return write_rendering(path, content, _encode, **options)


WRITER = Writer("gif", ".gif", write, rendering=True)
