"""The Nanoscope reader: real v4.32 and v5.12 files, generated files and folder videos
(values, orientation, channels, time), bad input, and laziness."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import numpy as np
import pytest

import afmio
from afmio.errors import AfmIOWarning, TruncatedFileWarning
from afmio.readers import nanoscope
from afmio.synthetic.nanoscope import HEADER_BLOCK, NanoscopeImage, write_nanoscope

from conftest import bytes_read, fails_cleanly

JMARINI = "jmarini_nanoscope_full_multiple_images.000"
NIMS = "nims_scilab4spm_data1.007"
T0 = datetime(2019, 9, 26, 16, 6, 25)


def levels(shape=(6, 8), seed=0, dtype=np.int16) -> np.ndarray:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def epoch_ms(dt: datetime) -> float:
    return dt.replace(tzinfo=timezone.utc).timestamp() * 1000


def patch(path, old: bytes, new: bytes):
    """Replace ``old`` by ``new`` (same length, so the data offsets stay right) once."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert data.count(old) == 1, old
    path.write_bytes(data.replace(old, new))
    return path


# ----------------------------------------------------------------------------- real files


def test_jmarini_v512_height_and_amplitude(data_dir):
    path = data_dir / JMARINI
    assert afmio.channels(path) == ["height_retrace", "amplitude_retrace"]
    video = afmio.open(path, dtype="float64")  # default: Height, the only one is retrace
    assert video.name == "height_retrace"
    assert video.attrs["native_channel"] == "Height"
    # 512 x 512 from the image list, although the scan list says Lines: 256.
    assert video.shape == (1, 512, 512)
    assert video.attrs["pixel_size_nm"] == video.attrs["pixel_size_y_nm"] == 2000 / 512
    assert video.attrs["units"] == "nm"
    assert video.attrs["source"]["format_version"] == "0x05120130"
    frame = video.values[0]
    # Same figures as AFMReader 0.0.7 load_spm(..., "Height"), row for row.
    assert frame.min() == pytest.approx(-729.749313, abs=1e-5)
    assert frame.max() == pytest.approx(-397.343602, abs=1e-5)
    assert frame.mean() == pytest.approx(-579.746026, abs=1e-5)
    assert np.ptp(frame) == pytest.approx(332.405711, abs=1e-5)
    np.testing.assert_allclose(frame[0, :3], [-397.777100, -397.690400, -397.603701], atol=1e-5)
    # Independently: int16 at Data offset 40960, bottom line first, 438.6572 V x 12.95302 nm/V.
    per_level = 438.6572 * 12.95302 / 65536
    assert per_level == pytest.approx(0.0867, abs=1e-4)
    raw = np.fromfile(path, "<i2", 512 * 512, offset=40960).reshape(512, 512)
    np.testing.assert_allclose(frame, raw[::-1] * per_level, rtol=1e-12)
    notes = video.attrs["provenance"]["reader"]
    assert notes["scaling"]["height_retrace"]["value_per_level"] == pytest.approx(per_level)

    amplitude = afmio.open(path, "Amplitude", dtype="float64")
    assert amplitude.attrs["units"] == "V"
    a = amplitude.values[0]
    assert (a.min(), a.max()) == pytest.approx((-0.0891118757, 0.1083307876), abs=1e-9)
    assert a.mean() == pytest.approx(0.000294362, abs=1e-8)

    assert video["start_epoch_ms"].item() == epoch_ms(datetime(2014, 10, 17, 10, 27, 26))
    assert video["line_rate"].item() == 1.99943
    assert video["frame_duration_s"].item() == pytest.approx(512 / 1.99943)
    assert video["scan_direction"].item() == "topDown"
    acq = video.attrs["provenance"]["acquisition"]
    json.dumps(acq)
    assert acq["header"]["Ciao scan list"]["Lines"] == "256"
    assert acq["header"]["Scanner list"]["@Sens. Zscan"] == "V 12.95302 nm/V"
    assert [im["@2:Image Data"] for im in acq["header"]["Ciao image list"]] == [
        'S [Height] "Height"',
        'S [Amplitude] "Amplitude"',
    ]


