"""Format detection: content first, then the name; folders by their most common type."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import afmio
from afmio.synthetic import NanoscopeImage, write_nanoscope

from conftest import random_levels


def _nanoscope(path, seed=0):
    return write_nanoscope(path, [NanoscopeImage("Height", random_levels(1, 4, 5, seed)[0])])


def test_content_wins_over_the_name(make_asd, tmp_path):
    asd = make_asd()
    renamed = shutil.copy(asd, tmp_path / "recording.bin")
    assert afmio.open(renamed).attrs["source"]["format"] == "asd"
    spm = _nanoscope(tmp_path / "frame.asd")  # a Nanoscope file misnamed .asd
    assert afmio.open(spm).attrs["source"]["format"] == "nanoscope"


def test_the_name_chooses_the_reader_for_damaged_content(tmp_path):
    garbage = np.random.default_rng(0).bytes(3000)
    for name in ("x.spm", "x.SPM", "x.002"):
        (tmp_path / name).write_bytes(garbage)
        with pytest.raises(afmio.CorruptFileError, match=name):
            afmio.open(tmp_path / name)


def test_a_folder_opens_as_its_most_common_frame_type(tmp_path, make_asd):
    for i in range(3):
        _nanoscope(tmp_path / f"frame.{i:03d}", seed=i)
    make_asd("stray.asd")  # not a frame file: ignored by the folder reader
    video = afmio.open(tmp_path)
    assert video.attrs["source"]["format"] == "nanoscope"
    assert video.sizes["time"] == 3


def test_an_empty_folder_lists_what_afmio_reads(tmp_path):
    with pytest.raises(afmio.UnsupportedFormatError, match="no frame files") as info:
        afmio.open(tmp_path)
    assert "nanoscope" in str(info.value)


def test_formats_lists_every_reader_with_its_extensions():
    found = {f.name: f.extensions for f in afmio.formats()}
    assert found["asd"] == (".asd",)
    assert ".spm" in found["nanoscope"]
    assert set(found) == {
        "asd", "jpk", "h5-jpk", "nanoscope", "h5-bundle", "npz-bundle", "ome-tiff", "zarr"
    }  # fmt: skip


def test_detecting_and_opening_an_h5_bundle_opens_it_at_most_twice(make_asd, tmp_path, monkeypatch):
    """The HDF5 sniffers share one look inside; reading the metadata is the second open."""
    path = tmp_path / "clip.h5"
    original = afmio.open(make_asd())
    afmio.save_h5_bundle(path, original)
    opened = []

    class CountingFile(h5py.File):
        def __init__(self, name, *args, **kwargs):
            if Path(name) == path:
                opened.append(name)
            super().__init__(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", CountingFile)
    video = afmio.open(path)
    assert len(opened) <= 2
    assert video.shape == original.shape
