"""HDF5 files that point outside themselves: external storage, external links and virtual
datasets are refused by every HDF5 reader, at open and at every frame read, and no link
into another file is ever followed (not even while sniffing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dask
import h5py
import numpy as np
import pytest

import afmio
from afmio import batch
from afmio.cli import main
from afmio.readers import bundle_h5
from afmio.synthetic import write_h5jpk

from conftest import fails_cleanly

#: What the outside file holds: must never come back from afmio, in data or messages.
MARKER = b"root:x:0:0:SECRET-OUTSIDE-THE-INPUT:/root:/bin/sh\n"
CHANNEL = "Measurement_000/Channel_000/Height"

#: kind -> what the refusal says.
REASONS = {
    "external storage": "HDF5 external storage",
    "external link": "HDF5 external link",
    "external link ../": "HDF5 external link",
    "virtual dataset": "HDF5 virtual dataset",
    "virtual dataset, missing source": "HDF5 virtual dataset",
}


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the input's, standing for /etc: ``passwd`` and ``other.h5``."""
    folder = tmp_path / "etc"
    folder.mkdir()
    return folder


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


def secret_bytes(nbytes: int) -> bytes:
    return (MARKER * (nbytes // len(MARKER) + 1))[:nbytes]


def make_outside(
    kind: str, outside: Path, shape: tuple[int, ...], dtype: np.dtype
) -> Callable[[h5py.Group, str], None]:
    """``put(group, name)``: make ``group[name]`` a dataset of ``shape`` and ``dtype``
    whose values are the outside file's bytes, by way of ``kind``."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    passwd = outside / "passwd"
    passwd.write_bytes(secret_bytes(nbytes))
    other = outside / "other.h5"
    with h5py.File(other, "w") as g:
        g["x"] = np.frombuffer(secret_bytes(nbytes), np.uint8).view(dtype).reshape(shape)

    def put(group: h5py.Group, name: str) -> None:
        if name in group:
            del group[name]
        if kind == "external storage":
            group.create_dataset(name, shape, dtype, external=[(str(passwd), 0, nbytes)])
        elif kind == "external link":
            group[name] = h5py.ExternalLink(str(other), "x")
        elif kind == "external link ../":
            # Relative names are resolved from the linking file's folder (inputs/).
            group[name] = h5py.ExternalLink(f"../{outside.name}/other.h5", "x")
        else:
            source = other if kind == "virtual dataset" else outside / "missing.h5"
            layout = h5py.VirtualLayout(shape, dtype)
            layout[...] = h5py.VirtualSource(str(source), "x", shape, dtype)
            group.create_virtual_dataset(name, layout, fillvalue=1)

    return put


def assert_refused(path: Path, kind: str, where: str) -> afmio.AfmIOError:
    """Opening ``path`` fails naming it, the dataset and the reason, and nothing of the
    outside file comes back in the message."""
    exc = fails_cleanly(path, afmio.UnsupportedFormatError, REASONS[kind])
    assert f"its /{where} " in str(exc)
    assert "afmio reads nothing outside the input" in str(exc)
    assert b"SECRET" not in str(exc).encode()
    return exc


# --- bundles: data, a processed layer, a mask ----------------------------------------------


@pytest.fixture
def bundle(processed, inputs) -> Path:
    """A sound bundle with /data, /processed/{raw,level} and /masks/high."""
    return afmio.save_h5_bundle(inputs / "clip", processed)


@pytest.mark.parametrize("kind", REASONS)
@pytest.mark.parametrize("name", ["data", "processed/level", "masks/high"])
def test_bundle_dataset_outside_the_file_is_refused(bundle, outside, kind, name):
    with h5py.File(bundle, "r+") as f:
        put = make_outside(kind, outside, f[name].shape, f[name].dtype)
        put(f, name)
    assert bundle_h5.READER.sniff(bundle, bundle.read_bytes()[:8])
    assert_refused(bundle, kind, name)


def test_bundle_group_linked_into_another_file_is_refused(bundle, outside):
    with h5py.File(outside / "layers.h5", "w") as g:
        g["level"] = np.frombuffer(secret_bytes(7 * 12 * 10 * 4), np.float32).reshape(7, 12, 10)
    with h5py.File(bundle, "r+") as f:
        del f["processed"]
        f["processed"] = h5py.ExternalLink(str(outside / "layers.h5"), "/")
    exc = assert_refused(bundle, "external link", "processed")
    assert "layers.h5" in str(exc)


def test_virtual_dataset_of_the_files_own_data_is_refused_too(bundle):
    # A VDS returns its fill value where a source is missing: never data afmio trusts.
    with h5py.File(bundle, "r+") as f:
        f.move("data", "stored")
        layout = h5py.VirtualLayout(f["stored"].shape, f["stored"].dtype)
        layout[...] = h5py.VirtualSource(".", "stored", f["stored"].shape)
        f.create_virtual_dataset("data", layout)
    with pytest.raises(afmio.UnsupportedFormatError, match="this file's own datasets"):
        afmio.open(bundle)


def test_soft_links_inside_the_file_are_followed(bundle, processed):
    with h5py.File(bundle, "r+") as f:
        f.move("data", "store/data")
        f["data"] = h5py.SoftLink("store/data")  # relative, from the root
        f["masks/high_again"] = h5py.SoftLink("/masks/high")
    ds = afmio.open_dataset(bundle)
    np.testing.assert_array_equal(ds[ds.attrs["channel"]].values, processed["height_trace"])
    np.testing.assert_array_equal(ds["masks__high_again"].values, ds["masks__high"].values)


def test_soft_link_to_an_external_link_is_refused(bundle, outside):
    with h5py.File(bundle, "r+") as f:
        make_outside("external link", outside, f["data"].shape, f["data"].dtype)(f, "elsewhere")
        del f["data"]
        f["data"] = h5py.SoftLink("/elsewhere")
    exc = assert_refused(bundle, "external link", "data")
    assert "external link at /elsewhere" in str(exc)


def test_soft_link_loop_is_a_clean_error(bundle):
    with h5py.File(bundle, "r+") as f:
        del f["data"]
        f["data"] = h5py.SoftLink("/loop")
        f["loop"] = h5py.SoftLink("/data")
    fails_cleanly(bundle, afmio.CorruptFileError, "loop of soft links")


# --- h5-jpk channels -----------------------------------------------------------------------


@pytest.fixture
def jpk(inputs) -> Path:
    raw = np.random.default_rng(0).integers(-(2**20), 2**20, (3, 4, 6), dtype=np.int32)
    return write_h5jpk(inputs / "scan.h5-jpk", {"height_trace": raw}, n_frames=3, shape=(4, 6))


@pytest.mark.parametrize("kind", REASONS)
def test_h5jpk_channel_outside_the_file_is_refused(jpk, outside, kind):
    with h5py.File(jpk, "r+") as f:
        put = make_outside(kind, outside, f[CHANNEL].shape, f[CHANNEL].dtype)
        put(f, CHANNEL)
    assert_refused(jpk, kind, CHANNEL)


def test_h5jpk_frame_times_outside_the_file_are_refused(jpk, outside):
    name = "Measurement_000/meta-data/start-times"
    with h5py.File(jpk, "r+") as f:
        make_outside("external storage", outside, f[name].shape, f[name].dtype)(f, name)
    assert_refused(jpk, "external storage", name)


def test_h5jpk_measurement_linked_into_another_file_is_refused(jpk, outside):
    with h5py.File(jpk, "r+") as f:
        f["Measurement_001"] = h5py.ExternalLink(str(outside / "other.h5"), "/")
    assert_refused(jpk, "external link", "Measurement_001")


# --- frame reads reopen the file by path: it may have been swapped since -------------------


@pytest.mark.parametrize(
    ("make", "name"), [("bundle", "data"), ("bundle", "masks/high"), ("jpk", CHANNEL)]
)
def test_file_swapped_after_open_is_refused_at_frame_read(request, outside, make, name):
    path = request.getfixturevalue(make)
    video = afmio.open_dataset(path)  # lazy: nothing read yet
    hostile = path.with_name("hostile")
    shutil.copy(path, hostile)
    with h5py.File(hostile, "r+") as f:
        make_outside("external storage", outside, f[name].shape, f[name].dtype)(f, name)
    os.replace(hostile, path)  # same name, same shapes, data now in etc/passwd
    # One thread, so that no other frame read is still open when the error comes out.
    with (
        dask.config.set(scheduler="synchronous"),
        pytest.raises(afmio.UnsupportedFormatError, match="HDF5 external storage") as info,
    ):
        video.load()
    assert path.name in str(info.value)


# --- no link into another file is ever followed, not even to look -------------------------

#: Sniff and open each path of argv in a child process; one line per path.
CHILD = """
import sys, afmio
for path in sys.argv[1:]:
    reader = afmio.readers.sniff(path)
    try:
        outcome = f"opened {afmio.open(path).shape}"
    except afmio.AfmIOError as exc:
        outcome = f"{type(exc).__name__} {exc}"
    print(reader and reader.format.name, "|", outcome)
"""


@contextmanager
def opened_by_anyone(fifo: Path) -> Iterator[list[str]]:
    """Yield a list that gets an entry if any process opens ``fifo`` for reading meanwhile.

    Opening a FIFO for reading blocks until a writer comes; a non-blocking open for writing
    succeeds only while a reader has it open. So a watcher that keeps trying sees every
    reader, and its open-then-close unblocks that reader with an empty file. The readers
    must be other processes: h5py holds the GIL while HDF5 blocks in open().
    """
    os.mkfifo(fifo)
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.001):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader
                continue
            seen.append("opened")
            os.close(fd)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def sniff_and_open(fifo: Path, *paths: Path) -> list[str]:
    """The child's line for each path; asserts that nothing opened ``fifo`` meanwhile."""
    with opened_by_anyone(fifo) as seen:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert child.returncode == 0, child.stderr
    assert seen == [], f"{fifo.name} was opened"
    return child.stdout.splitlines()


def test_sniffing_and_reading_a_bundle_never_opens_a_linked_file(bundle, outside):
    fifo = outside / "fifo.h5"
    with h5py.File(bundle, "r+") as f:
        f["notes"] = h5py.ExternalLink(str(fifo), "/")  # a root member afmio does not use
    linked = shutil.copy(bundle, bundle.with_name("linked.h5"))
    with h5py.File(linked, "r+") as f:
        f["processed/linked"] = h5py.ExternalLink(str(fifo), "x")
    sound, refused = sniff_and_open(fifo, bundle, linked)
    assert sound == "h5-bundle | opened (7, 12, 10)"
    assert refused.startswith("h5-bundle | UnsupportedFormatError")
    assert "its /processed/linked is a link into another file" in refused
    assert "fifo.h5" in refused


def test_sniffing_a_jpk_scan_by_its_groups_never_opens_a_linked_file(jpk, outside):
    fifo = outside / "fifo.h5"
    plain = jpk.rename(jpk.with_suffix(".h5"))  # not named .h5-jpk: known by its groups
    with h5py.File(plain, "r+") as f:
        del f.attrs["file-format-info"]
        f["Measurement_001"] = h5py.ExternalLink(str(fifo), "/")
    (line,) = sniff_and_open(fifo, plain)
    assert line.startswith("h5-jpk | UnsupportedFormatError")
    assert "its /Measurement_001 is a link into another file" in line


def test_reading_a_jpk_channel_linked_to_another_file_never_opens_it(jpk, outside):
    fifo = outside / "fifo.h5"
    with h5py.File(jpk, "r+") as f:
        del f[CHANNEL]
        f[CHANNEL] = h5py.ExternalLink(str(fifo), "x")
    (line,) = sniff_and_open(fifo, jpk)
    assert line.startswith("h5-jpk | UnsupportedFormatError")
    assert f"its /{CHANNEL} is a link into another file" in line


# --- afmio convert -------------------------------------------------------------------------


@pytest.fixture
def hostile(bundle, jpk, outside) -> list[Path]:
    """A bundle whose /data is etc/passwd, an h5-jpk whose channel is etc/other.h5."""
    with h5py.File(bundle, "r+") as f:
        make_outside("external storage", outside, f["data"].shape, f["data"].dtype)(f, "data")
    with h5py.File(jpk, "r+") as f:
        make_outside("external link", outside, f[CHANNEL].shape, f[CHANNEL].dtype)(f, CHANNEL)
    return [bundle, jpk]


def test_convert_refuses_them_and_writes_nothing(hostile, tmp_path):
    out = tmp_path / "out"
    results = batch.convert(hostile, "h5,npz,tif,zarr", out)
    assert [r.status for r in results] == ["failed", "failed"]
    assert "HDF5 external storage" in results[0].error
    assert "HDF5 external link" in results[1].error
    assert not out.exists() or list(out.iterdir()) == []


def test_cli_convert_refuses_them_and_writes_nothing(hostile, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["convert", *map(str, hostile), "--to", "h5,npz", "--out", str(out)]
    assert main(argv) == 1
    printed = capsys.readouterr()
    assert "afmio reads nothing outside the input" in printed.out + printed.err
    assert "SECRET" not in printed.out + printed.err
    assert not out.exists() or list(out.iterdir()) == []
