"""A small writer of JPK HDF5 (``.h5-jpk``) videos for the tests and the benchmarks.

It lays files out like JPK SPM 8.1 does (``docs/formats/h5jpk.md#layout``): root attribute
``file-format-info = "JPK SCAN"``, a ``Measurement_*`` group with the scan grid and timing
as fixed-length bytes/number attributes, ``meta-data/start-times`` and ``end-times`` (epoch
ms, one row per frame), and one ``Channel_*`` group per channel image holding a
``(pixels, frames)`` int32 dataset, shuffle + gzip level 1, one chunk per frame, plus a
(blank) 64x64 ``thumbnail``. Frames are streamed from iterables, so files larger than
memory can be written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

#: Raw -> unit map (multiplier, offset, unit) per JPK channel name, taken from the public
#: sample so that synthetic values look like real ones.
DEFAULT_SCALING = {
    "height": (-3.6824010693660005e-16, 3.5479968136342423e-07, "m"),
    "measuredHeight": (1.5792944106697477e-15, 3.009119983323796e-07, "m"),
    "error": (2.920813459528419e-17, 0.0, "m"),
    "amplitude": (2.920813459528419e-17, 0.0, "m"),
    "phase": (1.0672170578144923e-07, 0.0, "deg"),
}
_FANCY = {
    "height": "Height",
    "measuredHeight": "Height (measured)",
    "error": "Error",
    "amplitude": "Lock-In Amplitude",
    "phase": "Lock-In Phase",
}


def _b(text: str) -> np.bytes_:
    """JPK stores every string attribute as fixed-length UTF-8 bytes."""
    return np.bytes_(text.encode("utf-8"))


def _jpk_time(epoch_ms: int) -> str:
    dt = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{epoch_ms % 1000:03d} +0000"


def levels_from_values(values: np.ndarray, multiplier: float, offset: float) -> np.ndarray:
    """Raw int32 levels whose ``level * multiplier + offset`` is closest to ``values``.

    ``values`` are in the scaling's own unit (metres for heights).
    """
    levels = np.rint((np.asarray(values, dtype=np.float64) - offset) / multiplier)
    info = np.iinfo(np.int32)
    return np.clip(levels, info.min, info.max).astype(np.int32)


def write_h5jpk(
    path: str | os.PathLike[str],
    channels: Mapping[str, Iterable[np.ndarray]],
    *,
    n_frames: int,
    shape: tuple[int, int],
    scan_size_m: tuple[float, float] = (1.5e-7, 1.5e-7),
    scaling: Mapping[str, tuple[float, float, str]] | None = None,
    start_epoch_ms: int = 1748439718548,
    frame_period_ms: int = 3275,
    frame_duration_ms: int = 3262,
    scan_rate_hz: float = 40.0,
    interlaced: bool = False,
    group: str = "Measurement_000",
    append: bool = False,
) -> Path:
    """Write a JPK HDF5 video from raw int32 levels.

    Parameters
    ----------
    path : str or PathLike
        The ``.h5-jpk`` file to write.
    channels : mapping
        Channel key ``"<channel.name>_<trace|retrace>"`` (``"height_trace"``,
        ``"measuredHeight_trace"``...) mapped to ``n_frames`` frames of ``shape`` raw
        levels (an array or any iterable of 2-D arrays), in file order: row 0 is Y index
        0, the first scanned line.
    n_frames : int
        Frames per channel.
    shape : (int, int)
        ``(jlength, ilength)``: lines (slow axis) and pixels per line (fast axis).
    scan_size_m : (float, float)
        ``(ulength, vlength)``, the fast and slow scan sizes in metres.
    scaling : mapping, optional
        Channel key mapped to ``(multiplier, offset, unit)``, the ``net-encoder``
        scaling; by default :data:`DEFAULT_SCALING` for the channel name.
    start_epoch_ms, frame_period_ms, frame_duration_ms : int
        Frame ``i`` starts at ``start_epoch_ms + i * frame_period_ms`` and lasts
        ``frame_duration_ms`` (written to ``meta-data/start-times`` and ``end-times``).
    scan_rate_hz : float
        ``timing-settings.scanRate``, lines per second.
    interlaced : bool
        Value of the ``...yaxis.interlace`` environment attribute.
    group : str
        Name of the measurement group.
    append : bool
        Add ``group`` to an existing file instead of creating a new one.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    ny, nx = shape
    n_px = ny * nx
    scaling = dict(scaling or {})
    path = Path(path)
    with h5py.File(path, "a" if append else "w", libver="earliest") as f:
        if not append:
            f.attrs["file-format-info"] = _b("JPK SCAN")
            f.attrs["file-format-version"] = _b("3.0")
            f.attrs["file-version-features"] = _b("0x100000500400004000806")
        m = f.create_group(group)
        starts = start_epoch_ms + np.arange(n_frames, dtype=np.int64) * frame_period_ms
        ends = starts + frame_duration_ms
        end_ms = int(ends[-1]) if n_frames else start_epoch_ms
        _measurement_attrs(m, shape, scan_size_m, scan_rate_hz, interlaced, start_epoch_ms, end_ms)
        _positions(m, shape, scan_size_m, n_frames)
        meta = m.create_group("meta-data")
        for name, values in (
            ("start-times", starts),
            ("end-times", ends),
            ("i-gain", np.full(n_frames, -12650.0)),
            ("p-gain", np.full(n_frames, -0.0503)),
            ("relative-setpoint", np.full(n_frames, 0.764)),
        ):
            meta.create_dataset(name, data=values.reshape(n_frames, 1))
        for c, (key, frames) in enumerate(channels.items()):
            name, _, direction = key.rpartition("_")
            if direction not in ("trace", "retrace") or not name:
                raise ValueError(f"channel key {key!r} is not '<name>_<trace|retrace>'")
            if key not in scaling and name not in DEFAULT_SCALING:
                raise ValueError(f"no default scaling for channel {name!r}; pass scaling")
            mult, off, unit = scaling.get(key, DEFAULT_SCALING.get(name))
            ch = m.create_group(f"Channel_{c:03d}")
            _channel_attrs(ch, name, direction == "retrace", mult, off, unit)
            # An empty video cannot be chunked (a chunk may not exceed a zero-length axis).
            ds = ch.create_dataset(
                name[0].upper() + name[1:],
                shape=(n_px, n_frames),
                dtype="<i4",
                chunks=(n_px, 1) if n_frames else None,
                shuffle=bool(n_frames),
                compression="gzip" if n_frames else None,
                compression_opts=1 if n_frames else None,
            )
            ds.attrs["quantity"] = _b(name[0].upper() + name[1:])
            ds.attrs["units"] = _b("V")  # as JPK writes it, whatever the channel's unit
            ds.attrs["Position_Indices"] = m["Position_Indices"].ref
            written = 0
            for i, frame in enumerate(frames):
                frame = np.asarray(frame)
                if frame.shape != (ny, nx):
                    raise ValueError(f"{key} frame {i} has shape {frame.shape}, expected {shape}")
                if i >= n_frames:
                    raise ValueError(f"{key} gave more than {n_frames} frames")
                ds[:, i] = frame.reshape(n_px)
                written += 1
            if written != n_frames:
                raise ValueError(f"{key} gave {written} frames, expected {n_frames}")
            thumb = ch.create_dataset(
                "thumbnail", data=np.zeros((4096, 1), np.int32), compression="gzip"
            )
            thumb.attrs["height"] = np.int32(64)
            thumb.attrs["width"] = np.int32(64)
    return path


