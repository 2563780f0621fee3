"""Looking at a video in a notebook: ``.afm.plot`` and ``.afm.play``."""

from __future__ import annotations

import base64
import io
import re

import matplotlib
import numpy as np
import pytest
from PIL import Image

import afmio

from conftest import bytes_read, random_levels

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture
def long_asd(make_asd):
    """300 frames of 64 x 128 over a 200 x 100 nm scan, 0.05 s per frame."""
    return make_asd(
        "long.asd",
        {"TP": random_levels(300, 64, 128)},
        scan_size_nm=(200, 100),
        frame_time_ms=50.0,
    )


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_plot_shows_one_frame_in_nm_with_a_colorbar(long_asd):
    v = afmio.open(long_asd)
    image = v.afm.plot(7)
    ax = image.axes
    np.testing.assert_array_equal(image.get_array(), v.afm.frame(7))
    # 128 pixels of 200/128 nm: pixel centres 0.78..199.2 nm, edges 0..200 nm; row 0 on top.
    left, right, bottom, top = image.get_extent()
    assert (left, right) == pytest.approx((0.0, 200.0))
    assert (bottom, top) == pytest.approx((100.0, 0.0))
    assert ax.get_xlabel() == "x (nm)"
    assert ax.get_ylabel() == "y (nm)"
    assert ax.get_title() == "frame 7, 0.35 s"
    colorbar = image.colorbar
    assert colorbar.ax.get_ylabel() == "height_trace (nm)"
    assert image.get_cmap().name == "afmhot"


def test_plot_draws_on_given_axes_and_passes_imshow_options(long_asd):
    v = afmio.open(long_asd)
    _, ax = plt.subplots()
    image = v.afm.plot(-1, ax=ax, cmap="gray", vmin=-5, vmax=5)
    assert image.axes is ax
    assert image.get_clim() == (-5, 5)
    assert image.get_cmap().name == "gray"
    assert ax.get_title() == "frame 299, 14.95 s"


def test_plot_reads_only_its_frame(long_asd):
    v = afmio.open(long_asd)
    v.afm.plot(0)  # warm up imports
    before = bytes_read()
    v.afm.plot(150)
    frame_bytes = 64 * 128 * 2
    assert bytes_read() - before < 3 * frame_bytes  # one frame of 16 KiB, not 4.9 MB


def gif_of(animation) -> bytes:
    html = animation._repr_html_()
    match = re.fullmatch(r'<img src="data:image/gif;base64,([A-Za-z0-9+/=]+)">', html)
    assert match, html[:80]
    data = base64.b64decode(match.group(1))
    assert data == animation.data
    return data


def test_play_shows_an_even_subset_reading_only_those_frames(long_asd):
    v = afmio.open(long_asd)
    v.afm.play(frames=[0, 1])  # warm up imports and fonts
    before = bytes_read()
    animation = v.afm.play(max_frames=10)
    read = bytes_read() - before
    frame_bytes = 64 * 128 * 2
    assert read < 10 * frame_bytes + 64 * 1024  # 10 frames of 300, not the 4.9 MB file
    with Image.open(io.BytesIO(gif_of(animation))) as im:
        assert im.n_frames == animation.n_frames == 10
        assert im.size == (1024, 512)  # 64 px rows enlarged 8x
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
    # frames 0, 33, 66, 100, ... 299: each shown until the next one's real time
    shown = np.linspace(0, 299, 10).round().astype(int)
    assert shown[:4].tolist() == [0, 33, 66, 100]
    assert durations[:-1] == (np.diff(shown) * 50).tolist()


def test_play_with_auto_levels_still_reads_only_the_shown_frames(long_asd):
    v = afmio.open(long_asd)
    v.afm.play(frames=[0, 1])
    before = bytes_read()
    animation = v.afm.play(max_frames=5, zmin="auto", zmax="auto", fps=10)
    assert bytes_read() - before < 2 * 5 * 64 * 128 * 2 + 64 * 1024  # each read twice
    with Image.open(io.BytesIO(animation.data)) as im:
        assert im.n_frames == 5
        assert im.info["duration"] == 100


def test_play_chosen_frames(long_asd):
    v = afmio.open(long_asd)
    assert v.afm.play(frames=slice(10, 20)).n_frames == 10
    assert v.afm.play(frames=[3, 5, 8], max_frames=2).n_frames == 2
    assert v.afm.play(frames=4).n_frames == 1
    with pytest.raises(ValueError, match="max_frames"):
        v.afm.play(max_frames=0)