def test_nims_v432_uses_the_value_not_the_hard_scale(data_dir):
    path = data_dir / NIMS
    video = afmio.open(path, dtype="float64")
    assert video.shape == (1, 256, 256)
    assert video.attrs["pixel_size_nm"] == video.attrs["pixel_size_y_nm"] == 7.8125
    assert video.attrs["source"]["format_version"] == "0x04320003"
    frame = video.values[0]
    # raw / 65536 x 7.237438 V x 11.39026 nm/V: 56 nm peak to peak on a 2 um scan. The hard
    # scale in parentheses (0.006713765 V/LSB x 11.39026) would give ~3.4 um.
    per_level = 7.237438 * 11.39026 / 65536
    hard_scale_rule = 0.006713765 * 11.39026
    assert np.ptp(frame) == pytest.approx(56.433444, abs=1e-5)
    assert np.ptp(frame) / per_level * hard_scale_rule > 3000
    assert frame.min() == pytest.approx(-41.216892, abs=1e-5)
    assert frame.max() == pytest.approx(15.216552, abs=1e-5)
    assert frame.mean() == pytest.approx(0.126361, abs=1e-5)
    raw = np.fromfile(path, "<i2", 256 * 256, offset=20480).reshape(256, 256)
    np.testing.assert_allclose(frame, raw[::-1] * per_level, rtol=1e-12)
    amplitude = afmio.open(path, "amplitude_retrace", dtype="float64").values[0]
    assert np.ptp(amplitude) == pytest.approx(0.523853, abs=1e-6)
    assert video["start_epoch_ms"].item() == epoch_ms(datetime(2012, 8, 29, 21, 23, 9))


def test_real_files_as_a_dataset(data_dir):
    ds = afmio.open_dataset(data_dir / NIMS)
    assert list(ds.data_vars) == ["height_retrace", "amplitude_retrace"]
    assert ds["amplitude_retrace"].attrs["units"] == "V"


# ----------------------------------------------------------------------------- one file


@pytest.mark.parametrize("version", ["0x04320003", "0x05120130", "0x09010201"])
def test_values_orientation_units_and_key_spellings(tmp_path, version):
    height, phase = levels((5, 7), 1), levels((5, 7), 2)
    amplitude = levels((5, 7), 3, np.int32)
    path = write_nanoscope(
        tmp_path / "one.spm",
        [
            NanoscopeImage("Height", height, z_scale=3.5),
            NanoscopeImage("Amplitude", amplitude, 0.25, "Sens. Amplitude", "mV", "Retrace"),
            NanoscopeImage("Phase", phase, 90.0, None, "º"),
        ],
        version=version,
        scan_size=(1.4, 2.0, "~m"),
        scan_rate=4.0,
    )
    assert afmio.channels(path) == ["height_trace", "amplitude_retrace", "phase_trace"]
    video = afmio.open(path, dtype="float64")
    assert video.attrs["units"] == "nm"
    np.testing.assert_allclose(video.values[0], height[::-1] / 65536 * 3.5 * 10.0, rtol=1e-12)
    amp = afmio.open(path, "AMPLITUDE", dtype="float64")
    assert amp.attrs["units"] == "mV"
    np.testing.assert_allclose(amp.values[0], amplitude[::-1] / 2.0**32 * 0.25, rtol=1e-12)
    ph = afmio.open(path, "phase_trace", dtype="float64")
    assert ph.attrs["units"] == "deg"
    np.testing.assert_allclose(ph.values[0], phase[::-1] / 65536 * 90.0, rtol=1e-12)
    # x = 1.4 um / 7 samples, y = 2 um / 5 lines: the header's Y extent is kept.
    assert video.attrs["pixel_size_nm"] == pytest.approx(200.0)
    assert video.attrs["pixel_size_y_nm"] == pytest.approx(400.0)
    assert video["frame_duration_s"].item() == 5 / 4.0
    assert video["line_rate"].item() == 4.0
    assert video["start_epoch_ms"].item() == epoch_ms(T0)
    np.testing.assert_array_equal(video["time"], [0.0])


@pytest.mark.parametrize(
    ("sensitivity", "hard_unit", "factor"),
    [((0.01, "um/V"), "V", 10.0), ((10.0, "nm/V"), "mV", 0.01), ((2.0, "nm/mV"), "V", 2000.0)],
)
def test_soft_scale_units_are_converted_to_nm(tmp_path, sensitivity, hard_unit, factor):
    raw = levels((4, 4))
    path = write_nanoscope(
        tmp_path / "h.spm",
        [NanoscopeImage("Height", raw, 1.0, "Sens. Zsens", hard_unit)],
        sensitivities={"Sens. Zsens": sensitivity},
    )
    video = afmio.open(path, dtype="float64")
    assert video.attrs["units"] == "nm"
    np.testing.assert_allclose(video.values[0], raw[::-1] / 65536 * factor, rtol=1e-12)