def _measurement_attrs(
    m: h5py.Group,
    shape: tuple[int, int],
    scan_size_m: tuple[float, float],
    scan_rate_hz: float,
    interlaced: bool,
    start_ms: int,
    end_ms: int,
) -> None:
    ny, nx = shape
    grid = "position-pattern.grid."
    for key, value in {
        grid + "ilength": np.int32(nx),
        grid + "jlength": np.int32(ny),
        grid + "ulength": np.float64(scan_size_m[0]),
        grid + "vlength": np.float64(scan_size_m[1]),
        grid + "xcenter": np.float64(-2.7e-08),
        grid + "ycenter": np.float64(3.6e-08),
        grid + "theta": np.float64(-0.0),
        grid + "reflect": _b("false"),
        grid + "unit.type": _b("metric-unit"),
        grid + "unit.unit": _b("m"),
        "timing-settings.scanRate": np.float64(scan_rate_hz),
        "timing-settings.dutyCycle": np.float64(0.7),
        "timing-settings.type": _b("feedforward-scan"),
        "start-time": _b(_jpk_time(start_ms)),
        "end-time": _b(_jpk_time(end_ms)),
        "unique-id": _b(str(start_ms)),
        "motion": _b("topDown"),
        "jpkspm_version": _b("8.1.42"),
        "description.instrument": _b("afmio synthetic"),
        "environment.fast-imaging.feed-forward-parameters.yaxis.interlace": _b(
            "true" if interlaced else "false"
        ),
        "environment.scanner.xy-range": _b("3 µm"),
    }.items():
        m.attrs[key] = value


def _positions(
    m: h5py.Group, shape: tuple[int, int], scan_size_m: tuple[float, float], n_frames: int
) -> None:
    """Position and spectroscopic index datasets, as pycroscopy's layout has them."""
    ny, nx = shape
    yi, xi = np.divmod(np.arange(ny * nx, dtype=np.uint32), nx)
    m.create_dataset("Position_Indices", data=np.stack([xi, yi], axis=1), compression="gzip")
    x = -2.7e-08 - scan_size_m[0] / 2 + xi * (scan_size_m[0] / nx)
    y = 3.6e-08 - scan_size_m[1] / 2 + yi * (scan_size_m[1] / ny)
    m.create_dataset("Position_Values", data=np.stack([x, y], axis=1), compression="gzip")
    m.create_dataset("Spectroscopic_Indices", data=np.arange(n_frames, dtype=np.uint32)[None])
    m.create_dataset("Spectroscopic_Values", data=np.arange(n_frames, dtype=np.float32)[None])


def _channel_attrs(
    ch: h5py.Group, name: str, retrace: bool, multiplier: float, offset: float, unit: str
) -> None:
    for key, value in {
        "channel.name": _b(name),
        "channel.fancy-name": _b(_FANCY.get(name, name)),
        "channel.type": _b("channel"),
        "retrace": _b("true" if retrace else "false"),
        "type": _b("channel-retrace"),
        "encoder.scaling.multiplier": np.float64(3.2e-08),
        "encoder.scaling.offset": np.float64(0.0),
        "encoder.scaling.unit.unit": _b("V"),
        "net-encoder.scaling.multiplier": np.float64(multiplier),
        "net-encoder.scaling.offset": np.float64(offset),
        "net-encoder.scaling.style": _b("offsetmultiplier"),
        "net-encoder.scaling.type": _b("linear"),
        "net-encoder.scaling.unit.type": _b("metric-unit"),
        "net-encoder.scaling.unit.unit": _b(unit),
    }.items():
        ch.attrs[key] = value
