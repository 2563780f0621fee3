"""Annotated GIF and MP4 export: frames, delays, levels, annotations, streaming, seed API."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from PIL import GifImagePlugin, Image

import afmio
from afmio.playnano import create_gif_with_scale_and_timestamp
from afmio.playnano import export_gif as seed_export_gif
from afmio.render import N_LEVELS, OUTLINE, TEXT, data_stats, palette
from afmio.writers import WRITERS, gif, mp4

from conftest import bytes_read, random_levels


@pytest.fixture(autouse=True)
def _keep_palette_frames(monkeypatch):
    # Pillow converts GIF frames after the first to RGB by default; ours share one
    # palette, so keep them as palette indices to compare with what was rendered.
    monkeypatch.setattr(
        GifImagePlugin,
        "LOADING_STRATEGY",
        GifImagePlugin.LoadingStrategy.RGB_AFTER_DIFFERENT_PALETTE_ONLY,
    )


def decode(source) -> tuple[list[np.ndarray], list[int]]:
    """Every frame of a GIF as palette indices, and each frame's duration in ms."""
    frames, durations = [], []
    with Image.open(source) as im:
        for k in range(im.n_frames):
            im.seek(k)
            assert im.mode == "P"
            frames.append(np.asarray(im))
            durations.append(im.info["duration"])
    return frames, durations


def video(values, times=None, pixel_size_nm=1.0) -> xr.DataArray:
    """A lazy ``(time, y, x)`` DataArray in afmio's model; 0.1 s per frame by default."""
    if not isinstance(values, da.Array):
        values = da.from_array(np.asarray(values, dtype=np.float32))
    n = values.shape[0]
    times = np.arange(n) * 0.1 if times is None else np.asarray(times, dtype=np.float64)
    return xr.DataArray(
        values,
        dims=("time", "y", "x"),
        coords={"time": times},
        attrs={"pixel_size_nm": pixel_size_nm, "channel": "height_trace", "units": "nm"},
    )


PLAIN = {"draw_ts": False, "draw_scale": False}


def upscaled(indices: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(indices, factor, axis=0), factor, axis=1)


# --- frames and delays ------------------------------------------------------------------