def test_version_9_2_int32_blocks(tmp_path):
    raw = levels((6, 4), 5, np.int32)
    path = write_nanoscope(
        tmp_path / "v92.spm", [NanoscopeImage("Height Sensor", raw, 24.0)], version="0x09200000"
    )
    video = afmio.open(path, dtype="float64")
    assert video.name == "height_sensor_trace"
    np.testing.assert_allclose(video.values[0], raw[::-1] / 2.0**32 * 240.0, rtol=1e-12)
    assert (
        video.attrs["provenance"]["reader"]["scaling"]["height_sensor_trace"]["sample_type"]
        == "<i4"
    )


@pytest.mark.parametrize(
    ("names", "default", "order"),
    [
        (
            [("Amplitude", "Trace"), ("Height", "Retrace"), ("Height", "Trace")],
            2,
            ["height_trace", "amplitude_trace", "height_retrace"],
        ),
        (
            [("Height Sensor", "Trace"), ("Amplitude", "Retrace"), ("Height", "Retrace")],
            2,
            ["height_retrace", "height_sensor_trace", "amplitude_retrace"],
        ),
        (
            [("Phase", "Trace"), ("Height Sensor", "Retrace")],
            1,
            ["height_sensor_retrace", "phase_trace"],
        ),
        ([("Peak Force Error", "Trace")], 0, ["peak_force_error_trace"]),
        ([("Height", "Trace"), ("Height", "Trace")], 0, ["height_trace", "height_trace_2"]),
    ],
)
def test_channel_names_and_the_default_channel(tmp_path, names, default, order):
    """Image ``i`` holds the level ``i``; ``default`` is the image afmio.open picks."""
    images = [
        NanoscopeImage(name, np.full((3, 3), i, np.int16), line_direction=direction)
        for i, (name, direction) in enumerate(names)
    ]
    path = write_nanoscope(tmp_path / "c.spm", images)
    assert afmio.channels(path) == order
    video = afmio.open(path, dtype="float64")
    assert video.name == order[0]
    assert video.attrs["long_name"] == "{} ({})".format(*names[default])
    assert video.values[0, 0, 0] == default / 65536 * 10.0


def test_native_names_match_any_case(tmp_path):
    path = write_nanoscope(
        tmp_path / "c.spm",
        [
            NanoscopeImage("Height Sensor", levels((3, 3))),
            NanoscopeImage("Amplitude Error", levels((3, 3)), soft_scale=None),
        ],
    )
    assert afmio.open(path, "height sensor").name == "height_sensor_trace"
    assert afmio.open(path, "AMPLITUDE ERROR").name == "amplitude_error_trace"
    with pytest.raises(afmio.ChannelNotFoundError, match=r"height_sensor_trace \(Height Sensor\)"):
        afmio.open(path, "Phase")


def test_image_list_geometry_wins_and_scan_list_is_the_fallback(tmp_path):
    raw = levels((8, 6))
    # Like the v5.12 sample: the scan list says 4 lines, the image list (right) says 8.
    path = write_nanoscope(tmp_path / "a.spm", [NanoscopeImage("Height", raw)])
    patch(path, b"\\Lines: 8\r\n", b"\\Lines: 4\r\n")
    np.testing.assert_allclose(afmio.open(path, dtype="float64").values[0], raw[::-1] / 6553.6)
    # The other way round: the image list's lines do not fit its Data length.
    path = write_nanoscope(tmp_path / "b.spm", [NanoscopeImage("Height", raw)])
    patch(path, b"\\Number of lines: 8\r\n", b"\\Number of lines: 9\r\n")
    video = afmio.open(path, dtype="float64")
    assert video.shape == (1, 8, 6)
    np.testing.assert_allclose(video.values[0], raw[::-1] / 6553.6)


def test_single_number_scan_size_means_a_square_scan(tmp_path):
    path = write_nanoscope(tmp_path / "a.spm", [NanoscopeImage("Height", levels((4, 8)))])
    patch(path, b"\\Scan Size: 100 100 nm", b"\\Scan Size: 200     nm")
    video = afmio.open(path)
    assert video.attrs["pixel_size_nm"] == 25.0
    assert video.attrs["pixel_size_y_nm"] == 50.0


