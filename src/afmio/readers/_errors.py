"""Afmio's errors from what a file starts with or what a parsing library raises."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import AfmIOError, AfmOSError, CorruptFileError, UnsupportedFormatError


def refuse_signatures(path: Path, head: bytes, known: Sequence[tuple[bytes, str]]) -> None:
    """Raise UnsupportedFormatError with the problem of the first ``(signature, problem)``
    that ``head`` starts with: a kin of the format that the reader does not read."""
    for signature, problem in known:
        if head.startswith(signature):
            raise UnsupportedFormatError(path, problem)


@contextmanager
def library_errors(
    path: Path,
    damaged: tuple[type[Exception], ...],
    problem: Callable[[Exception], str],
    unreadable: str = "cannot be read",
) -> Iterator[None]:
    """Turn what a library raises while parsing ``path`` into afmio's errors: a missing or
    forbidden file is an AfmOSError (``unreadable: why``), a ``damaged`` exception a
    CorruptFileError saying ``problem(exc)``; afmio's own errors pass."""
    try:
        yield
    except AfmIOError:
        raise
    except (FileNotFoundError, PermissionError) as exc:
        raise AfmOSError(path, f"{unreadable}: {exc.strerror or exc}") from exc
    except damaged as exc:
        raise CorruptFileError(path, problem(exc)) from exc
