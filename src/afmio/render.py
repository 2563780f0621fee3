"""Rendering frames for people: palette-index images with a timestamp and a scale bar.

A rendered video uses one fixed 256-colour palette: :data:`N_LEVELS` colours sampled from
a matplotlib colormap for the data, then white (:data:`TEXT`) and black (:data:`OUTLINE`)
for the annotations, drawn white with a black outline so they read on any background.
Each frame maps straight to palette indices (no colour quantisation), so a GIF stores the
indices as they are and a video looks them up in the palette.

Small frames are enlarged by a whole factor (nearest neighbour, each data pixel an exact
square) until the shorter side reaches :data:`MIN_SIDE` pixels; annotations are sized
relative to the enlarged frame, so they read the same at any frame size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import AfmIOWarning

#: Palette entries for the data; index 0 is the colormap's low end (and NaN).
N_LEVELS = 254
#: Palette index of the annotations' white fill.
TEXT = 254
#: Palette index of the annotations' black outline.
OUTLINE = 255
#: Frames are enlarged until their shorter side has at least this many pixels...
MIN_SIDE = 512
#: ...unless the longer side would exceed this (very elongated frames).
MAX_SIDE = 4096
#: Percentiles used by ``zmin="auto"`` / ``zmax="auto"``.
AUTO_PERCENTILES = (1.0, 99.0)
#: Playback rate when the frame times are unknown.
FALLBACK_FPS = 10.0

# Each chunk's distribution is summarised by these percentiles, estimated on at most
# _SAMPLE finite values (a regular stride through the chunk): enough for 1st/99th
# percentiles good to a fraction of a percent, at a fraction of the cost of sorting.
_GRID = np.linspace(0.0, 100.0, 101)
_SAMPLE = 2**20

Levels = tuple[float, float] | None


def palette(cmap: str = "afmhot") -> np.ndarray:
    """The 256 x 3 uint8 palette: ``N_LEVELS`` colours of ``cmap``, then white, black."""
    from matplotlib import colormaps

    rgb = colormaps[cmap](np.linspace(0.0, 1.0, N_LEVELS))[:, :3]
    levels = np.rint(rgb * 255).astype(np.uint8)
    return np.vstack([levels, [[255, 255, 255], [0, 0, 0]]]).astype(np.uint8)


def chunk_stats(block: np.ndarray) -> tuple[int, float, float, np.ndarray]:
    """``(finite count, min, max, percentile grid)`` of one chunk, NaN and inf ignored."""
    flat = np.asarray(block).reshape(-1)
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return 0, math.nan, math.nan, np.full(_GRID.size, np.nan)
    sample = finite[:: max(1, finite.size // _SAMPLE)]
    grid = np.percentile(sample, _GRID)
    return int(finite.size), float(finite.min()), float(finite.max()), grid


def merge_stats(summaries: Iterable[tuple[int, float, float, np.ndarray]]) -> dict[str, float]:
    """Combine chunk summaries: the data's min, max and ``AUTO_PERCENTILES``.

    The merged distribution weighs each chunk's (piecewise linear) CDF by its count.
    """
    parts = [s for s in summaries if s[0] > 0]
    if not parts:
        return {"min": math.nan, "max": math.nan, "low": math.nan, "high": math.nan}
    counts = np.array([p[0] for p in parts], dtype=np.float64)
    grids = [p[3] for p in parts]
    values = np.unique(np.concatenate(grids))
    cdf = sum(n * np.interp(values, g, _GRID / 100) for n, g in zip(counts, grids, strict=True))
    cdf = np.asarray(cdf) / counts.sum()
    low, high = np.interp(np.array(AUTO_PERCENTILES) / 100, cdf, values)
    return {
        "min": min(p[1] for p in parts),
        "max": max(p[2] for p in parts),
        "low": float(low),
        "high": float(high),
    }


def needs_stats(zmin: float | str | None, zmax: float | str | None) -> bool:
    """Whether the levels depend on the data's statistics (one lazy pass over it)."""
    return (zmin, zmax) != (None, None) and any(z is None or z == "auto" for z in (zmin, zmax))


