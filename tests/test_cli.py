"""The command line: ``afmio info``, ``afmio convert``, ``afmio demo``, help and version."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import afmio
from afmio import batch
from afmio.cli import Bars, main

from conftest import random_levels


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("afmio: error:")]


@pytest.fixture
def two_channels(make_asd):
    """5 frames of 6 x 8 pixels over an 80 x 60 nm scan, 50 ms apart, height and phase."""
    return make_asd(
        "two.asd",
        {"TP": random_levels(5, 6, 8, seed=1), "PH": random_levels(5, 6, 8, seed=2)},
        scan_size_nm=(80, 60),
        frame_time_ms=50,
    )


# --- afmio demo ------------------------------------------------------------------------


def test_demo_writes_opens_and_exports_the_example(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "example.asd"
    assert f"wrote {path}" in out
    assert "opened it lazily in" in out
    assert "channels: height_trace, phase_trace" in out
    assert "time: 300, y: 128, x: 128" in out
    assert "300 frames, 0.1 s apart, duration 30 s" in out
    video = afmio.open(path)
    heights = video.afm.frame(0)
    # A tilted surface with particles a few nm high: the demo's data is what it says.
    assert 0 < float(np.ptp(heights)) < 20
    assert afmio.open(path, "phase_trace").attrs["units"] == "deg"
    # Every bundle format, listed with its size, holding the example's heights.
    assert "exported it in" in out
    for name in ("example.h5", "example.npz", "example.ome.tif", "example.zarr"):
        size = batch.output_size(tmp_path / name) / 2**20
        assert f"{tmp_path / name} ({size:.1f} MiB)" in out
        np.testing.assert_array_equal(afmio.open(tmp_path / name).values, video.values)
    # Running it again replaces the example and its exports.
    assert main(["demo", "--out", str(tmp_path)]) == 0


def test_demo_exports_a_gif(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    gif = tmp_path / "example.gif"
    assert f"{gif} (" in capsys.readouterr().out
    assert gif.read_bytes()[:6] == b"GIF89a"


# --- afmio info ------------------------------------------------------------------------


def test_info_text_from_headers(two_channels, capsys):
    assert main(["info", str(two_channels)]) == 0
    out = capsys.readouterr().out
    size = two_channels.stat().st_size
    assert out.splitlines() == [
        str(two_channels),
        "  format      asd v1",
        "  channels    height_trace (TP, nm), phase_trace (PH, deg)",
        "  dims        time: 5, y: 6, x: 8",
        "  pixel size  10 nm (x), 10 nm (y); scan 80 x 60 nm",
        "  frame time  0.05 s (20 frames/s)",
        "  duration    0.25 s",
        f"  size        {size / 1024:.1f} KiB ({size:,} bytes)",
    ]


def test_info_json_of_a_synthetic_and_real_files(two_channels, data_dir, capsys):
    asd = data_dir / "playnano_asd_sample_0.asd"
    folder = data_dir / "pnanolocz_streptavidin_jpk_folder"
    assert main(["info", str(two_channels), str(asd), str(folder), "--json"]) == 0
    synthetic, real, jpk = json.loads(capsys.readouterr().out)
    assert synthetic["format"] == "asd"
    assert synthetic["channels"] == [
        {"name": "height_trace", "native": "TP", "units": "nm"},
        {"name": "phase_trace", "native": "PH", "units": "deg"},
    ]
    assert synthetic["dims"] == {"time": 5, "y": 6, "x": 8}
    assert synthetic["pixel_size_nm"] == {"x": 10.0, "y": 10.0}
    assert synthetic["frame_interval_s"] == pytest.approx(0.05)
    assert synthetic["duration_s"] == pytest.approx(0.25)
    assert synthetic["size_bytes"] == two_channels.stat().st_size

    assert real["dims"] == {"time": 32, "y": 200, "x": 200}
    assert real["pixel_size_nm"] == {"x": 0.5, "y": 0.5}
    assert real["frame_interval_s"] == pytest.approx(1.0)
    assert real["duration_s"] == pytest.approx(32.0)
    assert real["size_bytes"] == 2_561_198
    assert [c["name"] for c in real["channels"]] == ["height_trace"]

    # A folder of one-frame JPK files: its size is the total of the frame files.
    assert jpk["format"] == "jpk"
    assert jpk["dims"] == {"time": 21, "y": 512, "x": 512}
    assert jpk["pixel_size_nm"]["x"] == pytest.approx(85 / 512)
    assert jpk["size_bytes"] == 66_545_720 == sum(f.stat().st_size for f in folder.iterdir())
    assert jpk["frame_interval_s"] == pytest.approx(2.59, abs=0.005)


def test_info_reports_a_bad_path_in_one_line_and_goes_on(two_channels, tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    error = (
        f"{bad}: is not a supported file (supported: "
        + ", ".join(f"{f.name} ({' '.join(f.extensions)})" for f in afmio.formats())
        + ")"
    )
    assert main(["info", str(bad), str(two_channels)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == str(two_channels)
    assert error_lines(captured.err) == [f"afmio: error: {error}"]
    assert captured.err.count("\n") == 1
    # --json reports the failed path too, in its place, with the same error and exit code.
    assert main(["info", str(bad), str(two_channels), "--json"]) == 1
    captured = capsys.readouterr()
    failed, described = json.loads(captured.out)
    assert failed == {"path": str(bad), "error": error}
    assert described["path"] == str(two_channels)
    assert described["format"] == "asd"
    assert error_lines(captured.err) == [f"afmio: error: {error}"]


# --- afmio convert ---------------------------------------------------------------------


def table_rows(out: str) -> dict[str, list[str]]:
    """Rows of the summary table by file (cells split on runs of 2+ spaces)."""
    lines = out.strip().splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["file", "formats", "status", "size", "time"]
    return {row[0]: row[1:] for row in (re.split(r"\s{2,}", line) for line in lines[1:-1])}


def test_convert_then_resume_then_overwrite(make_asd, tmp_path, capsys):
    videos = [make_asd(f"v{i}.asd", {"TP": random_levels(4, 6, 8, seed=i)}) for i in range(2)]
    out = tmp_path / "out"
    args = ["convert", *map(str, videos), "--to", "h5,npz", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    rows = table_rows(text)
    for v in videos:
        formats, status, size, seconds = rows[str(v)]
        assert (formats, status) == ("h5 npz", "done")
        total = batch.output_size(out / f"{v.stem}.h5") + batch.output_size(out / f"{v.stem}.npz")
        assert size == f"{total / 1024:.1f} KiB"
        assert re.fullmatch(r"\d+\.\d s", seconds)
    assert re.fullmatch(r"2 files: 2 done, 0 skipped, 0 failed in \d+\.\d s", text.splitlines()[-1])
    np.testing.assert_array_equal(afmio.open(out / "v1.npz").values, afmio.open(videos[1]).values)

    assert main(args) == 0
    assert {r[1] for r in table_rows(capsys.readouterr().out).values()} == {"skipped"}

    (out / "v0.npz").unlink()
    assert main([*args, "--to", "h5,npz,tif"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[str(videos[0])][:2] == ["npz tif (kept h5)", "done"]
    assert rows[str(videos[1])][:2] == ["tif (kept h5 npz)", "done"]

    assert main([*args, "--overwrite"]) == 0
    assert [r[:2] for r in table_rows(capsys.readouterr().out).values()] == [["h5 npz", "done"]] * 2


def test_convert_reports_a_bad_file_in_one_line_and_exits_1(make_asd, tmp_path, capsys):
    good = make_asd("good.asd")
    bad = tmp_path / "bad.asd"
    bad.write_bytes(b"\x07\x00\x00\x00" + bytes(200))
    assert main(["convert", str(bad), str(good), "--to", "npz", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    [line] = error_lines(captured.err)
    assert line.startswith(f"afmio: error: {bad}: ")
    rows = table_rows(captured.out)
    assert rows[str(bad)][1] == "failed"
    assert rows[str(good)][:2] == ["npz", "done"]
    assert captured.out.splitlines()[-1].startswith("2 files: 1 done, 0 skipped, 1 failed")


def test_summary_names_the_formats_that_failed(make_asd, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # MP4 export fails
    video = str(make_asd())
    argv = ["convert", video, "--to", "gif,mp4", "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert table_rows(captured.out)[video][:2] == ["gif (failed mp4)", "failed"]
    [line] = error_lines(captured.err)
    assert "MP4 export needs imageio-ffmpeg" in line
    # Run again: the GIF is kept, the MP4 fails again.
    assert main([*argv[:3], "h5,gif,mp4", *argv[4:]]) == 1
    rows = table_rows(capsys.readouterr().out)
    assert rows[video][:2] == ["h5 (kept gif) (failed mp4)", "failed"]
    assert main([*argv[:3], "gif,mp4", *argv[4:]]) == 1
    assert table_rows(capsys.readouterr().out)[video][:2] == ["(kept gif) (failed mp4)", "failed"]
    assert main([*argv[:3], "mp4", *argv[4:]]) == 1
    assert table_rows(capsys.readouterr().out)[video][:2] == ["mp4", "failed"]


def test_convert_refuses_outputs_named_alike_up_front_and_name_tells_them_apart(
    make_asd, tmp_path, capsys
):
    (tmp_path / "a").mkdir()
    first = str(make_asd("a/x.asd", {"TP": random_levels(2, 4, 4, seed=1)}))
    second = str(make_asd("x.asd", {"TP": random_levels(2, 4, 4, seed=2)}))
    out = tmp_path / "out"
    argv = ["convert", first, second, "--to", "npz", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("usage: afmio convert")
    assert f"afmio convert: error: {second}: would write {out / 'x.npz'}, as {first} does" in (
        " ".join(captured.err.split())
    )
    assert captured.out == ""
    assert not out.exists()  # nothing converted
    # {stem}{suffix} still collides here (both are x.asd): refused the same way.
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--name", "{stem}{suffix}"])
    assert exit_info.value.code == 2
    capsys.readouterr()
    assert not out.exists()


def test_convert_name_keeps_two_inputs_with_one_stem(make_asd, tmp_path, capsys):
    jpk = str(make_asd("x.asd", {"TP": random_levels(2, 4, 4, seed=1)}))
    other = str(make_asd("x.asd.v2", {"TP": random_levels(2, 4, 4, seed=2)}))
    out = tmp_path / "out"
    argv = ["convert", jpk, other, "--to", "h5", "--out", str(out), "--name", "{stem}{suffix}"]
    assert main(argv) == 0
    rows = table_rows(capsys.readouterr().out)
    assert [r[:2] for r in rows.values()] == [["h5", "done"]] * 2
    assert sorted(p.name for p in out.iterdir()) == ["x.asd.h5", "x.asd.v2.h5"]
    np.testing.assert_array_equal(afmio.open(out / "x.asd.v2.h5").values, afmio.open(other).values)


def test_convert_one_channel(two_channels, tmp_path, capsys):
    argv = ["convert", str(two_channels), "--to", "tif", "--channel", "PH", "--out", str(tmp_path)]
    assert main(argv) == 0
    saved = afmio.open(tmp_path / "two_phase_trace.ome.tif")
    np.testing.assert_array_equal(saved.values, afmio.open(two_channels, "PH").values)


def test_convert_on_a_local_cluster(make_asd, tmp_path, capsys):
    pytest.importorskip(
        "distributed", reason="dask.distributed is the optional 'distributed' extra"
    )
    videos = [make_asd(f"c{i}.asd", {"TP": random_levels(3, 4, 5, seed=i)}) for i in range(3)]
    argv = ["convert", *map(str, videos), "--to", "zarr", "--out", str(tmp_path / "o")]
    assert main([*argv, "--workers", "2"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert [r[:2] for r in rows.values()] == [["zarr", "done"]] * 3
    for v in videos:
        saved = afmio.open(tmp_path / "o" / f"{v.stem}.zarr")
        np.testing.assert_array_equal(saved.values, afmio.open(v).values)


def test_cluster_options_without_distributed(make_asd, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["convert", str(make_asd()), "--to", "npz", "--workers", "2"]) == 1
    [line] = error_lines(capsys.readouterr().err)
    assert "pip install 'afmio[distributed]'" in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "h5,png"], "argument --to: cannot convert to 'png'; choose from h5, npz"),
        (["--to", "h5", "--workers", "0"], "argument --workers: expected a whole number >= 1"),
        (["--to", "gif", "--zmin", "low"], "argument --zmin: expected a number or 'auto'"),
        (["--to", "gif", "--zmin", "2", "--zmax", "1"], "--zmin 2 must be below --zmax 1"),
        (["--to", "gif", "--cmap", "nope"], "--cmap 'nope' is not a matplotlib colour map"),
        (["--to", "h5", "--workers", "2", "--scheduler", "tcp://x:1"], "not allowed with"),
        (
            ["--to", "h5", "--name", "{stem}{ext}"],
            "argument --name: name '{stem}{ext}' has unknown",
        ),
        (["--to", "h5", "--name", "out/{stem}"], "argument --name: name 'out/{stem}' must be"),
    ],
)
def test_convert_bad_usage_exits_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "video.asd", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("usage: afmio convert")


def test_convert_to_gif_passes_the_gif_options(make_asd, tmp_path, monkeypatch, capsys):
    real = afmio.export.write
    calls = []

    def spy(fmt, obj, path, *, render, **kwargs):
        calls.append({**vars(render), **kwargs})  # the options GIF export was given
        return real(fmt, obj, path, render=render, **kwargs)

    monkeypatch.setattr(afmio.export, "write", spy)
    video = make_asd("g.asd", {"TP": random_levels(4, 16, 16)})
    argv = ["convert", str(video), "--to", "gif", "--out", str(tmp_path), "--fps", "5"]
    assert main([*argv, "--cmap", "gray", "--zmin", "auto", "--zmax", "3.5"]) == 0
    [kwargs] = calls
    assert {k: kwargs[k] for k in ("fps", "cmap", "zmin", "zmax", "raw", "overwrite")} == {
        "fps": 5.0,
        "cmap": "gray",
        "zmin": "auto",
        "zmax": 3.5,
        "raw": False,
        "overwrite": True,  # convert decides what to skip; the writer replaces atomically
    }
    assert (tmp_path / "g.gif").read_bytes()[:6] == b"GIF89a"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_draw_files_and_frames_and_write_errors_between_them():
    term = FakeTerminal()
    bars = Bars(2, file=term)
    bars(batch.Event("start", 0, "/d/a.asd", total=10, todo=("h5", "npz")))
    bars(batch.Event("frames", 0, "/d/a.asd", "h5", 10, 10))
    bars(batch.Event("frames", 0, "/d/a.asd", "npz", 4, 10))
    assert bars.bars[0].n == 14
    assert bars.bars[0].total == 20
    assert bars.bars[0].desc.startswith("a.asd npz")
    bars(batch.Event("end", 0, "/d/a.asd", result=batch.Result(0, "/d/a.asd", "done")))
    failed = batch.Result(1, "/d/b.asd", "failed", error="/d/b.asd: broken")
    bars(batch.Event("end", 1, "/d/b.asd", result=failed))
    bars.close()
    text = term.getvalue()
    assert "a.asd:   0%" in text
    assert "files: 100%" in text
    assert "2/2" in text
    assert "afmio: error: /d/b.asd: broken\n" in text


# --- help, version, python -m afmio ----------------------------------------------------


@pytest.mark.parametrize("command", [[], ["info"], ["convert"], ["demo"]])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(['afmio', *command])}")
    examples = out[out.index("examples:") :].splitlines()[1:]
    assert any(
        line.strip().startswith(f"afmio {command[0] if command else ''}") for line in examples
    )


def test_version_and_module_entry_point():
    run = [sys.executable, "-m", "afmio"]
    out = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"afmio {afmio.__version__}"
    out = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True).stdout
    assert "examples:" in out
    assert {"info", "convert", "demo"} <= set(re.findall(r"^    (\w+)\s", out, re.M))


def test_convert_reports_a_reader_warning_once(make_asd, tmp_path, capsys):
    video = make_asd("cut.asd", {"TP": random_levels(4, 6, 8)})
    with open(video, "r+b") as f:  # the last frame loses its end
        f.truncate(video.stat().st_size - 20)
    assert main(["convert", str(video), "--to", "npz", "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    warned = [line for line in captured.err.splitlines() if "warning" in line.lower()]
    assert len(warned) == 1
    assert warned[0].startswith(f"afmio: warning: {video}")
    assert afmio.open(tmp_path / "o" / "cut.npz").sizes["time"] == 3


def test_convert_on_an_existing_cluster_through_its_scheduler_address(make_asd, tmp_path, capsys):
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is the optional 'distributed' extra"
    )
    videos = [make_asd(f"s{i}.asd", {"TP": random_levels(4, 6, 7, seed=i)}) for i in range(2)]
    out = tmp_path / "o"
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        argv = ["convert", *map(str, videos), "--to", "npz", "--out", str(out)]
        assert main([*argv, "--scheduler", cluster.scheduler_address]) == 0
        # Each file was a task on that cluster, not converted in this process.
        keys = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        assert "afmio-convert" in keys
    rows = table_rows(capsys.readouterr().out)
    assert [r[:2] for r in rows.values()] == [["npz", "done"]] * 2
    for v in videos:
        saved = afmio.open(out / f"{v.stem}.npz")
        np.testing.assert_array_equal(saved.values, afmio.open(v).values)
