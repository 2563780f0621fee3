"""Reader for JPK NanoRacer high-speed videos in HDF5 (``.h5-jpk``).

Layout (``docs/formats/h5jpk.md#layout``): the root attribute ``file-format-info`` is
``"JPK SCAN"``; each ``Measurement_*`` group carries the scan grid and timing as attributes
and a ``meta-data`` group with per-frame ``start-times``/``end-times`` (ms since the Unix
epoch); each of its ``Channel_*`` groups holds one channel image as a ``(pixels, frames)``
integer dataset, gzip-compressed one frame per chunk, beside a ``thumbnail``. Column ``f``,
reshaped row-major to ``(jlength, ilength)``, is frame ``f``; frames are read lazily, chunk
by chunk, with h5py. Groups and datasets are reached through
:func:`~afmio.readers._hdf5.member`, which refuses data stored in other files.

Conventions:

- Orientation: rows are reversed, as playNano 0.5.0 and AFMReader do by default, so that
  values match theirs: **row 0 is the last stored line** (the largest Y index, the largest
  y in ``Position_Values``, i.e. the top of the image as JPK shows it); column 0 is the
  first pixel of each line. ``position-pattern.grid.reflect``/``theta`` are not acted upon.
- Names: ``<channel.name>_<trace|retrace>`` (``height_trace``, ``measuredHeight_trace``);
  the native name is the HDF5 path of the channel group (``Measurement_000/Channel_001``).
- Measurement groups: the recording's grid and time axis are those of the first group (in
  name order) with a ``height_trace``, else of the first group with channels. Channels of
  other groups are listed too when their grid and frame times are the same; the plain name
  means the first group that has the channel, later copies are named
  ``<name>@Measurement_001``, and every channel answers to its native path. Groups with a
  different grid or time axis are left out with a warning (one recording has one time axis).
- Values: ``raw * net-encoder.scaling.multiplier + offset`` in the unit of
  ``net-encoder.scaling.unit.unit`` (decoded from bytes); lengths (m, mm, µm, nm, pm) become
  nm, other units (V, deg...) are kept. No multiplier: the raw integers are returned in
  units ``"levels"`` with a warning; no offset: 0 is used with a warning.
- Time: ``time`` is s since the first frame's ``start-times`` entry, ``start_epoch_ms`` those
  entries, ``frame_duration_s`` is end - start. Without usable per-frame times (absent, or
  not one per frame) frames are ``jlength / scanRate`` apart (halved when the environment
  says the scan is interlaced, as playNano does), with a warning; ``start_epoch_ms`` then
  counts from the ``start-time`` attribute.
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import AfmIOWarning, CorruptFileError, UnsupportedFormatError
from ..lazy import PathFrames
from ._hdf5 import HDF5_SIGNATURE, Root, member, read_hdf5, reopened, root
from .base import ChannelInfo, FormatInfo, Reader, Recording

FORMAT = FormatInfo("h5-jpk", "JPK NanoRacer HDF5 video", (".h5-jpk",))


_LENGTH_TO_NM = {"m": 1e9, "mm": 1e6, "µm": 1e3, "μm": 1e3, "um": 1e3, "nm": 1.0, "pm": 1e-3}
_GRID = "position-pattern.grid."
_NET = "net-encoder.scaling."
_INTERLACE = "environment.fast-imaging.feed-forward-parameters.yaxis.interlace"
#: Array attributes longer than this are summarised in the provenance, not copied.
_MAX_ARRAY_ITEMS = 64


@dataclass(frozen=True)
class H5ColumnFrames(PathFrames):
    """Frames stored as the columns of a ``(pixels, frames)`` HDF5 dataset.

    Each read opens the file by path, decodes the frames, reverses their rows and applies
    ``raw * gain + bias`` in float64 before casting to the output type.

    When every frame is one chunk compressed only with shuffle and/or deflate (as JPK
    writes them), ``chunk_filters`` names those filters and the stored chunks are read
    raw and decoded here: this is about twice as fast as HDF5's filter pipeline on one
    core, and zlib releases the GIL (h5py holds a global lock while HDF5 decodes), so
    dask's threads can decompress in parallel. Otherwise (``None``) h5py reads the columns.

    Parameters
    ----------
    path : str
        The HDF5 file (re-opened for every read).
    dataset : str
        HDF5 path of the dataset.
    n_frames, ny, nx : int
        Frames, rows (``jlength``) and columns (``ilength``).
    gain, bias : float or None
        Affine map from stored value to physical value; ``gain=None`` returns raw values.
    chunk_filters : tuple of str or None
        ``"shuffle"``/``"deflate"`` in the order they were applied when writing.
    """

    path: str
    dataset: str
    n_frames: int
    ny: int
    nx: int
    gain: float | None
    bias: float = 0.0
    chunk_filters: tuple[str, ...] | None = None

    errors = (*PathFrames.errors, zlib.error)

    @property
    def what(self) -> str:
        return self.dataset

    def fill(self, out: np.ndarray, start: int) -> None:
        stop = start + len(out)
        with h5py.File(self.path, "r") as f:
            columns = self.ny * self.nx
            ds = reopened(
                self.path,
                f,
                self.dataset,
                self.what,
                f"({columns}, {self.n_frames})",
                lambda d: d.ndim == 2 and d.shape[0] == columns and d.shape[1] >= stop,
            )
            if self.chunk_filters is None:
                self._scale_into(out, ds[:, start:stop].T)
            else:
                for k in range(len(out)):
                    self._scale_into(out[k : k + 1], self._chunk(ds, start + k)[None])

    def _chunk(self, ds: h5py.Dataset, frame: int) -> np.ndarray:
        """Frame ``frame`` as stored (one column), decoded from its raw chunk."""
        try:
            mask, data = ds.id.read_direct_chunk((0, frame))
        except RuntimeError:  # chunk never written: HDF5 supplies the fill value
            return ds[:, frame]
        if mask:  # a filter was skipped for this chunk: let HDF5 decode it
            return ds[:, frame]
        size = self.ny * self.nx * ds.dtype.itemsize
        for name in reversed(self.chunk_filters or ()):
            if name == "deflate":
                data = zlib.decompress(data, bufsize=size)
            else:  # shuffle stored byte k of every value together; interleave them again
                data = np.frombuffer(data, np.uint8).reshape(ds.dtype.itemsize, -1).T.copy()
        if len(memoryview(data).cast("B")) != size:
            raise CorruptFileError(
                self.path, f"chunk of frame {frame} in {self.dataset} decodes to the wrong size"
            )
        return np.frombuffer(data, dtype=ds.dtype)

    def _scale_into(self, out: np.ndarray, columns: np.ndarray) -> None:
        """``out[k]`` = frame ``columns[k]`` with rows reversed, scaled."""
        scratch = np.empty((self.ny, self.nx), dtype=np.float64)
        for k in range(len(out)):
            frame = columns[k].reshape(self.ny, self.nx)[::-1]
            if self.gain is None:
                out[k] = frame
            else:
                np.multiply(frame, self.gain, out=scratch)
                scratch += self.bias
                out[k] = scratch


def sniff(path: Path, head: bytes) -> bool:
    """True for an HDF5 file that is a JPK scan, or any HDF5 file named ``.h5-jpk``.

    A file named like ours is claimed even when it is damaged or lacks the JPK structure,
    so that :func:`read` says precisely what is wrong with it.
    """
    if not head.startswith(HDF5_SIGNATURE):
        return False
    if Path(path).suffix.lower() in FORMAT.extensions:
        return True
    found = root(path)
    return found.error is None and _is_jpk_scan(found)


def read(path: str | os.PathLike[str]) -> Recording:
    """Parse the metadata of a JPK HDF5 video; frame data is not read."""
    path = Path(path)
    return read_hdf5(path, _read_open, "a JPK .h5-jpk")


# --- attribute helpers ---------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    """JPK writes UTF-8 (µ, √); fall back to Latin-1, which never fails."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\x00", "")


