"""Which reader wins where formats share a container (TIFF, HDF5, ZIP, Zarr), pinned.

``readers.sniff`` answers by content (a reader may also claim a damaged file of its
container named like its own, so that its error says what is wrong) and never raises;
``readers.detect`` also hands a file to the reader its name claims, and names a container
afmio does not read as what it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import xarray as xr

import afmio
from afmio import readers
from afmio.synthetic import JpkChannel, write_h5jpk, write_jpk

from conftest import random_levels


@pytest.fixture
def video(make_asd):
    return afmio.open(make_asd())


def _copy(path: Path, name: str) -> Path:
    target = path.with_name(name)
    if path.is_dir():
        shutil.copytree(path, target)
    else:
        shutil.copyfile(path, target)
    return target


def _jpk(tmp_path: Path) -> Path:
    levels = random_levels(1, 6, 9)[0].astype(np.int32)
    return write_jpk(tmp_path / "image.jpk", [JpkChannel("height", False, levels)])


def _h5jpk(tmp_path: Path) -> Path:
    levels = random_levels(3, 6, 9).astype(np.int32)
    path = tmp_path / "video.h5-jpk"
    return write_h5jpk(path, {"height_trace": levels}, n_frames=3, shape=(6, 9))


def _names(path: Path) -> tuple[str | None, str]:
    """(the reader ``sniff`` picks, the reader ``detect`` picks) for ``path``."""
    sniffed = readers.sniff(path)
    return (sniffed and sniffed.name), readers.detect(path).name


def test_tiff_jpk_before_ome_tiff_before_any_tiff(tmp_path, video):
    jpk = _jpk(tmp_path)
    ome = afmio.save_ome_tiff_stack(tmp_path / "stack", video)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((2, 4, 5), "float32"))
    assert _names(jpk) == ("jpk", "jpk")
    assert _names(_copy(jpk, "image.tif")) == ("jpk", "jpk")  # content, not the name
    assert _names(ome) == ("ome-tiff", "ome-tiff")
    assert _names(_copy(ome, "stack.jpk")) == ("ome-tiff", "ome-tiff")
    assert _names(plain) == ("ome-tiff", "ome-tiff")  # any other TIFF: the TIFF reader


def test_hdf5_h5jpk_before_bundle_before_other_hdf5(tmp_path, video):
    h5jpk = _h5jpk(tmp_path)
    bundle = afmio.save_h5_bundle(tmp_path / "bundle", video)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros((2, 4, 5), "float32")  # a bundle's name, but nothing else
    assert _names(h5jpk) == ("h5-jpk", "h5-jpk")
    assert _names(_copy(h5jpk, "video.h5")) == ("h5-jpk", "h5-jpk")
    assert _names(bundle) == ("h5-bundle", "h5-bundle")
    assert _names(_copy(bundle, "bundle.hdf5")) == ("h5-bundle", "h5-bundle")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(bundle.read_bytes()[:3000])
    # Another HDF5 file is reported as what it is; a cut one named .h5 as a cut bundle.
    assert readers.sniff(other) is None
    with pytest.raises(afmio.UnsupportedFormatError, match="an HDF5 file"):
        readers.detect(other)
    assert _names(cut) == ("h5-bundle", "h5-bundle")


def test_zip_npz_bundle_before_other_zip(tmp_path, video):
    bundle = afmio.save_npz_bundle(tmp_path / "bundle", video)
    other = tmp_path / "other.npz"
    np.savez(other, image=np.zeros((4, 5)))
    assert _names(bundle) == ("npz-bundle", "npz-bundle")
    assert _names(_copy(bundle, "bundle.zip")) == ("npz-bundle", "npz-bundle")
    # Another NumPy archive named .npz is claimed, so that the NPZ reader says what it lacks.
    assert _names(other) == ("npz-bundle", "npz-bundle")
    with pytest.raises(afmio.CorruptFileError, match=r"other\.npz"):
        afmio.open(other)
    with pytest.raises(afmio.UnsupportedFormatError, match="a ZIP archive"):
        readers.detect(_copy(other, "other.zip"))


def test_zarr_afmio_store_before_other_zarr(tmp_path, video):
    store = afmio.save_zarr(tmp_path / "bundle", video)
    plain = tmp_path / "plain.zarr"
    xr.Dataset({"v": ("t", np.arange(3.0))}).to_zarr(plain, zarr_format=3, consolidated=False)
    assert _names(store) == ("zarr", "zarr")
    assert _names(_copy(store, "renamed")) == ("zarr", "zarr")  # by its metadata
    # A store afmio did not write: not claimed by content; the Zarr reader says why.
    assert readers.sniff(plain) is None
    assert readers.detect(plain).name == "zarr"
    with pytest.raises(afmio.UnsupportedFormatError, match="afmio did not write"):
        afmio.open(plain)


def test_sniff_never_raises_and_claims_nothing_foreign(tmp_path):
    (tmp_path / "empty.asd").write_bytes(b"")
    (tmp_path / "noise.bin").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "folder").mkdir()
    for path in ("empty.asd", "noise.bin", "folder", "missing.asd"):
        assert readers.sniff(tmp_path / path) is None


def test_priorities_are_explicit_within_each_container():
    by_container: dict[str, list[int]] = {}
    for reader in readers.READERS:
        if reader.container:
            by_container.setdefault(reader.container, []).append(reader.priority)
    for container, priorities in by_container.items():
        assert len(set(priorities)) == len(priorities), f"{container}: tied priorities"