def test_upper_case_extension(tmp_path):
    path = write_nanoscope(tmp_path / "IMAGE.SPM", [NanoscopeImage("Height", levels((3, 4)))])
    assert afmio.open(path).shape == (1, 3, 4)
    assert nanoscope.folder_member(path)


def test_sniff_and_folder_member(tmp_path):
    path = write_nanoscope(tmp_path / "x.001", [NanoscopeImage("Height", levels((3, 4)))])
    assert nanoscope.sniff(path, path.read_bytes()[:4096])
    assert nanoscope.sniff(path, b"\\*Force file list\r\n")
    for head in (b"", b"\\*File", b"II*\x00", b"garbage \\*File list"):
        assert not nanoscope.sniff(path, head)
    for name in ("a.spm", "A.SPM", "b.000", "c.001", "d.999", "09261606.001"):
        assert nanoscope.folder_member(tmp_path / name)
    for name in ("a.jpk", "a.asd", "a.0001", "a.01", "a.x01", "a.txt", "spm"):
        assert not nanoscope.folder_member(tmp_path / name)


# ----------------------------------------------------------------------------- folders


def series(folder, names, rel_times, dates, shapes=None, scan_sizes=None):
    """One file per frame, frame ``i`` filled with the level ``100 * (i + 1)``."""
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        shape = shapes[i] if shapes else (8, 10)
        write_nanoscope(
            folder / name,
            [
                NanoscopeImage("Height", np.full(shape, 100 * (i + 1), np.int16), 6.5536),
                NanoscopeImage("Amplitude", np.full(shape, -i, np.int16), 1.0, "Sens. Amplitude"),
            ],
            relative_frame_time=rel_times[i],
            date=dates[i],
            scan_rate=0.8,
            scan_size=scan_sizes[i] if scan_sizes else (100.0, 80.0, "nm"),
            frame_direction=("Down", "Up", "Down")[i % 3],
        )
    return folder


# Names sort a, b, c; the clock says a, c, b; b comes 2 frame periods after c (frame period
# 8 lines / 0.8 Hz = 10 s): a frame is missing between the 2nd and the 3rd.
NAMES = ("c.002", "a.000", "b.001")
REL = (7279.93 + 10.0, 7279.93, 7279.93 + 30.0)
DATES = tuple(T0.replace(second=25 + s) for s in (10, 0, 30))


def frame_levels(video):
    """Which written frame each output frame is (the level it was filled with)."""
    # Height: 6.5536 V x 10 nm/V / 65536 = 0.001 nm per level, so level 100 (i + 1) is 0.1 (i + 1).
    return [round(v * 10) - 1 for v in video.values[:, 0, 0].tolist()]


def test_folder_video_in_time_order_with_a_gap_from_relative_frame_time(tmp_path):
    folder = series(tmp_path / "s", NAMES, REL, DATES)
    video = afmio.open(folder, dtype="float64")
    assert video.shape == (3, 8, 10)
    assert frame_levels(video) == [1, 0, 2]  # a.000, c.002, b.001
    np.testing.assert_allclose(video["time"], [0.0, 10.0, 30.0])
    np.testing.assert_array_equal(video["start_epoch_ms"], [epoch_ms(DATES[i]) for i in (1, 0, 2)])
    np.testing.assert_array_equal(video["frame_duration_s"], [10.0] * 3)
    np.testing.assert_array_equal(video["line_rate"], [0.8] * 3)
    assert list(video["scan_direction"].values) == ["bottomUp", "topDown", "topDown"]
    assert video.attrs["pixel_size_nm"] == 10.0
    assert video.attrs["pixel_size_y_nm"] == 10.0
    assert video.attrs["source"]["size_bytes"] == sum((folder / n).stat().st_size for n in NAMES)
    assert video.attrs["provenance"]["reader"]["time_source"] == "Relative frame time"
    acq = video.attrs["provenance"]["acquisition"]
    json.dumps(acq)
    assert acq["file"] == "a.000"
    assert [f["file"] for f in acq["frames"]] == ["a.000", "c.002", "b.001"]
    assert acq["frames"][0]["differs"] == {}
    assert acq["frames"][1]["differs"]["Ciao image list[0]/Relative frame time"] == "7289.930"
    assert acq["frames"][2]["differs"]["File list/Date"] == "04:06:55 PM Thu Sep 26 2019"
    amplitude = afmio.open(folder, "amplitude_trace", dtype="float64")
    np.testing.assert_array_equal(amplitude.values[:, 2, 3], [-1.0 / 65536, 0.0, -2.0 / 65536])


