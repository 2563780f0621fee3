"""NPZ bundles: streamed export, lazy in-place reading, playNano interop, bad input."""

from __future__ import annotations

import io
import json
import pickle
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from playnano.io.data_loaders import load_npz_bundle
from playnano.io.export_data import save_npz_bundle

import afmio
from afmio.layouts import bundle_provenance
from afmio.lazy import StridedFrames
from afmio.readers import bundle_npz
from afmio.writers import npz
from afmio.writers._common import bundle_content

from conftest import bytes_read, fails_cleanly, playnano_stack, random_levels


@pytest.fixture
def bundle(video, tmp_path):
    return afmio.save_npz_bundle(tmp_path / "clip", video)


def write_npz(path: Path, entries: dict, compression: int = zipfile.ZIP_STORED) -> Path:
    """An NPZ of ``entries``: arrays (pickled if object arrays) or raw ``.npy`` bytes."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for key, value in entries.items():
            if isinstance(value, bytes):
                zf.writestr(key + ".npy", value)
                continue
            with zf.open(key + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=True)
    return path


def entries_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npzfile:  # no allow_pickle: afmio's entries never need it
        return {k: npzfile[k] for k in npzfile.files}


def npy_bytes(header_shape: tuple[int, ...], values: np.ndarray) -> bytes:
    """A ``.npy`` entry whose header says ``header_shape`` whatever ``values`` holds."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        f, {"descr": values.dtype.str, "fortran_order": False, "shape": header_shape}
    )
    return f.getvalue() + values.tobytes()


# --- afmio round trips -------------------------------------------------------------------


def test_round_trip_is_identical_and_entries_are_stored(video, bundle):
    xr.testing.assert_identical(afmio.open(bundle), video)
    with zipfile.ZipFile(bundle) as zf:
        infos = zf.infolist()
    assert sorted(i.filename for i in infos) == sorted(
        f"{k}.npy"
        for k in (
            "data",
            "timestamps",
            "frame_metadata_json",
            "provenance_json",
            "pixel_size_nm",
            "channel",
        )
    )
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    # np.load reads every entry without pickle, as playNano's loader does with .item().
    e = entries_of(bundle)
    assert e["data"].dtype == np.float32
    np.testing.assert_array_equal(e["data"], video.values)
    np.testing.assert_array_equal(e["timestamps"], video["time"].values)
    assert str(e["channel"].item()) == "height_trace"
    assert float(e["pixel_size_nm"].item()) == video.attrs["pixel_size_nm"]
    assert json.loads(e["provenance_json"].item()) == json.loads(
        json.dumps(bundle_provenance(video))
    )
    meta = json.loads(e["frame_metadata_json"].item())
    assert [m["timestamp"] for m in meta] == video["time"].values.tolist()


def test_layers_and_masks_round_trip(processed, tmp_path):
    path = afmio.save_npz_bundle(tmp_path / "clip", processed)
    ds = afmio.load_npz_bundle(path)
    xr.testing.assert_identical(ds, processed)
    assert ds.afm.layers == ["raw", "level"]
    assert ds.afm.masks == ["high"]
    assert ds.afm.mask("high").dtype == bool
    e = entries_of(path)
    assert e["masks__high"].dtype == bool
    np.testing.assert_array_equal(e["processed__raw"], processed["processed__raw"].values)


def test_frames_are_read_in_place_lazily(make_asd, tmp_path):
    video = afmio.open(make_asd(channels={"TP": random_levels(48, 128, 128)}), chunks=8)
    path = afmio.save_npz_bundle(tmp_path / "big", video)
    rec = afmio.readers.read(path)
    source = rec.channels[0].frames
    frame_bytes = 128 * 128 * 4
    assert isinstance(source, StridedFrames)
    assert source.stride == frame_bytes
    assert source.gain is None
    before = bytes_read()
    reopened = afmio.open(path)
    assert bytes_read() - before < frame_bytes  # headers and metadata only
    before = bytes_read()
    frame = reopened[40].values
    assert frame_bytes <= bytes_read() - before < 2 * frame_bytes
    np.testing.assert_array_equal(frame, video[40].values)


