"""The xarray engine: ``xr.open_dataset(path, engine="afmio")`` equals afmio's own
Dataset for every format, reads nothing until indexed and then only the frames indexed,
chunks like afmio with ``chunks={}``, pickles by path, and is found by content."""

from __future__ import annotations

import io
import os
import pickle

import h5py
import numpy as np
import pytest
import xarray as xr
from test_conformance import MAKERS, REAL_FILES
from xarray.backends.plugins import guess_engine

import afmio
from afmio.backend import AfmioBackendEntrypoint, FrameArray
from afmio.lazy import DIMS, StridedFrames

from conftest import bytes_read, compute_in_another_process, random_levels

needs_proc_io = pytest.mark.skipif(
    not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io"
)


@pytest.fixture(params=list(MAKERS))
def synthetic(request, tmp_path):
    """One sample of every format and folder kind; bundles hold a layer and a mask."""
    return MAKERS[request.param](tmp_path)


@pytest.fixture
def two_channel(make_asd):
    levels = random_levels(40, 128, 128)
    return make_asd("two.asd", {"TP": levels, "ER": levels[::-1]})


def test_entry_point_is_registered():
    engines = xr.backends.list_engines()
    assert isinstance(engines["afmio"], AfmioBackendEntrypoint)
    assert engines["afmio"].description
    assert engines["afmio"].open_dataset_parameters == (
        "filename_or_obj",
        "drop_variables",
        "dtype",
    )


def _assert_same_as_afmio(path) -> None:
    ours = afmio.open_dataset(path)
    engine = xr.open_dataset(path, engine="afmio")
    for name, var in engine.data_vars.items():
        # Lazily indexed until loaded: neither dask nor numpy.
        assert var.chunks is None, name
        assert not isinstance(var.variable._data, np.ndarray), name
    chunked = xr.open_dataset(path, engine="afmio", chunks={})
    for name in ours.data_vars:
        assert chunked[name].chunks == ours[name].chunks, name
        assert chunked[name].encoding["preferred_chunks"] == dict(
            zip(DIMS, (c[0] for c in ours[name].chunks), strict=True)
        )
    xr.testing.assert_identical(chunked.load(), ours.load())
    xr.testing.assert_identical(engine.load(), ours)
    assert engine.encoding["source"] == ours.encoding["source"]


def test_same_dataset_as_afmio_for_every_synthetic_format(synthetic):
    _assert_same_as_afmio(synthetic)


def test_bundle_layers_and_masks_come_through(tmp_path):
    ds = xr.open_dataset(MAKERS["zarr"](tmp_path), engine="afmio")
    assert {"processed__raw", "masks__low"} <= set(ds.data_vars)
    assert ds["masks__low"].dtype == bool
    assert ds["masks__low"].attrs["afm_role"] == "mask"
    assert ds["processed__raw"].attrs["afm_role"] == "layer"
    np.testing.assert_array_equal(ds["masks__low"][2].values, ds["processed__raw"][2].values < 0)


@pytest.mark.parametrize(
    ("name", "sizes", "variables"),
    [
        ("playnano_asd_sample_0.asd", (32, 200, 200), 1),
        ("pnanolocz_202110200146.asd", (2, 250, 250), 2),
        ("jmarini_nanoscope_full_multiple_images.000", (1, 512, 512), 2),
        ("nims_scilab4spm_data1.007", (1, 256, 256), 2),
        ("afmreader_sample_0.h5-jpk", (4, 128, 128), 9),
        ("afmreader_sample_0.jpk", (1, 256, 256), 10),
        ("pnanolocz_streptavidin_jpk_folder", (21, 512, 512), 3),
    ],
)
def test_same_dataset_as_afmio_for_real_files(data_dir, name, sizes, variables):
    assert name in REAL_FILES
    path = data_dir / name
    ds = xr.open_dataset(path, engine="afmio")
    assert tuple(ds.sizes[d] for d in DIMS) == sizes
    assert len(ds.data_vars) == variables
    assert guess_engine(str(path)) == "afmio"
    _assert_same_as_afmio(path)


@needs_proc_io
def test_opening_reads_no_frames_and_indexing_reads_only_those_selected(two_channel):
    frame = 2 * 128 * 128
    xr.open_dataset(two_channel, engine="afmio").height_trace[0].load()  # warm up imports
    before = bytes_read()
    afmio.open_dataset(two_channel)
    headers = bytes_read() - before
    assert headers < two_channel.stat().st_size / 20
    before = bytes_read()
    ds = xr.open_dataset(two_channel, engine="afmio")
    opened = bytes_read()
    assert opened - before == headers  # the headers afmio reads, and no frame
    five = ds.height_trace[5].values
    one = bytes_read() - opened
    assert frame <= one < 2 * frame
    sparse = ds.error_trace[::10].values  # frames 0, 10, 20, 30: not the ones between
    four = bytes_read() - opened - one
    assert 4 * frame <= four < 5 * frame
    video = afmio.open_dataset(two_channel)
    np.testing.assert_array_equal(five, video.height_trace[5].values)
    np.testing.assert_array_equal(sparse, video.error_trace[::10].values)


