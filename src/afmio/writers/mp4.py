"""MP4 (H.264) writer: the frames rendered as for a GIF, piped one at a time to ffmpeg.

ffmpeg comes with the optional ``imageio-ffmpeg`` package (afmio's ``video`` extra), which
ships a static binary. A video has one frame rate: ``fps``, or one frame per median
interval between frame times.
"""

from __future__ import annotations

import json
import struct
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import AfmIOError, AfmNoSpaceError, AfmOSError
from ._common import BundleContent, Rendering, Writer, write_rendering
from ._target import no_space


def install_command(extra: str) -> str:
    """The pip command that adds afmio's ``extra`` from where this afmio came from.

    The running code is looked at first: from a source tree (an editable install, or a
    checkout on ``PYTHONPATH``) the extra is installed from that tree, whatever copy the
    environment's metadata describes. Otherwise an install from a local folder (its
    ``direct_url.json``) gets that folder, and anything else the package index.
    """
    package = Path(__file__).resolve().parents[1]  # <project>/src/afmio
    project = package.parents[1]
    if package.parent.name == "src" and (project / "pyproject.toml").is_file():
        return f'pip install -e "{project}[{extra}]"'
    try:
        origin = json.loads(metadata.distribution("afmio").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        origin = {}
    url = urlparse(origin.get("url", ""))
    if isinstance(origin.get("dir_info"), dict) and url.scheme == "file":
        editable = "-e " if origin["dir_info"].get("editable") else ""
        return f'pip install {editable}"{unquote(url.path)}[{extra}]"'
    return f'pip install "afmio[{extra}]"'


def _write_frames():
    try:
        from imageio_ffmpeg import write_frames
    except ImportError:
        raise AfmIOError(
            None, f"MP4 export needs imageio-ffmpeg; install it with {install_command('video')}"
        ) from None
    return write_frames


def _send(encoder, data: bytes | None, path: Path, tmp: Path) -> None:
    try:
        encoder.send(data)
    except OSError as exc:  # imageio-ffmpeg reports a dead ffmpeg this way
        raise _ffmpeg_failed(path, tmp, "stopped") from exc


def _ffmpeg_failed(path: Path, tmp: Path, what: str) -> AfmOSError:
    """The error of an ffmpeg that ``what`` (stopped, did not finish the file): for want
    of room, when the disk is full or the file reached the size limit."""
    why = no_space(tmp)
    if why:
        return AfmNoSpaceError(path, f"no space left to write it: {why} (ffmpeg {what})")
    return AfmOSError(path, f"ffmpeg {what}; its messages above say why")


def _whole_mp4(path: Path) -> bool:
    """True if the file's top-level MP4 boxes fill it exactly and include the index
    (``moov``), which ffmpeg writes last: imageio-ffmpeg does not check ffmpeg's exit
    status, and an ffmpeg that failed to finish (a full disk) leaves a file cut short."""
    size = path.stat().st_size
    found_index = False
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return False
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1 and len(head) == 16:  # a 64-bit size follows the type
                length = struct.unpack(">Q", head[8:])[0]
            if length < 8:  # 0 ("to the end") is what an unfinished mdat keeps
                return False
            found_index |= kind == b"moov"
            pos += length
    return found_index and pos == size


def _encode(job: Rendering) -> None:
    write_frames = _write_frames()
    path, renderer, timestamps = job.target, job.renderer, job.timestamps
    colours = job.render.palette()
    rate = 1.0 / float(np.median(job.render.durations(timestamps)))
    # H.264 in yuv420p needs even sides: pad with one black row / column if odd.
    height, width = renderer.height, renderer.width
    padded = np.zeros((height + height % 2, width + width % 2, 3), dtype=np.uint8)
    total = job.content.n_frames
    # Created here, so that a folder that cannot be written is reported as such, not as
    # an ffmpeg that stopped (ffmpeg then writes over the empty file).
    job.tmp.touch(exist_ok=False)
    encoder = write_frames(
        str(job.tmp),
        (padded.shape[1], padded.shape[0]),
        fps=rate,
        quality=8,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-f", "mp4"],  # the temporary name has no .mp4 extension
    )
    try:
        _send(encoder, None, path, job.tmp)
        for i, frame in job.frames():
            padded[:height, :width] = colours[renderer.render(frame, timestamps[i], i)]
            _send(encoder, padded.tobytes(), path, job.tmp)
            if job.progress is not None:
                job.progress(i + 1, total)
    finally:
        encoder.close()  # ffmpeg finishes the file (or is stopped) here
    if not job.tmp.is_file() or job.tmp.stat().st_size == 0:
        raise AfmOSError(path, "ffmpeg wrote no video")
    if not _whole_mp4(job.tmp):
        raise _ffmpeg_failed(path, job.tmp, "did not finish the file")


def write(path: str | Path, content: BundleContent, **options: Any) -> Path:
    """Write ``content.data`` as an annotated H.264 MP4, streaming chunk by chunk;
    ``options`` are those of :func:`~afmio.writers._common.write_rendering`."""
    return write_rendering(path, content, _encode, **options)


WRITER = Writer("mp4", ".mp4", write, rendering=True)