def _json_safe(value: Any) -> Any:
    """Plain Python (str, int, float, bool, None, lists) for an h5py attribute value."""
    if isinstance(value, bytes):  # includes numpy.bytes_
        return _decode(value)
    if isinstance(value, np.ndarray):
        if value.size > _MAX_ARRAY_ITEMS:
            return f"<{value.dtype} array of shape {value.shape}>"
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)  # object references and other exotica: a readable label


def _attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """All attributes of ``obj``, JSON-safe; one h5py cannot convert becomes None."""
    out: dict[str, Any] = {}
    for key in obj.attrs:
        try:
            out[key] = _json_safe(obj.attrs[key])
        except (OSError, TypeError, ValueError):
            out[key] = None
    return out


def _attr(obj: h5py.HLObject, key: str) -> Any:
    try:
        return _json_safe(obj.attrs[key])
    except KeyError:
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, list) and len(value) == 1:  # a one-element array attribute
        value = value[0]
    return value.strip() if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    """A finite float from a number or numeric string attribute, else None."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _flag(value: Any) -> bool:
    text = _text(value)
    return text.lower() == "true" if text is not None else bool(_number(value))


def _is_jpk_scan(found: Root) -> bool:
    """The root says "JPK SCAN", or (attribute absent) JPK's group structure is there."""
    info = _text(_json_safe(found.attrs.get("file-format-info")))
    if info is not None:
        return info == "JPK SCAN"
    return any(
        any(_is_channel(k) for k in members)
        for m, members in found.groups.items()
        if _is_measurement(m)
    )


