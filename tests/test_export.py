"""Exports, across all four formats: names, refusals, round trips, interruption, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import xarray as xr

import afmio
from afmio.export import export_stem

from conftest import random_levels

SAVERS = {
    "h5": afmio.save_h5_bundle,
    "npz": afmio.save_npz_bundle,
    "tif": afmio.save_ome_tiff_stack,
    "zarr": afmio.save_zarr,
}
SUFFIX = {"h5": ".h5", "npz": ".npz", "tif": ".ome.tif", "zarr": ".zarr"}


def test_export_names():
    plain = xr.DataArray(np.zeros((1, 1, 1)), dims=("time", "y", "x"))
    plain.attrs["source"] = {"path": "/data/run7.asd"}
    assert export_stem(plain, None, raw=False) == "run7"
    layered = xr.Dataset({"height_trace": plain, "processed__level": plain}, attrs=plain.attrs)
    assert export_stem(layered, None, raw=False) == "run7_filtered"
    assert export_stem(layered, "x_filtered", raw=False) == "x_filtered"  # never twice
    assert export_stem(layered, None, raw=True) == "run7"
    only_raw = xr.Dataset({"height_trace": plain, "processed__raw": plain}, attrs=plain.attrs)
    assert export_stem(only_raw, None, raw=False) == "run7"
    assert export_stem(plain, "clip.ome", raw=False) == "clip"  # no .ome.ome.tif


def test_export_bundles_writes_every_format_and_rejects_unknown_ones(video, tmp_path):
    paths = afmio.export_bundles(video, tmp_path / "out", "clip")
    assert {k: v.name for k, v in paths.items()} == {k: "clip" + s for k, s in SUFFIX.items()}
    for path in paths.values():
        np.testing.assert_array_equal(afmio.open(path).values, video.values)
    with pytest.raises(afmio.UnsupportedFormatError, match="'gif'") as info:
        afmio.export_bundles(video, tmp_path / "bad", "clip", formats=["h5", "gif"])
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("fmt", SAVERS)
def test_reopened_export_is_identical(video, tmp_path, fmt):
    path = SAVERS[fmt](tmp_path / "clip", video)
    assert path.name == "clip" + SUFFIX[fmt]
    reopened = afmio.open(path)
    xr.testing.assert_identical(reopened, video)
    assert reopened.dtype == np.float32
    assert reopened.chunks is not None


@pytest.mark.parametrize("fmt", ["h5", "npz", "zarr"])
def test_layers_and_masks_round_trip(processed, tmp_path, fmt):
    path = SAVERS[fmt](tmp_path / "clip", processed)
    ds = afmio.open_dataset(path)
    xr.testing.assert_identical(ds, processed)
    assert ds.afm.layers == ["raw", "level"]
    assert ds.afm.masks == ["high"]
    assert ds.afm.mask("high").dtype == bool


@pytest.mark.parametrize("fmt", SAVERS)
def test_raw_exports_the_raw_layer(processed, video, tmp_path, fmt):
    path = SAVERS[fmt](tmp_path / "clip", processed, raw=True)
    np.testing.assert_array_equal(afmio.open(path).values, video.values)


@pytest.mark.parametrize("fmt", SAVERS)
def test_existing_target_is_kept_unless_overwrite(video, tmp_path, fmt):
    path = SAVERS[fmt](tmp_path / "clip", video)
    with pytest.raises(afmio.AfmFileExistsError, match="overwrite=True"):
        SAVERS[fmt](path, video[:2])
    assert afmio.open(path).sizes["time"] == 7
    SAVERS[fmt](path, video[:2], overwrite=True)
    assert afmio.open(path).sizes["time"] == 2


@pytest.mark.parametrize("fmt", SAVERS)
def test_progress_and_interrupted_export(video, tmp_path, fmt):
    seen = []
    SAVERS[fmt](tmp_path / "ok", video, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (7, 7)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    def stop(done, total):
        if done >= 3:
            raise KeyboardInterrupt

    target = tmp_path / "out" / ("clip" + SUFFIX[fmt])
    with pytest.raises(KeyboardInterrupt):
        SAVERS[fmt](target, video, progress=stop)
    assert list((tmp_path / "out").iterdir()) == []  # no target, no temporary file


@pytest.mark.parametrize("fmt", SAVERS)
def test_export_streams_in_bounded_memory(make_asd, tmp_path, fmt):
    # 1024 frames of 128x128 float32: 64 MiB of data, chunks of 4 MiB.
    frames = np.broadcast_to(random_levels(1, 128, 128)[0], (1024, 128, 128))
    video = afmio.open(make_asd(channels={"TP": frames}), chunks=32)
    tracemalloc.start()
    try:
        SAVERS[fmt](tmp_path / "big", video)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20  # about half the video: it was never held whole


def test_accessor_exports(processed, video, tmp_path):
    path = video.afm.to_h5(tmp_path / "a")
    xr.testing.assert_identical(afmio.open(path), video)
    paths = processed.afm.export(tmp_path / "b", formats=["npz", "zarr"])
    assert paths["npz"].name.endswith("_filtered.npz")
    assert video.afm.to_ome_tiff(tmp_path / "c").name == "c.ome.tif"
    assert video.afm.to_zarr(tmp_path / "d").name == "d.zarr"
    assert video.afm.to_npz(tmp_path / "e").name == "e.npz"


def test_accessor_progress_true_draws_a_bar_and_callables_pass_through(video, tmp_path, capsys):
    video.afm.to_npz(tmp_path / "bar", progress=True)
    err = capsys.readouterr().err
    assert "save_npz_bundle" in err
    assert f"{video.sizes['time']}/{video.sizes['time']}" in err
    seen = []
    video.afm.to_npz(tmp_path / "cb", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (video.sizes["time"], video.sizes["time"])


#: Every public writer, by the order its signature gives: video first or path first.
VIDEO_FIRST = {
    "export_gif": afmio.export_gif,
    "export_mp4": afmio.export_mp4,
    "export_bundles": lambda obj, folder: afmio.export_bundles(obj, folder, formats=["npz"]),
}
PATH_FIRST = {f"save_{k}": f for k, f in SAVERS.items()}


@pytest.mark.parametrize("name", [*VIDEO_FIRST, *PATH_FIRST])
@pytest.mark.parametrize("swapped", [False, True], ids=["own order", "swapped"])
def test_writers_take_video_and_path_in_either_order(video, tmp_path, name, swapped):
    func = {**VIDEO_FIRST, **PATH_FIRST}[name]
    args = (video, tmp_path / "clip") if name in VIDEO_FIRST else (tmp_path / "clip", video)
    written = func(*(args[::-1] if swapped else args))
    if name == "export_bundles":  # into the folder given, named after the source
        assert written == {"npz": tmp_path / "clip" / "video.npz"}
        written = written["npz"]
    assert written.name.startswith(("clip.", "video."))
    assert written.exists()


@pytest.mark.parametrize("name", [*VIDEO_FIRST, *PATH_FIRST])
@pytest.mark.parametrize(
    "wrong", [np.zeros((2, 3, 4)), 7, None], ids=["numpy array", "int", "None"]
)
def test_writers_name_what_they_were_given_instead_of_a_video_and_a_path(
    video, tmp_path, name, wrong
):
    func = {**VIDEO_FIRST, **PATH_FIRST}[name]
    for args in ((wrong, tmp_path / "clip"), (video, wrong)):
        with pytest.raises(TypeError, match=r"expected a video .* and a target path") as info:
            func(*args)
        assert type(wrong).__name__ in str(info.value)
    assert list(tmp_path.iterdir()) == [tmp_path / "video.asd"]  # nothing written
