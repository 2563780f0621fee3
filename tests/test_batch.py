"""Batch conversion (afmio.batch): resume, overwrite, failures, stale temporary files, and
a batch on a LocalCluster of processes that survives a worker killed mid-run."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import afmio
from afmio import batch
from afmio.synthetic import write_asd

from conftest import random_levels

FORMATS = ["h5", "npz", "tif", "zarr"]
NAMES = {"h5": ".h5", "npz": ".npz", "tif": ".ome.tif", "zarr": ".zarr"}


def expected_names(stems, formats=FORMATS):
    return {s + NAMES[f] for s in stems for f in formats}


def stamp_of(path):
    """Changes when a file is written again (a new file may reuse the inode)."""
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def assert_same_values(output, source):
    np.testing.assert_array_equal(afmio.open(output).values, afmio.open(source).values)


@pytest.fixture
def videos(make_asd):
    """Three small ASD files with different content."""
    return [
        make_asd(f"v{i}.asd", {"TP": random_levels(6, 16, 24, seed=i)}, frame_time_ms=50)
        for i in range(3)
    ]


def test_converts_every_file_to_every_format_with_progress(videos, tmp_path):
    out = tmp_path / "out"
    events = []
    results = batch.convert(videos, "h5,npz,tif,zarr", out, progress=events.append)
    assert [r.status for r in results] == ["done"] * 3
    assert [r.path for r in results] == [str(v) for v in videos]
    assert set(os.listdir(out)) == expected_names(["v0", "v1", "v2"])
    for video, r in zip(videos, results, strict=True):
        assert r.written == FORMATS
        assert r.kept == []
        assert r.error is None
        assert r.size_bytes == sum(batch.output_size(t) for t in r.targets.values()) > 0
        for target in r.targets.values():
            assert_same_values(target, video)
    # Per file: a start listing its formats, frames up to the total for each, one end.
    first = [e for e in events if e.index == 0]
    assert first[0].kind == "start"
    assert first[0].todo == tuple(FORMATS)
    assert first[0].total == 6
    assert first[-1].kind == "end"
    assert first[-1].result is results[0]
    done = {e.format: e.done for e in first if e.kind == "frames"}
    assert done == dict.fromkeys(FORMATS, 6)
    assert [e.kind for e in events].count("end") == 3


def test_second_run_skips_and_a_deleted_output_is_redone_alone(videos, tmp_path):
    out = tmp_path / "out"
    batch.convert(videos, FORMATS, out)
    stamp = {p: stamp_of(out / p) for p in os.listdir(out)}

    again = batch.convert(videos, FORMATS, out)
    assert [r.status for r in again] == ["skipped"] * 3
    assert all(r.kept == FORMATS and r.written == [] for r in again)
    assert {p: stamp_of(out / p) for p in os.listdir(out)} == stamp

    (out / "v1.ome.tif").unlink()
    third = batch.convert(videos, FORMATS, out)
    assert [r.status for r in third] == ["skipped", "done", "skipped"]
    assert third[1].written == ["tif"]
    assert third[1].kept == ["h5", "npz", "zarr"]
    assert_same_values(out / "v1.ome.tif", videos[1])
    now = {p: stamp_of(out / p) for p in os.listdir(out)}
    assert {p for p in now if now[p] != stamp.get(p)} == {"v1.ome.tif"}


def test_overwrite_writes_everything_again(videos, tmp_path):
    out = tmp_path / "out"
    batch.convert(videos, ["h5", "zarr"], out)
    before = {p: stamp_of(out / p) for p in os.listdir(out)}
    results = batch.convert(videos, ["h5", "zarr"], out, overwrite=True)
    assert all(r.status == "done" and r.written == ["h5", "zarr"] for r in results)
    after = {p: stamp_of(out / p) for p in os.listdir(out)}
    assert before.keys() == after.keys()
    assert all(before[p] != after[p] for p in before)  # each replaced by a new file


def test_a_bad_file_fails_alone_with_one_line(videos, tmp_path):
    bad = tmp_path / "bad.asd"
    bad.write_bytes(b"\x01\x00\x00\x00" + b"\x00" * 60)
    missing = tmp_path / "missing.asd"
    results = batch.convert([videos[0], bad, missing, videos[1]], ["npz"], tmp_path / "out")
    assert [r.status for r in results] == ["done", "failed", "failed", "done"]
    for r, name in ((results[1], "bad.asd"), (results[2], "missing.asd")):
        assert name in r.error
        assert "\n" not in r.error
    assert "no such file" in results[2].error
    assert set(os.listdir(tmp_path / "out")) == {"v0.npz", "v1.npz"}


def test_an_unexpected_error_names_its_type_and_the_batch_goes_on(videos, tmp_path, monkeypatch):
    real = batch._write

    def flaky(fmt, target, *args):
        if "v1" in target:
            raise RuntimeError("disk on fire")
        return real(fmt, target, *args)

    monkeypatch.setattr(batch, "_write", flaky)
    results = batch.convert(videos, ["npz"], tmp_path / "out")
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert results[1].error == f"{videos[1]}: RuntimeError: disk on fire"


def test_same_output_from_two_files_is_refused_before_anything_is_written(make_asd, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_asd("a/x.asd", {"TP": random_levels(2, 4, 4, seed=1)})
    second = make_asd("b/x.asd", {"TP": random_levels(2, 4, 4, seed=2)})
    events = []
    with pytest.raises(
        batch.NameTemplateError, match=r"would write .*x\.npz, as .*a/x\.asd"
    ) as info:
        batch.convert([first, second], ["npz"], tmp_path / "out", progress=events.append)
    assert info.value.path == str(second)
    assert isinstance(info.value, ValueError)
    assert events == []
    assert not (tmp_path / "out").exists()


def test_channel_goes_into_the_name(make_asd, tmp_path):
    video = make_asd(
        "two.asd", {"TP": random_levels(3, 4, 5, seed=1), "PH": random_levels(3, 4, 5, seed=2)}
    )
    results = batch.convert([video], ["npz"], tmp_path / "out", channel="PH")
    assert results[0].targets == {"npz": str(tmp_path / "out" / "two_phase_trace.npz")}
    reread = afmio.open(tmp_path / "out" / "two_phase_trace.npz")
    assert reread.attrs["channel"] == "phase_trace"
    np.testing.assert_array_equal(reread.values, afmio.open(video, "PH").values)


def test_unknown_format_is_refused_before_anything_is_read(tmp_path):
    with pytest.raises(afmio.UnsupportedFormatError, match=r"'png'.*h5, npz, tif, zarr, gif"):
        batch.convert([tmp_path / "nothing.asd"], "h5,png", tmp_path)


def test_stale_temporary_files_of_a_target_are_removed_when_it_is_written(videos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # What a process killed while writing leaves: a half-written file, a half-written
    # Zarr store, and a store moved aside while being replaced.
    (out / ".v0.h5.0badf00d.afmio-tmp").write_bytes(b"half")
    (out / ".v0.zarr.0badf00d.afmio-tmp" / "c").mkdir(parents=True)
    (out / ".v0.zarr.12345678.afmio-old").mkdir()
    # Another target's temporary file is not this batch's business.
    (out / ".v9.h5.0badf00d.afmio-tmp").write_bytes(b"other")
    results = batch.convert(videos[:1], ["h5", "zarr"], out)
    assert results[0].status == "done"
    assert set(os.listdir(out)) == {"v0.h5", "v0.zarr", ".v9.h5.0badf00d.afmio-tmp"}
    assert_same_values(out / "v0.h5", videos[0])


def test_cluster_without_distributed_says_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'afmio\[distributed\]'"):  # noqa: SIM117
        with batch.cluster(workers=2):
            pass


def _running(dask_worker) -> tuple[int, list[str]]:
    """On a worker: its process id and the keys of the tasks it is running."""
    return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing]


def test_batch_on_a_cluster_survives_a_killed_worker(tmp_path):
    pytest.importorskip(
        "distributed", reason="dask.distributed is the optional 'distributed' extra"
    )
    n_files, n_frames, shape = 6, 120, (256, 256)
    videos = [
        write_asd(
            tmp_path / f"big{i}.asd",
            {"TP": random_levels(n_frames, *shape, seed=10 + i)},
            n_frames=n_frames,
            shape=shape,
        )
        for i in range(n_files)
    ]
    out = tmp_path / "out"
    formats = ["h5", "npz", "zarr"]
    events: list[batch.Event] = []
    lock = threading.Lock()

    def record(event: batch.Event) -> None:
        with lock:
            events.append(event)

    def midway() -> set[int]:
        """Files with some, not all, frames of a format written."""
        with lock:
            ended = {e.index for e in events if e.kind == "end"}
            return {
                e.index
                for e in events
                if e.kind == "frames" and 0 < e.done < e.total and e.index not in ended
            }

    with batch.cluster(workers=2) as client, ThreadPoolExecutor(1) as pool:
        t0 = time.perf_counter()
        running = pool.submit(batch.convert, videos, formats, out, client=client, progress=record)
        victim = None
        while victim is None and time.perf_counter() - t0 < 120 and not running.done():
            busy = midway()
            for pid, keys in client.run(_running).values():
                indices = {int(k.split("-")[2]) for k in keys}
                if indices & busy:
                    victim = pid, indices.pop()
                    break
            time.sleep(0.05)
        assert victim is not None, "no worker was caught converting a file"
        os.kill(victim[0], signal.SIGKILL)
        results = running.result(timeout=300)

    assert [r.status for r in results] == ["done"] * n_files, [r.error for r in results]
    starts = [e.index for e in events if e.kind == "start"]
    assert starts.count(victim[1]) >= 2  # the killed worker's file ran again elsewhere
    assert sorted(e.index for e in events if e.kind == "end") == list(range(n_files))
    # Every output once, complete and right; nothing temporary left behind.
    assert set(os.listdir(out)) == expected_names([f"big{i}" for i in range(n_files)], formats)
    for video, r in zip(videos, results, strict=True):
        assert sorted(r.written + r.kept) == sorted(formats)
        for target in r.targets.values():
            assert_same_values(target, video)


def test_plan_gives_workers_absolute_paths(videos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = batch.plan("v0.asd", ["h5", "tif"], "out", index=4)
    assert job.path == "v0.asd"  # as given, for reports
    assert job.source == str(tmp_path / "v0.asd")
    assert job.targets == {
        "h5": str(tmp_path / "out/v0.h5"),
        "tif": str(tmp_path / "out/v0.ome.tif"),
    }
    assert (job.index, job.n_frames) == (4, 6)


# --- output names ----------------------------------------------------------------------


def test_outputs_are_named_after_the_path_given_not_a_symlinks_target(make_asd, tmp_path):
    (tmp_path / "cache").mkdir()
    target = make_asd("cache/xyz.asd", {"TP": random_levels(2, 4, 4)})
    link = tmp_path / "in" / "rec00.asd"
    link.parent.mkdir()
    link.symlink_to(target)
    [result] = batch.convert([link], ["h5", "tif"], tmp_path / "out")
    assert result.status == "done"
    assert sorted(os.listdir(tmp_path / "out")) == ["rec00.h5", "rec00.ome.tif"]
    assert_same_values(tmp_path / "out" / "rec00.h5", target)
    # A symlinked folder of frames too, and "." is the folder's own name.
    folder = tmp_path / "frames"
    folder.symlink_to(tmp_path / "cache", target_is_directory=True)
    assert batch.split_name(folder) == ("frames", "")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run7.asd", ("run7", ".asd")),
        ("x.h5-jpk", ("x", ".h5-jpk")),
        ("x.JPK", ("x", ".JPK")),
        ("clip.ome.tif", ("clip", ".ome.tif")),
        ("clip.ome.tiff", ("clip", ".ome.tiff")),
        ("store.zarr", ("store", ".zarr")),
        ("scan.007", ("scan", ".007")),  # Nanoscope numbers its files
        ("jpk_folder", ("jpk_folder", "")),
        (".asd", (".asd", "")),
    ],
)
def test_split_name(name, expected):
    assert batch.split_name(f"some/dir/{name}") == expected


def test_name_template_keeps_inputs_with_one_stem_apart(make_asd, tmp_path):
    (tmp_path / "a").mkdir()
    first = make_asd("a/x.asd", {"TP": random_levels(2, 4, 4, seed=1)})
    second = make_asd("x.asd.v2", {"TP": random_levels(2, 4, 4, seed=2)})
    results = batch.convert([first, second], ["npz", "h5"], tmp_path / "out", name="{stem}{suffix}")
    assert [r.status for r in results] == ["done", "done"]
    assert sorted(os.listdir(tmp_path / "out")) == [
        "x.asd.h5",
        "x.asd.npz",
        "x.asd.v2.h5",
        "x.asd.v2.npz",
    ]
    assert_same_values(tmp_path / "out" / "x.asd.v2.npz", second)


def test_name_template_fields(make_asd, tmp_path):
    video = make_asd(
        "two.asd", {"TP": random_levels(2, 4, 5, seed=1), "PH": random_levels(2, 4, 5, seed=2)}
    )
    out = tmp_path / "out"
    job = batch.plan(video, ["h5", "tif"], out, name="{format}-{stem}{suffix}-{channel}")
    assert job.targets == {
        "h5": str(out / "h5-two.asd-height_trace.h5"),
        "tif": str(out / "tif-two.asd-height_trace.ome.tif"),
    }
    # {channel} is the canonical name of the channel asked for; the default name ends with it.
    assert batch.plan(video, ["h5"], out, channel="PH", name="{channel}").targets == {
        "h5": str(out / "phase_trace.h5")
    }
    assert batch.plan(video, ["h5"], out, channel="PH").targets == {
        "h5": str(out / "two_phase_trace.h5")
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("{stem}{bad}", r"unknown placeholder \{bad\}; use \{stem\}, \{suffix\}"),
        ("{}", "unknown placeholder"),
        ("{0}", "unknown placeholder"),
        ("{stem.upper}", "unknown placeholder"),
        ("{stem", "not a valid template"),
        ("{stem:d}", "not a valid template"),
        ("", "must be a file name"),
        ("sub/{stem}", "must be a file name"),
    ],
)
def test_bad_name_templates_are_refused_before_anything_is_read(tmp_path, name, message):
    with pytest.raises(batch.NameTemplateError, match=message) as info:
        batch.convert([tmp_path / "missing.asd"], ["h5"], tmp_path / "out", name=name)
    assert isinstance(info.value, ValueError)
