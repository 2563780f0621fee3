"""Faults found running afmio on real files the tests had not seen (issue 10, "Found on
real files"): playNano's default channel on Nanoscope files. (Output names, --name and
the summary table are tested in test_batch.py and test_cli.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import afmio
from afmio.synthetic.nanoscope import NanoscopeImage, write_nanoscope

from conftest import random_levels

NANOSCOPE = ["jmarini_nanoscope_full_multiple_images.000", "nims_scilab4spm_data1.007"]


# --- load_afm_stack: playNano's default channel ----------------------------------------


@pytest.mark.parametrize("name", NANOSCOPE)
def test_load_afm_stack_opens_the_height_retrace_of_real_nanoscope_files(data_dir, name):
    path = data_dir / name
    assert "height_trace" not in afmio.channels(path)
    stack = afmio.load_afm_stack(path)
    assert stack.attrs["channel"] == stack.name == "height_retrace"
    assert stack.identical(afmio.open(path, "height_retrace"))


def nanoscope(tmp_path, *names: tuple[str, str]):
    """A one-frame Nanoscope file with channels ``(name, line direction)``, in order."""
    images = [
        NanoscopeImage(n, random_levels(1, 4, 6, seed=i)[0], line_direction=d)
        for i, (n, d) in enumerate(names)
    ]
    return write_nanoscope(tmp_path / "frame.spm", images)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ((("Amplitude", "Retrace"), ("Height Sensor", "Retrace")), "height_sensor_retrace"),
        ((("Height Sensor", "Retrace"), ("Height", "Retrace")), "height_retrace"),
        ((("Height", "Retrace"), ("Height", "Trace")), "height_trace"),
    ],
)
def test_load_afm_stack_default_is_the_files_height_channel(tmp_path, names, expected):
    path = nanoscope(tmp_path, *names)
    stack = afmio.load_afm_stack(path, chunks=1, dtype="float64")
    assert stack.attrs["channel"] == expected
    assert stack.dtype == np.float64
    assert stack.identical(afmio.open(path, expected, chunks=1, dtype="float64"))


def test_load_afm_stack_without_a_height_channel_lists_the_channels(tmp_path):
    path = nanoscope(tmp_path, ("Amplitude", "Retrace"), ("Phase", "Trace"))
    with pytest.raises(afmio.ChannelNotFoundError, match=r"amplitude_retrace.*phase_trace"):
        afmio.load_afm_stack(path)
    assert afmio.load_afm_stack(path, "phase_trace").attrs["channel"] == "phase_trace"
    assert afmio.load_afm_stack(path, None).identical(afmio.open(path))
