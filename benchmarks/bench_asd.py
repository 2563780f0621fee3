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
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


def child_afmio(path: str) -> dict:
    """Runs in a fresh process: open, then mean of every frame."""
    import resource

    import afmio

    afmio.open(path)  # first call pays for imports and lazy initialisation
    t0 = time.perf_counter()
    opens = 20
    for _ in range(opens):
        video = afmio.open(path)
    open_s = (time.perf_counter() - t0) / opens
    t0 = time.perf_counter()
    means = video.mean(("y", "x")).values
    pass_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"open_s": open_s, "pass_s": pass_s, "peak_rss": peak, "n": int(means.size)}


def child_playnano(path: str) -> dict:
    """Runs in a fresh process with playNano: eager load, then mean of every frame."""
    import logging
    import resource

    logging.disable(logging.CRITICAL)
    from playnano.io.loader import load_afm_stack

    t0 = time.perf_counter()
    stack = load_afm_stack(Path(path), channel="TP")
    load_s = time.perf_counter() - t0
    means = stack.data.mean(axis=(1, 2))
    pass_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"open_s": load_s, "pass_s": pass_s, "peak_rss": peak, "n": int(means.size)}


def drop_caches() -> bool:
    """Evict the page cache (needs root on Linux), so that the next read hits the disk."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def measure(python: str, tool: str, path: Path) -> dict | None:
    proc = subprocess.run(
        [python, __file__, "--child", tool, str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(f"  {tool}: failed ({proc.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(tool: str, path: Path, r: dict | None) -> None:
    if r is None:
        return
    size = path.stat().st_size
    print(
        f"  {tool:9s} {size / 2**20:8.0f} MiB  {r['n']:6d} frames  open {r['open_s'] * 1e3:8.2f} ms"
        f"  full pass {r['pass_s']:7.2f} s = {size / r['pass_s'] / 1e6:7.0f} MB/s"
        f"  peak RSS {r['peak_rss'] / 2**20:7.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0, help="large file size")
    parser.add_argument("--small-mib", type=float, default=256.0, help="file size for playNano")
    parser.add_argument("--playnano-python", default=sys.executable, help="python with playNano")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, path = args.child
        print(json.dumps((child_afmio if tool == "afmio" else child_playnano)(path)))
        return

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
        report("afmio", big, measure(sys.executable, "afmio", big))
        report("afmio", small, measure(sys.executable, "afmio", small))
        report("playNano", small, measure(args.playnano_python, "playnano", small))
        if drop_caches():
            print("the same after evicting the page cache (cold reads from disk):")
            report("afmio", big, measure(sys.executable, "afmio", big))
            drop_caches()
            report("afmio", small, measure(sys.executable, "afmio", small))
            drop_caches()
            report("playNano", small, measure(args.playnano_python, "playnano", small))
        else:
            print("(cold-cache runs skipped: cannot drop the page cache without root)")


if __name__ == "__main__":
    main()
