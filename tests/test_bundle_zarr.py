"""Zarr stores: round trips, OME-Zarr (NGFF 0.5) metadata, parallel atomic export, the lazy
reader, other programs' stores and damaged ones."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

import afmio
from afmio import readers
from afmio.errors import AfmIOWarning
from afmio.readers import bundle_zarr
from afmio.writers import zarr as zarr_writer
from afmio.writers._common import bundle_content

from conftest import as_dataset, bytes_read, fails_cleanly, random_levels


@pytest.fixture
def video(make_asd):
    """6 frames of 16 x 24 in one dask chunk; overrides conftest's ``video``, as the tests
    here pin the store's shapes."""
    return afmio.open(make_asd(channels={"TP": random_levels(6, 16, 24)}))


@pytest.fixture
def processed(video):
    """The current data with two layers (one named unlike a Zarr node) and a mask;
    overrides conftest's ``processed``, whose names Zarr holds as they are."""
    ds = as_dataset(video)
    level = (video - video.mean(("y", "x"))).astype("float32")
    ds = ds.afm.with_layer("raw", video).afm.with_layer("plane fit/1", level)
    return ds.afm.with_mask("__high", level > 0)


@pytest.fixture
def long_video(make_asd):
    """200 frames of 128 x 128 opened in chunks of 64 frames (4 MiB of float32)."""
    return afmio.open(make_asd(channels={"TP": random_levels(200, 128, 128)}), chunks=64)


