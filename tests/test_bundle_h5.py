"""HDF5 bundles: streamed, parallel-compressed export in playNano's layout, lazy reading,
playNano interop both ways, detection and bad input."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from playnano.io.data_loaders import load_h5_bundle
from playnano.io.export_data import save_h5_bundle

import afmio
from afmio.readers import bundle_h5
from afmio.synthetic import write_h5jpk
from afmio.writers import hdf5

from conftest import bytes_read, fails_cleanly, playnano_stack, random_levels

COMPRESSIONS = ["gzip", "lzf", None]


@pytest.fixture
def small_chunks(monkeypatch):
    """HDF5 chunks of 4 frames of 12x10 float32 (masks: 16), so that the 3-frame dask
    blocks of ``video`` straddle chunk boundaries and the last chunk is partial."""
    monkeypatch.setattr(hdf5, "CHUNK_BYTES", 4 * 12 * 10 * 4)


def chunks_of(ds: h5py.Dataset) -> list[tuple[tuple[int, ...], int, bytes]]:
    """``(offset, filter mask, stored bytes)`` of every chunk, in file order."""
    infos = sorted(
        (ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())),
        key=lambda c: c.byte_offset,
    )
    return [(c.chunk_offset, *ds.id.read_direct_chunk(c.chunk_offset)) for c in infos]


def edit(path: Path, fn) -> Path:
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


# --- layout and round trips ----------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_round_trip_is_identical(video, tmp_path, compression):
    path = afmio.save_h5_bundle(tmp_path / "clip", video, compression=compression)
    reopened = afmio.open(path)
    xr.testing.assert_identical(reopened, video)
    assert reopened.dtype == np.float32
    with h5py.File(path) as f:
        assert f["data"].compression == compression
        assert f["data"].chunks == (7, 12, 10)  # whole frames, up to about 1 MiB


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_layout_is_playnanos(processed, tmp_path, compression):
    path = afmio.save_h5_bundle(tmp_path / "clip", processed, compression=compression)
    with h5py.File(path) as f:
        assert set(f) == {
            "data",
            "processed",
            "masks",
            "timestamps",
            "frame_metadata_json",
            "provenance_json",
        }
        assert f["data"].dtype == np.float32
        assert list(f["processed"]) == ["raw", "level"]  # in the order they were added
        assert f["processed/level"].dtype == np.float32
        assert f["masks/high"].dtype == bool
        assert f["timestamps"].dtype == np.float64
        np.testing.assert_array_equal(f["timestamps"][()], processed["time"].values)
        raw = f["frame_metadata_json"][()]
        assert isinstance(raw, bytes)  # np.bytes_: what playNano decodes
        meta = json.loads(raw.decode("utf-8"))
        assert meta[2]["timestamp"] == 0.25
        assert set(meta[0]) >= {
            "timestamp",
            "frame_pixel_size_nm",
            "frame_duration_s",
            "start_epoch_ms",
            "scan_direction",
            "line_rate",
        }
        assert "afmio" in json.loads(f["provenance_json"][()].decode("utf-8"))
        assert f.attrs["pixel_size_nm"] == processed.attrs["pixel_size_nm"]
        assert f.attrs["channel"] == "height_trace"
        for name in ("data", "processed/raw", "masks/high"):
            assert f[name].chunks[1:] == f[name].shape[1:]
            assert f[name].compression == compression


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_layers_and_masks_round_trip(processed, tmp_path, small_chunks, compression):
    path = afmio.save_h5_bundle(tmp_path / "clip", processed, compression=compression)
    ds = afmio.open_dataset(path)
    xr.testing.assert_identical(ds, processed)
    assert ds.afm.layers == ["raw", "level"]
    assert ds.afm.masks == ["high"]
    assert ds.afm.mask("high").dtype == bool
    assert ds.afm.mask("high").values.any()
    assert not ds.afm.mask("high").values.all()


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_chunks_are_what_h5py_writes(video, tmp_path, small_chunks, compression):
    """Byte for byte, filter mask for filter mask, what HDF5's own pipeline stores, in
    frame order in the file; chunks span the dask blocks and the last is padded."""
    path = afmio.save_h5_bundle(tmp_path / "clip", video, compression=compression)
    with h5py.File(path) as f, h5py.File(tmp_path / "ref.h5", "w") as g:
        ours = f["data"]
        ref = g.create_dataset("d", data=video.values, chunks=ours.chunks, compression=compression)
        assert ours.chunks == (4, 12, 10)
        assert (
            ours.id.get_create_plist().get_filter(0)[:3]
            == ref.id.get_create_plist().get_filter(0)[:3]
        )
        stored, expected = chunks_of(ours), chunks_of(ref)
        assert [c[0] for c in stored] == [(0, 0, 0), (4, 0, 0)]
        assert [c[1] for c in stored] == [c[1] for c in expected]
        if compression == "lzf":
            assert stored == expected  # the same liblzf code
        else:  # zlib builds may differ in bytes; the streams must decode the same
            for (_, _, ours_bytes), (_, _, ref_bytes) in zip(stored, expected, strict=True):
                assert zlib.decompress(ours_bytes) == zlib.decompress(ref_bytes)
        np.testing.assert_array_equal(ours[()], video.values)


def test_incompressible_lzf_chunks_are_stored_raw_as_hdf5_does(tmp_path, small_chunks):
    bits = np.random.default_rng(3).integers(0, 2**31, (6, 12, 10), dtype=np.uint32)
    values = (bits & ~np.uint32(0x7F800000)).view(np.float32)  # no NaN or inf
    noise = xr.DataArray(values, dims=("time", "y", "x"), attrs={"pixel_size_nm": 1.0})
    path = afmio.save_h5_bundle(tmp_path / "noise", noise, compression="lzf")
    with h5py.File(path) as f, h5py.File(tmp_path / "ref.h5", "w") as g:
        ref = g.create_dataset("d", data=values, chunks=(4, 12, 10), compression="lzf")
        stored = chunks_of(f["data"])
        assert stored == chunks_of(ref)
        assert stored[0][1] == 1  # the optional LZF filter was skipped for this chunk
        np.testing.assert_array_equal(f["data"][()], values)


def test_unknown_compression_is_refused(video, tmp_path):
    with pytest.raises(ValueError, match="compression must be one of"):
        afmio.save_h5_bundle(tmp_path / "clip", video, compression="zstd")
    assert not (tmp_path / "clip.h5").exists()


def test_empty_video(video, tmp_path):
    path = afmio.save_h5_bundle(tmp_path / "empty", video[:0])
    reopened = afmio.open(path)
    assert reopened.shape == (0, 12, 10)
    xr.testing.assert_identical(reopened, video[:0])


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_progress_counts_every_array_and_an_interruption_leaves_nothing(
    processed, tmp_path, small_chunks, compression
):
    seen = []
    afmio.save_h5_bundle(
        tmp_path / "ok", processed, compression=compression, progress=lambda *a: seen.append(a)
    )
    assert seen[-1] == (28, 28)  # 7 frames of data, two layers and a mask
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    def stop(done, total):
        if done >= 10:
            raise KeyboardInterrupt

    target = tmp_path / "out" / "clip.h5"
    with pytest.raises(KeyboardInterrupt):
        afmio.save_h5_bundle(target, processed, compression=compression, progress=stop)
    assert list((tmp_path / "out").iterdir()) == []


# --- lazy reading --------------------------------------------------------------------------


def test_opening_reads_metadata_only_and_a_frame_reads_its_chunk(make_asd, tmp_path):
    frames = random_levels(64, 128, 128)  # 64 KiB frames of float32: 16 per HDF5 chunk
    video = afmio.open(make_asd(channels={"TP": frames}))
    path = afmio.save_h5_bundle(tmp_path / "big", video, compression=None)
    afmio.open(path).afm.frame(0)  # warm up imports and dask's thread pool
    before = bytes_read()
    reopened = afmio.open(path)
    opened = bytes_read()
    assert opened - before < 2**20 // 4
    frame = reopened.afm.frame(40)
    assert bytes_read() - opened <= 2**20 + 2**16  # its chunk of 16 frames, not 4 MiB
    np.testing.assert_array_equal(frame, video[40].values)


def test_sources_hold_no_handle(processed, tmp_path):
    path = afmio.save_h5_bundle(tmp_path / "clip", processed)
    rec = bundle_h5.read(path)
    source = rec.channels[-1].frames
    assert source == bundle_h5.H5DatasetFrames(str(path), "masks/high", 7, 12, 10)


def test_chunks_follow_the_open_argument(video, tmp_path):
    path = afmio.save_h5_bundle(tmp_path / "clip", video)
    reopened = afmio.open(path, chunks=2)
    assert reopened.chunks[0] == (2, 2, 2, 1)
    np.testing.assert_array_equal(reopened[1:6].values, video[1:6].values)
    assert afmio.open(path, dtype="float64").dtype == np.float32  # stored values, bit for bit


def test_real_h5jpk_round_trip(data_dir, tmp_path):
    video = afmio.open(data_dir / "afmreader_sample_0.h5-jpk")
    path = afmio.save_h5_bundle(tmp_path / "jpk", video)
    xr.testing.assert_identical(afmio.open(path), video)


# --- playNano interop ----------------------------------------------------------------------


def test_playnano_loads_what_afmio_writes(processed, tmp_path):
    path = afmio.save_h5_bundle(tmp_path / "clip", processed)
    stack = load_h5_bundle(path)
    np.testing.assert_array_equal(stack.data, processed["height_trace"].values)
    np.testing.assert_array_equal(stack.processed["raw"], processed["processed__raw"].values)
    np.testing.assert_array_equal(stack.processed["level"], processed["processed__level"].values)
    np.testing.assert_array_equal(stack.masks["high"], processed["masks__high"].values)
    assert stack.pixel_size_nm == processed.attrs["pixel_size_nm"]
    assert stack.channel == "height_trace"
    times = [m["timestamp"] for m in stack.frame_metadata]
    np.testing.assert_array_equal(times, processed["time"].values)
    assert [m["start_epoch_ms"] for m in stack.frame_metadata] == list(
        processed["start_epoch_ms"].values
    )
    acquisition = processed.attrs["provenance"]["acquisition"]
    assert stack.provenance["acquisition"] == json.loads(json.dumps(acquisition))
    assert stack.provenance["bundle"]["bundle_type"] == "h5"


@pytest.mark.parametrize("compression", ["lzf", None])
def test_playnano_loads_every_compression(video, tmp_path, compression):
    path = afmio.save_h5_bundle(tmp_path / "clip", video, compression=compression)
    np.testing.assert_array_equal(load_h5_bundle(path).data, video.values)


def test_afmio_opens_what_playnano_writes(tmp_path):
    stack = playnano_stack()
    path = tmp_path / "pn.h5"
    save_h5_bundle(path, stack)
    assert bundle_h5.sniff(path, path.read_bytes()[:4096])
    ds = afmio.open_dataset(path)
    np.testing.assert_array_equal(ds["height_trace"].values, stack.data)
    np.testing.assert_array_equal(ds["time"].values, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(ds["start_epoch_ms"].values, 1.7e12 + 250.0 * np.arange(5))
    assert list(ds["scan_direction"].values) == ["down", "up", "down", "up", "down"]
    assert ds.attrs["pixel_size_nm"] == 2.5
    assert ds.attrs["channel"] == "height_trace"
    assert ds.afm.layers == ["level", "raw"]  # playNano's files list them by name
    np.testing.assert_array_equal(ds.afm.layer("level").values, stack.processed["level"])
    np.testing.assert_array_equal(ds.afm.layer("raw").values, stack.processed["raw"])
    np.testing.assert_array_equal(ds.afm.mask("high").values, stack.masks["high"])
    assert ds.afm.mask("high").dtype == bool
    assert ds.attrs["provenance"]["acquisition"] == stack.provenance["acquisition"]
    assert ds.attrs["provenance"] == json.loads(json.dumps(stack.provenance, default=str))
    np.testing.assert_allclose(np.diff(ds["x"]), 2.5)
    video = afmio.open(path)
    assert video.name == "height_trace"
    assert video.attrs["units"] == "nm"


def test_playnano_raw_export_opens(tmp_path):
    stack = playnano_stack()
    stack.data = stack.processed["level"]
    save_h5_bundle(tmp_path / "raw.h5", stack, raw=True)
    ds = afmio.open_dataset(tmp_path / "raw.h5")
    assert list(ds.data_vars) == ["height_trace"]
    np.testing.assert_array_equal(ds["height_trace"].values, stack.processed["raw"])


# --- detection -----------------------------------------------------------------------------


def test_sniff_is_false_for_other_hdf5_files(tmp_path):
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["data"] = np.zeros((2, 3, 4))  # a "data" alone is not a bundle
    jpk = write_h5jpk(
        tmp_path / "scan.h5-jpk",
        {"height_trace": random_levels(2, 4, 6).astype(np.int32)},
        n_frames=2,
        shape=(4, 6),
    )
    renamed = tmp_path / "scan.h5"
    renamed.write_bytes(jpk.read_bytes())
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(5000))
    for path in (plain, jpk, renamed, garbage):
        assert not bundle_h5.sniff(path, path.read_bytes()[:4096])
    assert afmio.open(renamed).attrs["source"]["format"] == "h5-jpk"
    fails_cleanly(plain, afmio.UnsupportedFormatError, "is an HDF5 file")
    fails_cleanly(garbage, afmio.UnsupportedFormatError, "is an HDF5 file")


def test_bundles_are_found_by_content_whatever_their_name(video, tmp_path):
    path = afmio.save_h5_bundle(tmp_path / "clip", video)
    odd = path.rename(tmp_path / "clip.bin")
    assert afmio.formats()[4].name == "h5-bundle"
    assert afmio.open(odd).shape == video.shape
    assert afmio.load_h5_bundle(odd).attrs["channel"] == "height_trace"


# --- bad input -----------------------------------------------------------------------------


@pytest.fixture
def bundle(processed, tmp_path):
    return afmio.save_h5_bundle(tmp_path / "clip", processed)


def test_missing_data(bundle):
    edit(bundle, lambda f: f.__delitem__("data"))
    fails_cleanly(bundle, afmio.CorruptFileError, "has no /data dataset")


@pytest.mark.parametrize("name", ["frame_metadata_json", "provenance_json"])
def test_missing_json(bundle, name):
    edit(bundle, lambda f: f.__delitem__(name))
    fails_cleanly(bundle, afmio.CorruptFileError, f"has no /{name}")


@pytest.mark.parametrize("name", ["frame_metadata_json", "provenance_json"])
def test_invalid_json(bundle, name):
    def spoil(f):
        del f[name]
        f[name] = np.bytes_(b'{"cut short": [1, 2')

    edit(bundle, spoil)
    fails_cleanly(bundle, afmio.CorruptFileError, f"/{name} is not valid UTF-8 JSON")


def test_json_of_the_wrong_kind(bundle):
    def spoil(f):
        del f["provenance_json"]
        f["provenance_json"] = np.bytes_(b"[1, 2]")

    edit(bundle, spoil)
    fails_cleanly(bundle, afmio.CorruptFileError, "holds a JSON list, not a dict")


def test_timestamps_of_another_length(bundle):
    def spoil(f):
        del f["timestamps"]
        f["timestamps"] = np.arange(5.0)

    edit(bundle, spoil)
    fails_cleanly(bundle, afmio.CorruptFileError, r"/timestamps has shape \(5,\) but /data has 7")


def test_frame_metadata_of_another_length(bundle):
    def spoil(f):
        meta = json.loads(f["frame_metadata_json"][()].decode("utf-8"))
        del f["frame_metadata_json"]
        f["frame_metadata_json"] = np.bytes_(json.dumps(meta[:6]).encode())

    edit(bundle, spoil)
    fails_cleanly(bundle, afmio.CorruptFileError, "has 6 entries but /data has 7 frames")


def test_layer_of_another_shape(bundle):
    def spoil(f):
        del f["processed/level"]
        f["processed/level"] = np.zeros((7, 12, 9), np.float32)

    edit(bundle, spoil)
    fails_cleanly(bundle, afmio.CorruptFileError, r"/processed/level has shape \(7, 12, 9\)")


def test_missing_root_attribute(bundle):
    edit(bundle, lambda f: f.attrs.__delitem__("pixel_size_nm"))
    fails_cleanly(bundle, afmio.CorruptFileError, "no root attribute 'pixel_size_nm'")


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_bundle(bundle, keep):
    data = bundle.read_bytes()
    bundle.write_bytes(data[: int(len(data) * keep)])
    fails_cleanly(bundle, afmio.CorruptFileError, "truncated")


def test_damaged_chunk_fails_at_compute(video, tmp_path):
    path = afmio.save_h5_bundle(tmp_path / "clip", video)
    opened = afmio.open(path)
    with h5py.File(path) as f:
        where = f["data"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(where + 10)
        fh.write(bytes(64))
    with pytest.raises(afmio.CorruptFileError, match=r"cannot read frames 0\.\.6 of /data"):
        opened.values  # noqa: B018
