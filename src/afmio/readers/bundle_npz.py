"""Reader for NPZ bundles (playNano 0.5.0's layout, written by afmio or playNano).

An NPZ is a zip of ``.npy`` entries: ``data`` (frames, y, x), ``processed__<step>``,
``masks__<name>``, ``timestamps``, ``frame_metadata_json``, ``provenance_json``,
``state_backups_json`` (optional), ``pixel_size_nm`` and ``channel``.

Frames are read lazily:

- a STORED entry (afmio writes them so) is read in place: its data starts after the
  entry's local file header (30 bytes, name, extra field) and the ``.npy`` header, and
  frames follow one another, so :class:`~afmio.lazy.StridedFrames` reads them bit for bit;
- a DEFLATED entry (playNano writes ``np.savez_compressed``) is decompressed on every
  read from the entry's start up to the frames wanted (:class:`ZipEntryFrames`): reading
  frame ``k`` costs decompressing ``k`` frames, so reading a whole video chunk by chunk
  costs about ``chunks / 2`` passes over it. playNano keeps whole videos in memory, so
  its files are small enough for this.

Strings are 0-d unicode or bytes arrays (afmio) or pickled 0-d object arrays (playNano). Pickles
are never executed: :func:`_pickled_string` walks their opcodes with
:func:`pickletools.genops` and accepts only a numpy object array holding one plain
``str`` or ``bytes``; anything else is a :class:`~afmio.errors.CorruptFileError`.
"""

from __future__ import annotations

import json
import math
import os
import pickletools
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
from numpy.lib import format as npy

from .. import layouts, model
from ..errors import AfmIOError, AfmIOWarning, CorruptFileError
from ..lazy import FrameSource, PathFrames, StridedFrames
from . import _bundle
from ._errors import library_errors
from .base import ChannelInfo, FormatInfo, Reader, Recording

FORMAT = FormatInfo("npz-bundle", "NumPy NPZ bundle (afmio and playNano)", (".npz",))

ZIP_SIGNATURE = b"PK\x03\x04"
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # signature ... name length, extra length
_REQUIRED = ("data", "pixel_size_nm", "channel", "frame_metadata_json", "provenance_json")
#: Exceptions zipfile and zlib raise on damaged archives, beside OSError.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, struct.error, KeyError)


@dataclass(frozen=True)
class ZipEntryFrames(PathFrames):
    """Frames of a compressed ``.npy`` entry, decompressed on each read.

    Each read opens the zip by path and decompresses the entry from its start to the
    last frame wanted, keeping one frame at a time beyond the output.

    Parameters
    ----------
    path : str
        The NPZ file.
    entry : str
        Name of the entry in the zip (``data.npy``).
    offset : int
        Length of the ``.npy`` header: the first frame's position in the entry.
    n_frames, ny, nx : int
        Frames, rows and columns.
    raw_dtype : str
        NumPy dtype string of the stored values.
    """

    path: str
    entry: str
    offset: int
    n_frames: int
    ny: int
    nx: int
    raw_dtype: str

    errors = (*_ZIP_ERRORS, OSError)

    @property
    def what(self) -> str:
        return self.entry

    def fill(self, out: np.ndarray, start: int) -> None:
        raw = np.dtype(self.raw_dtype)
        frame = self.ny * self.nx * raw.itemsize
        with zipfile.ZipFile(self.path) as zf, zf.open(self.entry) as f:
            f.seek(self.offset + start * frame)
            for k in range(len(out)):
                data = f.read(frame)
                if len(data) != frame:
                    raise CorruptFileError(
                        self.path,
                        f"{self.entry} ends within frame {start + k}; "
                        f"was the file changed after it was opened?",
                    )
                out[k] = np.frombuffer(data, dtype=raw).reshape(self.ny, self.nx)


def sniff(path: Path, head: bytes) -> bool:
    """True for a zip holding a ``data.npy`` entry, or any zip named ``.npz``.

    A zip named like ours is claimed even when damaged or without ``data``, so that
    :func:`read` says precisely what is wrong with it.
    """
    if not head.startswith(ZIP_SIGNATURE):
        return False
    if Path(path).suffix.lower() in FORMAT.extensions:
        return True
    try:
        with zipfile.ZipFile(path) as zf:
            return "data.npy" in zf.NameToInfo
    except Exception:  # whatever zipfile makes of a damaged file, sniffing must not raise
        return False


