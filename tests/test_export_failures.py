"""Exports that fail cleanly: full disks, read-only folders, targets in the way, racing
writers, killed writers, a cluster that does not start. Each failure is an afmio error
naming the target, and nothing is left under the target's name or beside it."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import afmio
from afmio import batch, cli
from afmio.writers import _target

from conftest import random_levels

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("h5", "npz", "tif", "zarr", "gif", "mp4")
SUFFIX = {"h5": ".h5", "npz": ".npz", "tif": ".ome.tif", "zarr": ".zarr"}
SAVERS = {
    "h5": afmio.save_h5_bundle,
    "npz": afmio.save_npz_bundle,
    "tif": afmio.save_ome_tiff_stack,
    "zarr": afmio.save_zarr,
}
BUNDLES = tuple(SAVERS)


def export(fmt: str, video, folder: Path, **kwargs) -> Path:
    """Export ``video`` to ``folder/o<suffix>`` in ``fmt``."""
    if fmt in SAVERS:
        return SAVERS[fmt](folder / "o", video, **kwargs)
    return getattr(afmio, f"export_{fmt}")(video, folder / f"o.{fmt}", fps=10, **kwargs)


def target(fmt: str, folder: Path) -> Path:
    return folder / ("o" + SUFFIX.get(fmt, f".{fmt}"))


@pytest.fixture
def video(make_asd):
    path = make_asd(channels={"TP": random_levels(6, 16, 16)}, frame_time_ms=100.0)
    return afmio.open(path)


# Exports every format into each folder given, in a child process. With a limit, its
# files may not grow past it (RLIMIT_FSIZE, SIGXFSZ ignored): writes past it fail as on a
# full disk, through the libraries' own write calls (HDF5's C code and ffmpeg included).
# Prints "<folder> <format> <error type> <message>" per export.
CHILD = """
import os, resource, signal, sys
import numpy as np, afmio
from afmio.synthetic.asd import write_asd
source, limit, folders = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
levels = np.random.default_rng(0).integers(0, 4096, (16, 32, 32), dtype=np.int16)
video = afmio.open(write_asd(source, {"TP": levels}, n_frames=16, shape=(32, 32)))
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
savers = {"h5": afmio.save_h5_bundle, "npz": afmio.save_npz_bundle,
          "tif": afmio.save_ome_tiff_stack, "zarr": afmio.save_zarr}
for out in folders:
    for fmt in ("h5", "npz", "tif", "zarr", "gif", "mp4"):
        try:
            if fmt in savers:
                savers[fmt](os.path.join(out, "o"), video)
            else:
                getattr(afmio, "export_" + fmt)(video, os.path.join(out, "o." + fmt), fps=10)
            print(out, fmt, "none", flush=True)
        except Exception as e:
            print(out, fmt, type(e).__name__, " ".join(str(e).split()), flush=True)
"""
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def outcomes(stdout: str, folder: Path) -> dict[str, tuple[str, str]]:
    """``format -> (error type, message)`` of the child's exports into ``folder``."""
    found = {}
    for line in stdout.splitlines():
        out, fmt, kind, message = [*line.split(" ", 3), ""][:4]
        if out == str(folder):
            found[fmt] = (kind, message)
    return found


def assert_no_space(stdout: str, folder: Path) -> None:
    found = outcomes(stdout, folder)
    assert set(found) == set(FORMATS), stdout
    for fmt, (kind, message) in found.items():
        assert kind == "AfmNoSpaceError", (fmt, kind, message)
        assert message.startswith(f"{target(fmt, folder)}: no space left"), (fmt, message)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE as Linux applies it")
def test_a_full_disk_is_a_no_space_error_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-c", CHILD, str(tmp_path / "v.asd"), "16000", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]  # no crash: h5py segfaulted here
    assert_no_space(proc.stdout, out)
    assert os.listdir(out) == []  # nothing under a target's name, no temporary file


def _unshare_mount_works() -> bool:
    if shutil.which("unshare") is None or sys.platform != "linux":
        return False
    probe = ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="module")
