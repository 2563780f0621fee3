"""HDF5 for the readers: one shared look at a file's root for the sniffers, opening a file
to parse it with every h5py failure turned into an afmio error, and the one way readers
reach a group or dataset, which refuses anything stored outside the file.

HDF5 lets a file hand out other files' bytes as its own: external links
(``h5py.ExternalLink``), external storage (a dataset whose bytes live in raw files) and
virtual datasets (VDS, mapped from datasets of other files, or their fill value when
those are missing). afmio reads nothing but its input, so :func:`member` walks each path
link by link (never letting HDF5 follow a link into another file, so none is even opened)
and refuses a dataset that is not stored in the file itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import AfmIOError, AfmOSError, CorruptFileError, UnsupportedFormatError
from .base import Recording

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: Soft links followed in one path before it counts as a loop (HDF5's own default).
_MAX_SOFT_LINKS = 16
#: Why objects stored elsewhere are refused, in every such error.
_OUTSIDE = "afmio reads nothing outside the input"


@dataclass(frozen=True)
class Root:
    """What the sniffers need of an HDF5 file: its root's members and scalar attributes.

    ``error`` says why h5py could not open the file (the other fields are then empty).
    """

    datasets: frozenset[str] = frozenset()
    #: Each root group and the names of the groups it holds.
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Root attributes holding one value (arrays of more are left out).
    attrs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(cls, f: h5py.File) -> Root:
        """The root of an open file."""
        datasets, groups = set(), {}
        for name in f:
            obj = _quiet_member(f, name)
            if isinstance(obj, h5py.Dataset):
                datasets.add(name)
            elif isinstance(obj, h5py.Group):
                groups[name] = frozenset(
                    k for k in obj if isinstance(_quiet_member(obj, k), h5py.Group)
                )
        attrs = {}
        for key in f.attrs:
            try:
                value = f.attrs[key]
            except (OSError, TypeError, ValueError):
                continue  # a type h5py cannot convert: no sniffer relies on it
            if np.size(value) == 1:
                attrs[key] = value
        return cls(frozenset(datasets), groups, attrs)


def root(path: Path) -> Root:
    """The :class:`Root` of the HDF5 file at ``path``; never raises.

    Cached on the file's identity and state, so that the HDF5 sniffers of one detection
    open the file once between them.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return Root(error=str(exc))
    return _root(str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@lru_cache(maxsize=8)
def _root(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> Root:
    try:
        with h5py.File(path, "r") as f:
            return Root.of(f)
    except Exception as exc:  # whatever h5py makes of a damaged file, sniffing must not raise
        return Root(error=str(exc))


def read_hdf5(
    path: Path, parse: Callable[[Path, int, h5py.File], Recording], what: str
) -> Recording:
    """Check the signature, open ``path`` with h5py and ``parse(path, size, file)`` it.

    ``what`` names the format in the error for a file that is not HDF5 at all.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        raise AfmOSError(path, f"cannot be read: {exc.strerror or exc}") from exc
    if size == 0:
        raise CorruptFileError(path, "file is empty (0 bytes)")
    if head != HDF5_SIGNATURE:
        raise CorruptFileError(
            path, f"is not an HDF5 file (no HDF5 signature at its start), so not {what}"
        )
    try:
        with h5py.File(path, "r") as f:
            return parse(path, size, f)
    except AfmIOError:
        raise
    except (FileNotFoundError, PermissionError) as exc:
        raise AfmOSError(path, f"cannot be opened: {exc.strerror or exc}") from exc
    except OSError as exc:
        raise CorruptFileError(
            path, f"HDF5 file is truncated or damaged; h5py cannot read it: {exc}"
        ) from exc
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise CorruptFileError(path, f"damaged HDF5 structure: {exc}") from exc


def member(path: Path, group: h5py.Group, name: str) -> h5py.Group | h5py.Dataset | None:
    """The group or dataset at ``name`` (relative to ``group``, or absolute), None if there
    is none (a named datatype is none either).

    Every link on the way is looked at before it is followed, so no other file is opened.
    Raises :class:`~afmio.errors.UnsupportedFormatError` naming ``path`` when the path
    goes through a link into another file, or ends at a dataset whose data are stored
    outside the file (external storage, virtual dataset), and
    :class:`~afmio.errors.CorruptFileError` for a soft-link loop or a user-defined link.
    """
    where = name if name.startswith("/") else f"{group.name.rstrip('/')}/{name}"
    obj = _walk(path, group, name, where)
    if isinstance(obj, h5py.Dataset):
        _check_storage(path, obj, where)
        return obj
    return obj if isinstance(obj, h5py.Group) else None


def reopened(
    path: str,
    f: h5py.File,
    name: str,
    label: str,
    opened: str,
    fits: Callable[[h5py.Dataset], bool],
) -> h5py.Dataset:
    """Dataset ``name`` of ``f``, a file a frame source reopened by path, checked again.

    The file may have been replaced since it was opened, by one whose data are elsewhere
    or of another shape: :func:`member` looks at its storage again (a few header lookups,
    nothing beside a frame's read) and ``fits(dataset)`` at its shape. ``label`` names the
    dataset in errors and ``opened`` is the shape it had when opened.
    """
    ds = member(Path(path), f, name)
    changed = "was the file changed after it was opened?"
    if not isinstance(ds, h5py.Dataset):
        raise CorruptFileError(path, f"{label} is no longer a dataset; {changed}")
    if not fits(ds):
        raise CorruptFileError(
            path,
            f"{label} now has shape {ds.shape}, not the {opened} it had when opened; {changed}",
        )
    return ds


def _quiet_member(group: h5py.Group, name: str) -> h5py.HLObject | None:
    """The object at ``name``, None for a link into another file (or a broken one): for
    the sniffers, which look at the structure and leave the errors to the reader."""
    try:
        return _walk(Path(group.file.filename), group, name, name)
    except AfmIOError:
        return None


def _walk(
    path: Path, group: h5py.Group, name: str, where: str, depth: int = 0
) -> h5py.HLObject | None:
    """Follow ``name`` from ``group`` one link at a time; ``depth`` counts the soft links
    being resolved within one another (a loop of them never ends otherwise)."""
    obj: h5py.HLObject = group.file if name.startswith("/") else group
    walked = "" if name.startswith("/") else group.name.rstrip("/")
    for part in (p for p in name.split("/") if p and p != "."):
        if not isinstance(obj, h5py.Group):
            return None  # a path through a dataset leads nowhere
        walked += f"/{part}"
        # A one-part name is looked up in the group itself: no link is traversed.
        try:
            link = obj.get(part, getlink=True)
        except TypeError as exc:  # h5py: "Unknown link type"
            raise CorruptFileError(
                path, f"its {walked} is a user-defined HDF5 link, which afmio does not follow"
            ) from exc
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise UnsupportedFormatError(
                path,
                f"its {where} is a link into another file, {_name(link.filename)} "
                f"(HDF5 external link at {walked}): {_OUTSIDE}",
            )
        if isinstance(link, h5py.SoftLink):
            if depth == _MAX_SOFT_LINKS:
                raise CorruptFileError(path, f"its {where} goes through a loop of soft links")
            target = _walk(path, obj, link.path, where, depth + 1)
            if target is None:
                return None  # a dangling soft link
            obj = target
        else:
            obj = obj[part]
    return obj


def _check_storage(path: Path, ds: h5py.Dataset, where: str) -> None:
    """Refuse a dataset whose values are not stored in the file itself."""
    plist = ds.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        sources = sorted(
            {_name(plist.get_virtual_filename(i)) for i in range(plist.get_virtual_count())}
        )
        raise UnsupportedFormatError(
            path,
            f"its {where} is mapped from {', '.join(sources)} (HDF5 virtual dataset): "
            f"{_OUTSIDE}, and only data stored in the dataset itself",
        )
    if plist.get_external_count():
        files = [_name(plist.get_external(i)[0]) for i in range(plist.get_external_count())]
        raise UnsupportedFormatError(
            path,
            f"its {where} is stored in another file, {', '.join(files)} "
            f"(HDF5 external storage): {_OUTSIDE}",
        )


def _name(raw: str | bytes) -> str:
    """A file name found in the file, quoted and cut short for a message (it is the
    file's say, not a path of ours); ``.`` (a virtual dataset's own file) named so."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if text == ".":
        return "this file's own datasets"
    return repr(text if len(text) <= 120 else text[:117] + "...")