def read(path: str | os.PathLike[str]) -> Recording:
    """Parse an NPZ bundle's metadata and locate its frame arrays; frames are not read."""
    path = Path(path)
    with library_errors(
        path,
        (*_ZIP_ERRORS, OSError),
        lambda exc: f"is not a readable NPZ (zip) file; is it truncated or damaged? ({exc})",
        "cannot be opened",
    ):
        size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            return _read_open(path, size, zf)


# --- entries ---------------------------------------------------------------------------


class _Npy(NamedTuple):
    """Where an entry's values are and what they are."""

    header_len: int
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype


def _npy_header(path: Path, name: str, f: IO[bytes], start: int) -> _Npy:
    """Parse the ``.npy`` header at ``f``'s position ``start`` (never unpickles)."""
    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise CorruptFileError(path, f"entry {name} has no valid .npy header ({exc})") from exc
    return _Npy(f.tell() - start, tuple(int(s) for s in shape), bool(fortran), dtype)


def _entries(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The ``.npy`` entries by key (name without ``.npy``), as ``np.load`` names them."""
    out = {}
    for info in zf.infolist():
        if info.filename.endswith(".npy") and not info.is_dir():
            if info.flag_bits & 0x1:
                raise CorruptFileError(path, f"entry {info.filename} is encrypted")
            out[info.filename[: -len(".npy")]] = info
    return out


def _small(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    """A metadata entry's value: an array, or the ``str``/``bytes`` of a pickled one."""
    with zf.open(info) as f:
        head = _npy_header(path, info.filename, f, 0)
        payload = f.read(info.file_size - head.header_len)
    if head.dtype.hasobject:
        return _pickled_string(path, info.filename, payload)
    count = math.prod(head.shape)
    if head.dtype.itemsize * count != len(payload):
        raise CorruptFileError(
            path,
            f"entry {info.filename} holds {len(payload)} bytes of values, but its header "
            f"says shape {head.shape} of {head.dtype}",
        )
    order = "F" if head.fortran_order else "C"
    return np.frombuffer(payload, dtype=head.dtype).reshape(head.shape, order=order)


def _as_text(path: Path, key: str, value: Any) -> str:
    """The one string an entry holds (unicode array, bytes array or pickled string)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "US" and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptFileError(path, f"entry {key} is not UTF-8 text ({exc})") from exc
    if isinstance(value, str):
        return value
    raise CorruptFileError(
        path, f"entry {key} should hold one string but holds a {value.dtype} array"
    )


def _json(path: Path, key: str, value: Any) -> Any:
    try:
        return json.loads(_as_text(path, key, value))
    except json.JSONDecodeError as exc:
        raise CorruptFileError(path, f"entry {key} is not valid JSON: {exc}") from exc


# --- pickled strings, read without unpickling --------------------------------------------


class _Global(NamedTuple):
    module: str
    name: str


class _Call(NamedTuple):
    func: _Global
    args: tuple


class _Built(NamedTuple):
    obj: Any
    state: Any


#: The only callables a pickled numpy object array refers to.
_ALLOWED_GLOBALS = {
    _Global("numpy.core.multiarray", "_reconstruct"),
    _Global("numpy._core.multiarray", "_reconstruct"),
    _Global("numpy", "ndarray"),
    _Global("numpy", "dtype"),
}
_TEXT_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINBYTES",
    "BINBYTES",
    "BINBYTES8",
}
_INT_OPS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def _pickled_string(path: Path, name: str, payload: bytes) -> str | bytes:
    """The string in a pickled 0-d (or one-element) numpy object array, not unpickled.

    The opcodes are evaluated symbolically: globals, calls and BUILDs become plain
    records, nothing is imported or called. The result must be ``ndarray`` reconstructed
    with an object dtype and exactly one element that is a ``str`` or ``bytes``.
    """

    def bad(why: str) -> CorruptFileError:
        return CorruptFileError(
            path,
            f"entry {name} is a pickled object array that afmio does not read: {why} "
            f"(afmio reads only a pickled numpy array holding one string)",
        )

    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        if not marks:
            raise bad("malformed pickle (no MARK)")
        at = marks.pop()
        items = stack[at:]
        del stack[at:]
        return items

    def global_(module: Any, attr: Any) -> _Global:
        g = _Global(module, attr)
        if g not in _ALLOWED_GLOBALS:
            raise bad(f"it refers to {module}.{attr}")
        return g

    try:
        for op, arg, _ in pickletools.genops(payload):
            kind = op.name
            if kind in ("PROTO", "FRAME"):
                continue
            if kind == "STOP":
                break
            if kind in _TEXT_OPS or kind in _INT_OPS:
                stack.append(arg)
            elif kind in _CONSTANTS:
                stack.append(_CONSTANTS[kind])
            elif kind == "EMPTY_LIST":
                stack.append([])
            elif kind == "MARK":
                marks.append(len(stack))
            elif kind == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif kind in _TUPLE_N:
                n = _TUPLE_N[kind]
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif kind == "APPEND":
                item = stack.pop()
                stack[-1].append(item)
            elif kind == "APPENDS":
                items = pop_mark()
                stack[-1].extend(items)
            elif kind == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif kind in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif kind in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif kind == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                stack.append(global_(module, attr))
            elif kind == "GLOBAL":
                stack.append(global_(*str(arg).split(" ", 1)))
            elif kind == "REDUCE":
                args, func = stack.pop(), stack.pop()
                stack.append(_Call(func, args))
            elif kind == "BUILD":
                state = stack.pop()
                stack.append(_Built(stack.pop(), state))
            else:
                raise bad(f"it uses the pickle opcode {kind}")
        else:
            raise bad("the pickle has no STOP opcode (truncated?)")
    except AfmIOError:
        raise
    except (ValueError, IndexError, KeyError, AttributeError, TypeError) as exc:
        raise bad(f"malformed pickle ({exc})") from exc

    if len(stack) != 1:
        raise bad("malformed pickle")
    return _array_element(stack[0], bad)


def _array_element(result: Any, bad: Callable[[str], CorruptFileError]) -> str | bytes:
    """The one str/bytes element of a symbolically unpickled numpy object array."""
    if not (
        isinstance(result, _Built)
        and isinstance(result.obj, _Call)
        and isinstance(result.obj.func, _Global)
        and result.obj.func.name == "_reconstruct"
        and isinstance(result.obj.args, tuple)
        and result.obj.args[:1] == (_Global("numpy", "ndarray"),)
        and isinstance(result.state, tuple)
        and len(result.state) == 5
    ):
        raise bad("it is not a pickled numpy array")
    _, shape, dtype, _, values = result.state
    dtype_ok = (
        isinstance(dtype, _Built)
        and isinstance(dtype.obj, _Call)
        and dtype.obj.func == _Global("numpy", "dtype")
        and isinstance(dtype.obj.args, tuple)
        and len(dtype.obj.args) > 0
        and isinstance(dtype.obj.args[0], str)
        and dtype.obj.args[0].startswith("O")
    )
    if not dtype_ok or not isinstance(values, list) or not isinstance(shape, tuple):
        raise bad("it is not a numpy object array")
    if len(values) != 1:
        raise bad(f"it holds {len(values)} objects (shape {shape})")
    value = values[0]
    if not isinstance(value, (str, bytes)):
        raise bad(f"its element is a pickled {type(value).__name__}, not a string")
    return value


# --- frame arrays ----------------------------------------------------------------------


def _frames(path: Path, size: int, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> FrameSource:
    """A lazy source for a 3-D entry: read in place if stored, else decompressed."""
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(_LOCAL_HEADER.size)
            if len(local) != _LOCAL_HEADER.size or local[:4] != ZIP_SIGNATURE:
                raise CorruptFileError(
                    path, f"entry {info.filename} has no local file header at its offset"
                )
            name_len, extra_len = _LOCAL_HEADER.unpack(local)[-2:]
            start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
            f.seek(start)
            head = _npy_header(path, info.filename, f, start)
        if start + info.file_size > size:
            raise CorruptFileError(
                path,
                f"entry {info.filename} runs to byte {start + info.file_size} but the file "
                f"has {size} bytes; is it truncated?",
            )
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        with zf.open(info) as f:
            head = _npy_header(path, info.filename, f, 0)
        start = None
    else:
        raise CorruptFileError(
            path,
            f"entry {info.filename} uses zip compression method {info.compress_type}; "
            f"afmio reads stored or deflated entries",
        )
    if len(head.shape) != 3 or head.dtype.kind not in "fiub" or head.dtype.hasobject:
        raise CorruptFileError(
            path,
            f"entry {info.filename} holds a {head.dtype} array of shape {head.shape}, "
            f"not frames (a 3-D numeric array: frames, y, x)",
        )
    if head.fortran_order:  # np.save marks only arrays that are not also C-ordered
        raise CorruptFileError(
            path, f"entry {info.filename} is stored in Fortran order; frames are not contiguous"
        )
    n, ny, nx = head.shape
    expected = head.header_len + n * ny * nx * head.dtype.itemsize
    if info.file_size != expected:
        raise CorruptFileError(
            path,
            f"entry {info.filename} has {info.file_size} bytes, but its header says shape "
            f"{head.shape} of {head.dtype}, which needs {expected}",
        )
    if start is None:
        return ZipEntryFrames(str(path), info.filename, head.header_len, n, ny, nx, head.dtype.str)
    return StridedFrames(
        path=str(path),
        offset=start + head.header_len,
        stride=ny * nx * head.dtype.itemsize,
        skip=0,
        n_frames=n,
        ny=ny,
        nx=nx,
        raw_dtype=head.dtype.str,
        gain=None,
    )


# --- the whole bundle ------------------------------------------------------------------


def _read_open(path: Path, size: int, zf: zipfile.ZipFile) -> Recording:
    entries = _entries(path, zf)
    missing = [k for k in _REQUIRED if k not in entries]
    if missing:
        what = "no entries" if not entries else f"entries {', '.join(sorted(entries))}"
        raise CorruptFileError(
            path,
            f"is not an NPZ bundle: it lacks {', '.join(missing)} (it has {what})",
        )
    channel = _as_text(path, "channel", _small(path, zf, entries["channel"]))
    pixel = _small(path, zf, entries["pixel_size_nm"])
    if not (isinstance(pixel, np.ndarray) and pixel.size == 1 and pixel.dtype.kind in "fiu"):
        raise CorruptFileError(path, "entry pixel_size_nm should hold one number")
    pixel_size = float(pixel.reshape(()).item())
    meta = _json(path, "frame_metadata_json", _small(path, zf, entries["frame_metadata_json"]))
    provenance = _json(path, "provenance_json", _small(path, zf, entries["provenance_json"]))
    if not (isinstance(meta, list) and all(isinstance(m, dict) for m in meta)):
        raise CorruptFileError(path, "entry frame_metadata_json is not a list of objects")
    if not isinstance(provenance, dict):
        raise CorruptFileError(path, "entry provenance_json is not a JSON object")
    notes: dict[str, Any] = {}
    if "state_backups_json" in entries:
        info = entries["state_backups_json"]
        notes["state_backups"] = _json(path, "state_backups_json", _small(path, zf, info))

    data = _frames(path, size, zf, entries["data"])
    n = data.shape[0]
    if len(meta) != n:
        raise CorruptFileError(
            path, f"frame_metadata_json has {len(meta)} entries but data has {n} frames"
        )
    if "timestamps" in entries:
        stamps = _small(path, zf, entries["timestamps"])
        if not isinstance(stamps, np.ndarray) or stamps.dtype.kind not in "fiu":
            raise CorruptFileError(path, "entry timestamps is not a numeric array")
        if stamps.size != n:
            raise CorruptFileError(
                path, f"timestamps has {stamps.size} entries but data has {n} frames"
            )

    saved = _bundle.restore(path, provenance, channel, pixel_size, data.shape)
    channels = [saved.data(channel, data)]
    warnings: list[AfmIOWarning] = []
    for key, info in entries.items():
        if not key.startswith((model.LAYER_PREFIX, model.MASK_PREFIX)):
            continue
        role = "layer" if key.startswith(model.LAYER_PREFIX) else "mask"
        frames = _frames(path, size, zf, info)
        if frames.shape != data.shape:
            # One recording has one time axis (playNano keeps the pre-edit raw layer
            # after frames are dropped): such a layer cannot share the data's coords.
            warnings.append(
                AfmIOWarning(
                    f"{path}: {key} has shape {frames.shape}, not the data's "
                    f"{data.shape}; it is left out"
                )
            )
            continue
        channels.append(
            ChannelInfo(
                name=key,
                native=key,
                units=str(saved.attrs.get("units", "nm")) if role == "layer" else "",
                long_name=key,
                frames=frames,
                role=role,
                dtype="float32" if role == "layer" else "bool",
            )
        )
    notes["entries"] = {
        k: "stored" if i.compress_type == zipfile.ZIP_STORED else "deflated"
        for k, i in entries.items()
    }
    time_s, frame_coords = layouts.frame_coords_from_metadata(meta)
    return _bundle.recording(
        path, FORMAT.name, "", size, saved, channels, time_s, frame_coords, notes, warnings
    )


READER = Reader(FORMAT, sniff, read, container="zip", priority=10)