def levels_from_stats(
    zmin: float | str | None, zmax: float | str | None, stats: dict[str, float] | None
) -> Levels:
    """The ``(low, high)`` data values mapped to the colormap's ends, or None (per frame).

    Parameters
    ----------
    zmin, zmax : float, "auto" or None
        A value (checked by :class:`RenderOptions`); ``"auto"`` for the 1st (99th)
        percentile of the data; None for the data's min (max). Both None scales each frame
        to its own range.
    stats : dict or None
        From :func:`data_stats`; needed unless both are numbers (or both None).
    """
    if zmin is None and zmax is None:
        return None
    low, high = (
        stats[auto] if z == "auto" else stats[extreme] if z is None else float(z)
        for z, auto, extreme in ((zmin, "low", "min"), (zmax, "high", "max"))
    )
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("cannot derive zmin/zmax: the data has no finite values")
    if low >= high:
        raise ValueError(
            f"zmin must be below zmax, got zmin={low:g}, zmax={high:g} "
            f"(from zmin={zmin!r}, zmax={zmax!r})"
        )
    return low, high


def data_stats(data: da.Array) -> dict[str, float]:
    """Min, max and approximate 1st/99th percentiles of a lazy video in one pass.

    Every chunk is summarised in a dask task (computed in parallel, each released once
    summarised), so memory stays bounded by a few chunks.
    """
    tasks = [dask.delayed(chunk_stats)(block) for block in data.to_delayed().ravel()]
    return merge_stats(dask.compute(*tasks))


