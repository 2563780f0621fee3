"""The JPK HDF5 (.h5-jpk) reader: the real sample, generated files, bad input, laziness."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

import h5py
import numpy as np
import pytest

import afmio
from afmio.errors import AfmIOWarning
from afmio.readers import h5jpk
from afmio.synthetic.h5jpk import DEFAULT_SCALING, write_h5jpk

from conftest import bytes_read, fails_cleanly

REAL = "afmreader_sample_0.h5-jpk"
M = "Measurement_000"


def raw_frames(n: int, ny: int, nx: int, seed: int = 0) -> np.ndarray:
    """Random int32 levels spanning a realistic range of heights."""
    return np.random.default_rng(seed).integers(-(2**30), 2**30, (n, ny, nx), dtype=np.int32)


def scaled(raw: np.ndarray, multiplier: float, offset: float, factor: float) -> np.ndarray:
    """What afmio must return: rows reversed, ``(raw * m + o) * factor`` in float64."""
    return (raw[:, ::-1, :].astype(np.float64) * multiplier + offset) * factor


def assert_scaled(actual, expected) -> None:
    """Equal up to float64 rounding of ``raw * m * f + o * f`` against ``(raw * m + o) * f``."""
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


@pytest.fixture
def make_h5jpk(tmp_path):
    """``make_h5jpk(name, {"height_trace": raw}, **kwargs)`` writes a file in tmp_path."""

    def make(name: str = "video.h5-jpk", channels=None, **kwargs):
        if channels is None:
            channels = {"height_trace": raw_frames(3, 4, 6)}
        first = next(iter(channels.values()))
        kwargs.setdefault("n_frames", len(first))
        kwargs.setdefault("shape", first.shape[1:])
        return write_h5jpk(tmp_path / name, channels, **kwargs)

    return make


def edit(path, fn) -> None:
    """Apply ``fn`` to the file opened for writing, to set up one specific case."""
    with h5py.File(path, "r+") as f:
        fn(f)


# --- the real sample -----------------------------------------------------------------------


def test_real_sample_height_matches_playnano(data_dir):
    path = data_dir / REAL
    video = afmio.open(path)
    assert video.attrs["channel"] == "height_trace"
    assert video.attrs["native_channel"] == f"{M}/Channel_001"
    assert video.shape == (4, 128, 128)
    assert video.attrs["pixel_size_nm"] == video.attrs["pixel_size_y_nm"] == 1.171875
    assert video.attrs["units"] == "nm"
    np.testing.assert_allclose(video["time"], [0.0, 3.275, 6.55, 9.825], rtol=0, atol=1e-12)
    values = video.values
    # playNano 0.5.0's figures (float64), compared at float32 precision.
    assert values.min() == np.float32(722.5733720664174)
    assert values.max() == np.float32(752.1912427632607)
    assert values.mean(dtype=np.float64) == pytest.approx(740.4416358531423, rel=2**-23)
    np.testing.assert_array_equal(
        video["start_epoch_ms"], 1748439718548.0 + np.array([0, 3275, 6550, 9825])
    )
    np.testing.assert_allclose(video["frame_duration_s"], [3.262, 3.262, 3.262, 3.39])
    np.testing.assert_array_equal(video["line_rate"], 40.0)
    assert list(video["scan_direction"].values) == ["topDown"] * 4


def test_real_sample_measured_height_and_channel_names(data_dir):
    path = data_dir / REAL
    assert afmio.channels(path) == [
        "error_trace", "height_trace", "phase_retrace", "height_retrace",
        "measuredHeight_trace", "error_retrace", "amplitude_trace", "amplitude_retrace",
        "phase_trace",
    ]  # fmt: skip
    video = afmio.open(path, "measuredheight_trace")  # playNano's lower-case key
    assert video.attrs["channel"] == "measuredHeight_trace"
    assert video.attrs["long_name"] == "Height (measured)"
    values = video.values
    assert values.min() == np.float32(1968.4112194740233)
    assert values.max() == np.float32(1994.1859312360343)
    assert values.mean(dtype=np.float64) == pytest.approx(1981.532878980965, rel=2**-23)
    phase = afmio.open(path, "phase_retrace")
    assert phase.attrs["units"] == "deg"
    assert phase.attrs["long_name"] == "Lock-In Phase (retrace)"


def test_real_sample_row_zero_is_the_last_stored_line(data_dir):
    path = data_dir / REAL
    with h5py.File(path, "r") as f:
        g = f[f"{M}/Channel_001"]
        column = g["Height"][:, 2].astype(np.float64)
        m, o = g.attrs["net-encoder.scaling.multiplier"], g.attrs["net-encoder.scaling.offset"]
    stored = (column * m + o).reshape(128, 128) * 1e9
    frame = afmio.open(path, dtype="float64").afm.frame(2)
    np.testing.assert_allclose(frame, stored[::-1], rtol=1e-12)


def test_real_sample_provenance_is_json_safe_metadata(data_dir):
    video = afmio.open(data_dir / REAL)
    prov = video.attrs["provenance"]
    assert json.loads(json.dumps(prov, allow_nan=False)) == prov
    acq = prov["acquisition"]
    assert acq["file-format-info"] == "JPK SCAN"
    assert acq["position-pattern.grid.ilength"] == 128
    assert acq["start-time"] == "2025-05-28 14:41:58.548 +0100"
    assert acq["timing-settings.scanRate"] == 40.0
    assert acq["environment.fast-imaging.feed-forward-parameters.yaxis.interlace"] == "false"
    assert acq["measurement_group"] == M
    assert len(json.dumps(acq)) < 200_000  # metadata only: no per-pixel arrays
    notes = prov["reader"]["channels"]["height_trace"]
    assert notes["dataset"] == f"{M}/Channel_001/Height"
    assert notes["unit"] == "m"
    assert notes["decoded_by"] == "afmio, per chunk: ['shuffle', 'deflate']"
    assert video.attrs["source"]["format"] == "h5-jpk"
    assert video.attrs["source"]["format_version"] == "3.0"


# --- generated files -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (8, 3), (1, 4)])
def test_non_square_frames_values_and_geometry(make_h5jpk, shape):
    ny, nx = shape
    raw = raw_frames(4, ny, nx, seed=ny)
    path = make_h5jpk(channels={"height_trace": raw}, scan_size_m=(nx * 2e-9, ny * 3e-9))
    video = afmio.open(path, dtype="float64")
    assert video.shape == (4, ny, nx)
    mult, off, _ = DEFAULT_SCALING["height"]
    assert_scaled(video.values, scaled(raw, mult, off, 1e9))
    assert video.attrs["pixel_size_nm"] == pytest.approx(2.0)
    assert video.attrs["pixel_size_y_nm"] == pytest.approx(3.0)
    np.testing.assert_allclose(video["x"], (np.arange(nx) + 0.5) * 2.0)


@pytest.mark.parametrize(
    ("unit", "factor", "units"),
    [
        ("m", 1e9, "nm"),
        ("mm", 1e6, "nm"),
        ("µm", 1e3, "nm"),
        ("nm", 1.0, "nm"),
        ("pm", 1e-3, "nm"),
        ("V", 1.0, "V"),
        ("deg", 1.0, "deg"),
    ],
)
def test_unit_conversion_per_channel(make_h5jpk, unit, factor, units):
    raw = raw_frames(2, 3, 4)
    path = make_h5jpk(
        channels={"amplitude_retrace": raw}, scaling={"amplitude_retrace": (2.5e-9, 0.75, unit)}
    )
    video = afmio.open(path, dtype="float64")
    assert video.attrs["channel"] == "amplitude_retrace"
    assert video.attrs["units"] == units
    assert_scaled(video.values, scaled(raw, 2.5e-9, 0.75, factor))


def test_each_channel_has_its_own_scaling_and_float32_keeps_precision(make_h5jpk):
    height, measured, phase = (raw_frames(3, 6, 5, seed=s) for s in (1, 2, 3))
    path = make_h5jpk(
        channels={"height_trace": height, "measuredHeight_trace": measured, "phase_retrace": phase}
    )
    assert afmio.channels(path) == ["height_trace", "measuredHeight_trace", "phase_retrace"]
    for key, raw in (("height", height), ("measuredHeight", measured), ("phase", phase)):
        mult, off, unit = DEFAULT_SCALING[key]
        expected = scaled(raw, mult, off, 1e9 if unit == "m" else 1.0)
        name = f"{key}_{'retrace' if key == 'phase' else 'trace'}"
        got = afmio.open(path, name.upper()).values  # names match in any case
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=2**-23)
    ds = afmio.open_dataset(path)
    assert set(ds.data_vars) == {"height_trace", "measuredHeight_trace", "phase_retrace"}
    assert ds["phase_retrace"].attrs["units"] == "deg"


def test_channel_answers_to_its_hdf5_path(make_h5jpk):
    path = make_h5jpk(
        channels={"error_trace": raw_frames(2, 3, 3), "height_retrace": raw_frames(2, 3, 3)}
    )
    video = afmio.open(path)  # no height_trace: the first channel is the default
    assert video.attrs["channel"] == "error_trace"
    assert afmio.open(path, f"{M}/channel_001").attrs["channel"] == "height_retrace"
    with pytest.raises(afmio.ChannelNotFoundError, match=rf"height_retrace \({M}/Channel_001\)"):
        afmio.open(path, "phase_trace")


def test_per_frame_start_and_end_times(make_h5jpk):
    path = make_h5jpk(channels={"height_trace": raw_frames(4, 2, 2)})
    starts = np.array(
        [[1_700_000_000_000], [1_700_000_000_040], [1_700_000_000_090], [1_700_000_000_125]]
    )
    ends = starts + np.array([[35], [45], [30], [31]])

    def set_times(f):
        f[f"{M}/meta-data/start-times"][...] = starts
        f[f"{M}/meta-data/end-times"][...] = ends

    edit(path, set_times)
    video = afmio.open(path)
    np.testing.assert_allclose(video["time"], [0.0, 0.04, 0.09, 0.125], atol=1e-12)
    np.testing.assert_array_equal(video["start_epoch_ms"], starts.ravel().astype(float))
    np.testing.assert_allclose(video["frame_duration_s"], [0.035, 0.045, 0.03, 0.031])
    assert afmio.open(path).attrs["provenance"]["reader"]["time_rule"].startswith("meta-data")


def test_orientation_row_zero_is_the_last_stored_line(make_h5jpk):
    raw = np.arange(12, dtype=np.int32).reshape(1, 3, 4) * 1000  # row r holds 4000*r...
    path = make_h5jpk(channels={"height_trace": raw}, scaling={"height_trace": (1e-9, 0.0, "m")})
    frame = afmio.open(path, dtype="float64").afm.frame(0)
    np.testing.assert_array_equal(frame[0], [8000, 9000, 10000, 11000])
    np.testing.assert_array_equal(frame[-1], [0, 1000, 2000, 3000])


def test_provenance_is_json_safe_and_decodes_bytes(make_h5jpk):
    path = make_h5jpk()
    edit(path, lambda f: f[M].attrs.create("big-array", np.arange(1000.0)))
    edit(path, lambda f: f[M].attrs.create("small-array", np.array([1.5, np.nan])))
    edit(path, lambda f: f[M].attrs.create("latin1", np.bytes_("5 \xb5m".encode("latin-1"))))
    prov = afmio.open(path).attrs["provenance"]
    assert json.loads(json.dumps(prov, allow_nan=False)) == prov
    acq = prov["acquisition"]
    assert acq["environment.scanner.xy-range"] == "3 µm"  # UTF-8 bytes decoded
    assert acq["latin1"] == "5 µm"
    assert acq["big-array"] == "<float64 array of shape (1000,)>"
    assert acq["small-array"] == [1.5, None]
    assert acq["position-pattern.grid.ilength"] == 6
    assert isinstance(acq["position-pattern.grid.ulength"], float)


def test_content_sniffing_ignores_the_name(make_h5jpk, tmp_path):
    path = make_h5jpk("video.h5")
    assert afmio.readers.detect(path) is h5jpk.READER
    upper = make_h5jpk("VIDEO.H5-JPK")
    assert afmio.open(upper).shape == (3, 4, 6)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros(3)
    with open(tmp_path / "other.h5", "rb") as f:
        assert not h5jpk.sniff(tmp_path / "other.h5", f.read(4096))
    assert not h5jpk.sniff(tmp_path / "missing.h5", b"\x89HDF\r\n\x1a\n" + bytes(100))


# --- several measurement groups ------------------------------------------------------------


def test_measurement_groups_with_the_same_axes_are_selectable(make_h5jpk):
    first, second, phase = raw_frames(3, 4, 5, 1), raw_frames(3, 4, 5, 2), raw_frames(3, 4, 5, 3)
    path = make_h5jpk(channels={"height_trace": first})
    write_h5jpk(
        path, {"height_trace": second, "phase_trace": phase}, n_frames=3, shape=(4, 5),
        group="Measurement_001", append=True,
    )  # fmt: skip
    assert afmio.channels(path) == [
        "height_trace", "height_trace@Measurement_001", "phase_trace"
    ]  # fmt: skip
    mult, off, _ = DEFAULT_SCALING["height"]
    default = afmio.open(path, dtype="float64")
    assert_scaled(default.values, scaled(first, mult, off, 1e9))
    for name in ("height_trace@measurement_001", "Measurement_001/Channel_000"):
        video = afmio.open(path, name, dtype="float64")
        assert_scaled(video.values, scaled(second, mult, off, 1e9))
    acq = default.attrs["provenance"]["acquisition"]
    assert acq["measurement_group"] == M
    assert acq["other_measurement_groups"]["Measurement_001"]["position-pattern.grid.ilength"] == 5


def test_default_is_the_first_group_with_a_height_channel(make_h5jpk):
    path = make_h5jpk(channels={"phase_trace": raw_frames(2, 3, 3)})
    height = raw_frames(2, 3, 3, seed=5)
    write_h5jpk(
        path, {"height_trace": height}, n_frames=2, shape=(3, 3),
        group="Measurement_001", append=True,
    )  # fmt: skip
    video = afmio.open(path, dtype="float64")
    assert video.attrs["native_channel"] == "Measurement_001/Channel_000"
    mult, off, _ = DEFAULT_SCALING["height"]
    assert_scaled(video.values, scaled(height, mult, off, 1e9))


@pytest.mark.parametrize(
    "other", [{"shape": (3, 3)}, {"start_epoch_ms": 1_800_000_000_000}, {"n_frames": 1}]
)
def test_measurement_group_with_other_axes_is_left_out_with_a_warning(make_h5jpk, other):
    path = make_h5jpk(channels={"height_trace": raw_frames(2, 4, 4)})
    kwargs = {"n_frames": 2, "shape": (4, 4), **other}
    phase = raw_frames(kwargs["n_frames"], *kwargs["shape"])
    write_h5jpk(path, {"phase_trace": phase}, group="Measurement_001", append=True, **kwargs)
    assert afmio.channels(path) == ["height_trace"]
    with pytest.warns(AfmIOWarning, match="Measurement_001 has a different grid or time axis"):
        assert afmio.open(path).shape == (2, 4, 4)
    with pytest.raises(afmio.ChannelNotFoundError, match="phase_trace"):
        afmio.open(path, "phase_trace")


# --- bad input -----------------------------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5-jpk"
    path.write_bytes(b"")
    fails_cleanly(path, afmio.CorruptFileError, "empty")


@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_truncated_file(make_h5jpk, keep):
    path = make_h5jpk(channels={"height_trace": raw_frames(20, 32, 32)})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    fails_cleanly(path, afmio.CorruptFileError, "truncated or damaged.*truncated file")


@pytest.mark.parametrize("name", ["video.h5-jpk", "VIDEO.H5-JPK"])
def test_not_hdf5_but_named_h5jpk(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"JPK? no, a text file\n" * 100)
    fails_cleanly(path, afmio.CorruptFileError, "not an HDF5 file")
    with pytest.raises(afmio.CorruptFileError, match="no HDF5 signature"):
        h5jpk.read(path)


def test_hdf5_without_jpk_structure(tmp_path):
    path = tmp_path / "other.h5-jpk"
    with h5py.File(path, "w") as f:
        f.create_group("Measurement_000")["Raw_Data"] = np.zeros((4, 2))
    fails_cleanly(path, afmio.UnsupportedFormatError, "without the JPK scan structure")
    renamed = path.rename(tmp_path / "other.h5")
    fails_cleanly(renamed, afmio.UnsupportedFormatError, "is an HDF5 file, not a file afmio reads")


def test_jpk_hdf5_of_another_kind(make_h5jpk):
    path = make_h5jpk()
    edit(path, lambda f: f.attrs.__setitem__("file-format-info", np.bytes_(b"JPK FORCE")))
    fails_cleanly(path, afmio.UnsupportedFormatError, "kind 'JPK FORCE', not a scan video")


def test_missing_measurement_group(make_h5jpk):
    path = make_h5jpk()
    edit(path, lambda f: f.move(M, "Scan_000"))
    fails_cleanly(path, afmio.CorruptFileError, r"no Measurement_\* group")


def test_measurement_group_without_channels(make_h5jpk):
    path = make_h5jpk()
    edit(path, lambda f: f.move(f"{M}/Channel_000", "Elsewhere"))
    fails_cleanly(path, afmio.CorruptFileError, "no channel images with data in Measurement_000")


@pytest.mark.parametrize(
    ("attr", "value", "match"),
    [
        ("ilength", None, "no scan grid attribute 'position-pattern.grid.ilength'"),
        ("jlength", None, "no scan grid attribute 'position-pattern.grid.jlength'"),
        ("ilength", np.int32(0), "ilength' = 0, not a positive count"),
        ("jlength", np.float64(2.5), "jlength' = 2.5, not a positive count"),
        ("jlength", np.int32(5), "holds 24 pixels per frame but the scan grid is ilength 6 x "),
    ],
)
def test_bad_grid_attributes(make_h5jpk, attr, value, match):
    path = make_h5jpk()

    def damage(f):
        del f[M].attrs["position-pattern.grid." + attr]
        if value is not None:
            f[M].attrs["position-pattern.grid." + attr] = value

    edit(path, damage)
    fails_cleanly(path, afmio.CorruptFileError, match)


def test_dataset_that_is_not_pixels_by_frames(make_h5jpk):
    path = make_h5jpk()

    def damage(f):
        del f[f"{M}/Channel_000/Height"]
        f[f"{M}/Channel_000/Height"] = np.zeros((24, 3, 1), np.int32)

    edit(path, damage)
    fails_cleanly(path, afmio.CorruptFileError, r"Height has shape \(24, 3, 1\)")


def test_zero_frames_open_as_an_empty_video_with_a_warning(make_h5jpk):
    path = make_h5jpk(channels={"height_trace": np.zeros((0, 4, 6), np.int32)})
    with pytest.warns(AfmIOWarning, match="holds no frames"):
        video = afmio.open(path)
    assert video.shape == (0, 4, 6)
    assert video.values.shape == (0, 4, 6)


@pytest.mark.parametrize("interlaced", [False, True])
def test_missing_meta_data_falls_back_to_the_scan_rate(make_h5jpk, interlaced):
    path = make_h5jpk(
        channels={"height_trace": raw_frames(3, 5, 2)}, scan_rate_hz=40.0, interlaced=interlaced
    )
    edit(path, lambda f: f.__delitem__(f"{M}/meta-data"))
    interval = 5 / 40 / (2 if interlaced else 1)
    with pytest.warns(AfmIOWarning, match=rf"has no meta-data/start-times.*= {interval:g} s apart"):
        video = afmio.open(path)
    np.testing.assert_allclose(video["time"], np.arange(3) * interval)
    np.testing.assert_allclose(video["frame_duration_s"], interval)
    # Frame 0 starts at the start-time attribute (written as UTC by the generator).
    np.testing.assert_allclose(
        video["start_epoch_ms"], 1748439718548 + np.arange(3) * interval * 1e3
    )


def test_meta_data_with_the_wrong_count_falls_back_too(make_h5jpk):
    path = make_h5jpk(channels={"height_trace": raw_frames(3, 4, 2)})

    def shorten(f):
        del f[f"{M}/meta-data/start-times"]
        f[f"{M}/meta-data/start-times"] = np.zeros((2, 1), np.int64)

    edit(path, shorten)
    with pytest.warns(AfmIOWarning, match="has 2 int64 meta-data/start-times entries for 3 frames"):
        video = afmio.open(path)
    np.testing.assert_allclose(video["time"], np.arange(3) * 0.1)


def test_no_times_and_no_scan_rate_gives_nan_time(make_h5jpk):
    path = make_h5jpk()
    edit(path, lambda f: f.__delitem__(f"{M}/meta-data"))
    edit(path, lambda f: f[M].attrs.__delitem__("timing-settings.scanRate"))
    with pytest.warns(AfmIOWarning, match="no scan rate; time is NaN"):
        video = afmio.open(path)
    assert np.isnan(video["time"].values).all()
    assert np.isnan(video["line_rate"].values).all()


def test_missing_multiplier_gives_raw_values_with_a_warning(make_h5jpk):
    raw = raw_frames(2, 3, 4)
    path = make_h5jpk(channels={"height_trace": raw})
    edit(path, lambda f: f[f"{M}/Channel_000"].attrs.__delitem__("net-encoder.scaling.multiplier"))
    with pytest.warns(AfmIOWarning, match="no usable net-encoder.scaling.multiplier"):
        video = afmio.open(path, dtype="float64")
    assert video.attrs["units"] == "levels"
    np.testing.assert_array_equal(video.values, raw[:, ::-1, :])


def test_missing_offset_is_zero_with_a_warning(make_h5jpk):
    raw = raw_frames(2, 3, 4)
    path = make_h5jpk(channels={"height_trace": raw})
    edit(path, lambda f: f[f"{M}/Channel_000"].attrs.__delitem__("net-encoder.scaling.offset"))
    with pytest.warns(AfmIOWarning, match="no usable net-encoder.scaling.offset; 0 is used"):
        video = afmio.open(path, dtype="float64")
    mult = DEFAULT_SCALING["height"][0]
    assert_scaled(video.values, scaled(raw, mult, 0.0, 1e9))


def test_missing_unit_keeps_values_with_a_warning(make_h5jpk):
    raw = raw_frames(1, 2, 2)
    path = make_h5jpk(channels={"height_trace": raw}, scaling={"height_trace": (2.0, 1.0, "m")})
    edit(path, lambda f: f[f"{M}/Channel_000"].attrs.__delitem__("net-encoder.scaling.unit.unit"))
    with pytest.warns(AfmIOWarning, match="no net-encoder.scaling.unit.unit; units unknown"):
        video = afmio.open(path, dtype="float64")
    assert video.attrs["units"] == ""
    np.testing.assert_array_equal(video.values, raw[:, ::-1, :] * 2.0 + 1.0)


def test_missing_scan_size_gives_nan_pixel_size_with_a_warning(make_h5jpk):
    path = make_h5jpk()
    edit(path, lambda f: f[M].attrs.__delitem__("position-pattern.grid.ulength"))
    with pytest.warns(AfmIOWarning, match="ulength' = None m; pixel size unknown"):
        video = afmio.open(path)
    assert np.isnan(video.attrs["pixel_size_nm"])
    assert video.attrs["pixel_size_y_nm"] == pytest.approx(150 / 4)


def test_channels_without_name_or_data_are_skipped(make_h5jpk):
    path = make_h5jpk(
        channels={n: raw_frames(2, 3, 3) for n in ("height_trace", "error_trace", "phase_trace")}
    )
    edit(path, lambda f: f[f"{M}/Channel_001"].attrs.__delitem__("channel.name"))
    edit(path, lambda f: f.__delitem__(f"{M}/Channel_002/Phase"))
    assert afmio.channels(path) == ["height_trace"]
    with pytest.warns(AfmIOWarning, match="Channel_002 \\(phase_trace\\) has no single data"):
        skipped = afmio.open(path).attrs["provenance"]["reader"]["skipped"]
    assert skipped == [
        f"{M}/Channel_001: no channel.name attribute",
        f"{M}/Channel_002: no data dataset",
    ]


def test_a_second_channel_of_the_same_name_in_a_group_is_skipped(make_h5jpk):
    first, second = raw_frames(2, 3, 3, seed=1), raw_frames(2, 3, 3, seed=2)
    path = make_h5jpk(channels={"height_trace": first, "error_trace": second})
    edit(path, lambda f: f[f"{M}/Channel_001"].attrs.__setitem__("channel.name", b"height"))
    assert afmio.channels(path) == ["height_trace"]  # first wins, as in playNano
    video = afmio.open(path, dtype="float64")
    mult, off, _ = DEFAULT_SCALING["height"]
    assert_scaled(video.values, scaled(first, mult, off, 1e9))
    skipped = video.attrs["provenance"]["reader"]["skipped"]
    assert skipped == [f"{M}/Channel_001: a second height_trace"]


def test_file_removed_after_opening_fails_at_compute(make_h5jpk):
    path = make_h5jpk()
    video = afmio.open(path)
    path.unlink()
    with pytest.raises(afmio.AfmOSError, match="cannot reopen the file"):
        video.values  # noqa: B018


def test_file_rewritten_smaller_after_opening_fails_at_compute(make_h5jpk):
    path = make_h5jpk(channels={"height_trace": raw_frames(3, 4, 6)})
    video = afmio.open(path)
    make_h5jpk(channels={"height_trace": raw_frames(3, 2, 2)})
    with pytest.raises(afmio.CorruptFileError, match="changed after it was opened"):
        video.values  # noqa: B018


def test_damaged_chunk_fails_at_compute(make_h5jpk):
    path = make_h5jpk()
    edit(path, lambda f: f[f"{M}/Channel_000/Height"].id.write_direct_chunk((0, 1), b"garbage"))
    video = afmio.open(path)
    video[0].values  # noqa: B018  (frame 0 is intact)
    with pytest.raises(afmio.CorruptFileError, match=r"cannot read frames 1\.\.1 of"):
        video[1].values  # noqa: B018


def test_random_damage_raises_only_afmio_errors(make_h5jpk, tmp_path):
    """Corrupt bytes anywhere (and cut the file short): opening and reading every channel
    either works or raises an afmio error, never a raw h5py/numpy/zlib one."""
    good = make_h5jpk(
        channels={"height_trace": raw_frames(3, 8, 8), "phase_retrace": raw_frames(3, 8, 8, 1)}
    ).read_bytes()
    rng = np.random.default_rng(2024)
    outcomes, messages = set(), []
    path = tmp_path / "damaged.h5-jpk"
    for trial in range(60):
        data = bytearray(good)
        for pos in rng.integers(0, len(data), 4):
            data[pos] ^= 0xFF
        if trial % 3 == 0:
            data = data[: rng.integers(1, len(data))]
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AfmIOWarning)
                for name in afmio.channels(path):
                    afmio.open(path, name).values  # noqa: B018
            outcomes.add("ok")
        except afmio.AfmIOError as exc:
            outcomes.add(type(exc).__name__)
            messages.append(str(exc))
    assert {"ok", "CorruptFileError"} <= outcomes
    assert all(path.name in m for m in messages)


# --- decoding paths and laziness -----------------------------------------------------------


def test_frames_decoded_by_afmio_and_by_hdf5_agree(make_h5jpk):
    raw = raw_frames(5, 6, 7)
    path = make_h5jpk(channels={"height_trace": raw})
    source = afmio.readers.read(path).channels[0].frames
    assert source.chunk_filters == ("shuffle", "deflate")
    by_h5py = dataclasses.replace(source, chunk_filters=None)
    np.testing.assert_array_equal(source.read(1, 4, np.float64), by_h5py.read(1, 4, np.float64))


@pytest.mark.parametrize(
    ("options", "filters"),
    [
        ({"chunks": (42, 1)}, ()),
        ({"chunks": (42, 1), "compression": "gzip"}, ("deflate",)),
        ({"chunks": (42, 2), "compression": "gzip"}, None),
        ({"chunks": (42, 1), "compression": "lzf"}, None),
        ({}, None),
    ],
)
def test_other_storage_layouts(make_h5jpk, options, filters):
    raw = raw_frames(3, 6, 7)
    path = make_h5jpk(channels={"height_trace": raw})

    def restore(f):
        del f[f"{M}/Channel_000/Height"]
        f[f"{M}/Channel_000"].create_dataset(
            "Height", data=raw.reshape(3, 42).T, dtype=">i4", **options
        )

    edit(path, restore)
    source = afmio.readers.read(path).channels[0].frames
    assert source.chunk_filters == filters
    mult, off, _ = DEFAULT_SCALING["height"]
    assert_scaled(afmio.open(path, dtype="float64").values, scaled(raw, mult, off, 1e9))


def test_chunks_hdf5_must_decode_are_read_through_h5py(make_h5jpk):
    raw = raw_frames(3, 4, 4)
    path = make_h5jpk(channels={"height_trace": raw}, scaling={"height_trace": (1.0, 5.0, "V")})

    def rewrite(f):
        g = f[f"{M}/Channel_000"]
        del g["Height"]
        ds = g.create_dataset(
            "Height", (16, 3), "<i4", chunks=(16, 1), shuffle=True, compression="gzip"
        )
        ds[:, 0] = raw[0].reshape(-1)
        shuffled = raw[1].reshape(-1).view(np.uint8).reshape(-1, 4).T.tobytes()
        ds.id.write_direct_chunk((0, 1), shuffled, filter_mask=0b10)  # deflate skipped
        # Frame 2 is never written: HDF5 reads it as the fill value, 0.

    edit(path, rewrite)
    assert afmio.readers.read(path).channels[0].frames.chunk_filters == ("shuffle", "deflate")
    values = afmio.open(path, dtype="float64").values
    np.testing.assert_array_equal(values[:2], raw[:2, ::-1] + 5.0)
    np.testing.assert_array_equal(values[2], np.full((4, 4), 5.0))


@pytest.fixture(scope="module")
def big_h5jpk(tmp_path_factory):
    """About 100 MB: 400 nearly incompressible 256x256 int32 frames, one gzip chunk each."""
    base = raw_frames(4, 256, 256, seed=7)
    path = tmp_path_factory.mktemp("big") / "big.h5-jpk"
    write_h5jpk(
        path, {"height_trace": (base[i % 4] for i in range(400))}, n_frames=400, shape=(256, 256)
    )
    assert path.stat().st_size > 10**8
    return path


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_open_reads_metadata_only_and_a_frame_reads_about_one_chunk(big_h5jpk):
    afmio.open(big_h5jpk).afm.frame(0)  # warm up imports and dask's thread pool
    before = bytes_read()
    video = afmio.open(big_h5jpk)
    opened = bytes_read()
    assert opened - before < 2**20
    assert video.shape == (400, 256, 256)
    with h5py.File(big_h5jpk, "r") as f:
        chunk = f[f"{M}/Channel_000/Height"].id.get_chunk_info_by_coord((0, 123)).size
    before = bytes_read()
    frame = video[123].values
    one = bytes_read() - before
    assert chunk <= one < chunk + 256 * 2**10
    assert frame.shape == (256, 256)
