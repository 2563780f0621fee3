"""Benchmark: open a JPK HDF5 (.h5-jpk) video and compute the mean of every frame.

Generates a video of 256x256 height frames laid out as JPK writes them (int32, shuffle +
gzip level 1, one chunk per frame), then measures, each in a fresh process so that peak
RSS is its own:

- afmio: open time (metadata only), then time, throughput and peak RSS of a full pass
  computing the mean height of every frame with dask;
- playNano 0.5.0 (the ``bench`` extra, or the interpreter given with ``--playnano-python``):
  the same load and mean on the same file.

Run: ``python benchmarks/bench_h5jpk.py [--frames 2000] [--keep]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import agreement, drop_caches, measure

FRAME = 256  # pixels per side


def write_video(path: Path, n_frames: int) -> None:
    """Particles diffusing on a surface ~700 nm up, stored as JPK's raw height levels."""
    from afmio.synthetic import diffusing_particles
    from afmio.synthetic.h5jpk import DEFAULT_SCALING, levels_from_values, write_h5jpk

    multiplier, offset, _ = DEFAULT_SCALING["height"]
    frames = (
        levels_from_values((z + 700.0) * 1e-9, multiplier, offset)
        for z, _ in diffusing_particles(n_frames, FRAME, scan_nm=150.0)
    )
    write_h5jpk(path, {"height_trace": frames}, n_frames=n_frames, shape=(FRAME, FRAME))


def report(tool: str, path: Path, r: dict | None) -> None:
    if r is None:
        return
    size = path.stat().st_size
    decoded = len(r["means"]) * FRAME * FRAME * 4  # int32 frames decompressed
    what = "open (metadata)" if tool == "afmio" else "load (eager)"
    print(
        f"  {tool:9s} {len(r['means']):5d} frames  {what} {r['open_s'] * 1e3:9.2f} ms"
        f"  full pass {r['pass_s']:6.2f} s = {size / r['pass_s'] / 1e6:5.0f} MB/s of file,"
        f" {decoded / r['pass_s'] / 1e6:5.0f} MB/s of int32 frames"
        f"  peak RSS {r['peak_rss'] / 2**20:6.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames in the video")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--playnano-python", default=sys.executable, help="python with playNano")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-h5jpk-"))
    path = folder / "video.h5-jpk"
    try:
        t0 = time.perf_counter()
        write_video(path, args.frames)
        print(
            f"wrote {path}: {args.frames} frames of {FRAME}x{FRAME}, "
            f"{path.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s"
        )
        runs = [("afmio", sys.executable), ("playNano", args.playnano_python)]
        print("mean of every frame, each run in a fresh process, file in the page cache:")
        results = [measure(python, tool.lower(), path, "height_trace") for tool, python in runs]
        for (tool, _), r in zip(runs, results, strict=True):
            report(tool, path, r)
        print(agreement(*results) + " nm")
        if drop_caches():
            print("the same after evicting the page cache (cold reads from disk):")
            for tool, python in runs:
                drop_caches()
                report(tool, path, measure(python, tool.lower(), path, "height_trace"))
        else:
            print("(cold-cache runs skipped: cannot drop the page cache without root)")
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            path.unlink(missing_ok=True)
            folder.rmdir()


if __name__ == "__main__":
    main()
