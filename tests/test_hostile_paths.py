"""Paths that are not data files: refused up front, never read, never a hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import afmio


def _open_in_child(path: Path, timeout: float = 20) -> subprocess.CompletedProcess:
    """Open ``path`` with afmio in a fresh process (a regression must hang only the child)."""
    code = (
        "import sys, afmio\n"
        "try:\n"
        "    afmio.open(sys.argv[1])\n"
        "except afmio.AfmIOError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=timeout
    )


def test_a_fifo_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "recording.asd"
    os.mkfifo(fifo)
    out = _open_in_child(fifo)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("UnsupportedFormatError")
    assert "recording.asd" in out.stdout
    assert "not a regular file" in out.stdout


def test_a_fifo_in_a_folder_is_skipped(tmp_path):
    os.mkfifo(tmp_path / "frame.000")  # named like a Nanoscope frame file
    with pytest.raises(afmio.UnsupportedFormatError, match="no frame files"):
        afmio.open(tmp_path)
    assert afmio.readers.sniff(tmp_path / "frame.000") is None