def test_export_streams_each_array_chunk_by_chunk(make_asd, tmp_path):
    # 2048 frames of 64x64 float32: 32 MiB, written in 128 chunks of 256 KiB.
    frames = np.broadcast_to(random_levels(1, 64, 64)[0], (2048, 64, 64))
    video = afmio.open(make_asd(channels={"TP": frames}), chunks=16)
    afmio.save_npz_bundle(tmp_path / "warm", video[:16])  # first-use imports are not data
    seen = []
    tracemalloc.start()
    try:
        path = afmio.save_npz_bundle(tmp_path / "big", video, progress=lambda *a: seen.append(a))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # a quarter of the video: it was never held whole
    assert seen == [(16 * (i + 1), 2048) for i in range(128)]
    np.testing.assert_array_equal(afmio.open(path)[::100].values, video[::100].values)


def test_progress_counts_the_frames_of_every_array(processed, tmp_path):
    seen = []
    afmio.save_npz_bundle(tmp_path / "clip", processed, progress=lambda d, t: seen.append((d, t)))
    # data, two layers and a mask, 7 frames each, in chunks of 3, 3 and 1 frames
    assert seen[-1] == (28, 28)
    assert [d for d, _ in seen] == [3, 6, 7, 10, 13, 14, 17, 20, 21, 24, 27, 28]


def test_interrupted_export_leaves_no_file(processed, tmp_path):
    def stop(done, total):
        if done > total // 2:
            raise RuntimeError("cancelled")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="cancelled"):
        afmio.save_npz_bundle(out / "clip", processed, progress=stop)
    assert list(out.iterdir()) == []


def test_existing_target_is_kept_unless_overwrite(video, bundle):
    with pytest.raises(afmio.AfmFileExistsError, match="overwrite=True"):
        afmio.save_npz_bundle(bundle, video[:2])
    assert afmio.open(bundle).sizes["time"] == 7
    afmio.save_npz_bundle(bundle, video[:2], overwrite=True)
    assert afmio.open(bundle).sizes["time"] == 2


def test_state_backups_are_written_and_read(video, tmp_path):
    content = bundle_content(video)
    content.state_backups = {"frame_metadata_before_edit": [{"timestamp": 0.0}]}
    path = npz.write(tmp_path / "clip.npz", content)
    assert json.loads(entries_of(path)["state_backups_json"].item()) == content.state_backups
    assert afmio.readers.read(path).reader_notes["state_backups"] == content.state_backups
    assert load_npz_bundle(path).state_backups == content.state_backups


def test_content_sniffing_ignores_the_name(bundle, tmp_path):
    renamed = bundle.rename(tmp_path / "clip.bin")
    assert afmio.open(renamed).attrs["channel"] == "height_trace"
    assert afmio.readers.detect(renamed) is bundle_npz.READER
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "not a bundle")
    assert not bundle_npz.sniff(other, other.read_bytes()[:4096])
    cut = tmp_path / "cut.zip"
    cut.write_bytes(renamed.read_bytes()[:200])
    assert not bundle_npz.sniff(cut, cut.read_bytes())  # damaged, not ours by name: no raise


# --- playNano interop ----------------------------------------------------------------------


def test_playnano_loads_what_afmio_writes(processed, tmp_path):
    path = afmio.save_npz_bundle(tmp_path / "clip", processed)
    stack = load_npz_bundle(path)
    current = processed.afm.data
    np.testing.assert_array_equal(stack.data, current.values)
    assert stack.data.dtype == np.float32
    assert stack.pixel_size_nm == current.attrs["pixel_size_nm"]
    assert stack.channel == "height_trace"
    assert stack.get_frame_times() == current["time"].values.tolist()
    assert [m["start_epoch_ms"] for m in stack.frame_metadata] == (
        current["start_epoch_ms"].values.tolist()
    )
    assert {m["scan_direction"] for m in stack.frame_metadata} == {"x-forward"}
    assert sorted(stack.processed) == ["level", "raw"]
    np.testing.assert_array_equal(stack.processed["raw"], processed["processed__raw"].values)
    np.testing.assert_array_equal(stack.masks["high"], processed["masks__high"].values)
    provenance = dict(stack.provenance)
    assert provenance.pop("bundle")["bundle_type"] == "npz"
    assert provenance == json.loads(json.dumps(bundle_provenance(current)))