def _is_measurement(name: str) -> bool:
    return name.startswith("Measurement_")


def _is_channel(name: str) -> bool:
    return name.startswith("Channel_")


def _measurement_names(path: Path, f: h5py.File) -> list[str]:
    return sorted(k for k in f if _is_measurement(k) and isinstance(member(path, f, k), h5py.Group))


def _channel_groups(path: Path, m: h5py.Group) -> list[str]:
    return sorted(k for k in m if _is_channel(k) and isinstance(member(path, m, k), h5py.Group))


# --- one measurement group -----------------------------------------------------------------


@dataclass
class _Channel:
    key: str
    native: str
    long_name: str
    units: str
    source: H5ColumnFrames
    warnings: tuple[AfmIOWarning, ...]
    notes: dict[str, Any]


@dataclass
class _Measurement:
    name: str
    attrs: dict[str, Any]
    ny: int
    nx: int
    px_x: float
    px_y: float
    channels: list[_Channel]
    time_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    epoch_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    duration_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    time_rule: str = ""
    warnings: list[AfmIOWarning] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def same_axes(self, other: _Measurement) -> bool:
        return (
            (self.ny, self.nx) == (other.ny, other.nx)
            and np.array_equal([self.px_x, self.px_y], [other.px_x, other.px_y], equal_nan=True)
            and np.array_equal(self.time_s, other.time_s, equal_nan=True)
            and np.array_equal(self.epoch_ms, other.epoch_ms, equal_nan=True)
        )


def _grid_size(path: Path, name: str, attrs: dict[str, Any], axis: str) -> int:
    key = _GRID + axis
    value = _number(attrs.get(key))
    if value is None:
        raise CorruptFileError(path, f"{name} has no scan grid attribute '{key}'")
    if value <= 0 or value != int(value):
        raise CorruptFileError(path, f"{name} has '{key}' = {value:g}, not a positive count")
    return int(value)


def _pixel_size(
    path: Path, name: str, attrs: dict[str, Any], axis: str, n: int
) -> tuple[float, AfmIOWarning | None]:
    key = _GRID + axis
    length = _number(attrs.get(key))
    unit = _text(attrs.get(_GRID + "unit.unit")) or "m"
    factor = _LENGTH_TO_NM.get(unit)
    if length is None or length <= 0 or factor is None:
        problem = f"'{key}' = {attrs.get(key)!r} {unit}"
        return math.nan, AfmIOWarning(f"{path}: {name} has {problem}; pixel size unknown (NaN)")
    return length * factor / n, None


