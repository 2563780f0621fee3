"""Checks every reader must pass, on every sample of every format.

One parametrized set instead of per-format copies: the object follows the data model,
opening is lazy, graphs and frame sources pickle and compute in another process, no
handle stays open, frame(i) agrees with the array.
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from operator import methodcaller
from pathlib import Path

import cloudpickle
import numpy as np
import psutil
import pytest
import xarray as xr

import afmio
from afmio import readers

from conftest import DATA, random_levels

REAL_FILES = [
    "playnano_asd_sample_0.asd",
    "pnanolocz_202110200146.asd",
    "jmarini_nanoscope_full_multiple_images.000",
    "nims_scilab4spm_data1.007",
    "afmreader_sample_0.h5-jpk",
    "afmreader_sample_0.jpk",
    "pnanolocz_streptavidin_jpk_folder",
]


def _asd(tmp_path):
    from afmio.synthetic import write_asd

    levels = random_levels(5, 6, 9)
    return write_asd(
        tmp_path / "conf.asd", {"TP": levels, "ER": levels[::-1]}, n_frames=5, shape=(6, 9)
    )


def _nanoscope_images(i: int) -> list:
    from afmio.synthetic import NanoscopeImage

    levels = random_levels(1, 6, 9, seed=i)[0]
    return [
        NanoscopeImage("Height", levels, 6.5536),
        NanoscopeImage("Amplitude", levels[::-1], 1.0, "Sens. Amplitude"),
    ]


def _nanoscope(tmp_path):
    from afmio.synthetic import write_nanoscope

    return write_nanoscope(tmp_path / "conf.spm", _nanoscope_images(0))


def _nanoscope_folder(tmp_path):
    from afmio.synthetic import write_nanoscope

    folder = tmp_path / "series"
    folder.mkdir()
    for i in range(4):
        write_nanoscope(folder / f"conf.{i:03d}", _nanoscope_images(i), relative_frame_time=5.0 * i)
    return folder


def _h5jpk(tmp_path):
    from afmio.synthetic import write_h5jpk

    levels = random_levels(5, 6, 9).astype(np.int32)
    return write_h5jpk(
        tmp_path / "conf.h5-jpk",
        {"height_trace": levels, "error_trace": levels[::-1]},
        n_frames=5,
        shape=(6, 9),
    )


def _jpk_channels(i: int) -> list:
    from afmio.synthetic import JpkChannel

    levels = random_levels(1, 6, 9, seed=i)[0].astype(np.int32)
    return [
        JpkChannel("height", False, levels, multiplier=1e-10),
        JpkChannel("error", False, levels[::-1], multiplier=1e-3, unit="V"),
    ]


def _jpk_folder(tmp_path):
    from afmio.synthetic import write_jpk

    folder = tmp_path / "jpk"
    folder.mkdir()
    for i in range(4):
        write_jpk(
            folder / f"frame-{i}.jpk", _jpk_channels(i), start_ms=1_715_941_800_000 + 2500 * i
        )
    return folder


def _bundle(save, name):
    def make(tmp_path):
        import afmio

        video = afmio.open(_asd(tmp_path))
        ds = afmio.open_dataset(_asd(tmp_path)).afm.with_layer("raw", video)
        return save(tmp_path / name, ds.afm.with_mask("low", video < 0))

    return make


MAKERS = {
    "h5-bundle": _bundle(afmio.save_h5_bundle, "conf.h5"),
    "npz-bundle": _bundle(afmio.save_npz_bundle, "conf.npz"),
    "ome-tiff": _bundle(afmio.save_ome_tiff_stack, "conf.ome.tif"),
    "zarr": _bundle(afmio.save_zarr, "conf.zarr"),
    "jpk-folder": _jpk_folder,
    "h5-jpk": _h5jpk,
    "asd": _asd,
    "nanoscope": _nanoscope,
    "nanoscope-folder": _nanoscope_folder,
}


@pytest.fixture(params=[*MAKERS, *REAL_FILES])
def sample(request, tmp_path):
    if request.param in MAKERS:
        return MAKERS[request.param](tmp_path)
    path = DATA / request.param
    if not path.exists():
        pytest.skip(f"real sample {path} not found; set AFMIO_TEST_DATA")
    return path


def test_follows_the_data_model(sample):
    video = afmio.open(sample)
    assert video.dims == ("time", "y", "x")
    assert video.chunks is not None
    assert video.name == video.attrs["channel"] == video.afm.channel
    assert video.attrs["channel"] in afmio.channels(sample)
    for name in ("units", "long_name", "native_channel"):
        assert isinstance(video.attrs[name], str)
        assert video.attrs[name]
    for name in ("pixel_size_nm", "pixel_size_y_nm"):
        assert video.attrs[name] > 0
    assert video["time"].dtype == np.float64
    assert video["time"].attrs["units"] == "s"
    assert video["x"].attrs["units"] == video["y"].attrs["units"] == "nm"
    np.testing.assert_allclose(np.diff(video["x"]), video.attrs["pixel_size_nm"])
    for name in (
        "frame_index",
        "start_epoch_ms",
        "frame_duration_s",
        "line_rate",
        "scan_direction",
    ):
        assert video[name].dims == ("time",)
    for name in ("source", "provenance"):
        value = video.attrs[name]
        assert json.loads(json.dumps(value, allow_nan=False)) == value
    assert video.attrs["source"]["size_bytes"] > 0
    assert set(video.attrs["provenance"]) >= {"acquisition", "processing"}


def test_every_channel_opens_and_the_dataset_agrees(sample):
    ds = afmio.open_dataset(sample)
    layers = [f"processed__{n}" for n in ds.afm.layers] + [f"masks__{n}" for n in ds.afm.masks]
    assert [v for v in ds.data_vars if v not in layers] == afmio.channels(sample)
    assert ds.attrs["channel"] in afmio.channels(sample)
    for name in afmio.channels(sample):
        video = afmio.open(sample, name.upper())
        n = ds.sizes["time"]
        np.testing.assert_array_equal(video[:n].values, ds[name].values)


def test_frames_read_on_demand_agree_with_the_whole(sample):
    video = afmio.open(sample, chunks=2)
    whole = video.values
    assert np.isfinite(whole).all()
    for i in {0, video.afm.n_frames // 2, video.afm.n_frames - 1}:
        np.testing.assert_array_equal(video.afm.frame(i), whole[i])


def test_graph_pickles(sample):
    video = afmio.open(sample, chunks=2)
    means = video.mean(("y", "x"))
    for module in (pickle, cloudpickle):
        clone = module.loads(module.dumps(video))
        np.testing.assert_array_equal(clone.values, video.values)
        assert clone.attrs == video.attrs
        xr.testing.assert_identical(clone.coords.to_dataset(), video.coords.to_dataset())
        np.testing.assert_array_equal(module.loads(module.dumps(means)).values, means.values)


def test_dataset_pickles(sample):
    ds = afmio.open_dataset(sample, chunks=2)
    expected = ds.compute()
    for module in (pickle, cloudpickle):
        xr.testing.assert_identical(module.loads(module.dumps(ds)).compute(), expected)


def test_frame_sources_pickle_and_read_alike(sample):
    for channel in readers.read(sample).channels:
        source = channel.frames
        clone = pickle.loads(pickle.dumps(source))
        assert clone == source
        n = min(3, source.shape[0])
        dtype = np.dtype(channel.dtype or "float32")
        np.testing.assert_array_equal(clone.read(0, n, dtype), source.read(0, n, dtype))


@pytest.fixture(scope="module")
def other_process():
    """One spawned Python that never opens a sample: what it computes, it computes from
    the pickled graph alone (one process for all samples, as starting one costs ~2 s)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def test_graph_computes_in_another_process(sample, other_process):
    # Every other frame of chunks of 3: some chunks are entered mid-way.
    means = afmio.open(sample, chunks=3)[::2].mean(("y", "x"))
    compute = methodcaller("compute", scheduler="threads")
    result = other_process.submit(compute, means).result(timeout=120)
    np.testing.assert_array_equal(result.values, means.values)


def _held_open(sample: Path) -> list[str]:
    """The files of ``sample`` (the file, or those below the folder) this process holds open."""
    root = sample.resolve()
    held = (Path(f.path) for f in psutil.Process().open_files())
    return sorted(str(p) for p in held if p == root or root in p.parents)


def test_no_file_handle_stays_open(sample):
    readers.read(sample)
    assert not _held_open(sample)
    video = afmio.open(sample)
    afmio.channels(sample)
    afmio.open_dataset(sample)
    assert not _held_open(sample)
    video.mean().compute()
    assert not _held_open(sample)