def test_every_frame_becomes_a_gif_frame_even_identical_ones(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.random((64, 64)), rng.random((64, 64))
    path = afmio.export_gif(video([a, b, b, b, a]), tmp_path / "v", zmin=0, zmax=1, **PLAIN)
    assert path == tmp_path / "v.gif"
    frames, _ = decode(path)
    assert len(frames) == 5
    # 64 px frames are enlarged 8x to 512 px; indices are the levels, nothing merged.
    expected_b = upscaled(np.rint(b * (N_LEVELS - 1)).astype(np.uint8), 8)
    for k in (1, 2, 3):
        np.testing.assert_array_equal(frames[k], expected_b)
    assert not np.array_equal(frames[0], frames[1])


def test_delays_follow_the_frame_times(tmp_path):
    times = [0.0, 0.1, 0.25, 0.3, 0.44]
    path = afmio.export_gif(video(np.zeros((5, 8, 8)), times), tmp_path / "t.gif", **PLAIN)
    _, durations = decode(path)
    # steps 0.1, 0.15, 0.05, 0.14, then the median step 0.12 for the last frame
    assert durations == [100, 150, 50, 140, 120]


def test_delays_are_rounded_cumulatively(tmp_path):
    times = np.arange(31) / 30  # 30 frames/s: 3.33 cs each, which GIF cannot store
    path = afmio.export_gif(video(np.zeros((31, 8, 8)), times), tmp_path / "t.gif", **PLAIN)
    _, durations = decode(path)
    assert set(durations) == {30, 40}
    assert sum(durations[:30]) == 1000  # one second for 30 frames, not 30 x 30 ms


def test_fps_overrides_the_frame_times(tmp_path):
    path = afmio.export_gif(video(np.zeros((4, 8, 8))), tmp_path / "f.gif", fps=4, **PLAIN)
    assert decode(path)[1] == [250] * 4


def test_too_fast_frames_are_clamped_with_a_warning(tmp_path):
    times = np.arange(6) * 0.005  # 200 frames/s
    with pytest.warns(afmio.AfmIOWarning, match="slower than real time"):
        path = afmio.export_gif(video(np.zeros((6, 8, 8)), times), tmp_path / "c.gif", **PLAIN)
    assert decode(path)[1] == [20] * 6


def test_unknown_frame_times_fall_back_with_a_warning(tmp_path):
    times = np.full(3, np.nan)
    with pytest.warns(afmio.AfmIOWarning, match="unknown"):
        path = afmio.export_gif(video(np.zeros((3, 8, 8)), times), tmp_path / "n.gif", **PLAIN)
    assert decode(path)[1] == [100] * 3


# --- levels -------------------------------------------------------------------------------


def ramp() -> np.ndarray:
    """Two 64 x 64 frames: values 0..99 along x in frame 0, 100..199 in frame 1."""
    row = np.arange(64) * 99 / 63
    frame = np.tile(row, (64, 1))
    return np.stack([frame, frame + 100])


def first_rows(path) -> list[np.ndarray]:
    """Row 0 of each frame at data resolution (the frames are enlarged 8x)."""
    return [f[0, ::8] for f in decode(path)[0]]


def levels(values, low, high) -> np.ndarray:
    return np.rint(np.clip((values - low) / (high - low), 0, 1) * (N_LEVELS - 1)).astype(np.uint8)


def test_numbers_fix_one_scale_for_the_whole_video(tmp_path):
    data = ramp()
    rows = first_rows(afmio.export_gif(video(data), tmp_path / "a", zmin=50, zmax=150, **PLAIN))
    np.testing.assert_array_equal(rows[0], levels(data[0, 0], 50, 150))
    np.testing.assert_array_equal(rows[1], levels(data[1, 0], 50, 150))
    assert rows[0][0] == 0
    assert rows[1][-1] == N_LEVELS - 1


def test_both_none_scales_each_frame_to_its_own_range(tmp_path):
    rows = first_rows(afmio.export_gif(video(ramp()), tmp_path / "n", **PLAIN))
    # Both frames span the whole colormap although their values do not overlap.
    np.testing.assert_array_equal(rows[0], rows[1])
    assert (rows[0][0], rows[0][-1]) == (0, N_LEVELS - 1)


def test_one_none_side_is_the_data_extreme(tmp_path):
    data = ramp()
    rows = first_rows(afmio.export_gif(video(data), tmp_path / "m", zmax=150, **PLAIN))
    np.testing.assert_array_equal(rows[0], levels(data[0, 0], 0, 150))  # zmin = data min
    rows = first_rows(afmio.export_gif(video(data), tmp_path / "x", zmin=20, **PLAIN))
    np.testing.assert_array_equal(rows[1], levels(data[1, 0], 20, 199))  # zmax = data max


def test_auto_uses_the_1st_and_99th_percentiles(tmp_path):
    # Uniform values 0..999 with two extreme outliers that must not set the scale.
    rng = np.random.default_rng(3)
    data = rng.permutation(np.arange(4 * 32 * 32) % 1000).reshape(4, 32, 32).astype(float)
    data[0, 0, 0], data[3, 5, 5] = -1e6, 1e6
    v = video(data).chunk({"time": 1})
    path = afmio.export_gif(v, tmp_path / "auto", zmin="auto", zmax="auto", **PLAIN)
    frame = decode(path)[0][1][::16, ::16]  # 16x enlarged
    low, high = np.percentile(data, [1, 99])
    assert 5 < low < 15
    assert 985 < high < 995
    assert np.abs(frame.astype(int) - levels(data[1], low, high)).max() <= 1


def test_percentiles_merged_from_chunks_match_numpy():
    # Chunks with very different distributions (a drifting baseline).
    rng = np.random.default_rng(5)
    values = rng.normal(size=(40, 50, 50)) + np.linspace(0, 20, 40)[:, None, None]
    values[3, :10] = np.nan
    stats = data_stats(da.from_array(values, chunks=(4, 50, 50)))
    low, high = np.nanpercentile(values, [1, 99])
    span = np.nanmax(values) - np.nanmin(values)
    assert abs(stats["low"] - low) < 0.005 * span
    assert abs(stats["high"] - high) < 0.005 * span
    assert stats["min"] == np.nanmin(values)
    assert stats["max"] == np.nanmax(values)


def test_auto_levels_cost_one_extra_pass_over_the_file(make_asd, tmp_path):
    path = make_asd("v.asd", {"TP": random_levels(60, 64, 64)})
    v = afmio.open(path, chunks=10)
    afmio.export_gif(v, tmp_path / "warm", **PLAIN)  # imports, thread pool, fonts
    size = path.stat().st_size
    before = bytes_read()
    afmio.export_gif(v, tmp_path / "plain", **PLAIN)
    plain = bytes_read() - before
    before = bytes_read()
    afmio.export_gif(v, tmp_path / "auto", zmin="auto", zmax="auto", **PLAIN)
    auto = bytes_read() - before
    assert 0.9 * size < plain < 1.2 * size
    assert 1.8 * size < auto < 2.3 * size


def test_nan_pixels_get_the_lowest_level(tmp_path):
    data = np.full((1, 64, 64), 100.0)
    data[0, :, 32:] = np.nan
    path = afmio.export_gif(video(data), tmp_path / "nan", zmin=0, zmax=N_LEVELS - 1, **PLAIN)
    frame = decode(path)[0][0]
    assert set(np.unique(frame[:, :256])) == {100}
    assert set(np.unique(frame[:, 256:])) == {0}


@pytest.mark.parametrize(
    ("zmin", "zmax", "match"),
    [(5, 5, "zmin must be below zmax"), (10, 2, "below"), ("max", None, "'auto' or None")],
)
def test_bad_levels_are_refused(tmp_path, zmin, zmax, match):
    with pytest.raises(ValueError, match=match):
        afmio.export_gif(video(ramp()), tmp_path / "bad", zmin=zmin, zmax=zmax)
    assert not (tmp_path / "bad.gif").exists()


# --- legibility: size, timestamp, scale bar ------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "size"),
    [((64, 64), (512, 512)), ((100, 300), (1800, 600)), ((600, 520), (520, 600))],
)
def test_small_frames_are_enlarged_by_a_whole_factor(tmp_path, shape, size):
    path = afmio.export_gif(video(np.zeros((1, *shape))), tmp_path / "s.gif", **PLAIN)
    with Image.open(path) as im:
        assert im.size == size  # (width, height)


