"""Benchmark: open a large ASD file and compute the mean of every frame.

Generates a 2 GiB ASD video (256x256 frames) and a smaller one that playNano can hold,
then measures, each in a fresh process so that peak RSS is its own:

- afmio: open time (headers only), then time and peak RSS of a full pass computing the
  mean height of every frame;
- playNano 0.5.0 (the ``bench`` extra, or any interpreter given with ``--playnano-python``):
  the same load and mean on the smaller file.

Run: ``python benchmarks/bench_asd.py [--size-gib 2] [--small-mib 256] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import agreement, drop_caches, measure

FRAME = 256  # pixels per side
STRIDE = 32 + 2 * FRAME * FRAME


def write_video(path: Path, n_frames: int) -> None:
    """A TP video of ``n_frames`` frames cycling through 64 distinct noisy frames."""
    from afmio.synthetic import write_asd

    rng = np.random.default_rng(0)
    base = rng.integers(1000, 3000, (64, FRAME, FRAME), dtype=np.int16)
    write_asd(
        path,
        {"TP": (base[i % 64] for i in range(n_frames))},
        n_frames=n_frames,
        shape=(FRAME, FRAME),
        ad_range_code=0x3,
        frame_time_ms=50.0,
    )


def report(tool: str, path: Path, r: dict | None) -> None:
    if r is None:
        return
    size = path.stat().st_size
    what = "open" if tool == "afmio" else "load"
    print(
        f"  {tool:9s} {size / 2**20:6.0f} MiB {len(r['means']):6d} frames"
        f"  {what} {r['open_s'] * 1e3:8.2f} ms"
        f"  full pass {r['pass_s']:6.2f} s = {size / r['pass_s'] / 1e6:5.0f} MB/s"
        f"  peak RSS {r['peak_rss'] / 2**20:6.0f} MiB"
    )


def run_all(big: Path, small: Path, playnano: str) -> None:
    report("afmio", big, measure(sys.executable, "afmio", big, "TP"))
    mine = measure(sys.executable, "afmio", small, "TP")
    report("afmio", small, mine)
    theirs = measure(playnano, "playnano", small, "TP")
    report("playNano", small, theirs)
    print(agreement(mine, theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0, help="large file size")
    parser.add_argument("--small-mib", type=float, default=256.0, help="file size for playNano")
    parser.add_argument("--playnano-python", default=sys.executable, help="python with playNano")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        big, small = folder / "big.asd", folder / "small.asd"
        for path, size in ((big, args.size_gib * 2**30), (small, args.small_mib * 2**20)):
            t0 = time.perf_counter()
            write_video(path, int(size // STRIDE))
            print(f"wrote {path.name}: {path.stat().st_size / 2**20:.0f} MiB "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        print("mean of every frame, each run in a fresh process, files in the page cache:")
        run_all(big, small, args.playnano_python)
        if drop_caches():
            print("the same, each run after evicting the page cache (cold reads from disk):")
            for tool, path, python in (
                ("afmio", big, sys.executable),
                ("afmio", small, sys.executable),
                ("playnano", small, args.playnano_python),
            ):
                drop_caches()
                report(tool, path, measure(python, tool, path, "TP"))
        else:
            print("(cold-cache runs skipped: cannot drop the page cache without root)")


if __name__ == "__main__":
    main()
