"""The ASD reader on generated files: every version, channel layout, scaling and count rule."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import afmio
from afmio.errors import AfmIOWarning, TruncatedFileWarning

from conftest import random_levels

# Byte offsets of version-1/2 header fields (docs/formats/asd.md#version-1-file-header).
FRAMES_RECORDED, FRAMES_CURRENT, AD_CODE, AD_BITS, FRAME_TIME = 32, 36, 133, 137, 101


def patch(path, offset, fmt, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack("<" + fmt, value))


def bipolar5(levels, factor):
    """The +-5 V scaling written out independently of the reader."""
    return (5.0 - 10.0 * levels.astype(np.float64) / 4096) * factor


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("shape", [(5, 7), (16, 16), (3, 1)])
def test_single_channel_values_geometry_and_time(make_asd, version, shape):
    levels = random_levels(6, *shape, seed=version)
    ny, nx = shape
    path = make_asd(
        channels={"TP": levels},
        version=version,
        scan_size_nm=(4 * nx, 3 * ny),
        frame_time_ms=250.0,
        z_piezo_gain=2.0,
        z_piezo_extension=12.5,
    )
    video = afmio.open(path)
    assert video.dims == ("time", "y", "x")
    assert video.shape == (6, ny, nx)
    assert video.dtype == np.float32
    np.testing.assert_allclose(video.values, bipolar5(levels, 25.0), rtol=1e-6, atol=1e-5)
    assert video.attrs["pixel_size_nm"] == 4.0
    assert video.attrs["pixel_size_y_nm"] == 3.0
    np.testing.assert_allclose(video["x"], (np.arange(nx) + 0.5) * 4.0)
    np.testing.assert_allclose(video["y"], (np.arange(ny) + 0.5) * 3.0)
    np.testing.assert_allclose(video["time"], np.arange(6) * 0.25)
    np.testing.assert_allclose(video["frame_duration_s"], 0.25)
    np.testing.assert_allclose(video["line_rate"], ny / 0.25)
    assert video.attrs["units"] == "nm"
    assert video.attrs["channel"] == "height_trace"
    assert video.attrs["source"]["format_version"] == str(version)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_two_channels_are_stored_channel_major(make_asd, version):
    tp, ph = random_levels(3, 4, 5, seed=1), random_levels(3, 4, 5, seed=2)
    path = make_asd(channels={"TP": tp, "PH": ph}, version=version, phase_sensitivity=2.0)
    assert afmio.channels(path) == ["height_trace", "phase_trace"]
    height = afmio.open(path, "tp")
    phase = afmio.open(path, "PHASE_TRACE")
    np.testing.assert_allclose(height.values, bipolar5(tp, 20.0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(phase.values, bipolar5(ph, -2.0), rtol=1e-6, atol=1e-5)
    assert phase.attrs["units"] == "deg"
    assert phase.attrs["native_channel"] == "PH"
    ds = afmio.open_dataset(path)
    assert set(ds.data_vars) == {"height_trace", "phase_trace"}
    np.testing.assert_array_equal(ds["phase_trace"].values, phase.values)


def test_error_channel_uses_sensor_sensitivity(make_asd):
    er = random_levels(2, 3, 3)
    path = make_asd(channels={"ER": er}, sensor_sensitivity=0.5)
    video = afmio.open(path)  # no height channel: the first one is the default
    assert video.attrs["channel"] == "error_trace"
    np.testing.assert_allclose(video.values, bipolar5(er, -0.5), rtol=1e-6, atol=1e-5)


# Expected value of level L for each AD range code with factor f
# (docs/formats/asd.md#raw-levels-to-physical-values).
AD_FORMULAS = {
    0x1: lambda L, f: -1.0 * L / 4096 * f,
    0x2: lambda L, f: -2.5 * L / 4096 * f,
    0x3: lambda L, f: -9.99 * L / 4096 * f,
    0x4: lambda L, f: -5.0 * L / 4096 * f,
    0x10000: lambda L, f: (1.0 - 2.0 * L / 4096) * f,
    0x20000: lambda L, f: (2.5 - 5.0 * L / 4096) * f,
    0x40000: lambda L, f: (5.0 - 10.0 * L / 4096) * f,
    0x800000: lambda L, f: (80.0 - 160.0 * L / 4096) * f,
}


@pytest.mark.parametrize("code", sorted(AD_FORMULAS))
def test_every_ad_range_code(make_asd, code):
    levels = random_levels(2, 4, 4, seed=code % 97)
    path = make_asd(channels={"TP": levels}, ad_range_code=code, z_piezo_extension=7.5)
    expected = AD_FORMULAS[code](levels.astype(np.float64), 15.0)
    np.testing.assert_allclose(afmio.open(path, dtype="float64").values, expected, rtol=1e-12)


def test_unknown_ad_code_gives_raw_levels_with_a_warning(make_asd):
    levels = random_levels(2, 4, 4)
    path = make_asd(channels={"TP": levels}, ad_range_code=0x7)
    with pytest.warns(AfmIOWarning, match="cannot be scaled"):
        video = afmio.open(path)
    assert video.attrs["units"] == "levels"
    np.testing.assert_array_equal(video.values, levels)


def test_frames_recorded_is_used_when_it_matches_the_file(make_asd):
    path = make_asd(channels={"TP": random_levels(5, 4, 4)})
    patch(path, FRAMES_CURRENT, "i", 9)  # wrong; frames_recorded (5) matches the size
    assert afmio.open(path).sizes["time"] == 5


def test_truncated_frame_data_reads_whole_frames_with_a_warning(make_asd):
    levels = random_levels(5, 6, 8)
    path = make_asd(channels={"TP": levels})
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 40)  # cuts into the last frame
    with pytest.warns(TruncatedFileWarning, match=r"truncated frame data.*4 whole frames"):
        video = afmio.open(path)
    assert video.sizes["time"] == 4
    np.testing.assert_allclose(video.values, bipolar5(levels[:4], 20.0), rtol=1e-6, atol=1e-5)


def test_truncation_inside_channel_two(make_asd):
    tp, ph = random_levels(4, 4, 4, seed=3), random_levels(4, 4, 4, seed=4)
    path = make_asd(channels={"TP": tp, "PH": ph})
    stride = 32 + 2 * 16
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 2 * stride - 5)  # channel 2 keeps 1 whole frame
    with pytest.warns(TruncatedFileWarning, match="4, 1 whole frames"):
        height = afmio.open(path)
    assert height.sizes["time"] == 4
    np.testing.assert_allclose(height.values, bipolar5(tp, 20.0), rtol=1e-6, atol=1e-5)
    with pytest.warns(TruncatedFileWarning):
        phase = afmio.open(path, "PH")
    np.testing.assert_allclose(phase.values, bipolar5(ph[:1], -1.0), rtol=1e-6, atol=1e-5)
    with (
        pytest.warns(TruncatedFileWarning, match="truncated frame data"),
        pytest.warns(TruncatedFileWarning, match="keeps the first 1"),
    ):
        ds = afmio.open_dataset(path)
    assert ds.sizes["time"] == 1


def test_extra_bytes_are_ignored_with_a_warning(make_asd):
    levels = random_levels(3, 4, 4)
    path = make_asd(channels={"TP": levels})
    with open(path, "ab") as f:
        f.write(b"\x01" * 100)
    with pytest.warns(TruncatedFileWarning, match="100 bytes after the last"):
        video = afmio.open(path)
    assert video.sizes["time"] == 3
    np.testing.assert_allclose(video.values, bipolar5(levels, 20.0), rtol=1e-6, atol=1e-5)


def test_header_only_file_is_an_empty_video(make_asd):
    path = make_asd(channels={"TP": np.zeros((0, 4, 6), np.int16)})
    video = afmio.open(path)
    assert video.shape == (0, 4, 6)
    assert video.afm.n_frames == 0


@pytest.mark.parametrize("frame_header_size", [0, 20, 48])
def test_frame_header_size_sets_the_stride(make_asd, frame_header_size):
    levels = random_levels(3, 5, 3)
    path = make_asd(channels={"TP": levels}, frame_header_size=frame_header_size)
    np.testing.assert_allclose(
        afmio.open(path).values, bipolar5(levels, 20.0), rtol=1e-6, atol=1e-5
    )


def test_strings_and_header_fields_land_in_provenance(make_asd):
    path = make_asd(operator="安藤", comment="ミオシン V", date=(2023, 2, 3, 4, 5, 6))
    acq = afmio.open(path).attrs["provenance"]["acquisition"]
    assert acq["operator_name"] == "安藤"
    assert acq["comment"] == "ミオシン V"
    assert acq["date"] == "2023-02-03T04:05:06"
    assert acq["x_pixels"] == 8
    assert acq["channel_names"] == ["TP"]


def test_start_epoch_backdates_the_header_date_by_the_recording(make_asd):
    path = make_asd(date=(2024, 1, 1, 0, 0, 10), frame_time_ms=500.0)  # 4 frames, 2 s
    epoch = afmio.open(path)["start_epoch_ms"].values
    t0 = 1704067210000.0 - 2000.0
    np.testing.assert_array_equal(epoch, t0 + np.arange(4) * 500.0)


def test_zero_frame_time_gives_nan_times_with_a_warning(make_asd):
    path = make_asd()
    patch(path, FRAME_TIME, "f", 0.0)
    with pytest.warns(AfmIOWarning, match="frame time"):
        video = afmio.open(path)
    assert np.isnan(video["time"].values).all()


def test_unknown_channel_lists_the_available_ones(make_asd):
    path = make_asd(channels={"TP": random_levels(1, 2, 2), "PH": random_levels(1, 2, 2)})
    with pytest.raises(afmio.ChannelNotFoundError, match=r"height_trace \(TP\), phase_trace"):
        afmio.open(path, "amplitude")


def test_float64_and_bad_dtype(make_asd):
    path = make_asd()
    assert afmio.open(path, dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match="floating-point"):
        afmio.open(path, dtype="int16")


def test_load_afm_stack_is_open_with_playnano_defaults(make_asd):
    path = make_asd()
    a, b = afmio.load_afm_stack(path), afmio.open(path)
    assert a.attrs["channel"] == "height_trace"
    assert a.identical(b)


def test_formats_lists_asd():
    names = {f.name: f for f in afmio.formats()}
    assert ".asd" in names["asd"].extensions