def _parse_measurement(path: Path, f: h5py.File, name: str) -> _Measurement | None:
    """The grid, channels and frame times of one group; None if it has no channels."""
    m = f[name]  # checked by _measurement_names
    channel_names = _channel_groups(path, m)
    if not channel_names:
        return None
    attrs = _attrs(m)
    nx = _grid_size(path, name, attrs, "ilength")
    ny = _grid_size(path, name, attrs, "jlength")
    px_x, wx = _pixel_size(path, name, attrs, "ulength", nx)
    px_y, wy = _pixel_size(path, name, attrs, "vlength", ny)
    meas = _Measurement(name, attrs, ny, nx, px_x, px_y, [])
    meas.warnings.extend(w for w in (wx, wy) if w)
    seen = set()
    for cname in channel_names:
        ch = _parse_channel(path, m[cname], f"{name}/{cname}", ny, nx, meas)  # checked
        if ch is None:
            continue
        if ch.key in seen:  # first wins, as in AFMReader and playNano
            meas.skipped.append(f"{ch.native}: a second {ch.key}")
            continue
        seen.add(ch.key)
        meas.channels.append(ch)
    n = max((c.source.n_frames for c in meas.channels), default=0)
    _frame_times(path, m, meas, n)
    return meas


def _data_dataset(path: Path, group: h5py.Group, channel_name: str) -> str | None:
    """The channel's data: the dataset named after it (``Height``), else the only one."""
    names = [
        k for k in group if k != "thumbnail" and isinstance(member(path, group, k), h5py.Dataset)
    ]
    preferred = channel_name[:1].upper() + channel_name[1:]
    if preferred in names:
        return preferred
    return names[0] if len(names) == 1 else None


def _parse_channel(
    path: Path, group: h5py.Group, native: str, ny: int, nx: int, meas: _Measurement
) -> _Channel | None:
    cname = _text(_attr(group, "channel.name"))
    if not cname:
        meas.skipped.append(f"{native}: no channel.name attribute")
        return None
    key = f"{cname}_{'retrace' if _flag(_attr(group, 'retrace')) else 'trace'}"
    dname = _data_dataset(path, group, cname)
    if dname is None:
        meas.warnings.append(
            AfmIOWarning(
                f"{path}: {native} ({key}) has no single data dataset besides the thumbnail; "
                f"channel skipped"
            )
        )
        meas.skipped.append(f"{native}: no data dataset")
        return None
    ds = group[dname]  # checked by _data_dataset
    where = f"{native}/{dname}"
    if ds.ndim != 2:
        raise CorruptFileError(path, f"{where} has shape {ds.shape}, not (pixels, frames)")
    if ds.shape[0] != ny * nx:
        raise CorruptFileError(
            path,
            f"{where} holds {ds.shape[0]} pixels per frame but the scan grid is "
            f"ilength {nx} x jlength {ny} = {nx * ny}",
        )
    if ds.dtype.kind not in "iuf":
        raise CorruptFileError(path, f"{where} holds {ds.dtype} values, not numbers")
    gain, bias, units, warnings, notes = _scaling(path, group, key, native)
    fancy = _text(_attr(group, "channel.fancy-name")) or cname
    filters = _chunk_filters(ds, ny * nx)
    notes.update(
        dataset=where,
        frames=ds.shape[1],
        chunks=_json_safe(ds.chunks),
        decoded_by="h5py" if filters is None else f"afmio, per chunk: {list(filters)}",
    )
    return _Channel(
        key=key,
        native=native,
        long_name=fancy + (" (retrace)" if key.endswith("_retrace") else ""),
        units=units,
        source=H5ColumnFrames(str(path), where, ds.shape[1], ny, nx, gain, bias, filters),
        warnings=tuple(warnings),
        notes=notes,
    )