def test_folder_time_from_dates_when_a_frame_lacks_relative_frame_time(tmp_path):
    folder = series(tmp_path / "s", NAMES, (REL[0], None, REL[2]), DATES)
    video = afmio.open(folder)
    assert frame_levels(video) == [1, 0, 2]
    np.testing.assert_array_equal(video["time"], [0.0, 10.0, 30.0])
    assert video.attrs["provenance"]["reader"]["time_source"] == "Date"


def test_folder_time_from_lines_and_scan_rate_without_clocks(tmp_path):
    folder = series(tmp_path / "s", NAMES, (None,) * 3, (None,) * 3)
    video = afmio.open(folder)
    # Name order; without a clock the missing frame cannot be seen.
    assert frame_levels(video) == [1, 2, 0]
    np.testing.assert_array_equal(video["time"], [0.0, 10.0, 20.0])
    assert np.isnan(video["start_epoch_ms"]).all()
    assert video.attrs["provenance"]["reader"]["time_source"] == ("frame index x lines / scan rate")


def test_folder_of_mixed_frame_sizes_keeps_the_majority(tmp_path):
    folder = series(tmp_path / "s", NAMES, REL, DATES, shapes=[(8, 10), (8, 10), (16, 10)])
    with pytest.warns(AfmIOWarning, match=r"left out 1 of 3 files: b\.001 \(16 x 10 px"):
        video = afmio.open(folder)
    assert video.shape == (2, 8, 10)
    assert frame_levels(video) == [1, 0]


def test_folder_of_mixed_pixel_sizes_keeps_the_majority(tmp_path):
    sizes = [(100.0, 80.0, "nm"), (200.0, 160.0, "nm"), (100.0, 80.0, "nm")]
    folder = series(tmp_path / "s", NAMES, REL, DATES, scan_sizes=sizes)
    with pytest.warns(AfmIOWarning, match=r"a\.000 \(8 x 10 px of 20 x 20 nm, unlike"):
        video = afmio.open(folder)
    assert frame_levels(video) == [0, 2]
    assert video.attrs["pixel_size_nm"] == 10.0


def test_folder_leaves_out_unreadable_files_with_a_warning(tmp_path):
    folder = series(tmp_path / "s", NAMES, REL, DATES)
    (folder / "junk.spm").write_bytes(os.urandom(5000))
    (folder / "notes.txt").write_text("not a frame")
    with pytest.warns(
        AfmIOWarning, match=r"left out 1 of 4 files: junk\.spm \(not a Nanoscope file"
    ):
        video = afmio.open(folder)
    assert video.shape[0] == 3
    assert video.attrs["provenance"]["reader"]["files_left_out"] == 1


def test_folder_leaves_out_a_truncated_frame_file(tmp_path):
    folder = series(tmp_path / "s", NAMES, REL, DATES)
    cut = folder / "b.001"  # the last frame in time, as when a copy is interrupted
    cut.write_bytes(cut.read_bytes()[: HEADER_BLOCK + 50])
    with pytest.warns(AfmIOWarning, match=r"b\.001 \(no readable image.*truncated"):
        ds = afmio.open_dataset(folder)
    assert list(ds.data_vars) == ["height_trace", "amplitude_trace"]
    assert ds.sizes == {"time": 2, "y": 8, "x": 10}
    np.testing.assert_array_equal(ds["time"], [0.0, 10.0])


def test_folder_with_upper_case_extensions(tmp_path):
    folder = series(tmp_path / "s", ("F1.SPM", "F2.SPM", "F3.SPM"), (1.0, 2.0, 3.0), DATES)
    video = afmio.open(folder)
    assert frame_levels(video) == [0, 1, 2]
    np.testing.assert_array_equal(video["time"], [0.0, 1.0, 2.0])


def test_folder_channel_missing_in_one_frame_is_left_out(tmp_path):
    folder = series(tmp_path / "s", NAMES[:2], REL[:2], DATES[:2])
    write_nanoscope(
        folder / "d.003",
        [NanoscopeImage("Height", np.zeros((8, 10), np.int16))],
        scan_size=(100.0, 80.0, "nm"),
    )
    assert afmio.channels(folder) == ["height_trace"]
    with pytest.warns(AfmIOWarning, match=r"amplitude_trace left out.*1 of 3 files: d\.003"):
        assert afmio.open(folder).shape == (3, 8, 10)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(afmio.UnsupportedFormatError, match=r"empty.*no frame files"):
        afmio.open(tmp_path / "empty")
    with pytest.raises(afmio.UnsupportedFormatError, match=r"empty.*without Nanoscope files"):
        nanoscope.read(tmp_path / "empty")


