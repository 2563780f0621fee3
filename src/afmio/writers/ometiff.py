"""Placeholder, being written: see issue 4."""

from __future__ import annotations

from pathlib import Path

from ._common import BundleContent, Progress


def write(
    path: Path, content: BundleContent, *, overwrite: bool = False, progress: Progress | None = None
) -> Path:
    """Not implemented yet."""
    raise NotImplementedError
