"""Bad input: each case raises an afmio error naming the file, fast, allocating little."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

import afmio
from afmio.errors import TruncatedFileWarning

from conftest import fails_cleanly, random_levels

X_PIXELS, HEADER_SIZE, FRAME_HEADER_SIZE, OPERATOR_SIZE = 48, 4, 8, 16
FRAMES_RECORDED, FRAMES_CURRENT = 32, 36


def patched(path, offset, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack("<i", value))
    return path


def test_empty_file(tmp_path):
    path = tmp_path / "empty.asd"
    path.write_bytes(b"")
    err = fails_cleanly(path, afmio.CorruptFileError, "empty")
    assert isinstance(err, ValueError)


def test_truncated_header(make_asd):
    path = make_asd()
    path.write_bytes(path.read_bytes()[:90])
    fails_cleanly(path, afmio.CorruptFileError, "truncated header")


def test_truncated_header_inside_the_strings(make_asd):
    path = make_asd(comment="a long comment " * 10)
    path.write_bytes(path.read_bytes()[:200])
    fails_cleanly(path, afmio.CorruptFileError, "truncated header: the comment")


def test_truncated_frame_data_without_one_whole_frame(make_asd):
    path = make_asd(channels={"TP": random_levels(3, 40, 40)})
    path.write_bytes(path.read_bytes()[: 174 + 1000])
    fails_cleanly(path, afmio.CorruptFileError, "truncated frame data")


def test_unknown_version(make_asd):
    path = patched(make_asd(), 0, 7)
    fails_cleanly(path, afmio.UnsupportedFormatError, "unknown ASD file version 7")


def test_hdf5_named_asd(tmp_path):
    path = tmp_path / "video.asd"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(1000))
    fails_cleanly(path, afmio.UnsupportedFormatError, "is an HDF5 file")


@pytest.mark.parametrize("magic", [b"II*\x00", b"MM\x00*"])
def test_tiff_named_asd(tmp_path, magic):
    # TIFFs are read now: this one, with no image directory, is a damaged TIFF.
    path = tmp_path / "video.ASD"
    path.write_bytes(magic + bytes(1000))
    fails_cleanly(path, afmio.CorruptFileError, "is a TIFF file without a readable image")


def test_unrecognised_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a video\n" * 20)
    fails_cleanly(path, afmio.UnsupportedFormatError, r"supported: asd \(\.asd\)")


def test_directory(tmp_path):
    err = fails_cleanly(tmp_path, afmio.UnsupportedFormatError, "is a folder")
    assert isinstance(err, ValueError)


def test_missing_path(tmp_path):
    err = fails_cleanly(tmp_path / "nope.asd", afmio.AfmFileNotFoundError, "no such file")
    assert isinstance(err, FileNotFoundError)


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (X_PIXELS, 1_000_000, "1000000 x pixels, outside 1..16384"),
        (X_PIXELS, -5, "-5 x pixels"),
        (X_PIXELS, 16384, "one frame needs"),  # plausible, but needs far more bytes
        (HEADER_SIZE, 10**9, "past the end"),
        (HEADER_SIZE, 20, "less than the 165"),
        (FRAME_HEADER_SIZE, 2**30, "frame header of"),
        (OPERATOR_SIZE, 2**31 - 1, "truncated header: the operator name"),
        (OPERATOR_SIZE, -3, "negative operator name length"),
    ],
)
def test_header_that_lies_about_sizes(make_asd, offset, value, match):
    path = patched(make_asd(), offset, value)
    fails_cleanly(path, afmio.CorruptFileError, match)


def test_header_that_lies_about_the_frame_count_reads_what_is_there(make_asd):
    levels = random_levels(3, 4, 4)
    path = patched(make_asd(channels={"TP": levels}), FRAMES_CURRENT, 2**31 - 1)
    patched(path, FRAMES_RECORDED, 2**31 - 1)
    tracemalloc.start()
    with pytest.warns(TruncatedFileWarning, match="declares 2147483647 frames"):
        video = afmio.open(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 2**20
    assert video.sizes["time"] == 3


def test_file_truncated_after_opening_fails_at_compute(make_asd):
    path = make_asd(channels={"TP": random_levels(4, 8, 8)})
    video = afmio.open(path)
    with open(path, "r+b") as f:
        f.truncate(300)
    with pytest.raises(afmio.CorruptFileError, match="truncated after it was opened"):
        video.values  # noqa: B018
