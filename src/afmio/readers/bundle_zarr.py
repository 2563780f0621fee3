"""Reader of Zarr v3 stores: afmio's own, and other programs' OME-Zarr images.

afmio's layout (a group whose attributes carry an ``"afmio"`` key) is described in
:mod:`afmio.writers.zarr`: the current data in array ``0``, processed layers, masks,
timestamps and all metadata. It opens exactly as it was saved; every chunk file must
exist (afmio writes them all), so a missing one is reported rather than read as the
fill value.

A store without the ``"afmio"`` key is opened, with an :class:`~afmio.errors.AfmIOWarning`,
when it is an OME-Zarr (NGFF 0.5) image whose full-resolution level ends with two
spatial axes (the frame's rows and columns), has at most one time axis and no other axis
longer than 1: its frames are that level, its pixel size and frame interval come from
the ``scale`` transformations (converted to nm and s; NaN without a known unit), and its
values have units ``"unknown"``. Anything else (no NGFF image, Zarr v2, channels or a z
stack) is an :class:`~afmio.errors.UnsupportedFormatError`.

Frames are read lazily by :class:`ZarrFrames`, which reopens the array by path on every
read, so no handle is kept and sources pickle.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.errors import NodeNotFoundError
from zarr.storage import LocalStore

from ..errors import AfmIOWarning, AfmOSError, CorruptFileError, UnsupportedFormatError
from ..layouts import AFMIO_KEY, frame_coords_from_metadata
from ..layouts import ZARR_FLOAT_KEY as FLOAT_KEY
from ..layouts import ZARR_STORE_FORMAT as STORE_FORMAT
from ..layouts import ZARR_STORE_VERSION as STORE_VERSION
from ..lazy import PathFrames
from ..model import LAYER_PREFIX, MASK_PREFIX
from . import _bundle
from .base import ChannelInfo, FormatInfo, Reader, Recording

FORMAT = FormatInfo("zarr", "Zarr v3 store with OME-Zarr metadata (afmio)", (".zarr",))


_TO_NM = {
    "angstrom": 0.1,
    "picometer": 1e-3,
    "nanometer": 1.0,
    "micrometer": 1e3,
    "millimeter": 1e6,
    "centimeter": 1e7,
    "meter": 1e9,
}
_TO_S = {"nanosecond": 1e-9, "microsecond": 1e-6, "millisecond": 1e-3, "second": 1.0}
_TO_S.update({"minute": 60.0, "hour": 3600.0})


@dataclass(frozen=True)
class ZarrFrames(PathFrames):
    """Frames of one array of a Zarr store, read with zarr-python.

    Parameters
    ----------
    path : str
        The store (a folder); reopened for every read.
    array : str
        Path of the array inside the store, e.g. ``"0"`` or ``"processed/raw"``.
    axes : str
        One letter per array dimension: ``t`` (frames), ``y``, ``x``, or ``-`` for an
        axis of length 1 that is dropped. Without ``t`` the array is one frame.
    n_frames, ny, nx : int
        Frames, rows and columns.
    every_chunk : bool
        Every chunk file must exist (afmio's stores): a missing one is an error instead
        of reading as the fill value.
    """

    path: str
    array: str
    axes: str
    n_frames: int
    ny: int
    nx: int
    every_chunk: bool = False

    errors = (Exception,)  # codecs raise RuntimeError, ValueError... on damaged chunks

    @property
    def what(self) -> str:
        return f"array {self.array!r}"

    def fill(self, out: np.ndarray, start: int) -> None:
        stop = start + len(out)
        arr = _open_array(Path(self.path), self.array)
        expect = tuple(
            self.n_frames if a == "t" else {"y": self.ny, "x": self.nx}.get(a, 1) for a in self.axes
        )
        if arr.shape != expect:
            raise CorruptFileError(
                self.path,
                f"array {self.array!r} now has shape {arr.shape}, not the {expect} it had "
                f"when opened; was the store changed after it was opened?",
            )
        if self.every_chunk:
            self._check_chunks(arr, start, stop)
        key = tuple(
            slice(start, stop) if a == "t" else slice(None) if a in "yx" else 0 for a in self.axes
        )
        block = arr[key]
        out[...] = block if "t" in self.axes else block[None]

    def _check_chunks(self, arr: zarr.Array, start: int, stop: int) -> None:
        """Every chunk file holding frames ``start..stop-1`` exists (else zarr would
        silently return the fill value)."""
        per = arr.chunks[0]
        for c in range(start // per, (stop - 1) // per + 1):
            key = arr.metadata.encode_chunk_key((c, 0, 0))
            if not os.path.isfile(os.path.join(self.path, self.array, key)):
                raise CorruptFileError(
                    self.path,
                    f"chunk file {self.array}/{key} (frames {c * per}.."
                    f"{min(self.n_frames, (c + 1) * per) - 1}) is missing",
                )


def sniff(path: Path, head: bytes) -> bool:
    """Always False: a Zarr store is a folder (see :func:`sniff_folder`)."""
    return False


_V2_FILES = (".zgroup", ".zarray")
#: Larger root metadata is not afmio's (its zarr.json is tens of KB): not read to sniff.
_MAX_SNIFF_JSON = 16 * 2**20


def sniff_folder(path: Path) -> bool:
    """True for a Zarr v3 group whose root attributes hold afmio's metadata or an
    OME-Zarr image; reads ``zarr.json`` alone and never raises."""
    meta = Path(path) / "zarr.json"
    try:
        if meta.stat().st_size > _MAX_SNIFF_JSON:
            return False
        root = json.loads(meta.read_bytes())
        attrs = root["attributes"] if root.get("node_type") == "group" else {}
        return AFMIO_KEY in attrs or "multiscales" in attrs.get("ome", {})
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return False


def read(path: str | os.PathLike[str]) -> Recording:
    """Parse a store's metadata and timestamps; frames are not read."""
    path = Path(path)
    if not path.is_dir():
        raise UnsupportedFormatError(path, "is a file, but a Zarr store is a folder")
    meta_file = path / "zarr.json"
    if not meta_file.is_file():
        if any((path / name).is_file() for name in _V2_FILES):
            raise UnsupportedFormatError(path, "is a Zarr v2 store; afmio reads Zarr v3 stores")
        raise CorruptFileError(path, "has no zarr.json: the store's root metadata is missing")
    try:
        root = json.loads(meta_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, PermissionError) as exc:
        raise AfmOSError(path, f"cannot read zarr.json: {exc.strerror or exc}") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorruptFileError(path, f"zarr.json is not valid JSON ({exc})") from exc
    if not isinstance(root, dict) or root.get("zarr_format") != 3:
        raise CorruptFileError(path, "zarr.json is not Zarr v3 metadata (no zarr_format 3)")
    if root.get("node_type") != "group":
        raise UnsupportedFormatError(
            path, f"is a Zarr {root.get('node_type')!r} node, not a group holding a video"
        )
    attrs = root.get("attributes", {})
    if not isinstance(attrs, dict):
        raise CorruptFileError(path, "zarr.json 'attributes' is not a JSON object")
    if AFMIO_KEY in attrs:
        return _read_afmio(path, attrs[AFMIO_KEY])
    return _read_ngff(path, attrs)


def _open_array(store: Path, name: str) -> zarr.Array:
    """Array ``name`` of the store, with errors that say which array and why."""
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        # Paths come from the store's own metadata: never follow one out of the store.
        raise CorruptFileError(store, f"array path {name!r} is not a path inside the store")
    try:
        return zarr.open_array(LocalStore(store, read_only=True), path=name, mode="r")
    except NodeNotFoundError as exc:
        raise CorruptFileError(store, f"has no array {name!r}") from exc
    except (FileNotFoundError, PermissionError) as exc:
        raise AfmOSError(store, f"cannot read array {name!r}: {exc.strerror or exc}") from exc
    except Exception as exc:  # zarr raises many kinds on damaged metadata
        raise CorruptFileError(store, f"array {name!r} has damaged metadata ({exc})") from exc


def _store_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- afmio's stores -----------------------------------------------------------------


def _restore_floats(value: Any) -> Any:
    """Inverse of the writer's encoding of non-finite floats as ``{"$float": "NaN"}``."""
    if isinstance(value, dict):
        if len(value) == 1 and value.get(FLOAT_KEY) in ("NaN", "Infinity", "-Infinity"):
            return float(value[FLOAT_KEY])
        return {k: _restore_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_floats(v) for v in value]
    return value


def _field(path: Path, meta: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = meta.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CorruptFileError(path, f"zarr.json: afmio attribute {key!r} is missing or invalid")
    return value


def _read_afmio(path: Path, meta: Any) -> Recording:

    if not isinstance(meta, dict):
        raise CorruptFileError(path, "zarr.json: the 'afmio' attribute is not a JSON object")
    if meta.get("format") != STORE_FORMAT:
        raise UnsupportedFormatError(
            path, f"zarr.json: afmio attributes of unknown format {meta.get('format')!r}"
        )
    version = _field(path, meta, "version", int)
    if version > STORE_VERSION:
        raise UnsupportedFormatError(
            path,
            f"was written with afmio's Zarr layout {version}; this afmio reads up to "
            f"{STORE_VERSION}: update afmio",
        )
    channel = _field(path, meta, "channel", str)
    # null in JSON when the pixel size is unknown (NaN is not JSON)
    pixel = math.nan
    if meta.get("pixel_size_nm") is not None:
        pixel = float(_field(path, meta, "pixel_size_nm", (int, float)))
    n = _field(path, meta, "n_frames", int)
    provenance = _restore_floats(_field(path, meta, "provenance", dict))
    layers = _field(path, meta, "processed", dict)
    masks = _field(path, meta, "masks", dict)

    data = _frames_array(path, _field(path, meta, "data", str), n, None)
    _, ny, nx = data.shape
    times = _open_array(path, _field(path, meta, "timestamps", str))
    if times.ndim != 1 or times.shape[0] != n:
        raise CorruptFileError(
            path, f"timestamps has shape {times.shape} but the video has {n} frames"
        )
    frame_meta = _restore_floats(times.attrs.get("frame_metadata"))
    if not isinstance(frame_meta, list) or not all(isinstance(m, dict) for m in frame_meta):
        raise CorruptFileError(path, "timestamps has no 'frame_metadata' list of objects")
    if len(frame_meta) != n:
        raise CorruptFileError(
            path, f"frame_metadata has {len(frame_meta)} entries but the video has {n} frames"
        )
    try:
        time_s = np.asarray(times[:], dtype=np.float64)
        _, frame_coords = frame_coords_from_metadata(frame_meta)
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(path, f"invalid per-frame metadata ({exc})") from exc
    except RuntimeError as exc:
        raise CorruptFileError(path, f"cannot read timestamps ({exc})") from exc

    saved = _bundle.restore(path, provenance, channel, pixel, data.shape)
    channels = [saved.data(channel, data, units="")]
    for role, prefix, group, dtype in (
        ("layer", LAYER_PREFIX, layers, "float32"),
        ("mask", MASK_PREFIX, masks, "bool"),
    ):
        for name, node in group.items():
            if not isinstance(node, str):
                raise CorruptFileError(path, f"zarr.json: {role} {name!r} has no array path")
            frames = _frames_array(path, node, n, (ny, nx))
            channels.append(
                ChannelInfo(prefix + name, node, "", name, frames, role=role, dtype=dtype)
            )
    version_text = f"Zarr v3, afmio layout {version}"
    size = _store_size(path)
    return _bundle.recording(
        path, FORMAT.name, version_text, size, saved, channels, time_s, frame_coords
    )


def _frames_array(path: Path, name: str, n: int, frame: tuple[int, int] | None) -> ZarrFrames:
    """The frames of a ``(t, y, x)`` array of ``n`` frames (of ``frame`` rows, columns)."""
    arr = _open_array(path, name)
    if arr.ndim != 3 or arr.shape[0] != n or (frame is not None and arr.shape[1:] != frame):
        want = f"({n}, {frame[0]}, {frame[1]})" if frame else f"({n}, rows, columns)"
        raise CorruptFileError(path, f"array {name!r} has shape {arr.shape}, expected {want}")
    return ZarrFrames(str(path), name, "tyx", *arr.shape, every_chunk=True)


# --- other programs' OME-Zarr images ------------------------------------------------


def _read_ngff(path: Path, attrs: dict[str, Any]) -> Recording:
    ome = attrs.get("ome")
    scales = ome.get("multiscales") if isinstance(ome, dict) else None
    if not isinstance(scales, list) or not scales or not isinstance(scales[0], dict):
        raise UnsupportedFormatError(
            path,
            "is a Zarr store that afmio did not write (no 'afmio' attributes) and that holds "
            "no OME-Zarr 0.5 image ('ome' multiscales)",
        )
    image = scales[0]
    try:
        axes = [(str(a["name"]), a.get("type"), a.get("unit")) for a in image["axes"]]
        level = image["datasets"][0]
        array_path = str(level["path"])
        # the level's scale, then the one shared by all levels, if any
        scale = np.ones(len(axes))
        for t in [*level["coordinateTransformations"], *image.get("coordinateTransformations", [])]:
            if t["type"] == "scale":
                scale = scale * np.asarray(t["scale"], dtype=np.float64)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptFileError(path, f"zarr.json: invalid OME-Zarr multiscales ({exc!r})") from exc
    arr = _open_array(path, array_path)
    names = [name for name, _, _ in axes]
    # the time axis by type (names are arbitrary), or named "t" when types are missing
    is_time = [kind == "time" or (kind is None and name == "t") for name, kind, _ in axes]
    code = ["t" if time else "-" for time in is_time]
    if len(axes) >= 2 and not any(is_time[-2:]):
        code[-2:] = ["y", "x"]
    if "y" not in code or sum(is_time) > 1 or arr.ndim != len(axes):
        raise UnsupportedFormatError(
            path, f"OME-Zarr image with axes {names} is not a video of (t,) y, x frames"
        )
    extra = [a for a, c, size in zip(names, code, arr.shape, strict=True) if c == "-" and size > 1]
    if extra:
        raise UnsupportedFormatError(
            path, f"OME-Zarr image has axes {extra} longer than 1; afmio reads (t,) y, x frames"
        )

    def physical(axis: str, table: dict[str, float]) -> float:
        """Scale of the axis coded ``axis`` in nm or s; NaN without a known unit."""
        if axis not in code:
            return math.nan
        i = code.index(axis)
        return float(scale[i]) * table.get(axes[i][2] or "", math.nan)

    n = arr.shape[code.index("t")] if "t" in code else 1
    frames = ZarrFrames(str(path), array_path, "".join(code), n, *arr.shape[-2:])
    channel = str(image.get("name") or "image")
    warning = AfmIOWarning(
        f"{path}: not written by afmio (no 'afmio' attributes); opened its OME-Zarr image "
        f"{array_path!r} with values in unknown units, pixel size and frame times from its "
        f"scale"
    )
    return Recording(
        path=str(path),
        format=FORMAT.name,
        format_version=f"Zarr v3, OME-Zarr {ome.get('version', '')}",
        size_bytes=_store_size(path),
        channels=(ChannelInfo(channel, array_path, "unknown", channel, frames),),
        pixel_size_x_nm=physical("x", _TO_NM),
        pixel_size_y_nm=physical("y", _TO_NM),
        time_s=np.arange(n) * physical("t", _TO_S),  # NaN when the time scale is unknown
        frame_coords={},
        acquisition={"ome": ome},
        warnings=[warning],
    )


READER = Reader(FORMAT, sniff, read, container="zarr", sniff_folder=sniff_folder)