def tmpfs_exports(tmp_path_factory):
    """Export every format to a tiny tmpfs (really full: ENOSPC) and to a read-only one
    (EROFS), mounted in a user and mount namespace of their own: the mounts vanish with
    the child and nothing else ever sees them. Returns the folders, the child's output
    and what each folder held afterwards."""
    if not _unshare_mount_works():
        pytest.skip("needs unshare -rm and mount -t tmpfs (user namespaces)")
    base = tmp_path_factory.mktemp("tmpfs")
    full, readonly = base / "full", base / "readonly"
    full.mkdir()
    readonly.mkdir()
    script = (
        f'mount -t tmpfs -o size=32k tmpfs "{full}" && '
        f'mount -t tmpfs -o ro,size=32k tmpfs "{readonly}" && '
        f'"{sys.executable}" -c "$CHILD" "{base / "v.asd"}" 0 "{full}" "{readonly}" && '
        f'echo "--" && ls -A "{full}" "{readonly}"'
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env={**ENV, "CHILD": CHILD},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    exports, listing = proc.stdout.split("--\n")
    return full, readonly, exports, listing


def test_a_really_full_file_system_gives_every_writer_a_no_space_error(tmpfs_exports):
    full, _, exports, listing = tmpfs_exports
    assert_no_space(exports, full)
    assert f"{full}:\n\n" in listing  # empty afterwards


def test_a_read_only_folder_reports_the_real_error(tmpfs_exports):
    _, readonly, exports, listing = tmpfs_exports
    found = outcomes(exports, readonly)
    assert set(found) == set(FORMATS), exports
    for fmt, (kind, message) in found.items():
        assert kind == "AfmOSError", (fmt, kind, message)
        assert message == f"{target(fmt, readonly)}: cannot be written: Read-only file system"
    assert listing.endswith(f"{readonly}:\n")


def test_cleanup_that_fails_does_not_hide_the_error(video, tmp_path, monkeypatch):
    # A read-only folder as root cannot be made with chmod: refuse the unlink instead,
    # as EROFS does (unlink fails there even for a name that does not exist).
    def refuse(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)

    def fail(done, total):
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(afmio.AfmOSError, match=r"o\.npz: cannot be written: Input/output error"):
        afmio.save_npz_bundle(tmp_path / "o", video, progress=fail)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_folder_in_the_way_is_never_replaced(fmt, video, tmp_path):
    path = target(fmt, tmp_path)
    (path / "mine").mkdir(parents=True)
    (path / "mine" / "thesis.txt").write_text("precious")
    kind = "an afmio Zarr store" if fmt == "zarr" else "a file"
    with pytest.raises(afmio.AfmFileExistsError, match=f"o.*: exists and is not {kind}"):
        export(fmt, video, tmp_path, overwrite=True)
    assert (path / "mine" / "thesis.txt").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == sorted(["video.asd", path.name])


def test_zarr_overwrite_replaces_an_afmio_store_only(video, tmp_path):
    store = afmio.save_zarr(tmp_path / "o", video)
    assert afmio.save_zarr(tmp_path / "o", video[:2], overwrite=True) == store
    assert afmio.open(store).sizes["time"] == 2
    # An OME-Zarr image of another tool, and a file named like a store, are kept.
    (tmp_path / "other.zarr").mkdir()
    (tmp_path / "other.zarr" / "zarr.json").write_text(
        '{"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"multiscales": []}}}'
    )
    (tmp_path / "flat.zarr").write_text("not a store")
    for name in ("other", "flat"):
        with pytest.raises(afmio.AfmFileExistsError, match="is not an afmio Zarr store"):
            afmio.save_zarr(tmp_path / name, video, overwrite=True)
    assert (tmp_path / "flat.zarr").read_text() == "not a store"
    assert sorted(os.listdir(tmp_path)) == ["flat.zarr", "o.zarr", "other.zarr", "video.asd"]


@pytest.mark.parametrize("fmt", BUNDLES)
def test_a_parent_that_is_a_file_is_a_clear_error(fmt, video, tmp_path):
    (tmp_path / "notes").write_text("a file")
    for folder in (tmp_path / "notes", tmp_path / "notes" / "deeper"):
        with pytest.raises(afmio.AfmOSError, match=r"notes is a file, not a folder") as info:
            export(fmt, video, folder)
        assert str(folder / "o") in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["notes", "video.asd"]


@pytest.mark.parametrize("fmt", BUNDLES)
def test_two_writers_racing_to_one_target_exactly_one_wins(fmt, video, tmp_path, monkeypatch):
    # Both exports pass the check on entry; a barrier holds each just before its final
    # step, so both take it with the other's result possibly already in place.
    barrier = threading.Barrier(2, timeout=30)
    place = _target._place_new

    def held(tmp, path):
        barrier.wait()
        place(tmp, path)

    monkeypatch.setattr(_target, "_place_new", held)
    outcomes: list[object] = []

    def run(n: int) -> None:
        try:
            export(fmt, video[:n], tmp_path)
            outcomes.append(n)
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [o for o in outcomes if isinstance(o, int)]
    losers = [o for o in outcomes if not isinstance(o, int)]
    assert len(winners) == 1, outcomes
    assert len(losers) == 1, outcomes
    assert isinstance(losers[0], afmio.AfmFileExistsError), losers
    assert "created by another writer while this export ran" in str(losers[0])
    path = target(fmt, tmp_path)
    assert afmio.open(path).sizes["time"] == winners[0]  # the winner's, whole
    assert sorted(os.listdir(tmp_path)) == sorted(["video.asd", path.name])


def test_an_empty_folder_in_the_way_of_a_store_is_kept(video, tmp_path):
    # rename() would replace an empty folder: the check before it refuses one already
    # there (one made in the instant between the two held nothing to lose).
    (tmp_path / "o.zarr").mkdir()
    with pytest.raises(afmio.AfmFileExistsError, match="already exists"):
        afmio.save_zarr(tmp_path / "o", video)


# A process holding a temporary export of ``argv[1]`` (named as AtomicTarget names it),
# which prints its name and then sleeps until killed.
HOLDER = """
import sys, time
from pathlib import Path
from afmio.writers._target import AtomicTarget
with AtomicTarget(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"half")
    print(tmp.name, flush=True)
    time.sleep(60)
"""


def start_holder(path: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    return proc, proc.stdout.readline().strip()


@pytest.mark.skipif(sys.platform != "linux", reason="process start times from /proc")
def test_temporary_files_of_killed_writers_are_removed_and_live_ones_kept(video, tmp_path):
    path = tmp_path / "o.npz"
    killed, dead_name = start_holder(path)
    live, live_name = start_holder(path)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
        # A writer of the same pid that started at another time is another process
        # (pid reuse): its file is stale too. One of another machine is never touched.
        host, boot = _target._machine()
        reused = f".o.npz.{host}-{boot}-{live.pid}-1-0badf00d.afmio-tmp"
        foreign = f".o.npz.{'f' * 8}-{boot}-1-1-0badf00d.afmio-tmp"
        other_target = f".o.npz.x.{host}-{boot}-{killed.pid}-1-0badf00d.afmio-tmp"
        for name in (reused, foreign, other_target):
            (tmp_path / name).write_bytes(b"x")
        assert {p.name for p in _target.stale_temps(path)} == {dead_name, reused}
        afmio.save_npz_bundle(tmp_path / "o", video)  # a rerun of the export cleans up
        left = set(os.listdir(tmp_path))
        assert left == {"video.asd", "o.npz", live_name, foreign, other_target}
        # afmio convert does the same (and removes the writer-less names of afmio 0.1.0).
        (tmp_path / ".o.npz.0badf00d.afmio-tmp").write_bytes(b"old")
        os.kill(live.pid, signal.SIGKILL)
        live.wait(10)
        removed = {p.name for p in batch.remove_stale_temps(path)}
        assert removed == {live_name, ".o.npz.0badf00d.afmio-tmp"}
    finally:
        for proc in (killed, live):
            proc.kill()
            proc.wait(10)
            proc.stdout.close()


class FlakyCluster:
    """Stands in for ``LocalCluster``: fails to start the first ``fails`` times."""

    def __init__(self, fails: int) -> None:
        self.fails, self.calls = fails, 0

    def __call__(self, **kwargs):
        self.calls += 1
        if self.calls <= self.fails:
            raise RuntimeError("Nanny failed to start.")
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def flaky(monkeypatch):
    distributed = pytest.importorskip("distributed")

    def make(fails: int) -> FlakyCluster:
        cluster = FlakyCluster(fails)
        monkeypatch.setattr(distributed, "LocalCluster", cluster)
        monkeypatch.setattr(distributed, "Client", lambda local: local)
        return cluster

    return make


def test_a_cluster_that_fails_to_start_is_tried_again(flaky):
    cluster = flaky(1)
    with batch.cluster(workers=2) as client:
        assert client is cluster
    assert cluster.calls == 2


def test_a_cluster_failing_twice_is_one_error_line(flaky, video, tmp_path, capsys):
    cluster = flaky(2)
    with pytest.raises(afmio.AfmOSError, match="could not start a local cluster of 2 workers"):  # noqa: SIM117
        with batch.cluster(workers=2):
            pass
    assert cluster.calls == 2
    flaky(2)
    source = video.attrs["source"]["path"]
    code = cli.main(["convert", source, "--to", "h5", "--out", str(tmp_path), "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [
        "afmio: error: could not start a local cluster of 2 workers (tried twice): "
        "RuntimeError: Nanny failed to start."
    ]
