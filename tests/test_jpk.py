"""The JPK TIFF reader: single images, folders as videos, scaling, time, bad input, laziness,
and the real sample files with figures checked against playNano 0.5.0 / AFMReader."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

import afmio
from afmio import readers
from afmio.errors import AfmIOWarning, TruncatedFileWarning
from afmio.readers import jpk
from afmio.synthetic.jpk import JpkChannel, format_date, write_jpk

from conftest import bytes_read, fails_cleanly

T0 = 1_715_941_800_000  # 2024-05-17 10:30:00 UTC, in ms
INTERLACE = "fast-imaging.feed-forward-parameters.yaxis.interlace"
STREPTAVIDIN = "pnanolocz_streptavidin_jpk_folder"
SAMPLE = "afmreader_sample_0.jpk"
SCAN = (8e-8, 6e-8)  # scan size of the synthetic folders, m


def levels(shape=(6, 8), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-(2**30), 2**30, shape, dtype=np.int32)


def nm(raw: np.ndarray, multiplier: float, offset: float) -> np.ndarray:
    """What afmio must return for a length channel: scaled, in nm, rows reversed."""
    return np.flipud(raw.astype(np.float64) * multiplier + offset) * 1e9


def nanoracer(shape=(6, 8), seed=0, multiplier=-3e-18, offset=4.4e-7) -> list[JpkChannel]:
    """The three pages of a NanoRacer frame: height retrace, measuredHeight trace, height trace."""
    measured = levels(shape, seed + 1)
    return [
        JpkChannel("height", True, levels(shape, seed), multiplier * 1.01, offset),
        JpkChannel("measuredHeight", False, measured, 3.8e-18, 5.7e-7, default_slot="nominal"),
        JpkChannel("height", False, levels(shape, seed + 2), multiplier, offset),
    ]


def make_folder(folder: Path, n: int = 4, shape=(6, 8), name="save-{i:03d}.jpk", **kw) -> list:
    """A folder of ``n`` NanoRacer-like frames 2.59 s apart, each with its own scaling."""
    folder.mkdir(exist_ok=True)
    frames = []
    for i in range(n):
        channels = nanoracer(
            shape, seed=10 * i, multiplier=-(2 + i) * 1e-18, offset=(440 + i) * 1e-9
        )
        kw.setdefault("scan_size_m", SCAN)
        write_jpk(
            folder / name.format(i=i), channels, start_ms=T0 + 2590 * i, duration_s=2.585, **kw
        )
        frames.append(channels)
    return frames


# ----------------------------------------------------------------------------- single file


def test_single_file_is_a_one_frame_video(tmp_path):
    channels = nanoracer()
    path = write_jpk(
        tmp_path / "image.jpk",
        channels,
        scan_size_m=(1e-7, 6e-8),
        scan_rate_hz=4.0,
        motion="bottomUp",
    )
    video = afmio.open(path, dtype="float64")
    assert video.dims == ("time", "y", "x")
    assert video.shape == (1, 6, 8)
    assert video.attrs["channel"] == "height_trace"  # the default, though it is page 3
    assert video.attrs["native_channel"] == "Height trace"
    assert video.attrs["units"] == "nm"
    np.testing.assert_allclose(video.values[0], nm(channels[2].levels, -3e-18, 4.4e-7), rtol=1e-12)
    assert video.attrs["pixel_size_nm"] == pytest.approx(12.5)
    assert video.attrs["pixel_size_y_nm"] == pytest.approx(10.0)
    np.testing.assert_array_equal(video["time"], [0.0])
    np.testing.assert_array_equal(video["start_epoch_ms"], [T0])
    np.testing.assert_allclose(video["frame_duration_s"], [2.5])
    np.testing.assert_array_equal(video["line_rate"], [4.0])
    np.testing.assert_array_equal(video["scan_direction"], ["bottomUp"])
    assert video.attrs["source"]["format"] == "jpk"
    assert video.attrs["source"]["format_version"] == "8.0.33"


def test_channels_are_named_like_playnano_and_matched_in_any_case(tmp_path):
    channels = nanoracer()
    path = write_jpk(tmp_path / "image.jpk", channels)
    assert afmio.channels(path) == ["height_retrace", "measuredHeight_trace", "height_trace"]
    retrace = afmio.open(path, "HEIGHT_RETRACE", dtype="float64")
    np.testing.assert_allclose(retrace.values[0], nm(channels[0].levels, -3.03e-18, 4.4e-7))
    measured = afmio.open(path, "measuredheight trace", dtype="float64")  # native name
    assert measured.attrs["channel"] == "measuredHeight_trace"
    # Its default slot is "nominal" (slot 2), not the decoy slots around it.
    np.testing.assert_allclose(measured.values[0], nm(channels[1].levels, 3.8e-18, 5.7e-7))
    with pytest.raises(afmio.ChannelNotFoundError, match="height_retrace"):
        afmio.open(path, "phase_trace")
    ds = afmio.open_dataset(path)
    assert list(ds.data_vars) == ["height_retrace", "measuredHeight_trace", "height_trace"]


def test_units_other_than_metres_are_kept(tmp_path):
    raw = levels(seed=3)
    path = write_jpk(
        tmp_path / "image.jpk",
        [
            JpkChannel("error", False, raw, 2e-9, 0.1, unit="V", default_slot="volts"),
            JpkChannel("phase", False, raw, 1e-6, -9.0, unit="deg", default_slot="degrees"),
        ],
    )
    error = afmio.open(path, dtype="float64")  # no height: the first channel
    assert error.attrs["channel"] == "error_trace"
    assert error.attrs["units"] == "V"
    np.testing.assert_allclose(error.values[0], np.flipud(raw * 2e-9 + 0.1))
    phase = afmio.open(path, "phase_trace", dtype="float64")
    assert phase.attrs["units"] == "deg"
    np.testing.assert_allclose(phase.values[0], np.flipud(raw * 1e-6 - 9.0))


def test_16_bit_pages(tmp_path):
    raw = np.arange(48, dtype=np.int16).reshape(6, 8) - 20
    path = write_jpk(tmp_path / "old.jpk", [JpkChannel("height", False, raw, 1e-10, 0.0)])
    np.testing.assert_allclose(afmio.open(path, dtype="float64").values[0], nm(raw, 1e-10, 0.0))


def test_odd_pages_are_skipped_with_warnings(tmp_path):
    first, second = levels(seed=1), levels(seed=2)
    path = write_jpk(
        tmp_path / "odd.jpk",
        [
            JpkChannel("height", False, first),
            JpkChannel("preview", False, np.zeros((6, 8), np.uint8)),  # 8-bit: not data
            JpkChannel("height", False, second),  # the same channel again
        ],
    )
    with (
        pytest.warns(AfmIOWarning, match="IFD 2 holds 8-bit samples"),
        pytest.warns(AfmIOWarning, match="IFD 3 repeats channel height_trace; the first is used"),
    ):
        video = afmio.open(path, dtype="float64")
    assert afmio.channels(path) == ["height_trace"]
    np.testing.assert_allclose(video.values[0], nm(first, 1e-12, 0.0))


def test_synthetic_files_are_valid_tiff(tmp_path):
    channels = nanoracer()
    path = write_jpk(tmp_path / "image.jpk", channels)
    with tifffile.TiffFile(path) as tif:
        assert tif.byteorder == ">"
        assert len(tif.pages) == 4
        np.testing.assert_array_equal(tif.pages[3].asarray(), channels[2].levels)
        assert tif.pages[0].tags[0x8042].value == 1e-7


def test_provenance_is_json_safe_and_holds_the_header(tmp_path):
    path = write_jpk(
        tmp_path / "image.jpk", nanoracer(), settings={INTERLACE: "true", "a.b": "16\\:00 \\u00B5m"}
    )
    video = afmio.open(path)
    prov = video.attrs["provenance"]
    json.dumps(prov, allow_nan=False)
    acq = prov["acquisition"]
    assert acq["tags"]["start_date"] == "2024-05-17 10:30:00.000 GMT"
    assert acq["tags"]["grid_u_length_m"] == 1e-7
    assert acq["settings"] == {INTERLACE: "true", "a.b": "16:00 µm"}
    height = acq["channels"]["height_trace"]
    assert height["default_slot"] == "calibrated"
    assert [s["name"] for s in height["slots"]] == ["raw", "volts", "nominal", "calibrated"]
    assert height["slots"][3]["multiplier"] == -3e-18
    assert height["slots"][3]["unit"] == "m"
    assert prov["reader"]["interlaced"] is True
    assert prov["reader"]["scaling"]["height_trace"]["default_slot"] == "calibrated"


# ----------------------------------------------------------------------------- folders


def test_folder_is_a_video_with_each_frames_own_scaling(tmp_path):
    frames = make_folder(tmp_path / "run", n=5)
    video = afmio.open(tmp_path / "run", dtype="float64")
    assert video.shape == (5, 6, 8)
    for i, channels in enumerate(frames):
        expected = nm(channels[2].levels, -(2 + i) * 1e-18, (440 + i) * 1e-9)
        np.testing.assert_allclose(video.values[i], expected, rtol=1e-12)
    np.testing.assert_allclose(video["time"], np.arange(5) * 2.59)
    np.testing.assert_array_equal(video["start_epoch_ms"], T0 + 2590 * np.arange(5))
    np.testing.assert_allclose(video["frame_duration_s"], 2.585)
    assert video.attrs["pixel_size_nm"] == pytest.approx(10.0)
    assert video.attrs["pixel_size_y_nm"] == pytest.approx(10.0)
    assert video.attrs["source"]["size_bytes"] == sum(
        p.stat().st_size for p in (tmp_path / "run").iterdir()
    )
    ds = afmio.open_dataset(tmp_path / "run", dtype="float64")
    np.testing.assert_array_equal(ds["height_trace"].values, video.values)
    np.testing.assert_allclose(
        ds["measuredHeight_trace"].values[4], nm(frames[4][1].levels, 3.8e-18, 5.7e-7)
    )


def test_frames_are_ordered_by_start_date_not_by_name(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    starts = [T0 + 5000, T0, T0 + 2500]  # names a, b, c
    for name, start, seed in zip("abc", starts, [1, 2, 3], strict=True):
        write_jpk(
            folder / f"{name}.jpk", [JpkChannel("height", False, levels(seed=seed))], start_ms=start
        )
    video = afmio.open(folder, dtype="float64")
    np.testing.assert_allclose(video["time"], [0.0, 2.5, 5.0])
    np.testing.assert_allclose(video.values[0], nm(levels(seed=2), 1e-12, 0.0))
    assert video.attrs["provenance"]["reader"]["first_file"] == "b.jpk"
    assert video.attrs["provenance"]["acquisition"]["file"] == "b.jpk"


def test_time_zones_are_honoured(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    ch = [JpkChannel("height", False, levels())]
    # Same instant rules: 12:30 CEST is 10:30 UTC; the next frame is written in GMT.
    write_jpk(folder / "f1.jpk", ch, start_ms=T0, zone="CEST", utc_offset_h=2, omit={0x8008})
    write_jpk(folder / "f2.jpk", ch, start_ms=T0 + 1234, zone="GMT", omit={0x8008})
    write_jpk(folder / "f3.jpk", ch, start_ms=T0 + 2468, zone="GMT-05:00", utc_offset_h=-5)
    acq_date = afmio.open(folder).attrs["provenance"]["acquisition"]["tags"]["start_date"]
    assert acq_date == "2024-05-17 12:30:00.000 CEST"
    video = afmio.open(folder)
    np.testing.assert_array_equal(video["start_epoch_ms"], [T0, T0 + 1234, T0 + 2468])
    np.testing.assert_allclose(video["time"], [0.0, 1.234, 2.468])
    np.testing.assert_allclose(video["frame_duration_s"], 2.5)


def test_unknown_zone_name_is_resolved_by_the_unique_id(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", nanoracer(), zone="XYZ", utc_offset_h=5.5)
    video = afmio.open(path)  # no warning: tag 0x8008 holds the UTC start
    np.testing.assert_array_equal(video["start_epoch_ms"], [T0])
    np.testing.assert_allclose(video["frame_duration_s"], [2.5])


def test_unknown_zone_without_unique_id_is_taken_as_utc_with_a_warning(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", nanoracer(), zone="XYZ", utc_offset_h=1, omit={0x8008})
    with pytest.warns(AfmIOWarning, match=r"time zone of the dates \(XYZ\) is unknown"):
        video = afmio.open(path)
    np.testing.assert_array_equal(video["start_epoch_ms"], [T0 + 3_600_000])


@pytest.mark.parametrize("interlaced", [False, True])
def test_without_dates_frames_follow_natural_name_order_and_the_scan_rate(tmp_path, interlaced):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in [10, 9, 1, 2]:
        write_jpk(
            folder / f"frame{i}.jpk",
            [JpkChannel("height", False, np.full((6, 8), i, np.int32))],
            scan_rate_hz=3.0,
            settings={INTERLACE: str(interlaced).lower()},
            omit={0x8003, 0x8006, 0x8008},
        )
    with pytest.warns(AfmIOWarning, match="4 of 4 files have no readable start date"):
        video = afmio.open(folder, dtype="float64")
    np.testing.assert_allclose(video.values[:, 0, 0], [1e-3, 2e-3, 9e-3, 10e-3])
    period = 6 / 3.0 / (2 if interlaced else 1)
    np.testing.assert_allclose(video["time"], np.arange(4) * period)
    np.testing.assert_allclose(video["frame_duration_s"], period)
    assert np.isnan(video["start_epoch_ms"]).all()


def test_frames_of_another_size_are_left_out_with_a_warning(tmp_path):
    folder = tmp_path / "run"
    make_folder(folder, n=4)
    write_jpk(folder / "save-002.jpk", nanoracer((4, 4)), start_ms=T0 + 2590 * 2)
    with pytest.warns(AfmIOWarning, match=r"left out 1 of 4 files: save-002\.jpk \(4x4 px"):
        video = afmio.open(folder)
    assert video.shape == (3, 6, 8)
    np.testing.assert_allclose(video["time"], [0.0, 2.59, 3 * 2.59])
    notes = video.attrs["provenance"]["reader"]
    assert notes["left_out_count"] == 1
    assert "save-002.jpk" in notes["left_out"]


def test_frame_missing_a_channel_is_left_out(tmp_path):
    folder = tmp_path / "run"
    make_folder(folder, n=3)
    write_jpk(folder / "save-001.jpk", nanoracer()[:2], start_ms=T0 + 2590, scan_size_m=SCAN)
    with pytest.warns(AfmIOWarning, match=r"save-001\.jpk \(no usable height_trace\)"):
        video = afmio.open(folder, "measuredHeight_trace")
    assert video.sizes["time"] == 2


def test_unreadable_members_are_left_out_with_a_warning(tmp_path):
    folder = tmp_path / "run"
    make_folder(folder, n=4)
    (folder / "notes.jpk").write_text("not an image\n")
    data = (folder / "save-003.jpk").read_bytes()
    (folder / "save-003.jpk").write_bytes(data[:-100])
    (folder / "._save-000.jpk").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS debris
    (folder / "readme.txt").write_text("ignored")
    with pytest.warns(AfmIOWarning, match="left out 2 of 5 files") as record:
        video = afmio.open(folder)
    message = str(record[0].message)
    assert "notes.jpk (is not a JPK image" in message
    assert "save-003.jpk (no usable height_trace (truncated frame data" in message
    assert "._save" not in message
    assert video.sizes["time"] == 3


def test_upper_case_extensions(tmp_path):
    folder = tmp_path / "run"
    make_folder(folder, n=3, name="SAVE-{i}.JPK")
    (folder / "SAVE-1.JPK").rename(folder / "save-1.Jpk")
    assert jpk.folder_member(folder / "x.JPK")
    assert not jpk.folder_member(folder / "._x.jpk")
    assert not jpk.folder_member(folder / "x.jpk-force")
    assert afmio.open(folder).sizes["time"] == 3
    assert afmio.open(folder / "SAVE-2.JPK").sizes["time"] == 1


# ----------------------------------------------------------------------------- scaling fallbacks


def test_missing_scaling_tags_give_raw_levels_with_a_warning(tmp_path):
    raw = levels()
    path = write_jpk(tmp_path / "a.jpk", [JpkChannel("height", False, raw)], omit={0x8080, 0x8081})
    with pytest.warns(
        AfmIOWarning, match=r"height_trace cannot be scaled .*no calibration slot tags"
    ):
        video = afmio.open(path, dtype="float64")
    assert video.attrs["units"] == "levels"
    assert "raw levels" in video.attrs["long_name"]
    np.testing.assert_array_equal(video.values[0], np.flipud(raw))


@pytest.mark.parametrize(
    ("channel", "match"),
    [
        (
            JpkChannel("height", False, levels(), scaling="CubicScaling"),
            "scaling type 'CubicScaling'",
        ),
        (JpkChannel("height", False, levels(), multiplier=float("nan")), "no finite multiplier"),
    ],
)
def test_unusable_default_slot_gives_raw_levels(tmp_path, channel, match):
    path = write_jpk(tmp_path / "a.jpk", [channel])
    with pytest.warns(AfmIOWarning, match=match):
        assert afmio.open(path).attrs["units"] == "levels"


def test_default_slot_missing_from_the_slots(tmp_path):
    # The fourth slot's name tag is gone, so "calibrated" names no slot.
    path = write_jpk(
        tmp_path / "a.jpk", [JpkChannel("height", False, levels())], omit={0x8090 + 0x90}
    )
    with pytest.warns(AfmIOWarning, match="default slot 'calibrated' is not among its 4 slots"):
        afmio.open(path)


def test_raw_default_slot_is_raw_levels_without_warning(tmp_path):
    raw = levels()
    ch = JpkChannel("height", False, raw, unit="", default_slot="raw", scaling="NullScaling")
    video = afmio.open(write_jpk(tmp_path / "a.jpk", [ch]), dtype="float64")
    assert video.attrs["units"] == "levels"
    np.testing.assert_array_equal(video.values[0], np.flipud(raw))


def test_one_frame_without_scaling_makes_the_channel_raw(tmp_path):
    folder = tmp_path / "run"
    frames = make_folder(folder, n=3)
    write_jpk(
        folder / "save-001.jpk", frames[1], start_ms=T0 + 2590, scan_size_m=SCAN, omit={0x8081}
    )
    with pytest.warns(AfmIOWarning, match=r"cannot be scaled .*save-001\.jpk\); values are raw"):
        video = afmio.open(folder, dtype="float64")
    np.testing.assert_array_equal(video.values[2], np.flipud(frames[2][2].levels))


def test_missing_grid_gives_nan_pixel_size_with_a_warning(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", nanoracer(), omit={0x8042, 0x8043})
    with pytest.warns(AfmIOWarning, match="pixel size unknown"):
        video = afmio.open(path)
    assert np.isnan(video.attrs["pixel_size_nm"])


# ----------------------------------------------------------------------------- bad input


def ifd_offsets(path: Path) -> list[int]:
    """Offsets of the IFDs of a big-endian TIFF, read independently of the reader."""
    data = path.read_bytes()
    out, offset = [], struct.unpack_from(">I", data, 4)[0]
    while offset:
        out.append(offset)
        (n,) = struct.unpack_from(">H", data, offset)
        (offset,) = struct.unpack_from(">I", data, offset + 2 + 12 * n)
    return out


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpk"
    path.write_bytes(b"")
    fails_cleanly(path, afmio.CorruptFileError, "empty")
    with pytest.raises(afmio.CorruptFileError, match="empty"):
        jpk.read(path)


def test_non_tiff_file_named_jpk(tmp_path):
    path = tmp_path / "image.jpk"
    path.write_text("Hello, I am a text file.\n" * 10)
    fails_cleanly(path, afmio.CorruptFileError, r"is not a JPK image: it starts with b'Hello, I'")


@pytest.mark.parametrize(
    ("head", "match"), [(b"II*\x00", "is a TIFF file"), (b"MM\x00+", "is a BigTIFF file")]
)
def test_other_tiffs_named_jpk(tmp_path, head, match):
    path = tmp_path / "image.jpk"
    path.write_bytes(head + bytes(100))
    # Not a JPK image: the TIFF reader takes it and says what is wrong with it as a TIFF.
    fails_cleanly(path, afmio.CorruptFileError, match)
    with pytest.raises(afmio.UnsupportedFormatError, match="JPK images are"):
        jpk.read(path)


def test_plain_big_endian_tiff_named_jpk(tmp_path):
    path = tmp_path / "photo.jpk"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8), byteorder=">")
    # A valid TIFF that is no JPK image opens as a plain TIFF, saying it is uncalibrated.
    assert readers.detect(path).format.name == "ome-tiff"
    with pytest.warns(AfmIOWarning, match="calibration is unknown"):
        assert afmio.open(path).shape == (1, 4, 4)
    with pytest.raises(afmio.UnsupportedFormatError, match="without JPK tags"):
        jpk.read(path)


def test_truncated_header(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", nanoracer())
    path.write_bytes(path.read_bytes()[:100])  # inside IFD 0's entries
    fails_cleanly(path, afmio.CorruptFileError, r"truncated header: the IFD 0 \(at byte 8\)")


def test_truncated_tag_value(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", nanoracer())
    (n,) = struct.unpack_from(">H", path.read_bytes(), 8)
    path.write_bytes(path.read_bytes()[: 8 + 2 + 12 * n + 4 + 10])  # IFD 0 values cut
    fails_cleanly(path, afmio.CorruptFileError, "truncated header")


def test_truncated_first_channel_ifd(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", [JpkChannel("height", False, levels())])
    path.write_bytes(path.read_bytes()[: ifd_offsets(path)[1] + 30])
    fails_cleanly(
        path, afmio.CorruptFileError, "no readable channel image: truncated header: the IFD 1"
    )


def test_truncated_later_ifd_keeps_the_channels_before_it(tmp_path):
    channels = nanoracer()
    path = write_jpk(tmp_path / "a.jpk", channels)
    path.write_bytes(path.read_bytes()[: ifd_offsets(path)[3] + 30])
    assert afmio.channels(path) == ["height_retrace", "measuredHeight_trace"]
    with pytest.warns(TruncatedFileWarning, match=r"a\.jpk: truncated header: the IFD 3"):
        video = afmio.open(path, dtype="float64")  # no height_trace: the first channel
    np.testing.assert_allclose(video.values[0], nm(channels[0].levels, -3.03e-18, 4.4e-7))


def test_truncated_frame_data(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", [JpkChannel("height", False, levels())])
    path.write_bytes(path.read_bytes()[:-4])
    fails_cleanly(path, afmio.CorruptFileError, "truncated frame data: the pixels of IFD 1 run to")
    path = write_jpk(tmp_path / "b.jpk", nanoracer())
    path.write_bytes(path.read_bytes()[:-4])
    assert afmio.channels(path) == ["height_retrace", "measuredHeight_trace"]
    with pytest.warns(TruncatedFileWarning, match=r"b\.jpk: truncated frame data"):
        afmio.open(path)


def test_first_ifd_offset_past_the_end(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", nanoracer())
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack(">I", 10**9)
    path.write_bytes(bytes(data))
    fails_cleanly(path, afmio.CorruptFileError, r"truncated header: the IFD 0 .* runs to")


def test_looping_ifd_chain(tmp_path):
    path = write_jpk(tmp_path / "a.jpk", nanoracer())
    offsets = ifd_offsets(path)
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack_from(">H", data, offsets[2])
    data[offsets[2] + 2 + 12 * n : offsets[2] + 6 + 12 * n] = struct.pack(">I", offsets[1])
    path.write_bytes(bytes(data))
    assert afmio.channels(path) == ["height_retrace", "measuredHeight_trace"]
    with pytest.warns(AfmIOWarning, match="IFD chain loops after IFD 2"):
        afmio.open(path)


def test_every_truncation_and_corruption_fails_cleanly(tmp_path):
    """No cut or overwritten byte of the header makes anything but an afmio error escape."""
    good = write_jpk(tmp_path / "good.jpk", nanoracer((4, 4))).read_bytes()
    path = tmp_path / "bad.jpk"
    header_end = ifd_offsets(tmp_path / "good.jpk")[1] + 400
    rng = np.random.default_rng(7)
    cases = [good[:cut] for cut in range(0, len(good), 7)]
    for _ in range(300):
        data = bytearray(good)
        at = int(rng.integers(0, header_end))
        data[at : at + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        cases.append(bytes(data))
    outcomes, messages = set(), []
    for data in cases:
        path.write_bytes(data)
        try:
            outcomes.add(f"read {len(jpk.read(path).channels)} channels")
        except afmio.AfmIOError as exc:  # anything else fails the test
            outcomes.add(type(exc).__name__)
            messages.append(str(exc))
    assert all("bad.jpk" in m for m in messages)
    assert {"CorruptFileError", "read 3 channels"} <= outcomes


def test_sniff_is_cheap_and_never_raises(tmp_path, data_dir):
    head = (data_dir / SAMPLE).read_bytes()[:4096]
    assert jpk.sniff(data_dir / SAMPLE, head)
    assert not jpk.sniff(data_dir / SAMPLE, head.replace(b"MM", b"II", 1))
    # A big-endian TIFF ending inside IFD 0 is claimed only under a .jpk name, so that
    # the reader, not the registry, reports the truncation.
    cut = b"MM\x00*\x00\x00\x00\x08\x00\x20" + bytes(30)
    assert jpk.sniff(tmp_path / "gone.jpk", cut)
    assert not jpk.sniff(tmp_path / "gone.tif", cut)
    assert not jpk.sniff(tmp_path / "gone.tif", b"MM\x00*\xff\xff\xff\xf0")
    rng = np.random.default_rng(1)
    for n in range(64):
        blob = b"MM\x00*" + rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert jpk.sniff(tmp_path / "gone.jpk", blob) in (True, False)
        assert not jpk.sniff(tmp_path / "gone.jpk", blob[: n // 8])


def test_empty_folder_and_folder_of_bad_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    fails_cleanly(empty, afmio.UnsupportedFormatError, "no frame files")
    with pytest.raises(afmio.UnsupportedFormatError, match=r"without \.jpk files"):
        jpk.read(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpk").write_bytes(b"")
    (bad / "b.jpk").write_text("text")
    fails_cleanly(
        bad, afmio.CorruptFileError, r"none of its 2 .jpk files can be read \(first, a.jpk"
    )


def test_file_truncated_after_opening_fails_at_compute(tmp_path):
    make_folder(tmp_path / "run", n=3)
    video = afmio.open(tmp_path / "run")
    with open(tmp_path / "run" / "save-001.jpk", "r+b") as f:
        f.truncate(1000)
    video[0].values  # noqa: B018  (frame 0 is intact)
    with pytest.raises(
        afmio.CorruptFileError, match=r"save-001\.jpk.*truncated after it was opened"
    ):
        video[1].values  # noqa: B018


# ----------------------------------------------------------------------------- laziness


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_open_reads_headers_only_and_a_frame_reads_one_frame(tmp_path):
    make_folder(tmp_path / "run", n=20, shape=(256, 256))
    pixel_bytes = 20 * 3 * 256 * 256 * 4
    afmio.open(tmp_path / "run").afm.frame(0)  # warm up imports and dask
    before = bytes_read()
    video = afmio.open(tmp_path / "run")
    opened = bytes_read()
    assert opened - before < pixel_bytes / 20
    frame = video[13].values
    one = bytes_read() - opened
    assert 256 * 256 * 4 <= one < 2 * 256 * 256 * 4
    assert frame.shape == (256, 256)


def test_opening_300_files_takes_well_under_a_second(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    channels = nanoracer((16, 16))
    for i in range(300):
        write_jpk(folder / f"save-{i:04d}.jpk", channels, start_ms=T0 + 100 * i)
    afmio.open(folder)
    t0 = time.perf_counter()
    video = afmio.open(folder)
    assert time.perf_counter() - t0 < 1.0
    assert video.shape == (300, 16, 16)


# ----------------------------------------------------------------------------- real files


def test_streptavidin_folder(data_dir):
    # Figures match playNano 0.5.0's load_afm_stack(folder, "height_trace") to float64
    # rounding: min 432.2621392115378, max 455.62819428859035, mean 448.6671349067525 nm,
    # pixel 0.16601562500000003 nm, timestamps i * 2.59 s, durations 2.585 s. Orientation:
    # playNano 0.5.0 flips twice (AFMReader's load_jpk flips, then load_jpk_folder flips
    # again), so its frames are afmio's with the rows reversed: its [0, 0, 0] is 435.898.
    video = afmio.open(data_dir / STREPTAVIDIN)
    assert video.shape == (21, 512, 512)
    assert video.attrs["pixel_size_nm"] == pytest.approx(0.166015625)
    assert video.attrs["pixel_size_y_nm"] == pytest.approx(0.166015625)
    np.testing.assert_allclose(video["time"], np.arange(21) * 2.59, atol=1e-9)
    assert video["start_epoch_ms"].values[0] == 1676549326436.0  # 12:08:46.436 GMT
    assert video["start_epoch_ms"].values[-1] == 1676549378236.0
    np.testing.assert_allclose(video["frame_duration_s"], 2.585)
    np.testing.assert_array_equal(video["line_rate"], 100.0)
    assert set(video["scan_direction"].values) == {"topDown"}
    values = video.values.astype(np.float64)
    assert values.min() == pytest.approx(432.2621392, abs=1e-3)
    assert values.max() == pytest.approx(455.6281943, abs=1e-3)
    assert values.mean() == pytest.approx(448.6671349, abs=1e-4)
    frame0 = afmio.open(data_dir / STREPTAVIDIN, dtype="float64").afm.frame(0)
    assert frame0[0, 0] == pytest.approx(445.44880655866297, abs=1e-9)
    assert frame0[-1, 0] == pytest.approx(435.8984693357993, abs=1e-9)
    assert afmio.channels(data_dir / STREPTAVIDIN) == [
        "height_retrace",
        "measuredHeight_trace",
        "height_trace",
    ]
    notes = video.attrs["provenance"]["reader"]
    assert notes["interlaced"] is True
    assert notes["files"] == 21
    acq = video.attrs["provenance"]["acquisition"]
    json.dumps(acq, allow_nan=False)
    assert acq["tags"]["file_format_version"] == "8.0.33"
    assert acq["channels"]["measuredHeight_trace"]["default_slot"] == "nominal"


def test_streptavidin_last_short_file_and_per_frame_scaling(data_dir):
    video = afmio.open(data_dir / STREPTAVIDIN, dtype="float64")
    last = video.afm.frame(20)  # its file is 4 bytes shorter, still a whole frame
    assert last.shape == (512, 512)
    assert 440.0 < last.mean() < 456.0
    scaling = video.attrs["provenance"]["reader"]["scaling"]["height_trace"]
    low, high = scaling["value_per_level"]
    assert low == pytest.approx(-3.1872607443891787e-09)  # frame 0, -3.19e-18 m/level
    assert high > low * 0.6  # the per-frame multipliers really differ


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_streptavidin_folder_opens_reading_headers_only(data_dir):
    afmio.open(data_dir / STREPTAVIDIN)
    before = bytes_read()
    afmio.open(data_dir / STREPTAVIDIN)
    assert bytes_read() - before < 2**20  # of 66 MB in the folder


# Figures of AFMReader's load_jpk(SAMPLE, channel) (flip_image=True), which afmio matches.
AFMREADER_SAMPLE = {
    "height_trace": ("nm", 3302.5918201872378, 3360.9500421237926, 3345.3705265149583),
    "height_retrace": ("nm", 3303.1139584270313, 3359.7597155885196, 3345.3817636755116),
    "measuredHeight_trace": ("nm", 3782.3466722985204, 3834.23452741214, 3819.892564782179),
    "amplitude_trace": ("nm", 25.39361020618241, 26.037007823737046, 25.797276680637538),
    "phase_trace": ("deg", -9.64865947394252, -8.230643580191055, -9.014103464650098),
    "error_trace": ("V", -0.011332725993565726, 0.014514232390618524, 0.0003217530912714991),
}


def test_afmreader_sample_channels(data_dir):
    path = data_dir / SAMPLE
    names = afmio.channels(path)
    assert names == [
        f"{c}_{d}"
        for d in ("retrace", "trace")
        for c in ("height", "measuredHeight", "amplitude", "phase", "error")
    ]
    for name in names:
        video = afmio.open(path, name, dtype="float64")
        assert video.shape == (1, 256, 256)
        assert np.isfinite(video.values).all()
        if name in AFMREADER_SAMPLE:
            unit, lo, hi, mean = AFMREADER_SAMPLE[name]
            assert video.attrs["units"] == unit
            values = video.values
            assert (values.min(), values.max()) == pytest.approx((lo, hi), rel=1e-12)
            assert values.mean() == pytest.approx(mean, rel=1e-12)


def test_afmreader_sample_geometry_and_time(data_dir):
    video = afmio.open(data_dir / SAMPLE)
    assert video.attrs["channel"] == "height_trace"
    assert video.attrs["pixel_size_nm"] == pytest.approx(1.2770176335964876, rel=1e-15)
    assert video["start_epoch_ms"].values[0] == 1484582432334.0  # 16:00:32.334 GMT
    assert video["frame_duration_s"].values[0] == pytest.approx(63.93)
    assert video["line_rate"].values[0] == 4.0
    assert video["scan_direction"].values[0] == "bottomUp"
    acq = video.attrs["provenance"]["acquisition"]
    assert acq["tags"]["grid_theta_rad"] == pytest.approx(np.pi / 2)
    assert len(acq["channels"]) == 10
    assert acq["channels"]["amplitude_trace"]["default_slot"] == "distanceamplitude"


def test_format_date_round_trip():
    assert format_date(1676549326436) == "2023-02-16 12:08:46.436 GMT"
    assert format_date(T0, "CEST", 2) == "2024-05-17 12:30:00.000 CEST"