@pytest.mark.parametrize(
    "key",
    [
        5,
        -1,
        slice(2, 7),
        slice(None, None, -3),
        [7, 1, 1, 30],
        np.arange(40) % 3 == 0,
        (slice(None), 3, [0, 5, 2]),
        ([3, 4], [1, 2], [5, 6]),  # outer indexing: one list per axis
        (Ellipsis, slice(1, 10, 2)),
        (slice(30, 50), slice(-4, None)),
    ],
)
def test_indexing_matches_dask(two_channel, key):
    engine = xr.open_dataset(two_channel, engine="afmio").height_trace[key]
    dask = afmio.open_dataset(two_channel).height_trace[key]
    xr.testing.assert_identical(engine.load(), dask.load())


def test_frame_array_of_the_first_frames_of_a_longer_source(make_asd):
    path = make_asd(channels={"TP": random_levels(5, 6, 8)})
    source = afmio.readers.read(path).channels[0].frames
    assert isinstance(source, StridedFrames)
    assert source.shape == (5, 6, 8)
    var = xr.Variable(DIMS, xr.core.indexing.LazilyIndexedArray(FrameArray(source, "f4", 3)))
    assert var.shape == (3, 6, 8)
    np.testing.assert_array_equal(var[-1].values, source.read(2, 3, np.dtype("f4"))[0])
    assert var[1:10].shape == (2, 6, 8)
    with pytest.raises(IndexError):
        var[3].values  # noqa: B018


def test_chunks_like_afmio_with_chunks_dict(make_asd):
    path = make_asd("long.asd", {"TP": random_levels(200, 256, 256)})
    ds = xr.open_dataset(path, engine="afmio", chunks={})
    # 32 MiB of float32 256x256 frames is 128 frames.
    assert ds.height_trace.encoding["preferred_chunks"] == {"time": 128, "y": 256, "x": 256}
    assert ds.height_trace.chunks == ((128, 72), (256,), (256,))
    assert ds.height_trace.chunks == afmio.open_dataset(path).height_trace.chunks
    # Smaller chunks split the preferred ones, and xarray says so (docs/xarray-backend.md).
    with pytest.warns(UserWarning, match='separate the stored chunks along dimension "time"'):
        chunked = xr.open_dataset(path, engine="afmio", chunks={"time": 64})
    assert chunked.height_trace.chunks[0] == (64, 64, 64, 8)


def test_lazy_dataset_pickles_by_path(two_channel):
    ds = xr.open_dataset(two_channel, engine="afmio")
    blob = pickle.dumps(ds)
    assert len(blob) < 64 * 1024 < two_channel.stat().st_size
    back = pickle.loads(blob)
    expected = afmio.open_dataset(two_channel)
    xr.testing.assert_identical(back.load(), expected.load())


def test_dask_graph_runs_in_another_process(two_channel):
    ds = xr.open_dataset(two_channel, engine="afmio", chunks={})
    out = compute_in_another_process(ds.error_trace.data[3:9]).reshape(6, 128, 128)
    np.testing.assert_array_equal(out, afmio.open(two_channel, "error_trace")[3:9].values)


def test_open_mfdataset_concatenates_along_time(make_asd):
    a = make_asd("a.asd", {"TP": random_levels(6, 8, 10, seed=1)})
    b = make_asd("b.asd", {"TP": random_levels(4, 8, 10, seed=2)})
    with xr.open_mfdataset([a, b], engine="afmio", combine="nested", concat_dim="time") as ds:
        _check_concatenated(ds, a, b)