@pytest.mark.parametrize("compressed", [True, False], ids=["savez_compressed", "savez"])
def test_afmio_opens_what_playnano_writes(tmp_path, compressed, monkeypatch):
    stack = playnano_stack()
    if not compressed:  # playNano's layout as np.savez stores it: pickles read in place
        monkeypatch.setattr(np, "savez_compressed", np.savez)
    save_npz_bundle(tmp_path / "clip.npz", stack)
    path = tmp_path / "clip.npz"
    with zipfile.ZipFile(path) as zf:
        methods = {i.compress_type for i in zf.infolist()}
    assert methods == {zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED}
    rec = afmio.readers.read(path)
    frames = rec.channels[0].frames
    assert isinstance(frames, bundle_npz.ZipEntryFrames if compressed else StridedFrames)
    assert pickle.loads(pickle.dumps(frames)) == frames

    ds = afmio.open_dataset(path, chunks=2)  # chunks 2.. and 4.. start mid-entry
    np.testing.assert_array_equal(ds["height_trace"].values, stack.data)
    np.testing.assert_array_equal(ds["time"].values, stack.get_frame_times())
    assert ds.attrs["pixel_size_nm"] == 2.5
    assert ds.attrs["channel"] == "height_trace"
    np.testing.assert_allclose(ds["x"].values, (np.arange(8) + 0.5) * 2.5)
    assert ds.afm.layers == ["raw", "level"]
    for name, layer in stack.processed.items():
        np.testing.assert_array_equal(ds.afm.layer(name).values, layer)
    np.testing.assert_array_equal(ds.afm.mask("high").values, stack.masks["high"])
    assert ds.afm.mask("high").dtype == bool
    assert ds["scan_direction"].values.tolist() == ["down", "up", "down", "up", "down"]
    np.testing.assert_array_equal(ds["start_epoch_ms"].values, 1.7e12 + 250.0 * np.arange(5))
    assert ds.attrs["provenance"] == json.loads(json.dumps(stack.provenance))
    assert rec.acquisition == {"operator": "playNano", "scan_rate_hz": 24.0}
    assert rec.reader_notes["state_backups"] == {"note": "kept"}


def test_reading_a_deflated_entry_decompresses_only_up_to_the_frames_wanted(tmp_path):
    save_npz_bundle(tmp_path / "clip.npz", playnano_stack(n=6))
    frames = afmio.readers.read(tmp_path / "clip.npz").channels[0].frames
    full = frames.read(0, 6, np.float32)
    np.testing.assert_array_equal(frames.read(3, 5, np.float32), full[3:5])
    assert frames.read(2, 2, np.float32).shape == (0, 6, 8)


# --- pickles are walked, never executed ----------------------------------------------------


