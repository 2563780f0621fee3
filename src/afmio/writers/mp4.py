"""MP4 (H.264) writer: the frames rendered as for a GIF, piped one at a time to ffmpeg.

ffmpeg comes with the optional ``imageio-ffmpeg`` package (afmio's ``video`` extra), which
ships a static binary. A video has one frame rate: ``fps``, or one frame per median
interval between frame times.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import AfmIOError, AfmOSError
from ._common import BundleContent, Rendering, Writer, write_rendering


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


def _send(encoder, data: bytes | None, path: Path) -> None:
    try:
        encoder.send(data)
    except OSError as exc:  # imageio-ffmpeg reports a dead ffmpeg this way
        raise AfmOSError(path, f"ffmpeg failed: {exc}") from exc


def _encode(job: Rendering) -> None:
    write_frames = _write_frames()
    path, renderer, timestamps = job.target, job.renderer, job.timestamps
    colours = job.render.palette()
    rate = 1.0 / float(np.median(job.render.durations(timestamps)))
    # H.264 in yuv420p needs even sides: pad with one black row / column if odd.
    height, width = renderer.height, renderer.width
    padded = np.zeros((height + height % 2, width + width % 2, 3), dtype=np.uint8)
    total = job.content.n_frames
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
        _send(encoder, None, path)
        for i, frame in job.frames():
            padded[:height, :width] = colours[renderer.render(frame, timestamps[i], i)]
            _send(encoder, padded.tobytes(), path)
            if job.progress is not None:
                job.progress(i + 1, total)
    finally:
        encoder.close()  # ffmpeg finishes the file (or is stopped) here
    if not job.tmp.is_file() or job.tmp.stat().st_size == 0:
        raise AfmOSError(path, "ffmpeg wrote no video")


def write(path: str | Path, content: BundleContent, **options: Any) -> Path:
    """Write ``content.data`` as an annotated H.264 MP4, streaming chunk by chunk;
    ``options`` are those of :func:`~afmio.writers._common.write_rendering`."""
    return write_rendering(path, content, _encode, **options)


WRITER = Writer("mp4", ".mp4", write, rendering=True)