def to_indices(frame: np.ndarray, levels: Levels) -> np.ndarray:
    """Palette indices (uint8, ``0..N_LEVELS-1``) of a frame; NaN becomes 0.

    ``levels`` None scales the frame to its own finite min..max.
    """
    frame = np.asarray(frame, dtype=np.float32)
    if levels is None:
        finite = frame[np.isfinite(frame)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    else:
        low, high = levels
    span = high - low
    scaled = (frame - np.float32(low)) * np.float32((N_LEVELS - 1) / span if span > 0 else 0.0)
    np.clip(scaled, 0, N_LEVELS - 1, out=scaled)
    return np.rint(np.nan_to_num(scaled, nan=0.0)).astype(np.uint8)


def upscale_factor(ny: int, nx: int) -> int:
    """Whole enlargement factor: shorter side to at least ``MIN_SIDE`` px, longer side at
    most ``MAX_SIDE`` px (frames already that large are kept as they are)."""
    want = math.ceil(MIN_SIDE / max(1, min(ny, nx)))
    fits = MAX_SIDE // max(1, ny, nx)
    return max(1, min(want, fits))


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``target`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(target))
    for step in (5.0, 2.0, 1.0):
        if step * power <= target * (1 + 1e-9):
            return step * power
    return power  # unreachable: step 1 always fits


def length_label(nm: float) -> str:
    """``"50 nm"``, ``"0.5 nm"``, ``"2 µm"``."""
    if nm >= 1000:
        return f"{nm / 1000:g} µm"
    return f"{nm:g} nm"


def time_decimals(interval_s: float) -> int:
    """Decimals that tell consecutive frame times apart (0 to 6; 2 if unknown)."""
    if not (math.isfinite(interval_s) and interval_s > 0):
        return 2
    return int(min(6, max(0, math.ceil(-math.log10(interval_s) - 1e-9))))


def frame_durations(timestamps: Sequence[float], fps: float | None) -> np.ndarray:
    """Seconds each frame is shown: ``1/fps`` (a positive number, checked by
    :class:`RenderOptions`), else the steps between the frame times (the last frame gets
    the median step).

    Warns (:class:`~afmio.AfmIOWarning`) and plays at :data:`FALLBACK_FPS` when the times
    are unknown (NaN) or not increasing.
    """
    n = len(timestamps)
    if fps is not None:
        return np.full(n, 1.0 / fps)
    steps = np.diff(np.asarray(timestamps, dtype=np.float64))
    if n >= 2 and np.all(np.isfinite(steps)) and np.all(steps > 0):
        return np.append(steps, np.median(steps))
    if n >= 2:
        warnings.warn(
            f"frame times are unknown or not increasing; playing at {FALLBACK_FPS:g} "
            "frames/s (pass fps= to choose)",
            AfmIOWarning,
            stacklevel=3,
        )
    return np.full(n, 1.0 / FALLBACK_FPS)


class FrameRenderer:
    """Turns frames of one video into annotated palette-index images of one size.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the data frames.
    levels : (float, float) or None
        Data values at the colormap's ends; None scales each frame to its own range.
    pixel_size_nm : float
        Pixel size along x; NaN means no scale bar (with a warning if one was asked for).
    interval_s : float
        Typical time between frames; sets the decimals of the timestamp.
    scale_bar_nm : float, optional
        Bar length (positive, checked by :class:`RenderOptions`); default a round length
        about a fifth of the frame width.
    draw_ts, draw_scale : bool
        Draw the timestamp (top left) and the scale bar with its label (bottom right).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        levels: Levels,
        pixel_size_nm: float,
        interval_s: float = math.nan,
        scale_bar_nm: float | None = None,
        draw_ts: bool = True,
        draw_scale: bool = True,
    ) -> None:
        ny, nx = shape
        self.levels = levels
        self.factor = upscale_factor(ny, nx)
        self.height, self.width = ny * self.factor, nx * self.factor
        side = min(self.height, self.width)
        self.margin = max(2, round(0.03 * side))
        self.font = ImageFont.load_default(size=max(12, round(0.06 * side)))
        self.stroke = max(1, round(self.font.size / 14))
        self.draw_ts = draw_ts
        self.decimals = time_decimals(interval_s)
        # The scale bar and its label are the same on every frame: drawn once, as a mask.
        self.bar_px = 0
        self._overlay: np.ndarray | None = None
        if draw_scale:
            self._prepare_scale_bar(float(pixel_size_nm), nx, scale_bar_nm)

    def _prepare_scale_bar(self, pixel_nm: float, nx: int, bar_nm: float | None) -> None:
        if not (math.isfinite(pixel_nm) and pixel_nm > 0):
            warnings.warn("pixel size unknown; no scale bar drawn", AfmIOWarning, stacklevel=4)
            return
        if bar_nm is None:
            bar_nm = nice_length(0.2 * nx * pixel_nm)
        length = round(bar_nm / pixel_nm * self.factor)
        if not 1 <= length <= self.width - 2 * self.margin:
            warnings.warn(
                f"a {bar_nm:g} nm scale bar would be {length} px on a {self.width} px frame; "
                "not drawn",
                AfmIOWarning,
                stacklevel=4,
            )
            return
        self.bar_px = length
        thick = max(2, round(self.font.size * 0.3))
        right, bottom = self.width - self.margin, self.height - self.margin
        left, top = right - length, bottom - thick
        s = self.stroke
        # 0 marks "no overlay" (the overlay holds only TEXT and OUTLINE).
        overlay = np.zeros((self.height, self.width), dtype=np.uint8)
        overlay[top - s : bottom + s, left - s : right + s] = OUTLINE
        overlay[top:bottom, left:right] = TEXT  # exactly ``length`` px wide
        # The label is centred over the bar, or ends where it ends if wider: never
        # closer to the frame's edge than the bar.
        label = length_label(bar_nm)
        half = (self.font.getlength(label) + 2 * s) / 2
        label_at = (min((left + right) / 2, right - half), top - s - max(1, self.margin // 3))
        self._stamp(overlay, label_at, label, "md")
        self._overlay = overlay
        self._overlay_mask = overlay != 0

    def _stamp(self, image: np.ndarray, xy: tuple[float, float], text: str, anchor: str) -> None:
        """Draw ``text`` into ``image`` in place: TEXT glyphs inside an OUTLINE stroke.

        Both are rendered antialiased and thresholded here, the stroke at a lower level
        than the glyphs, so the outline always surrounds the glyphs without gaps.
        """
        size = (self.width, self.height)
        glyphs, stroked = Image.new("L", size, 0), Image.new("L", size, 0)
        ImageDraw.Draw(glyphs).text(xy, text, fill=255, font=self.font, anchor=anchor)
        ImageDraw.Draw(stroked).text(
            xy, text, fill=255, font=self.font, anchor=anchor, stroke_width=self.stroke
        )
        image[np.asarray(stroked) >= 64] = OUTLINE
        image[np.asarray(glyphs) >= 128] = TEXT

    def time_label(self, time_s: float, index: int) -> str:
        """``"12.3 s"``, or ``"frame 12"`` when the time is unknown."""
        if not math.isfinite(time_s):
            return f"frame {index}"
        return f"{time_s:.{self.decimals}f} s"

    def render(self, frame: np.ndarray, time_s: float = math.nan, index: int = 0) -> np.ndarray:
        """The annotated image of one frame: uint8 palette indices, ``(height, width)``."""
        image = to_indices(frame, self.levels)
        if self.factor > 1:
            image = np.repeat(np.repeat(image, self.factor, axis=0), self.factor, axis=1)
        if self._overlay is not None:
            image[self._overlay_mask] = self._overlay[self._overlay_mask]
        if self.draw_ts:
            self._stamp(image, (self.margin, self.margin), self.time_label(time_s, index), "la")
        return image


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float, np.number)) and not isinstance(x, str)


@dataclass(frozen=True)
class RenderOptions:
    """How a rendered video looks and plays: what :func:`afmio.export_gif`,
    :func:`afmio.export_mp4` and ``.afm.play`` take, checked once when made.

    Parameters
    ----------
    cmap : str
        Matplotlib colormap name.
    fps : float, optional
        Frames per second; by default each frame is shown for the real time to the next.
    zmin, zmax : float, "auto" or None
        Data values at the colormap's ends: a number, ``"auto"`` for the 1st / 99th
        percentile of the whole video, or None for its min / max. One scale for the whole
        video unless both are None: then each frame is scaled to its own range.
    scale_bar_nm : float, optional
        Scale bar length; by default a round length about a fifth of the frame width.
    draw_ts, draw_scale : bool
        Draw the time (top left) and the scale bar with its length (bottom right).

    Raises
    ------
    ValueError
        If the colormap is unknown or an option is out of range.
    """

    cmap: str = "afmhot"
    fps: float | None = None
    zmin: float | str | None = None
    zmax: float | str | None = None
    scale_bar_nm: float | None = None
    draw_ts: bool = True
    draw_scale: bool = True

    def __post_init__(self) -> None:
        from matplotlib import colormaps

        if self.cmap not in colormaps:
            raise ValueError(f"unknown colormap {self.cmap!r}; see matplotlib.colormaps")
        fps = self.fps
        if fps is not None and not (_is_number(fps) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, not {fps!r}")
        for name, z in (("zmin", self.zmin), ("zmax", self.zmax)):
            if not (z is None or z == "auto" or (_is_number(z) and math.isfinite(z))):
                raise ValueError(f"{name} must be a finite number, 'auto' or None, not {z!r}")
        bar = self.scale_bar_nm
        if bar is not None and not (_is_number(bar) and bar > 0):
            raise ValueError(f"scale_bar_nm must be a positive number, not {bar!r}")

    def palette(self) -> np.ndarray:
        """The 256-colour palette of :attr:`cmap` (see :func:`palette`)."""
        return palette(self.cmap)

    def durations(self, timestamps: Sequence[float]) -> np.ndarray:
        """Seconds each frame is shown (see :func:`frame_durations`)."""
        return frame_durations(timestamps, self.fps)

    @property
    def needs_stats(self) -> bool:
        """Whether the levels depend on the data's statistics (one pass over it)."""
        return needs_stats(self.zmin, self.zmax)

    def levels(self, data: da.Array) -> Levels:
        """The levels of the lazy video ``data``, its statistics read in one pass if needed."""
        return levels_from_stats(
            self.zmin, self.zmax, data_stats(data) if self.needs_stats else None
        )

    def renderer(
        self, shape: tuple[int, int], levels: Levels, pixel_size_nm: float, interval_s: float
    ) -> FrameRenderer:
        """The :class:`FrameRenderer` of frames of ``shape`` with these options."""
        return FrameRenderer(
            shape,
            levels,
            pixel_size_nm,
            interval_s,
            self.scale_bar_nm,
            self.draw_ts,
            self.draw_scale,
        )
