"""Exceptions and warnings raised by afmio.

Every failure afmio reports is an :class:`AfmIOError`. Each subclass also inherits the
built-in exception that fits (``ValueError`` for bad content, ``OSError`` for paths), so
code that already catches those keeps working.
"""

from __future__ import annotations

import os


class AfmIOError(Exception):
    """Base class of every afmio error; ``path`` names the file concerned."""

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{self.path}: {problem}")

    def __reduce__(self):  # keep pickling (dask.distributed) working with two arguments
        return (type(self), (self.path, self.problem))


class CorruptFileError(AfmIOError, ValueError):
    """The file is of a known format but its content is damaged or inconsistent."""


class UnsupportedFormatError(AfmIOError, ValueError):
    """The file is of no format afmio reads."""


class ChannelNotFoundError(AfmIOError, ValueError):
    """The requested channel is not in the file; the message lists the ones that are."""


class AfmFileNotFoundError(AfmIOError, FileNotFoundError):
    """The path does not exist."""


class AfmFileExistsError(AfmIOError, FileExistsError):
    """The export target exists and ``overwrite=True`` was not given."""


class AfmOSError(AfmIOError, OSError):
    """The path exists but cannot be read (permissions, I/O error)."""


class AfmNoSpaceError(AfmOSError):
    """An export ran out of room: the disk or quota is full, or the file reached a size
    limit. Nothing was left under the target's name."""


class AfmIOWarning(UserWarning):
    """Base class of afmio warnings: the data was read, but something was off."""


class TruncatedFileWarning(AfmIOWarning):
    """The file has missing or extra bytes; only its sound part was read."""