def _chunk_filters(ds: h5py.Dataset, n_px: int) -> tuple[str, ...] | None:
    """The filters to undo when each frame is one chunk afmio can decode, else None."""
    if ds.chunks != (n_px, 1):
        return None
    plist = ds.id.get_create_plist()
    known = {h5py.h5z.FILTER_SHUFFLE: "shuffle", h5py.h5z.FILTER_DEFLATE: "deflate"}
    names = [known.get(plist.get_filter(i)[0]) for i in range(plist.get_nfilters())]
    return None if None in names else tuple(names)


def _scaling(
    path: Path, group: h5py.Group, key: str, native: str
) -> tuple[float | None, float, str, list[AfmIOWarning], dict[str, Any]]:
    """(gain, bias, units, warnings, notes) turning stored values into physical ones."""
    mult = _number(_attr(group, _NET + "multiplier"))
    offset = _number(_attr(group, _NET + "offset"))
    unit = _text(_attr(group, _NET + "unit.unit")) or ""
    notes = {"multiplier": mult, "offset": offset, "unit": unit}
    where = f"{path}: channel {key} ({native})"
    if mult is None:
        msg = f"{where} has no usable {_NET}multiplier; values are the raw stored integers"
        return None, 0.0, "levels", [AfmIOWarning(msg)], notes
    warnings = []
    if offset is None:
        offset = 0.0
        msg = f"{where} has no usable {_NET}offset; 0 is used, so values may be shifted"
        warnings.append(AfmIOWarning(msg))
    if not unit:
        warnings.append(AfmIOWarning(f"{where} has no {_NET}unit.unit; units unknown"))
    factor = _LENGTH_TO_NM.get(unit)
    if factor is None:
        return mult, offset, unit, warnings, notes
    return mult * factor, offset * factor, "nm", warnings, notes


def _per_frame(path: Path, m: h5py.Group, name: str, n: int) -> tuple[np.ndarray | None, str]:
    """A per-frame ``meta-data`` array of ``n`` entries, or None and why not."""
    ds = member(path, m, name)
    if not isinstance(ds, h5py.Dataset):
        return None, f"has no {name}"
    if ds.size != n or ds.dtype.kind not in "iuf":
        return None, f"has {ds.size} {ds.dtype} {name} entries for {n} frames"
    return ds[()].reshape(n).astype(np.float64), ""


def _epoch_ms(text: str | None) -> float:
    """``"2025-05-28 14:41:58.548 +0100"`` as ms since the Unix epoch, NaN if unparsable."""
    try:
        return datetime.strptime(text or "", "%Y-%m-%d %H:%M:%S.%f %z").timestamp() * 1000.0
    except ValueError:
        return math.nan


def _frame_times(path: Path, m: h5py.Group, meas: _Measurement, n: int) -> None:
    """Fill the measurement's per-frame times, from meta-data or else the scan rate."""
    if n == 0:
        meas.time_rule = "no frames"
        return
    starts, why = _per_frame(path, m, "meta-data/start-times", n)
    if starts is not None:
        ends, _ = _per_frame(path, m, "meta-data/end-times", n)
        meas.time_s = (starts - starts[0]) / 1000.0
        meas.epoch_ms = starts
        meas.duration_s = (ends - starts) / 1000.0 if ends is not None else np.full(n, math.nan)
        meas.time_rule = "meta-data/start-times and end-times"
        return
    rate = _number(meas.attrs.get("timing-settings.scanRate"))
    if rate is None or rate <= 0:
        meas.time_s = meas.epoch_ms = meas.duration_s = np.full(n, math.nan)
        meas.time_rule = "none: no per-frame times and no scan rate"
        meas.warnings.append(
            AfmIOWarning(f"{path}: {meas.name} {why} and no scan rate; time is NaN")
        )
        return
    interlaced = _flag(meas.attrs.get(_INTERLACE))
    interval = meas.ny / rate / (2.0 if interlaced else 1.0)
    meas.time_s = np.arange(n) * interval
    meas.epoch_ms = _epoch_ms(_text(meas.attrs.get("start-time"))) + meas.time_s * 1000.0
    meas.duration_s = np.full(n, interval)
    meas.time_rule = "jlength / scanRate" + (", halved: interlaced" if interlaced else "")
    meas.warnings.append(
        AfmIOWarning(
            f"{path}: {meas.name} {why}; frames taken to be {meas.ny} lines / {rate:g} Hz"
            f"{' / 2 (interlaced)' if interlaced else ''} = {interval:g} s apart"
        )
    )


