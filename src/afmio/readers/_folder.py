"""Folder videos: one frame per file, for every format whose instrument saves a run so.

A reader gives :func:`read_frames` its per-file ``parse`` function and what must agree
across a video (:class:`Majority` stages: the frame shape, the channel layout...). The
member files are listed (regular files only, named as the format's frame files), parsed
one by one, and the frames of the majority kept, ordered by acquisition time (the first
clock every kept frame has) and then by natural name order (``frame9`` before
``frame10``). Files that cannot be read or do not agree with the majority are left out
with one warning naming them; problems of kept files are reported by :class:`Problems`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from ..errors import AfmIOError, AfmIOWarning, AfmOSError, CorruptFileError, UnsupportedFormatError
from .base import FormatInfo, Recording

#: File names quoted in one warning; the rest are counted.
MAX_LISTED = 10

_DIGITS = re.compile(r"(\d+)")


class FrameFile(Protocol):
    """What a reader's ``parse`` returns for one file: at least its path and size."""

    path: Path
    size: int


F = TypeVar("F", bound=FrameFile)


def listing(names: Sequence[str]) -> str:
    """``a, b, c and 7 more``: at most :data:`MAX_LISTED` names."""
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def natural(path: Path) -> list:
    """Sort key putting 'frame9' before 'frame10' (text and numbers alternate)."""
    parts: list = _DIGITS.split(path.name.casefold())
    parts[1::2] = map(int, parts[1::2])
    return parts


def majority(items: Sequence[F], key: Callable[[F], Hashable]) -> Hashable:
    """The most common ``key`` of ``items``; ties go to the one seen first."""
    counts = Counter(key(i) for i in items)
    return max(counts, key=counts.__getitem__)


@dataclass(frozen=True)
class Majority(Generic[F]):
    """One thing the frames of a video must agree on.

    ``key(frame)`` is computed for every frame still kept, the most common one wins, and
    ``why(frame, winner)`` says why a frame does not fit it (None: it fits).
    """

    key: Callable[[F], Hashable]
    why: Callable[[F, Hashable], str | None]


def unlike(key: Callable[[F], Hashable], describe: Callable[[Hashable], str]) -> Majority[F]:
    """A :class:`Majority` of equal keys, a misfit described as ``mine, unlike theirs``."""

    def why(frame: F, winner: Hashable) -> str | None:
        own = key(frame)
        if own == winner:
            return None
        return f"{describe(own)}, unlike the majority's {describe(winner)}"

    return Majority(key, why)


@dataclass
class Frames(Generic[F]):
    """The frames of a video (or of one file) and what was left out.

    ``winners`` holds the winning key of each :class:`Majority` stage; ``clock`` the index
    of the clock that ordered the frames, None for name order.
    """

    frames: list[F]
    winners: tuple[Hashable, ...]
    clock: int | None
    listed: int
    folder: bool
    left_out: dict[str, str] = field(default_factory=dict)
    warnings: list[AfmIOWarning] = field(default_factory=list)

    def recording(self, path: Path, format: FormatInfo, **fields: Any) -> Recording:
        """The Recording of the video at ``path``: its size is the total of its frame
        files; ``fields`` are the other fields of :class:`Recording`."""
        size = sum(f.size for f in self.frames)
        return Recording(path=str(path), format=format.name, size_bytes=size, **fields)


def read_frames(
    path: Path,
    parse: Callable[[Path], F],
    *,
    member: Callable[[Path], bool],
    what: str,
    stages: Sequence[Majority[F]],
    clocks: Sequence[Callable[[F], float | None]] = (),
) -> Frames[F]:
    """The frames of ``path``, a frame file or a folder of them (see the module docstring).

    ``what`` names the files in messages (``".jpk"``, ``"Nanoscope"``). A single file is
    parsed and its errors raised; in a folder, a file whose ``parse`` raises an afmio error
    is left out, and only a folder with no readable file is an error.
    """
    if not path.is_dir():
        frames = [parse(path)]
        return _select(path, frames, {}, 1, False, stages, clocks)
    files = _members(path, member, what)
    frames, failed = [], {}
    for file in files:
        try:
            frames.append(parse(file))
        except AfmIOError as exc:  # one damaged file should not cost the rest of the video
            failed[file.name] = exc.problem
    if not frames:
        name, problem = next(iter(failed.items()))
        raise CorruptFileError(
            path, f"none of its {len(files)} {what} files can be read (first, {name}: {problem})"
        )
    return _select(path, frames, failed, len(files), True, stages, clocks)


def _members(folder: Path, member: Callable[[Path], bool], what: str) -> list[Path]:
    """The regular files of ``folder`` named like frame files, in natural name order."""
    try:
        files = [Path(e.path) for e in os.scandir(folder) if member(Path(e.path)) and e.is_file()]
    except OSError as exc:
        raise AfmOSError(folder, f"cannot list the folder: {exc.strerror or exc}") from exc
    if not files:
        raise UnsupportedFormatError(folder, f"is a folder without {what} files")
    return sorted(files, key=natural)


def _select(
    path: Path,
    frames: list[F],
    failed: dict[str, str],
    listed: int,
    folder: bool,
    stages: Sequence[Majority[F]],
    clocks: Sequence[Callable[[F], float | None]],
) -> Frames[F]:
    """Keep the majority of every stage in turn, order the rest, and warn once."""
    left_out = dict(failed)
    winners = []
    for stage in stages:
        winner = majority(frames, stage.key)
        winners.append(winner)
        kept = []
        for f in frames:
            why = stage.why(f, winner)
            if why is None:
                kept.append(f)
            else:
                left_out[f.path.name] = why
        frames = kept
    clock = next((i for i, c in enumerate(clocks) if all(c(f) is not None for f in frames)), None)
    if clock is not None:
        frames = sorted(frames, key=clocks[clock])  # stable: equal times keep name order
    result = Frames(frames, tuple(winners), clock, listed, folder, left_out)
    if left_out:
        reasons = [f"{name} ({why})" for name, why in left_out.items()]
        result.warnings.append(
            AfmIOWarning(f"{path}: left out {len(left_out)} of {listed} files: {listing(reasons)}")
        )
    return result


class Problems:
    """Problems of the kept frame files, one warning per problem naming the files."""

    def __init__(self, path: Path, frames: Frames) -> None:
        self.path, self.n_files, self.folder = path, len(frames.frames), frames.folder
        self.items: dict[tuple[type[AfmIOWarning], str], list[str]] = {}

    def add(self, problem: str, file: Path, cls: type[AfmIOWarning] = AfmIOWarning) -> None:
        self.items.setdefault((cls, problem), []).append(file.name)

    def warnings(self) -> list[AfmIOWarning]:
        out = []
        for (cls, problem), names in self.items.items():
            where = f" (in {len(names)} of {self.n_files} files: {listing(names)})"
            out.append(cls(f"{self.path}: {problem}{where if self.folder else ''}"))
        return out
