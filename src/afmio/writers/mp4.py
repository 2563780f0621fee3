"""MP4 (H.264) writer: the GIF's rendered frames piped one at a time to ffmpeg.

ffmpeg comes with the optional ``imageio-ffmpeg`` package (``pip install afmio[video]``),
which ships a static binary. A video has one frame rate: ``fps``, or one frame per median
interval between frame times.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AfmIOError, AfmOSError
from ..render import frame_durations, palette
from ._common import AtomicTarget, BundleContent, Progress, iter_chunks
from .gif import blocks_to_frames, content_renderer


def _write_frames():
    try:
        from imageio_ffmpeg import write_frames
    except ImportError:
        raise AfmIOError(
            None, "MP4 export needs imageio-ffmpeg: pip install afmio[video]"
        ) from None
    return write_frames


def _send(encoder, data: bytes | None, path: Path) -> None:
    try:
        encoder.send(data)
    except OSError as exc:  # imageio-ffmpeg reports a dead ffmpeg this way
        raise AfmOSError(path, f"ffmpeg failed: {exc}") from exc


def write(
    path: str | Path,
    content: BundleContent,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cmap: str = "afmhot",
    fps: float | None = None,
    zmin: float | str | None = None,
    zmax: float | str | None = None,
    scale_bar_nm: float | None = None,
    draw_ts: bool = True,
    draw_scale: bool = True,
) -> Path:
    """Write ``content.data`` as an annotated H.264 MP4, streaming chunk by chunk.

    See :func:`afmio.export_mp4` for the parameters.
    """
    write_frames = _write_frames()
    path = Path(path)
    colours = palette(cmap)
    rate = 1.0 / float(np.median(frame_durations(content.timestamps, fps)))
    renderer = content_renderer(content, zmin, zmax, scale_bar_nm, draw_ts, draw_scale)
    # H.264 in yuv420p needs even sides: pad with one black row / column if odd.
    height, width = renderer.height, renderer.width
    padded = np.zeros((height + height % 2, width + width % 2, 3), dtype=np.uint8)
    total = content.n_frames
    with AtomicTarget(path, overwrite) as tmp:
        encoder = write_frames(
            str(tmp),
            (padded.shape[1], padded.shape[0]),
            fps=rate,
            quality=8,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-f", "mp4"],  # the temporary name has no .mp4 extension
        )
        try:
            _send(encoder, None, path)
            for i, frame in blocks_to_frames(iter_chunks(content.data)):
                padded[:height, :width] = colours[renderer.render(frame, content.timestamps[i], i)]
                _send(encoder, padded.tobytes(), path)
                if progress is not None:
                    progress(i + 1, total)
        finally:
            encoder.close()  # ffmpeg finishes the file (or is stopped) here
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise AfmOSError(path, "ffmpeg wrote no video")
    return path