# --- the whole file ------------------------------------------------------------------------


def _read_open(path: Path, size: int, f: h5py.File) -> Recording:
    if not _is_jpk_scan(Root.of(f)):
        info = _text(_attr(f, "file-format-info"))
        if info is not None:
            raise UnsupportedFormatError(
                path, f"is a JPK HDF5 file of kind {info!r}, not a scan video ('JPK SCAN')"
            )
        raise UnsupportedFormatError(
            path,
            "is an HDF5 file without the JPK scan structure (no 'file-format-info' root "
            "attribute and no Measurement_*/Channel_* groups)",
        )
    names = _measurement_names(path, f)
    if not names:
        raise CorruptFileError(path, "JPK SCAN file has no Measurement_* group")
    groups = [g for g in (_parse_measurement(path, f, n) for n in names) if g is not None]
    if not any(g.channels for g in groups):
        raise CorruptFileError(path, f"no channel images with data in {', '.join(names)}")
    primary = next(
        (g for g in groups if any(c.key == "height_trace" for c in g.channels)),
        next(g for g in groups if g.channels),
    )
    used, warns = [], list(primary.warnings)
    for g in groups:
        if g is primary:
            continue
        if not g.channels:
            warns.extend(g.warnings)  # why all its channels were skipped
        elif g.same_axes(primary):
            used.append(g)
            warns.extend(g.warnings)
        else:
            warns.append(
                AfmIOWarning(
                    f"{path}: {g.name} has a different grid or time axis from "
                    f"{primary.name}; its channels are left out"
                )
            )
    used = sorted([primary, *used], key=lambda g: g.name)

    channels, scaling = [], {}
    for g in used:
        for ch in g.channels:
            name = ch.key if all(c.name != ch.key for c in channels) else f"{ch.key}@{g.name}"
            channels.append(
                ChannelInfo(name, ch.native, ch.units, ch.long_name, ch.source, ch.warnings)
            )
            scaling[name] = ch.notes
    n = max(c.frames.n_frames for c in channels)
    if n == 0:
        warns.append(AfmIOWarning(f"{path}: the video holds no frames (datasets have 0 columns)"))
    rate = _number(primary.attrs.get("timing-settings.scanRate"))
    direction = _text(primary.attrs.get("motion")) or ""

    acquisition = {**_attrs(f), **primary.attrs, "measurement_group": primary.name}
    others = {g.name: g.attrs for g in groups if g is not primary}
    if others:
        acquisition["other_measurement_groups"] = others
    notes = {
        "measurement_group": primary.name,
        "measurement_groups_used": [g.name for g in used],
        "orientation": "rows reversed: row 0 is the last stored line (largest Y index)",
        "time_rule": primary.time_rule,
        "channels": scaling,
        "skipped": [s for g in groups for s in g.skipped],
    }
    return Recording(
        path=str(path),
        format="h5-jpk",
        format_version=_text(_attr(f, "file-format-version")) or "",
        size_bytes=size,
        channels=tuple(channels),
        pixel_size_x_nm=primary.px_x,
        pixel_size_y_nm=primary.px_y,
        time_s=primary.time_s,
        frame_coords={
            "start_epoch_ms": primary.epoch_ms,
            "frame_duration_s": primary.duration_s,
            "line_rate": np.full(n, math.nan if rate is None else rate),
            "scan_direction": np.full(n, direction),
        },
        acquisition=acquisition,
        reader_notes=notes,
        warnings=warns,
    )


READER = Reader(FORMAT, sniff, read, container="hdf5", priority=20)
