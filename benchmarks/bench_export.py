"""Benchmark: export a large ASD video to every bundle format.

Generates a 4 GiB ASD video (256x256 frames), measures the disk's own sequential write
speed in the same run (dd with fdatasync), then exports the video to each format, each in
a fresh process so that its peak RSS is its own: time, MB/s of output and peak RSS.
playNano 0.5.0 (the ``bench`` extra, or ``--playnano-python``) exports a smaller video it
can hold to its three formats, side by side with afmio on the same small video.

Run: ``python benchmarks/bench_export.py [--size-gib 4] [--small-mib 256] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import peak_rss

FRAME = 256
STRIDE = 32 + 2 * FRAME * FRAME
AFMIO_FORMATS = ("h5", "h5-lzf", "h5-raw", "npz", "tif", "zarr")


def write_video(path: Path, n_frames: int) -> None:
    """A TP video cycling through 64 distinct noisy frames."""
    import numpy as np

    from afmio.synthetic import write_asd

    base = np.random.default_rng(0).integers(1000, 3000, (64, FRAME, FRAME), dtype=np.int16)
    frames = (base[i % 64] for i in range(n_frames))
    write_asd(path, {"TP": frames}, n_frames=n_frames, shape=(FRAME, FRAME), ad_range_code=3)


def disk_write_speed(folder: Path, mib: int = 2048) -> float:
    """MB/s of ``dd`` writing ``mib`` MiB with fdatasync: the disk's sequential speed."""
    target = folder / "dd.bin"
    out = subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}", "conv=fdatasync"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    target.unlink()
    seconds = float(re.search(r"copied, ([\d.]+) s", out).group(1))
    return mib * 2**20 / seconds / 1e6


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def child_afmio(source: str, fmt: str, target: str) -> dict:
    import afmio

    video = afmio.open(source)
    options = {"h5-lzf": {"compression": "lzf"}, "h5-raw": {"compression": None}}.get(fmt, {})
    savers = {
        "h5": afmio.save_h5_bundle,
        "npz": afmio.save_npz_bundle,
        "tif": afmio.save_ome_tiff_stack,
        "zarr": afmio.save_zarr,
    }
    save = savers[fmt.split("-")[0]]
    t0 = time.perf_counter()
    path = save(target, video, **options)
    return {"seconds": time.perf_counter() - t0, "peak_rss": peak_rss(), "path": str(path)}


def child_playnano(source: str, fmt: str, target: str) -> dict:
    import logging

    logging.disable(logging.CRITICAL)
    from playnano.io.export_data import save_h5_bundle, save_npz_bundle, save_ome_tiff_stack
    from playnano.io.loader import load_afm_stack

    t0 = time.perf_counter()
    stack = load_afm_stack(Path(source), channel="TP")
    save = {"h5": save_h5_bundle, "npz": save_npz_bundle, "tif": save_ome_tiff_stack}[fmt]
    path = Path(target).with_suffix({"h5": ".h5", "npz": ".npz", "tif": ".tif"}[fmt])
    save(path, stack)
    return {"seconds": time.perf_counter() - t0, "peak_rss": peak_rss(), "path": str(path)}


def run(python: str, tool: str, source: Path, fmt: str, target: Path) -> dict | None:
    proc = subprocess.run(
        [python, __file__, "--child", tool, str(source), fmt, str(target)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"  {tool} {fmt}: failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(tool: str, fmt: str, r: dict | None, disk: float) -> None:
    if r is None:
        return
    out = size_of(Path(r["path"]))
    speed = out / r["seconds"] / 1e6
    rss = r["peak_rss"] / 2**20
    print(
        f"  {tool:9s} {fmt:7s} {r['seconds']:7.2f} s  {out / 2**20:7.0f} MiB written"
        f"  {speed:6.0f} MB/s ({speed / disk:4.0%} of disk)  peak RSS {rss:6.0f} MiB"
    )
    if Path(r["path"]).is_dir():
        shutil.rmtree(r["path"])
    else:
        Path(r["path"]).unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=4.0, help="large video size")
    parser.add_argument("--small-mib", type=float, default=256.0, help="video size for playNano")
    parser.add_argument("--playnano-python", default=sys.executable, help="python with playNano")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, source, fmt, target = args.child
        print(json.dumps((child_afmio if tool == "afmio" else child_playnano)(source, fmt, target)))
        return

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        big, small = folder / "big.asd", folder / "small.asd"
        write_video(big, int(args.size_gib * 2**30 // STRIDE))
        write_video(small, int(args.small_mib * 2**20 // STRIDE))
        disk = disk_write_speed(folder)
        print(f"disk sequential write (dd, fdatasync): {disk:.0f} MB/s")
        print(f"export of {big.stat().st_size / 2**20:.0f} MiB ASD (float32 output is 2x that):")
        for fmt in AFMIO_FORMATS:
            report(
                "afmio", fmt, run(sys.executable, "afmio", big, fmt, folder / f"big-{fmt}"), disk
            )
        print(f"export of {small.stat().st_size / 2**20:.0f} MiB ASD:")
        for fmt in ("h5", "npz", "tif"):
            report(
                "afmio", fmt, run(sys.executable, "afmio", small, fmt, folder / f"s-{fmt}"), disk
            )
            r = run(args.playnano_python, "playnano", small, fmt, folder / f"p-{fmt}")
            report("playNano", fmt, r, disk)


if __name__ == "__main__":
    main()