def bar_rows(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the longest horizontal run of TEXT pixels in the bottom fifth."""
    h = frame.shape[0]
    bottom = frame[h - h // 5 :] == TEXT
    lengths = bottom.sum(axis=1)
    rows = np.flatnonzero(lengths == lengths.max())
    cols = np.flatnonzero(bottom[rows[0]])
    return rows + h - h // 5, cols


def test_scale_bar_has_a_round_length_in_the_bottom_right_corner(tmp_path):
    # 64 px of 2 nm: 128 nm wide, so a 20 nm bar (about a fifth), 10 px, 80 px at 8x.
    v = video(np.zeros((2, 64, 64)), pixel_size_nm=2.0)
    frame = decode(afmio.export_gif(v, tmp_path / "bar.gif", draw_ts=False))[0][0]
    rows, cols = bar_rows(frame)
    assert cols.size == 80
    assert np.array_equal(cols, np.arange(cols[0], cols[0] + 80))
    margin = round(0.03 * 512)
    assert cols[-1] == 511 - margin
    assert rows[-1] == 511 - margin
    assert 2 <= rows.size <= 20  # a bar, not a box
    # Black outline just around the bar; the label "20 nm" above it, right half.
    assert frame[rows[0] - 1, cols[10]] == OUTLINE
    assert frame[rows[-1] + 1, cols[10]] == OUTLINE
    label = frame[rows[0] - 60 : rows[0] - 2, 256:] == TEXT
    assert label.sum() > 100
    assert (frame[:400] == TEXT).sum() == 0  # nothing else drawn


def test_scale_bar_length_can_be_chosen(tmp_path):
    v = video(np.zeros((1, 64, 64)), pixel_size_nm=2.0)
    frame = decode(afmio.export_gif(v, tmp_path / "b50", scale_bar_nm=50, draw_ts=False))[0][0]
    _, cols = bar_rows(frame)
    assert cols.size == 200  # 50 nm / 2 nm x 8


def test_scale_bar_uses_the_exact_pixel_size(tmp_path):
    # 0.78125 nm pixels (100 nm / 128 px), enlarged 4x: a 20 nm bar is 102.4 -> 102 px.
    v = video(np.zeros((1, 128, 128)), pixel_size_nm=0.78125)
    frame = decode(afmio.export_gif(v, tmp_path / "exact", draw_ts=False))[0][0]
    assert bar_rows(frame)[1].size == 102


def test_no_scale_bar_without_a_pixel_size(tmp_path):
    v = video(np.zeros((1, 64, 64)), pixel_size_nm=float("nan"))
    with pytest.warns(afmio.AfmIOWarning, match="pixel size unknown"):
        path = afmio.export_gif(v, tmp_path / "nopx", draw_ts=False)
    assert not (decode(path)[0][0] == TEXT).any()


def test_timestamp_is_drawn_top_left_and_changes_with_the_time(tmp_path):
    v = video(np.zeros((3, 64, 64)), times=[0.0, 1.5, 12.3])
    frames = decode(afmio.export_gif(v, tmp_path / "ts", draw_scale=False))[0]
    for frame in frames:
        text = np.argwhere(frame == TEXT)
        assert text.size > 50
        assert text[:, 0].max() < 512 // 6
        assert text[:, 1].max() < 512 // 2
        assert (frame == OUTLINE).sum() > (frame == TEXT).sum() // 2  # outlined
    assert not np.array_equal(frames[1], frames[2])
    plain = decode(afmio.export_gif(v, tmp_path / "none", **PLAIN))[0]
    assert not any((f >= N_LEVELS).any() for f in plain)


def test_palette_is_the_colormap_then_white_and_black(tmp_path):
    path = afmio.export_gif(video(np.zeros((1, 8, 8))), tmp_path / "p", cmap="viridis", **PLAIN)
    with Image.open(path) as im:
        colours = np.frombuffer(im.palette.tobytes(), dtype=np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(colours, palette("viridis"))
    assert colours[TEXT].tolist() == [255, 255, 255]
    assert colours[OUTLINE].tolist() == [0, 0, 0]
    assert colours[0].tolist() == [68, 1, 84]  # viridis' dark end


# --- files: overwrite, interruption, memory, real data -------------------------------------


def test_refuses_to_overwrite_unless_asked(tmp_path):
    v = video(np.zeros((2, 8, 8)))
    target = tmp_path / "o.gif"
    target.write_bytes(b"keep")
    with pytest.raises(afmio.AfmFileExistsError, match=r"o\.gif"):
        afmio.export_gif(v, target)
    assert target.read_bytes() == b"keep"
    afmio.export_gif(v, target, overwrite=True, **PLAIN)
    assert len(decode(target)[0]) == 2


def test_interrupted_export_leaves_nothing(tmp_path):
    def stop(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        afmio.export_gif(video(np.zeros((10, 16, 16))), tmp_path / "i.gif", progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_every_frame(tmp_path):
    calls = []
    v = video(np.zeros((5, 16, 16)))
    v.afm.to_gif(tmp_path / "p.gif", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(k, 5) for k in range(1, 6)]
    # progress=True draws a bar (tqdm) and the export is the same.
    bar = v.afm.to_gif(tmp_path / "bar.gif", progress=True)
    assert bar.read_bytes() == (tmp_path / "p.gif").read_bytes()


def test_memory_stays_bounded_on_a_long_video(tmp_path):
    def peak_exporting(n: int) -> int:
        values = da.random.default_rng(0).random((n, 64, 64), chunks=(20, 64, 64))
        tracemalloc.start()
        try:
            path = afmio.export_gif(video(values.astype("f4")), tmp_path / f"{n}.gif")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        with Image.open(path) as im:
            assert im.n_frames == n
        return peak

    peak_exporting(2)  # imports, fonts, colormaps: allocated once
    short = peak_exporting(60)
    # 600 frames of 64 x 64 float32 (9.8 MB), rendered at 512 x 512 (157 MB of indices).
    long = peak_exporting(600)
    assert long < 8 * 2**20, f"peak {long / 2**20:.1f} MiB"
    assert long < 1.2 * short + 2**20  # ten times the frames, the same memory


def test_real_asd_file(data_dir, tmp_path):
    v = afmio.open(data_dir / "playnano_asd_sample_0.asd")
    assert v.shape == (32, 200, 200)
    path = v.afm.to_gif(tmp_path / "real")
    frames, durations = decode(path)
    assert len(frames) == 32
    assert durations == [1000] * 32  # one frame per second
    assert frames[0].shape == (600, 600)  # 200 px enlarged 3x
    # 0.5 nm pixels, 100 nm wide: a 20 nm bar = 40 px = 120 px at 3x.
    assert bar_rows(frames[0])[1].size == 120


# --- seed-compatible functions ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["numpy", "dask", "xarray"])
def test_seed_create_gif(tmp_path, kind):
    stack = np.random.default_rng(0).random((4, 32, 32))
    wrapped = {
        "numpy": stack,
        "dask": da.from_array(stack, chunks=(1, 32, 32)),
        "xarray": xr.DataArray(stack, dims=("frame", "row", "col")),
    }[kind]
    create_gif_with_scale_and_timestamp(
        wrapped,
        pixel_size_nm=2.0,
        timestamps=[0, 1, 2, 3],
        scale_bar_length_nm=10,
        output_path=tmp_path / "seed.gif",
        duration=0.2,
        zmin=0,
        zmax=1,
    )
    frames, durations = decode(tmp_path / "seed.gif")
    assert durations == [200] * 4  # each frame shown ``duration`` s, as the seed does
    assert bar_rows(frames[0])[1].size == 10 / 2 * 16  # 32 px enlarged 16x
    expected = upscaled(np.rint(stack[2] * (N_LEVELS - 1)).astype(np.uint8), 16)
    data_part = frames[2] < N_LEVELS  # away from the annotations
    np.testing.assert_array_equal(frames[2][data_part], expected[data_part])
    assert data_part.mean() > 0.9


def test_seed_create_gif_replaces_and_labels_frames_by_index(tmp_path):
    target = tmp_path / "out.gif"
    target.write_bytes(b"old")
    create_gif_with_scale_and_timestamp(np.zeros((2, 16, 16)), 10.0, output_path=target)
    frames, durations = decode(target)
    assert durations == [500, 500]
    assert bar_rows(frames[0])[1].size == 100 / 10 * 32  # the default 100 nm bar
    assert not np.array_equal(frames[0], frames[1])  # "frame 0", "frame 1"


def test_seed_create_gif_refuses_a_bad_duration(tmp_path):
    with pytest.raises(ValueError, match="duration"):
        create_gif_with_scale_and_timestamp(
            np.zeros((2, 8, 8)), 1.0, output_path=tmp_path / "d", duration=0
        )


def test_seed_export_gif_names_the_file_like_the_seed(make_asd, tmp_path):
    path = make_asd("sample.asd", {"TP": random_levels(3, 16, 16)})
    ds = afmio.open_dataset(path)
    out = tmp_path / "out"
    assert seed_export_gif(ds, False, out, None, 20) is None
    assert not out.exists()
    written = seed_export_gif(ds, True, out, None, None)
    assert written == out / "sample.gif"
    frames, durations = decode(written)
    assert len(frames) == 3
    assert durations == [100] * 3
    # 16 px over 100 nm: the automatic 20 nm bar, 3.2 px, 102 px at 32x.
    assert bar_rows(frames[0])[1].size == 102
    filtered = ds.afm.with_layer("raw", ds.afm.data).afm.with_layer("flat", ds.afm.data - 1)
    assert seed_export_gif(filtered, True, out, "named", 20) == out / "named_filtered.gif"
    assert seed_export_gif(filtered, True, out, "named", 20, raw=True) == out / "named.gif"


# --- API, MP4 -----------------------------------------------------------------------------


def test_rendered_formats_are_listed_and_exported():
    assert (WRITERS["gif"].write, WRITERS["gif"].suffix) == (gif.write, ".gif")
    assert (WRITERS["mp4"].write, WRITERS["mp4"].suffix) == (mp4.write, ".mp4")
    assert {n for n, w in WRITERS.items() if not w.rendering} == {"h5", "npz", "tif", "zarr"}


def test_dataset_exports_its_current_data(make_asd, tmp_path):
    path = make_asd("two.asd", {"TP": random_levels(3, 16, 16), "PH": random_levels(3, 16, 16)})
    ds = afmio.open_dataset(path)
    gif = ds.afm.to_gif(tmp_path / "ds", zmin=-10, zmax=10, **PLAIN)
    again = afmio.export_gif(ds.afm.data, tmp_path / "da", zmin=-10, zmax=10, **PLAIN)
    assert Path(gif).read_bytes() == Path(again).read_bytes()


def test_mp4_without_imageio_ffmpeg_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    with pytest.raises(afmio.AfmIOError) as info:
        afmio.export_mp4(video(np.zeros((2, 8, 8))), tmp_path / "v")
    # The tests run afmio from its source tree: the extra is installed from there.
    project = Path(__file__).resolve().parents[1]
    assert str(info.value) == (
        f'MP4 export needs imageio-ffmpeg; install it with pip install -e "{project}[video]"'
    )
    assert list(tmp_path.iterdir()) == []


class FakeDistribution:
    def __init__(self, direct_url: str | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        return self.direct_url if name == "direct_url.json" else None


@pytest.mark.parametrize(
    ("direct_url", "command"),
    [
        (None, 'pip install "afmio[video]"'),  # a wheel from the package index
        ('{"url": "https://x/afmio-0.1-py3-none-any.whl", "archive_info": {}}', None),
        ('{"url": "file:///opt/afmio", "dir_info": {}}', 'pip install "/opt/afmio[video]"'),
        (
            '{"url": "file:///my%20src/afmio", "dir_info": {"editable": true}}',
            'pip install -e "/my src/afmio[video]"',
        ),
        ("not json", None),
    ],
)
def test_mp4_install_command_follows_where_afmio_was_installed(
    tmp_path, monkeypatch, direct_url, command
):
    installed = tmp_path / "site-packages" / "afmio" / "writers" / "mp4.py"
    monkeypatch.setattr(mp4, "__file__", str(installed))  # not in a source tree
    monkeypatch.setattr(mp4.metadata, "distribution", lambda name: FakeDistribution(direct_url))
    assert mp4.install_command("video") == (command or 'pip install "afmio[video]"')


def test_mp4_has_every_frame_at_the_frame_rate(tmp_path):
    ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (afmio[video]) absent")
    v = video(np.zeros((25, 50, 50)), np.arange(25) * 0.2)  # black but for the annotations
    path = v.afm.to_mp4(tmp_path / "v")
    assert path == tmp_path / "v.mp4"
    frames, seconds = ffmpeg.count_frames_and_secs(str(path))
    assert frames == 25
    assert seconds == pytest.approx(5.0, abs=0.21)  # 5 frames/s
    reader = ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert meta["size"] == (550, 550)  # 50 px enlarged 11x, already even
    assert meta["fps"] == pytest.approx(5.0)
    first = np.frombuffer(next(reader), np.uint8).reshape(550, 550, 3)
    reader.close()
    # Bottom-right: the white scale bar survives compression.
    assert (first[480:, 300:] > 240).all(axis=2).sum() > 500


def test_mp4_pads_odd_sizes_and_follows_fps(tmp_path):
    ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (afmio[video]) absent")
    v = video(np.zeros((6, 513, 515)))  # kept as is: odd sides
    path = afmio.export_mp4(v, tmp_path / "odd.mp4", fps=3, **PLAIN)
    reader = ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    assert meta["size"] == (516, 514)
    assert meta["fps"] == pytest.approx(3.0)
    assert ffmpeg.count_frames_and_secs(str(path))[0] == 6


def test_interrupted_mp4_leaves_nothing(tmp_path):
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (afmio[video]) absent")

    def stop(done, total):
        if done == 2:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        afmio.export_mp4(video(np.zeros((5, 16, 16))), tmp_path / "i", progress=stop)
    assert list(tmp_path.iterdir()) == []
