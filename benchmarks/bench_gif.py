"""Benchmark: annotated GIF export of a long video, against playNano.

Generates an ASD video of diffusing particles (128x128 frames, enlarged to 512x512 in the
GIF, as both tools do), then exports it to an annotated GIF with levels from the 1st/99th
percentiles, each run in a fresh process so that its peak RSS is its own: time, frames
per second and peak RSS. playNano 0.5.0 (the ``bench`` extra, or ``--playnano-python``)
exports shorter videos side by side; it holds every rendered frame until the end.

Run: ``python benchmarks/bench_gif.py [--frames 3000] [--small 300,1000] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import peak_rss

SIZE = 128


def write_video(path: Path, n_frames: int) -> None:
    """Particles diffusing on a tilted surface, 20 nm/V over a 12-bit range."""
    from afmio.synthetic import bipolar_levels, diffusing_particles, write_asd

    frames = (bipolar_levels(z, 20.0) for z, _ in diffusing_particles(n_frames, SIZE, seed=3))
    write_asd(path, {"TP": frames}, n_frames=n_frames, shape=(SIZE, SIZE))


def child_afmio(source: str, target: str) -> dict:
    import afmio

    t0 = time.perf_counter()
    path = afmio.export_gif(afmio.open(source), target, zmin="auto", zmax="auto")
    return {"seconds": time.perf_counter() - t0, "peak_rss": peak_rss(), "path": str(path)}


def child_playnano(source: str, target: str) -> dict:
    import logging

    logging.disable(logging.CRITICAL)
    from playnano.io.gif_export import export_gif
    from playnano.io.loader import load_afm_stack

    t0 = time.perf_counter()
    stack = load_afm_stack(Path(source), channel="TP")
    folder, name = Path(target).parent, Path(target).stem
    export_gif(stack, True, str(folder), name, None, zmin="auto", zmax="auto")
    path = folder / f"{name}.gif"
    return {"seconds": time.perf_counter() - t0, "peak_rss": peak_rss(), "path": str(path)}


def run(python: str, tool: str, source: Path, target: Path) -> dict | None:
    proc = subprocess.run(
        [python, __file__, "--child", tool, str(source), str(target)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"  {tool}: failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(tool: str, n_frames: int, r: dict | None) -> None:
    if r is None:
        return
    path = Path(r["path"])
    size = path.stat().st_size
    print(
        f"  {tool:9s} {n_frames:6d} frames  {r['seconds']:7.1f} s  "
        f"{n_frames / r['seconds']:6.0f} frames/s  {size / 2**20:7.1f} MiB GIF  "
        f"peak RSS {r['peak_rss'] / 2**20:6.0f} MiB"
    )
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames of the long video")
    parser.add_argument("--small", default="300,1000", help="frame counts run by both tools")
    parser.add_argument("--playnano-python", default=sys.executable, help="python with playNano")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, source, target = args.child
        print(json.dumps((child_afmio if tool == "afmio" else child_playnano)(source, target)))
        return

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        print(f"GIF export of {SIZE}x{SIZE} frames (512x512 in the GIF), levels 'auto':")
        for n in [int(s) for s in args.small.split(",")]:
            source = folder / f"v{n}.asd"
            write_video(source, n)
            report("afmio", n, run(sys.executable, "afmio", source, folder / f"a{n}.gif"))
            r = run(args.playnano_python, "playnano", source, folder / f"p{n}.gif")
            report("playNano", n, r)
        source = folder / "long.asd"
        write_video(source, args.frames)
        report("afmio", args.frames, run(sys.executable, "afmio", source, folder / "long.gif"))


if __name__ == "__main__":
    main()
