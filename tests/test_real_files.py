"""Real instrument files from ../shared/data (AFMIO_TEST_DATA), with concrete figures.

The expected values of the 32-frame sample are playNano 0.5.0's for the same file.
"""

from __future__ import annotations

import numpy as np
import pytest

import afmio


def test_playnano_asd_sample(data_dir):
    video = afmio.open(data_dir / "playnano_asd_sample_0.asd")
    assert video.shape == (32, 200, 200)
    assert video.attrs["pixel_size_nm"] == 0.5
    assert video.attrs["pixel_size_y_nm"] == 0.5
    np.testing.assert_array_equal(video["time"], np.arange(32.0))
    np.testing.assert_array_equal(video["line_rate"], 200.0)
    values = video.values
    assert values.min() == pytest.approx(-249.28953, abs=1e-4)
    assert values.max() == 0.0
    assert values.mean(dtype=np.float64) == pytest.approx(-196.234232, abs=1e-4)
    # playNano: header date 2017-11-21 13:12:39 taken as the end of 32 s of recording.
    assert video["start_epoch_ms"].values[0] == 1511269927000.0
    acq = video.attrs["provenance"]["acquisition"]
    assert acq["ad_range_code_hex"] == "0x3"
    assert acq["z_piezo_extension"] == pytest.approx(12.48)
    assert acq["operator_name"] == "Anonymous"


def test_playnano_asd_first_frame_levels(data_dir):
    # Frame 1 spans levels 3578..3607: 0.0609 nm per level, negated
    # (docs/formats/asd.md#raw-levels-to-physical-values).
    per_level = 9.99 / 4096 * 2.0 * float(np.float32(12.48))
    frame = afmio.open(data_dir / "playnano_asd_sample_0.asd", dtype="float64").afm.frame(0)
    assert frame.max() == pytest.approx(-3578 * per_level)
    assert frame.min() == pytest.approx(-3607 * per_level)


def test_pnanolocz_two_channel_asd(data_dir):
    path = data_dir / "pnanolocz_202110200146.asd"
    assert afmio.channels(path) == ["height_trace", "phase_trace"]
    height, phase = afmio.open(path, "TP"), afmio.open(path, "PH")
    assert height.shape == phase.shape == (2, 250, 250)
    assert height.attrs["pixel_size_nm"] == pytest.approx(0.636)
    # Figures agree with playNano 0.5.0 (AFMReader) for both channels.
    h, p = height.values.astype(np.float64), phase.values.astype(np.float64)
    assert (h.min(), h.max()) == pytest.approx((-65.82161, -42.24043), abs=1e-4)
    assert h.mean() == pytest.approx(-54.407287, abs=1e-4)
    assert (p.min(), p.max()) == pytest.approx((3.538938, 4.804761), abs=1e-5)
    assert p.mean() == pytest.approx(3.688373, abs=1e-5)
    assert phase.attrs["units"] == "deg"
    np.testing.assert_array_equal(height["start_epoch_ms"], [1634753568000.0, 1634753569000.0])
    ds = afmio.open_dataset(path)
    np.testing.assert_array_equal(ds["phase_trace"].values, phase.values)
