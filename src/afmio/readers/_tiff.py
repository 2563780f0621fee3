"""Bounded reading of TIFF image directories (IFDs), for every TIFF-based reader.

Classic TIFF and BigTIFF, either byte order. Every read is a positioned read checked
against the file size, so a damaged count or offset gives a :class:`CorruptFileError`
naming what runs past the end, never a huge read; :meth:`Tiff.following` stops at a loop in
the chain of IFDs. A few KiB are read at a time and kept, because headers store each
IFD's values right after its entries: parsing a file's headers costs a few reads.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import AfmIOError, AfmOSError, CorruptFileError

#: Classic TIFF and BigTIFF signatures, little- and big-endian.
CLASSIC = (b"II*\x00", b"MM\x00*")
BIG = (b"II+\x00", b"MM\x00+")
#: Bytes read after the start of an IFD (entries and values), unless told otherwise.
IFD_READ = 4096

# Numeric field types decoded by Ifd.get (ASCII, 2, is decoded apart); others give None.
_NUMERIC = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 11: "f", 12: "d"}
# Bytes per value of every field type, to find where a value lies (unknown types: 0).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_TYPE_SIZES.update({13: 4, 16: 8, 17: 8, 18: 8})


class IfdLoopError(CorruptFileError):
    """The chain of IFDs comes back to an IFD read before, or is implausibly long."""


@lru_cache(maxsize=128)
def _entries_struct(order: str, big: bool, n: int) -> struct.Struct:
    """``n`` IFD entries (tag, type, count, value or offset) and the next-IFD offset."""
    return struct.Struct(order + ("HHQ8s" if big else "HHI4s") * n + ("Q" if big else "I"))


class Tiff:
    """Positioned reads of one open TIFF file, never past its end, kept in a few windows.

    :meth:`first_ifd` reads the file header and sets the byte order and variant
    (classic or BigTIFF) that :meth:`ifd` uses.
    """

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path, self.fd, self.size = path, fd, size
        self.order, self.big = ">", False
        self._windows: list[tuple[int, bytes]] = []

    @property
    def endian(self) -> str:
        """The byte order as :meth:`int.from_bytes` names it."""
        return "big" if self.order == ">" else "little"

    def fetch(self, offset: int, length: int, ahead: int = 0) -> bytes | None:
        """``length`` bytes at ``offset``, or None if they run past the end of the file."""
        end = offset + length
        if offset < 0 or end > self.size:
            return None
        for start, buf in self._windows:
            if start <= offset and end <= start + len(buf):
                return buf[offset - start : end - start]
        buf = os.pread(self.fd, min(self.size, offset + max(length, ahead)) - offset, offset)
        if len(buf) < length:
            raise CorruptFileError(self.path, "the file shrank while its header was being read")
        self._windows.append((offset, buf))
        return buf[:length]

    def read(self, offset: int, length: int, what: str, ahead: int = 0) -> bytes:
        """Like :meth:`fetch`, but bytes past the end are a truncated header."""
        data = self.fetch(offset, length, ahead)
        if data is None:
            raise self.truncated(offset + length, what)
        return data

    def truncated(self, end: int, what: str) -> CorruptFileError:
        return CorruptFileError(
            self.path,
            f"truncated header: the {what} runs to byte {end} but the file has only "
            f"{self.size} bytes",
        )

    def first_ifd(self, ahead: int = IFD_READ) -> int:
        """Read the file header (and ``ahead`` bytes with it); the offset of IFD 0."""
        head = self.read(0, 8, "TIFF header", ahead=ahead)
        if head[:4] not in CLASSIC + BIG:
            raise CorruptFileError(self.path, f"is not a TIFF file (it starts with {head[:4]!r})")
        self.order, self.big = (">" if head[:2] == b"MM" else "<"), head[:4] in BIG
        if not self.big:
            return struct.unpack(self.order + "I", head[4:8])[0]
        return struct.unpack(self.order + "Q", self.read(8, 8, "BigTIFF header"))[0]

    def ifd(self, offset: int, index: int) -> Ifd:
        """IFD ``index`` (for messages), whose entries start at byte ``offset``."""
        count_size, entry_size, next_size = (8, 20, 8) if self.big else (2, 12, 4)
        head = self.fetch(offset, count_size, IFD_READ)
        n = 0 if head is None else int.from_bytes(head, self.endian)
        length = entry_size * n + next_size
        body = None if head is None else self.fetch(offset + count_size, length)
        if body is None:
            raise self.truncated(offset + count_size + length, f"IFD {index} (at byte {offset})")
        fields = _entries_struct(self.order, self.big, n).unpack(body)
        entries = dict(
            zip(
                fields[0:-1:4],
                zip(fields[1:-1:4], fields[2:-1:4], fields[3:-1:4], strict=True),
                strict=True,
            )
        )
        return Ifd(self, index, offset, entries, fields[-1])

    def following(self, ifd: Ifd, last: int) -> Iterator[Ifd]:
        """The IFDs after ``ifd``, following each one's next-IFD offset.

        Raises :class:`IfdLoopError` instead of reading an IFD a second time or one of an
        index past ``last``, and :class:`CorruptFileError` for one that runs past the end.
        """
        seen = {ifd.offset}
        offset, index = ifd.next, ifd.index + 1
        while offset:
            if offset in seen or index > last:
                raise IfdLoopError(
                    self.path, f"IFD chain loops after IFD {index - 1} (or passes {last} IFDs)"
                )
            seen.add(offset)
            ifd = self.ifd(offset, index)
            yield ifd
            offset, index = ifd.next, index + 1


class Ifd:
    """The entries of one IFD by tag (type, count, value or offset), decoded on request."""

    __slots__ = ("entries", "index", "next", "offset", "tiff")

    def __init__(
        self,
        tiff: Tiff,
        index: int,
        offset: int,
        entries: dict[int, tuple[int, int, bytes]],
        next_offset: int,
    ) -> None:
        self.tiff, self.index, self.offset, self.entries = tiff, index, offset, entries
        self.next = next_offset

    def _inline(self, size: int) -> bool:
        return size <= (8 if self.tiff.big else 4)

    def get(self, tag: int) -> Any:
        """Decoded value of ``tag``: str, a number, a tuple of numbers, or None."""
        entry = self.entries.get(tag)
        if entry is None:
            return None
        kind, count, raw = entry
        code = _NUMERIC.get(kind)
        if kind != 2 and (code is None or count == 0):
            return None  # a type no reader uses for the tags it decodes
        size = count * _TYPE_SIZES[kind]
        if self._inline(size):
            data = raw[:size]
        else:
            at = int.from_bytes(raw, self.tiff.endian)
            data = self.tiff.fetch(at, size)
            if data is None:
                raise self.tiff.truncated(at + size, f"value of tag {tag:#x} in IFD {self.index}")
        if kind == 2:
            return data.split(b"\x00", 1)[0].decode("utf-8", "replace")
        values = struct.unpack(f"{self.tiff.order}{count}{code}", data)
        return values[0] if count == 1 else values

    def value_ends(self) -> Iterator[tuple[int, int]]:
        """``(tag, end)`` for every tag whose value lies outside the IFD, ``end`` being the
        byte after its last (types of unknown size are skipped)."""
        for tag, (kind, count, raw) in self.entries.items():
            size = count * _TYPE_SIZES.get(kind, 0)
            if not self._inline(size):
                at = int.from_bytes(raw, self.tiff.endian)
                yield tag, at + size


@contextmanager
def open_tiff(path: Path) -> Iterator[Tiff]:
    """``path`` open for header reads; any low-level failure becomes an afmio error."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise AfmOSError(path, f"cannot be read: {exc.strerror or exc}") from exc
    try:
        yield Tiff(path, fd, os.fstat(fd).st_size)
    except AfmIOError:
        raise
    except (struct.error, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise CorruptFileError(path, f"malformed TIFF structure ({exc})") from exc
    except OSError as exc:
        raise AfmOSError(path, f"cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
