"""The command line: ``afmio demo`` and ``--version``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import afmio
from afmio.cli import main


def test_demo_writes_and_opens_the_example(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "example.asd"
    assert f"wrote {path}" in out
    assert "opened it lazily in" in out
    assert "channels: height_trace, phase_trace" in out
    assert "time: 300, y: 128, x: 128" in out
    assert "300 frames, 0.1 s apart, duration 30 s" in out
    video = afmio.open(path)
    heights = video.afm.frame(0)
    # A tilted surface with particles a few nm high: the demo's data is what it says.
    assert 0 < float(np.ptp(heights)) < 20
    assert afmio.open(path, "phase_trace").attrs["units"] == "deg"


def test_version_and_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "afmio", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"afmio {afmio.__version__}"
