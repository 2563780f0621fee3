"""The data model every reader returns: coords, attrs, JSON-safe provenance, accessor."""

from __future__ import annotations

import json

import numpy as np

import afmio

from conftest import random_levels


def test_coords_and_their_units(make_asd):
    video = afmio.open(make_asd(frame_time_ms=40.0))
    assert list(video.coords) == [
        "time", "y", "x", "frame_index", "start_epoch_ms", "frame_duration_s", "line_rate",
        "scan_direction",
    ]  # fmt: skip
    assert video["time"].dtype == np.float64
    assert video["time"].attrs["units"] == "s"
    assert video["x"].attrs["units"] == video["y"].attrs["units"] == "nm"
    assert video["start_epoch_ms"].attrs["units"] == "ms"
    np.testing.assert_array_equal(video["frame_index"], np.arange(4))
    assert list(video["scan_direction"].values) == ["x-forward"] * 4
    for name in ("time", "start_epoch_ms", "frame_duration_s", "line_rate", "scan_direction"):
        assert video[name].dims == ("time",)


def test_provenance_and_source_survive_a_json_round_trip(make_asd):
    path = make_asd(comment="原子間力顕微鏡", channels={"TP": random_levels(2, 3, 3)})
    video = afmio.open(path)
    for key in ("source", "provenance"):
        value = video.attrs[key]
        assert json.loads(json.dumps(value, allow_nan=False)) == value
    assert video.attrs["provenance"]["processing"] == []
    assert video.attrs["source"] == {
        "path": str(path.resolve()),
        "format": "asd",
        "format_version": "1",
        "size_bytes": path.stat().st_size,
        "channels": ["height_trace"],
    }


def test_dataset_shares_coords_and_keeps_channel_attrs(make_asd):
    levels = {"TP": random_levels(3, 4, 4), "PH": random_levels(3, 4, 4, seed=9)}
    ds = afmio.open_dataset(make_asd(channels=levels))
    assert ds["phase_trace"].attrs["units"] == "deg"
    assert ds["height_trace"].attrs["units"] == "nm"
    assert ds.attrs["pixel_size_nm"] == 25.0  # 100 nm over 4 pixels
    assert ds["time"].size == 3
    assert ds["phase_trace"].chunks is not None


def test_accessor(make_asd):
    levels = random_levels(5, 8, 10)
    video = afmio.open(
        make_asd(channels={"TP": levels}, frame_time_ms=200.0, scan_size_nm=(50, 40))
    )
    afm = video.afm
    assert afm.pixel_size_nm == 5.0
    assert afm.channel == "height_trace"
    assert afm.n_frames == 5
    np.testing.assert_allclose(afm.frame_times, [0, 0.2, 0.4, 0.6, 0.8])
    assert afm.frame_interval == 0.2
    assert afm.provenance["acquisition"]["x_pixels"] == 10
    frame = afm.frame(3)
    assert isinstance(frame, np.ndarray)
    np.testing.assert_array_equal(frame, video.values[3])
    text = afm.summary()
    expected = [
        "ASD v1",
        "time: 5, y: 8, x: 10",
        "height_trace (TP) in nm",
        "5 nm (x), 5 nm (y)",
        "scan 50 x 40 nm",
        "5 frames, 0.2 s apart, duration 1 s",
    ]
    for line in expected:
        assert line in text


def test_accessor_follows_selections(make_asd):
    video = afmio.open(make_asd(channels={"TP": random_levels(6, 3, 3)}, frame_time_ms=100.0))
    part = video.isel(time=slice(2, None, 2))
    assert part.afm.n_frames == 2
    np.testing.assert_allclose(part.afm.frame_times, [0.2, 0.4])
    assert np.isclose(part.afm.frame_interval, 0.2)
    single = video.isel(time=[4])
    assert single.afm.frame_interval == 0.1  # one frame: falls back to frame_duration_s