def test_folder_of_only_garbage(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.spm").write_bytes(os.urandom(3000))
    (folder / "b.001").write_bytes(b"")
    err = fails_cleanly(folder, afmio.CorruptFileError, "none of its 2 Nanoscope files")
    assert "a.spm" in str(err)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def good(tmp_path):
    """A two-channel file: Height 8 x 10 int16 then Amplitude 8 x 10 int16."""
    return write_nanoscope(
        tmp_path / "good.spm",
        [
            NanoscopeImage("Height", levels((8, 10))),
            NanoscopeImage("Amplitude", levels((8, 10)), soft_scale="Sens. Amplitude"),
        ],
    )


def test_empty_file(tmp_path):
    path = tmp_path / "empty.spm"
    path.write_bytes(b"")
    fails_cleanly(path, afmio.CorruptFileError, "empty")
    with pytest.raises(afmio.CorruptFileError, match=r"empty\.spm: file is empty"):
        nanoscope.read(path)


def test_truncated_header(good):
    good.write_bytes(good.read_bytes()[:700])
    fails_cleanly(good, afmio.CorruptFileError, "truncated header.*only 700 bytes")


def test_truncated_data_drops_the_last_channel_with_a_warning(good):
    good.write_bytes(good.read_bytes()[: HEADER_BLOCK + 160 + 100])
    assert afmio.channels(good) == ["height_trace"]
    with pytest.warns(TruncatedFileWarning, match=r"good\.spm: channel Amplitude.*truncated"):
        assert afmio.open(good).shape == (1, 8, 10)


def test_truncated_data_of_every_channel(good):
    good.write_bytes(good.read_bytes()[: HEADER_BLOCK + 100])
    fails_cleanly(good, afmio.CorruptFileError, "no readable image.*runs to byte 4256")


def test_random_bytes(tmp_path):
    path = tmp_path / "garbage.spm"
    path.write_bytes(np.random.default_rng(3).bytes(100_000))
    fails_cleanly(path, afmio.CorruptFileError, "not a Nanoscope file")


def test_header_that_never_ends(tmp_path):
    line = b"\\Some key: some value\r\n"
    path = tmp_path / "open.spm"
    path.write_bytes(b"\\*File list\r\n\\Data length: 8192\r\n" + line * 2000)
    fails_cleanly(path, afmio.CorruptFileError, "never ends.*first 8192 bytes")
    short = tmp_path / "short.spm"
    short.write_bytes(b"\\*File list\r\n\\Data length: 40960\r\n" + line * 50)
    fails_cleanly(short, afmio.CorruptFileError, "truncated header")


def test_huge_text_file_claiming_a_huge_header(tmp_path):
    # playNano's reader hangs on such files; afmio reads at most 4 MiB of header.
    path = tmp_path / "huge.spm"
    with open(path, "wb") as f:
        f.write(b"\\*File list\r\n\\Data length: 999999999999\r\n")
        f.write(b"\\" + b" " * (24 * 2**20) + b"\r\n")
    fails_cleanly(path, afmio.CorruptFileError, "never ends", max_bytes=12 * 2**20)


def test_missing_header_length(good):
    patch(good, b"\\Data length: 4096\r\n", b"\\Data lengthX 4096\r\n")
    fails_cleanly(good, afmio.CorruptFileError, r"no valid '\\Data length' in the File list")


def test_line_endings_converted(good):
    good.write_bytes(good.read_bytes().replace(b"\r\n", b"\n"))
    fails_cleanly(good, afmio.CorruptFileError, "line endings were converted")


def test_force_curve_and_text_data_files(tmp_path):
    force = tmp_path / "force.000"
    force.write_bytes(b"\\*Force file list\r\n\\Data length: 4096\r\n" + bytes(5000))
    fails_cleanly(force, afmio.UnsupportedFormatError, "force-curve file")
    text = tmp_path / "text.spm"
    text.write_bytes(b"?*File list\r\n\\Data length: 4096\r\n" + bytes(5000))
    fails_cleanly(text, afmio.UnsupportedFormatError, "text data")


def test_header_without_image_sections(good):
    patch(
        good,
        b"\\*Ciao image list\r\n\\Data offset: 4096",
        b"\\*Ciao other list\r\n\\Data offset: 4096",
    )
    patch(
        good,
        b"\\*Ciao image list\r\n\\Data offset: 4256",
        b"\\*Ciao other list\r\n\\Data offset: 4256",
    )
    fails_cleanly(good, afmio.UnsupportedFormatError, "holds no image sections")


def test_missing_image_data_length_is_assumed_with_a_warning(good):
    raw = np.fromfile(good, "<i2", 80, offset=HEADER_BLOCK).reshape(8, 10)
    patch(good, b"\\Data offset: 4096\r\n\\Data length:", b"\\Data offset: 4096\r\n\\Data_length:")
    with pytest.warns(AfmIOWarning, match=r"good\.spm: channel height_trace: no 'Data length'"):
        video = afmio.open(good, dtype="float64")
    np.testing.assert_allclose(video.values[0], raw[::-1] / 6553.6)


def test_missing_bytes_per_pixel_is_taken_from_the_data_length(good):
    raw = np.fromfile(good, "<i2", 80, offset=HEADER_BLOCK).reshape(8, 10)
    patch(
        good,
        b"4096\r\n\\Data length: 160\r\n\\Bytes/pixel",
        b"4096\r\n\\Data length: 160\r\n\\Bytes-pixel",
    )
    with pytest.warns(AfmIOWarning, match="no valid 'Bytes/pixel'; scaled as 2 bytes/pixel"):
        video = afmio.open(good, dtype="float64")
    np.testing.assert_allclose(video.values[0], raw[::-1] / 6553.6)


def test_missing_data_offset_drops_the_channel(good):
    patch(good, b"\\Data offset: 4256", b"\\Data-offset: 4256")
    assert afmio.channels(good) == ["height_trace"]
    with pytest.warns(AfmIOWarning, match=r"Amplitude \(trace\) left out: no valid 'Data offset'"):
        afmio.open(good)


def test_soft_scale_not_found_gives_hard_values_with_a_warning(tmp_path):
    raw = levels((4, 5))
    path = write_nanoscope(
        tmp_path / "soft.spm", [NanoscopeImage("Height", raw, 2.0, "Sens. Zscan")]
    )
    with pytest.warns(
        AfmIOWarning, match=r"soft\.spm: channel height_trace: soft scale 'Sens\. Zscan' is not"
    ):
        video = afmio.open(path, dtype="float64")
    assert video.attrs["units"] == "V"
    np.testing.assert_allclose(video.values[0], raw[::-1] / 65536 * 2.0)


def test_missing_z_scale_gives_raw_levels_with_a_warning(good):
    patch(good, b'"Height"\r\n\\@2:Z scale', b'"Height"\r\n\\@2:Z_scale')
    raw = np.fromfile(good, "<i2", 80, offset=HEADER_BLOCK).reshape(8, 10)
    with pytest.warns(AfmIOWarning, match=r"no usable '@2:Z scale'.*raw levels"):
        video = afmio.open(good, dtype="float64")
    assert video.attrs["units"] == "levels"
    np.testing.assert_array_equal(video.values[0], raw[::-1])


# ----------------------------------------------------------------------------- laziness


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_open_reads_headers_only_and_a_frame_reads_one_frame(tmp_path):
    folder = tmp_path / "lazy"
    folder.mkdir()
    frame_bytes = 256 * 256 * 2
    for i in range(12):
        write_nanoscope(
            folder / f"f.{i:03d}",
            [NanoscopeImage(n, levels((256, 256), i)) for n in ("Height", "Amplitude", "Phase")],
            relative_frame_time=float(i),
        )
    afmio.open(folder).afm.frame(0)  # warm up imports and dask's thread pool
    before = bytes_read()
    video = afmio.open(folder)
    opened = bytes_read()
    assert opened - before <= 12 * HEADER_BLOCK + 2**16
    assert video.shape == (12, 256, 256)
    frame = video[7].values
    one = bytes_read() - opened
    assert frame_bytes <= one < 2 * frame_bytes
    expected = levels((256, 256), 7)[::-1] / 65536 * 10.0
    np.testing.assert_allclose(frame, expected.astype(np.float32), rtol=1e-6)