def store_json(path, node=""):
    """A zarr.json, parsed as strict JSON (viewers reject NaN and Infinity)."""

    def strict(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads((path / node / "zarr.json").read_text(), parse_constant=strict)


def test_round_trip_is_identical_and_lazy(long_video, tmp_path):
    path = afmio.save_zarr(tmp_path / "clip", long_video)
    assert path == tmp_path / "clip.zarr"
    assert path.is_dir()
    assert readers.detect(path) is bundle_zarr.READER
    before = bytes_read()
    reopened = afmio.open(path)
    assert bytes_read() - before < 2**20  # metadata only, not the 13 MB of frames
    xr.testing.assert_identical(reopened, long_video)
    assert reopened.dtype == np.float32
    before = bytes_read()
    np.testing.assert_array_equal(reopened[70].values, long_video[70].values)
    assert bytes_read() - before < 5 * 2**20  # one chunk of 64 frames (4 MiB), no more


def test_layers_and_masks_round_trip_with_names_zarr_cannot_hold(processed, tmp_path):
    path = afmio.save_zarr(tmp_path / "clip", processed)
    ds = afmio.open_dataset(path)
    xr.testing.assert_identical(ds, processed)
    xr.testing.assert_identical(afmio.load_zarr(path), processed)
    assert ds.afm.layers == ["raw", "plane fit/1"]
    assert ds.afm.mask("__high").dtype == bool
    meta = store_json(path)["attributes"]["afmio"]
    assert meta["processed"] == {"raw": "processed/raw", "plane fit/1": "processed/plane_fit_1"}
    assert meta["masks"] == {"__high": "masks/n__high"}
    assert store_json(path, "masks/n__high")["data_type"] == "bool"


def test_ngff_metadata(video, tmp_path):
    path = afmio.save_zarr(tmp_path / "clip", video)
    ome = store_json(path)["attributes"]["ome"]
    assert ome["version"] == "0.5"
    [image] = ome["multiscales"]
    assert "version" not in image  # 0.5 keeps it in "ome" only
    assert image["axes"] == [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"},
    ]
    [level] = image["datasets"]
    assert level["path"] == "0"
    [scale] = level["coordinateTransformations"]
    assert scale["type"] == "scale"
    expect = [video.afm.frame_interval, video.attrs["pixel_size_y_nm"], video.afm.pixel_size_nm]
    np.testing.assert_allclose(scale["scale"], expect)
    array = store_json(path, "0")
    assert array["dimension_names"] == ["t", "y", "x"]
    assert array["data_type"] == "float32"
    assert array["shape"] == [6, 16, 24]
    assert array["chunk_grid"]["configuration"]["chunk_shape"] == [6, 16, 24]
    # What a viewer sees, read with zarr alone: the current data.
    image0 = zarr.open_group(path, mode="r")["0"]
    np.testing.assert_array_equal(image0[:], video.values)


def test_unknown_pixel_size_and_one_frame(video, tmp_path):
    clip = video[:1].assign_attrs(pixel_size_nm=np.nan, pixel_size_y_nm=np.nan)
    path = afmio.save_zarr(tmp_path / "clip", clip)
    xr.testing.assert_identical(afmio.open(path), clip)
    [image] = store_json(path)["attributes"]["ome"]["multiscales"]
    assert [a.get("unit") for a in image["axes"]] == ["second", None, None]
    # one frame: its duration stands for the interval; unknown sizes are 1
    scale = image["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [float(clip["frame_duration_s"][0]), 1.0, 1.0]


def test_chunks_progress_and_rechunked_layers(long_video, tmp_path):
    ds = as_dataset(long_video)
    # a layer chunked unlike the data: it must be written in the data's chunks
    ds = ds.afm.with_layer("raw", long_video.chunk({"time": 50}))
    ds = ds.afm.with_mask("high", long_video > 2)
    seen = []
    path = afmio.save_zarr(tmp_path / "clip", ds, progress=lambda *a: seen.append(a))
    assert seen == [(64, 200), (128, 200), (192, 200), (200, 200)]
    for node in ("0", "processed/raw", "masks/high"):
        grid = store_json(path, node)["chunk_grid"]["configuration"]["chunk_shape"]
        assert grid == [64, 128, 128]
        assert sorted(p.name for p in (path / node / "c").iterdir()) == ["0", "1", "2", "3"]
    xr.testing.assert_identical(afmio.open_dataset(path).compute(), ds.compute())


def test_existing_store_is_replaced_only_with_overwrite(video, tmp_path):
    path = afmio.save_zarr(tmp_path / "clip", video)
    with pytest.raises(afmio.AfmFileExistsError, match="overwrite=True"):
        afmio.save_zarr(path, video[:2])
    afmio.save_zarr(path, video[:2] * 2, overwrite=True)
    np.testing.assert_array_equal(afmio.open(path).values, video[:2].values * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.zarr", "video.asd"]


def test_interrupted_export_leaves_the_old_store_and_no_temporary_folder(long_video, tmp_path):
    path = afmio.save_zarr(tmp_path / "clip", long_video[:3])

    def stop(done, total):
        if done >= 64:
            raise RuntimeError("stopped by the user")

    with pytest.raises(RuntimeError, match="stopped by the user"):
        afmio.save_zarr(path, long_video, overwrite=True, progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.zarr", "video.asd"]
    np.testing.assert_array_equal(afmio.open(path).values, long_video[:3].values)


def test_failing_chunk_aborts_cleanly(long_video, tmp_path):
    def fail_late(block, block_info=None):
        if block_info[0]["array-location"][0][0] >= 128:
            raise OSError("disk unplugged")
        return block

    broken = long_video.copy(data=long_video.data.map_blocks(fail_late, dtype="float32"))
    with pytest.raises(OSError, match="disk unplugged"):
        afmio.save_zarr(tmp_path / "clip", broken)
    assert [p.name for p in tmp_path.iterdir()] == ["video.asd"]


def test_state_backups_are_stored(video, tmp_path):
    content = bundle_content(video)
    content.state_backups = {"frame_metadata_before_edit": content.frame_metadata[:2]}
    path = zarr_writer.write(tmp_path / "clip.zarr", content)
    meta = store_json(path)["attributes"]["afmio"]
    assert meta["state_backups"]["frame_metadata_before_edit"][1]["timestamp"] == 0.1
    assert len(store_json(path, "timestamps")["attributes"]["frame_metadata"]) == 6


# --- other programs' stores ---------------------------------------------------------


def ngff_store(path, axes, data, scale, name="movie"):
    root = zarr.open_group(path, mode="w", zarr_format=3)
    level = {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
    image = {"name": name, "axes": axes, "datasets": [level]}
    root.attrs["ome"] = {"version": "0.5", "multiscales": [image]}
    root.create_array("s0", data=data)
    return path


def test_other_programs_ome_zarr_video_opens_with_a_warning(tmp_path):
    data = np.arange(4 * 1 * 5 * 6, dtype=np.uint16).reshape(4, 1, 5, 6)
    axes = [
        {"name": "t", "type": "time", "unit": "millisecond"},
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    path = ngff_store(tmp_path / "other.zarr", axes, data, [50.0, 1.0, 0.02, 0.01])
    with pytest.warns(AfmIOWarning, match="not written by afmio"):
        video = afmio.open(path)
    assert video.name == "movie"
    np.testing.assert_array_equal(video.values, data[:, 0].astype(np.float32))
    assert video.attrs["units"] == "unknown"
    assert video.afm.pixel_size_nm == pytest.approx(10.0)
    assert video.attrs["pixel_size_y_nm"] == pytest.approx(20.0)
    np.testing.assert_allclose(video["time"].values, [0.0, 0.05, 0.1, 0.15])


def test_other_programs_single_image_without_units(tmp_path):
    axes = [{"name": "row", "type": "space"}, {"name": "col", "type": "space"}]
    path = ngff_store(tmp_path / "still.zarr", axes, np.eye(3), [2.0, 2.0])
    with pytest.warns(AfmIOWarning, match="unknown units"):
        still = afmio.open(path)
    assert still.shape == (1, 3, 3)
    np.testing.assert_array_equal(still[0].values, np.eye(3))
    assert np.isnan(still.afm.pixel_size_nm)
    assert np.isnan(still["time"].values).all()


def test_other_programs_image_that_is_no_video(tmp_path):
    axes = [{"name": n, "type": "space"} for n in "zyx"]
    path = ngff_store(tmp_path / "volume.zarr", axes, np.zeros((3, 4, 4)), [1.0, 1.0, 1.0])
    fails_cleanly(path, afmio.UnsupportedFormatError, r"axes \['z'\] longer than 1")


def test_store_without_afmio_or_ome_metadata(tmp_path):
    root = zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3)
    root.create_array("a", data=np.zeros((2, 3, 3)))
    fails_cleanly(tmp_path / "plain.zarr", afmio.UnsupportedFormatError, "no OME-Zarr 0.5 image")


def test_zarr_v2_store(tmp_path):
    root = zarr.open_group(tmp_path / "old.zarr", mode="w", zarr_format=2)
    root.create_array("0", data=np.zeros((2, 3, 3)))
    fails_cleanly(tmp_path / "old.zarr", afmio.UnsupportedFormatError, "Zarr v2 store")


def test_file_named_zarr(tmp_path):
    path = tmp_path / "clip.zarr"
    path.write_text("not a folder")
    fails_cleanly(path, afmio.UnsupportedFormatError, "a Zarr store is a folder")


# --- damaged stores -----------------------------------------------------------------


@pytest.fixture
def store(processed, tmp_path):
    return afmio.save_zarr(tmp_path / "clip", processed)


def edit_json(path, node, change):
    meta = json.loads((path / node / "zarr.json").read_text())
    change(meta)
    (path / node / "zarr.json").write_text(json.dumps(meta))


def test_broken_zarr_json(store):
    (store / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
    fails_cleanly(store, afmio.CorruptFileError, "zarr.json is not valid JSON")


def test_missing_root_zarr_json(store):
    (store / "zarr.json").unlink()
    fails_cleanly(store, afmio.CorruptFileError, "has no zarr.json")


def test_missing_timestamps(store):
    shutil.rmtree(store / "timestamps")
    fails_cleanly(store, afmio.CorruptFileError, "has no array 'timestamps'")


def test_root_that_is_an_array(store):
    shutil.rmtree(store)
    zarr.create_array(store, shape=(2, 3, 3), dtype="float32")
    fails_cleanly(store, afmio.UnsupportedFormatError, "Zarr 'array' node, not a group")


def test_missing_image_array(store):
    shutil.rmtree(store / "0")
    fails_cleanly(store, afmio.CorruptFileError, "has no array '0'")


def test_array_path_out_of_the_store(store):
    edit_json(store, "", lambda m: m["attributes"]["afmio"].update(data="../elsewhere"))
    fails_cleanly(store, afmio.CorruptFileError, "not a path inside the store")


def test_damaged_afmio_attributes(store):
    edit_json(store, "", lambda m: m["attributes"]["afmio"].update(n_frames="six"))
    fails_cleanly(store, afmio.CorruptFileError, "afmio attribute 'n_frames'")


def test_store_from_a_newer_afmio(store):
    edit_json(store, "", lambda m: m["attributes"]["afmio"].update(version=99))
    fails_cleanly(store, afmio.UnsupportedFormatError, "layout 99.*update afmio")


def test_timestamps_shorter_than_the_data(store):
    times = zarr.open_array(store / "timestamps", mode="r")
    attrs = dict(times.attrs)
    zarr.create_array(store / "timestamps", data=times[:5], attributes=attrs, overwrite=True)
    fails_cleanly(store, afmio.CorruptFileError, r"timestamps has shape \(5,\).* 6 frames")


def test_frame_metadata_shorter_than_the_data(store):
    edit_json(store, "timestamps", lambda m: m["attributes"]["frame_metadata"].pop())
    fails_cleanly(store, afmio.CorruptFileError, "frame_metadata has 5 entries")


def test_layer_shorter_than_the_data(store):
    zarr.create_array(store / "processed" / "raw", data=np.zeros((5, 16, 24)), overwrite=True)
    fails_cleanly(store, afmio.CorruptFileError, r"'processed/raw' has shape \(5, 16, 24\)")


def test_truncated_chunk_file_fails_at_compute(store):
    chunk = store / "0" / "c" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:100])
    video = afmio.open(store)  # metadata only: the damage shows when frames are read
    with pytest.raises(afmio.CorruptFileError, match="truncated or damaged") as info:
        video.values  # noqa: B018
    assert store.name in str(info.value)


def test_missing_chunk_file_is_not_read_as_fill_value(store):
    (store / "masks" / "n__high" / "c" / "0" / "0" / "0").unlink()
    ds = afmio.open_dataset(store)
    with pytest.raises(afmio.CorruptFileError, match=r"masks/n__high/c/0/0/0.*is missing"):
        ds["masks____high"].values  # noqa: B018


def test_store_changed_after_opening(store):
    video = afmio.open(store)
    zarr.create_array(store / "0", data=np.zeros((2, 16, 24), "float32"), overwrite=True)
    with pytest.raises(afmio.CorruptFileError, match="changed after it was opened"):
        video.values  # noqa: B018


def test_sniffing_is_for_folders_only(store):
    assert not bundle_zarr.sniff(store / "zarr.json", (store / "zarr.json").read_bytes())
    assert bundle_zarr.sniff_folder(store)
    assert not bundle_zarr.sniff_folder(store.parent)
    (store / "zarr.json").rename(store.parent / "zarr.json")
    # Its metadata gone, the store is no longer recognised by content, but by name the
    # registry still hands it to the Zarr reader, which then says what is missing.
    assert not bundle_zarr.sniff_folder(store)
    assert readers.detect(store) is bundle_zarr.READER
    with pytest.raises(afmio.CorruptFileError, match=r"no zarr\.json"):
        afmio.open(store)