class Marker:
    """Unpickling this would create a file: afmio must refuse it without doing so."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


class Thing:
    pass


def object_array(value) -> np.ndarray:
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


def test_a_pickled_callable_is_refused_and_not_run(bundle, tmp_path):
    marker = tmp_path / "ran"
    e = entries_of(bundle)
    e["channel"] = object_array(Marker(marker))
    path = write_npz(tmp_path / "evil.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, "channel.npy is a pickled .* refers to pathlib")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (object_array(Thing()), "refers to test_bundle_npz.Thing"),
        (object_array(["a", "b"]), "element is a pickled list"),
        (object_array(5), "element is a pickled int"),
        (np.array(["{}", "{}"], dtype=object), r"holds 2 objects \(shape \(2,\)\)"),
        (np.array([Thing()], dtype=object), "refers to test_bundle_npz.Thing"),
    ],
)
def test_pickled_objects_other_than_one_string_are_refused(bundle, tmp_path, value, match):
    e = entries_of(bundle)
    e["provenance_json"] = value
    path = write_npz(tmp_path / "odd.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, f"provenance_json.npy .*{match}")


def test_a_pickled_bytes_string_is_read(bundle, tmp_path, video):
    e = entries_of(bundle)
    e["provenance_json"] = object_array(e["provenance_json"].item())  # bytes, as playNano
    e["channel"] = object_array("height_trace")
    path = write_npz(tmp_path / "pickled.npz", e)
    xr.testing.assert_identical(afmio.open(path), video)


def test_a_truncated_pickle_is_refused(bundle, tmp_path):
    f = io.BytesIO()
    np.save(f, object_array("height_trace"), allow_pickle=True)
    e = entries_of(bundle)
    e["channel"] = f.getvalue()[:-20]
    path = write_npz(tmp_path / "cut.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, "channel.npy is a pickled .*(malformed|STOP)")


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"PK\x03\x04" + bytes(500), b"not a zip at all" * 10])
def test_bad_zip_named_npz(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    fails_cleanly(path, afmio.CorruptFileError, "not a readable NPZ")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_zip(bundle, keep):
    raw = bundle.read_bytes()
    bundle.write_bytes(raw[: int(len(raw) * keep)])
    fails_cleanly(bundle, afmio.CorruptFileError, "truncated")


def test_data_header_that_lies_about_its_shape(bundle, tmp_path):
    e = entries_of(bundle)
    e["data"] = npy_bytes((100, 12, 10), e["data"])
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = write_npz(tmp_path / f"lies{method}.npz", e, method)
        fails_cleanly(
            path, afmio.CorruptFileError, r"data.npy has \d+ bytes, but its header says shape"
        )


def test_data_that_is_not_frames(bundle, tmp_path):
    e = entries_of(bundle)
    e["data"] = e["data"][0]
    path = write_npz(tmp_path / "flat.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, r"shape \(12, 10\), not frames")


@pytest.mark.parametrize("key", ["data", "provenance_json", "frame_metadata_json"])
def test_bundle_missing_an_entry(bundle, tmp_path, key):
    e = entries_of(bundle)
    del e[key]
    path = write_npz(tmp_path / "partial.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, f"not an NPZ bundle: it lacks {key}")


def test_plain_npz_without_data(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, x=np.arange(3))
    fails_cleanly(path, afmio.CorruptFileError, r"lacks data, .*\(it has entries x\)")


@pytest.mark.parametrize("key", ["provenance_json", "frame_metadata_json"])
def test_invalid_json(bundle, tmp_path, key):
    e = entries_of(bundle)
    e[key] = np.array('{"unterminated": ')
    path = write_npz(tmp_path / "bad.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, f"{key} is not valid JSON")


def test_json_of_the_wrong_kind(bundle, tmp_path):
    e = entries_of(bundle)
    e["frame_metadata_json"] = np.array('{"timestamp": 0}')
    path = write_npz(tmp_path / "bad.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, "frame_metadata_json is not a list")


def test_timestamps_of_another_length(bundle, tmp_path):
    e = entries_of(bundle)
    e["timestamps"] = e["timestamps"][:-1]
    path = write_npz(tmp_path / "bad.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, "timestamps has 6 entries but data has 7 frames")


def test_frame_metadata_of_another_length(bundle, tmp_path):
    e = entries_of(bundle)
    meta = json.loads(e["frame_metadata_json"].item())
    e["frame_metadata_json"] = np.array(json.dumps(meta + meta[:1]))
    path = write_npz(tmp_path / "bad.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, "has 8 entries but data has 7 frames")


def test_file_truncated_after_it_was_opened(bundle):
    video = afmio.open(bundle)
    raw = bundle.read_bytes()
    bundle.write_bytes(raw[:1000])
    with pytest.raises(afmio.CorruptFileError, match="truncated") as info:
        video.values  # noqa: B018
    assert bundle.name in str(info.value)


@pytest.mark.parametrize("name", ["playnano_asd_sample_0.asd", "afmreader_sample_0.h5-jpk"])
def test_real_files_round_trip_and_load_in_playnano(data_dir, tmp_path, name):
    video = afmio.open(data_dir / name)
    path = afmio.save_npz_bundle(tmp_path / "real", video)
    xr.testing.assert_identical(afmio.open(path), video)
    stack = load_npz_bundle(path)
    np.testing.assert_array_equal(stack.data, video.values)
    assert stack.get_frame_times() == video["time"].values.tolist()
    # and back: playNano's own bundle of what it loaded opens with the same frames
    save_npz_bundle(tmp_path / "playnano.npz", stack)
    np.testing.assert_array_equal(afmio.open(tmp_path / "playnano.npz").values, video.values)


def test_fortran_ordered_frames_are_refused(bundle, tmp_path):
    e = entries_of(bundle)
    e["data"] = np.asfortranarray(e["data"])
    path = write_npz(tmp_path / "fortran.npz", e)
    fails_cleanly(path, afmio.CorruptFileError, "data.npy is stored in Fortran order")