def _check_concatenated(ds, a, b):
    assert ds.sizes == {"time": 10, "y": 8, "x": 10}
    assert ds.height_trace.chunks[0] == (6, 4)
    expected = np.concatenate([afmio.open(a).values, afmio.open(b).values])
    np.testing.assert_array_equal(ds.height_trace.values, expected)
    np.testing.assert_array_equal(ds.frame_index.values, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    assert ds.attrs["source"]["path"] == str(a)


def test_open_dataset_without_engine_picks_afmio_by_content(make_asd):
    path = make_asd("no-extension.bin")
    assert guess_engine(str(path)) == "afmio"
    xr.testing.assert_identical(xr.open_dataset(path).load(), afmio.open_dataset(path).load())


def test_guess_can_open_every_format(synthetic):
    assert AfmioBackendEntrypoint().guess_can_open(synthetic)
    assert AfmioBackendEntrypoint().guess_can_open(str(synthetic))
    # xarray asks its netCDF engines first (they claim every HDF5 file when installed),
    # then the others in name order: afmio before zarr, so a .zarr bundle comes to afmio.
    engines = xr.backends.list_engines()
    first = [e for e in ("netcdf4", "h5netcdf") if e in engines]
    if not any(engines[e].guess_can_open(str(synthetic)) for e in first):
        assert guess_engine(str(synthetic)) == "afmio"


def test_stores_of_other_engines_are_left_to_them(tmp_path):
    plain = xr.Dataset({"v": ("t", np.arange(3.0))})
    netcdf = tmp_path / "plain.nc"
    plain.to_netcdf(netcdf, engine="scipy")
    store = tmp_path / "plain.zarr"
    plain.to_zarr(store, zarr_format=3, consolidated=False)
    for path, engine in ((netcdf, "scipy"), (store, "zarr")):
        assert not AfmioBackendEntrypoint().guess_can_open(path)
        assert guess_engine(str(path)) == engine
    with xr.open_dataset(store, consolidated=False) as ds:
        xr.testing.assert_identical(ds.load(), plain)


def _plain_hdf5(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["values"] = np.arange(4)
    return path


def _text(tmp_path):
    path = tmp_path / "notes.asd"
    path.write_text("not an AFM video\n")
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.asd"
    path.write_bytes(b"")
    return path


def _folder_of_text(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    return folder


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: tmp / "missing.asd",
        _text,
        _empty,
        _plain_hdf5,
        _folder_of_text,
        lambda tmp: tmp,  # an empty folder
        lambda tmp: b"\x01\x00\x00\x00",
        lambda tmp: io.BytesIO(b"\x01\x00\x00\x00"),
    ],
    ids=["missing", "text", "empty", "plain-hdf5", "text-folder", "empty-folder", "bytes", "io"],
)
def test_guess_can_open_is_false_without_raising_for_what_afmio_cannot_read(tmp_path, make):
    assert AfmioBackendEntrypoint().guess_can_open(make(tmp_path)) is False


def test_drop_variables(two_channel):
    ds = xr.open_dataset(two_channel, engine="afmio", drop_variables="error_trace")
    assert list(ds.data_vars) == ["height_trace"]
    ds = xr.open_dataset(two_channel, engine="afmio", drop_variables=["height_trace", "absent"])
    assert list(ds.data_vars) == ["error_trace"]


def test_dtype_passes_through(two_channel, tmp_path):
    ds = xr.open_dataset(two_channel, engine="afmio", dtype="float64")
    assert ds.height_trace.dtype == ds.error_trace.dtype == np.float64
    expected = afmio.open_dataset(two_channel, dtype="float64")
    xr.testing.assert_identical(ds.load(), expected.load())
    bundle = MAKERS["h5-bundle"](tmp_path)
    ds = xr.open_dataset(bundle, engine="afmio", dtype="float64")
    assert ds["masks__low"].dtype == bool  # masks stay boolean, saved layers bit for bit
    xr.testing.assert_identical(ds.load(), afmio.open_dataset(bundle, dtype="float64").load())
    with pytest.raises(ValueError, match="floating-point"):
        xr.open_dataset(two_channel, engine="afmio", dtype="int16")


def test_missing_file_raises_afmio_error_naming_it(tmp_path):
    with pytest.raises(afmio.AfmFileNotFoundError, match=r"nope\.asd"):
        xr.open_dataset(tmp_path / "nope.asd", engine="afmio")


def test_damaged_file_raises_the_same_error_as_afmio(make_asd):
    path = make_asd("cut.asd")
    path.write_bytes(path.read_bytes()[:90])
    with pytest.raises(afmio.CorruptFileError) as ours:
        afmio.open_dataset(path)
    with pytest.raises(afmio.CorruptFileError, match=r"cut\.asd") as engine:
        xr.open_dataset(path, engine="afmio")
    assert str(engine.value) == str(ours.value)


def test_file_truncated_after_opening_fails_when_indexed(make_asd):
    path = make_asd(channels={"TP": random_levels(4, 8, 8)})
    ds = xr.open_dataset(path, engine="afmio")
    with open(path, "r+b") as f:
        f.truncate(300)
    with pytest.raises(afmio.CorruptFileError, match="truncated after it was opened"):
        ds.height_trace.values  # noqa: B018


def test_file_objects_are_refused_clearly(two_channel):
    with (
        open(two_channel, "rb") as f,
        pytest.raises(TypeError, match="opens files and folders by path"),
    ):
        xr.open_dataset(f, engine="afmio")


def test_open_mfdataset_computes_on_a_distributed_cluster_of_processes(make_asd):
    distributed = pytest.importorskip("distributed")
    a = make_asd("a.asd", {"TP": random_levels(6, 16, 16, seed=1)})
    b = make_asd("b.asd", {"TP": random_levels(5, 16, 16, seed=2)})
    expected = np.concatenate([afmio.open(p).max(("y", "x")).values for p in (a, b)])
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        xr.open_mfdataset([a, b], engine="afmio", combine="nested", concat_dim="time") as ds,
    ):
        result = client.compute(ds.height_trace.max(("y", "x")).data).result()
    np.testing.assert_array_equal(result, expected)
