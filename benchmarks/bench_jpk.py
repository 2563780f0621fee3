"""Benchmark the JPK folder reader against playNano 0.5.0 on a synthetic NanoRacer run.

Writes a folder of ``--frames`` JPK TIFF frames (NanoRacer layout: height retrace,
measuredHeight trace and height trace pages of int32, each frame with its own calibration),
then, each in a fresh process so that peak RSS is its own:

- afmio: ``afmio.open(folder)`` (headers only), then the full pass
  ``video.mean(("y", "x")).values`` over every frame of ``height_trace``;
- playNano 0.5.0 (the ``bench`` extra, or the interpreter given with ``--playnano-python``):
  ``load_afm_stack(folder, "height_trace")``,
  which loads eagerly, then ``data.mean(axis=(1, 2))``.

Throughput is in MB/s of ``height_trace`` pixel bytes read from the files. The files were
just written, so they are read from the page cache.

Usage: ``python benchmarks/bench_jpk.py [--frames N] [--size PX] [--keep]
[--playnano-python PY]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from afmio.synthetic.jpk import JpkChannel, write_jpk
from afmio.synthetic.scenes import diffusing_particles

T0_MS = 1_676_549_326_436  # start of the first frame, as in the real NanoRacer sample
PERIOD_MS = 2590  # start-to-start, as in the real sample
SCAN_NM = 85.0

AFMIO_RUN = """
import json, resource, sys, time
folder = sys.argv[1]

def rchar():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])

import afmio
before = rchar()
t0 = time.perf_counter()
video = afmio.open(folder)
t_open = time.perf_counter() - t0
open_bytes = rchar() - before
t0 = time.perf_counter()
afmio.open(folder)
t_reopen = time.perf_counter() - t0
t0 = time.perf_counter()
means = video.mean(("y", "x")).values
t_pass = time.perf_counter() - t0
print(json.dumps({
    "open_s": t_open, "reopen_s": t_reopen, "open_bytes": open_bytes, "pass_s": t_pass,
    "shape": list(video.shape), "means": means.tolist(),
    "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""

PLAYNANO_RUN = """
import json, resource, sys, time
from loguru import logger
logger.remove()  # AFMReader logs every file; time the loading, not the terminal
from playnano.io.loader import load_afm_stack
t0 = time.perf_counter()
stack = load_afm_stack(sys.argv[1], channel="height_trace")
t_load = time.perf_counter() - t0
t0 = time.perf_counter()
means = stack.data.mean(axis=(1, 2))
t_mean = time.perf_counter() - t0
print(json.dumps({
    "load_s": t_load, "mean_s": t_mean, "shape": list(stack.data.shape),
    "means": means.tolist(),
    "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""


def write_folder(folder: Path, n_frames: int, size: int) -> int:
    """Write ``n_frames`` frames one by one (never more than one in memory); total bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    scene = diffusing_particles(n_frames, size, scan_nm=SCAN_NM, seed=3)
    for i, (height_nm, _) in enumerate(scene):
        # Each frame has its own calibration, as NanoRacer frames do: about +-21 nm of
        # int32 range around the frame's own offset near 445 nm.
        multiplier = -1e-17 * (1.0 + 0.2 * np.sin(i / 40.0))
        offset = (445.0 + float(height_nm.mean())) * 1e-9
        levels = np.rint((height_nm * 1e-9 + 445e-9 - offset) / multiplier).astype(np.int32)
        start = T0_MS + i * PERIOD_MS
        name = f"save-{time.strftime('%Y.%m.%d-%H.%M.%S', time.gmtime(start / 1000))}"
        measured = JpkChannel(
            "measuredHeight", False, levels, 0.8 * multiplier, offset, default_slot="nominal"
        )
        path = write_jpk(
            folder / f"{name}.{start % 1000:03d}.jpk",
            [
                JpkChannel("height", True, levels, multiplier, offset),
                measured,
                JpkChannel("height", False, levels, multiplier, offset),
            ],
            start_ms=start,
            duration_s=2.585,
            scan_size_m=(SCAN_NM * 1e-9, SCAN_NM * 1e-9),
            settings={"fast-imaging.feed-forward-parameters.yaxis.interlace": "true"},
        )
        total += path.stat().st_size
    return total


def run(python: str | Path, code: str, folder: Path) -> dict:
    out = subprocess.run(
        [str(python), "-c", code, str(folder)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames (files) to write")
    parser.add_argument("--size", type=int, default=256, help="pixels per side")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder")
    parser.add_argument("--playnano-python", default=sys.executable, help="python with playNano")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="afmio-bench-jpk-")) / "run"
    try:
        t0 = time.perf_counter()
        total = write_folder(folder, args.frames, args.size)
        os.sync()  # no write-back of the new files during the measurements
        print(
            f"wrote {args.frames} frames of {args.size}x{args.size} x 3 channels "
            f"({total / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s to {folder}"
        )
        channel_mb = args.frames * args.size**2 * 4 / 1e6  # height_trace pixels read
        mib = 2**20

        a = run(sys.executable, AFMIO_RUN, folder)
        print(f"\nafmio (height_trace, {channel_mb:.0f} MB of pixels)")
        print(f"  open:       {a['open_s'] * 1e3:.0f} ms in a fresh process (again: "
              f"{a['reopen_s'] * 1e3:.0f} ms), read {a['open_bytes'] / mib:.1f} MiB of "
              f"{total / mib:.0f} MiB")  # fmt: skip
        print(f"  full pass:  {a['pass_s']:.2f} s = {channel_mb / a['pass_s']:.0f} MB/s")
        print(f"  peak RSS:   {a['peak_rss'] / mib:.0f} MiB")

        print("\nplayNano 0.5.0 (load_afm_stack, eager)")
        if not Path(args.playnano_python).exists():
            print(f"  not run: {args.playnano_python} not found (a python with playNano==0.5.0)")
            return
        try:
            p = run(Path(args.playnano_python), PLAYNANO_RUN, folder)
        except RuntimeError as exc:
            print(f"  failed to load the folder: {exc}")
            return
        load_and_mean = p["load_s"] + p["mean_s"]
        print(f"  load:       {p['load_s']:.2f} s; load + mean {load_and_mean:.2f} s = "
              f"{channel_mb / load_and_mean:.0f} MB/s")  # fmt: skip
        print(f"  peak RSS:   {p['peak_rss'] / mib:.0f} MiB")
        diff = np.abs(np.array(a["means"]) - np.array(p["means"])).max()
        print(f"\nper-frame means agree with playNano's to {diff:.2g} nm (float32 vs float64)")
    finally:
        if args.keep:
            print(f"\nkept {folder}")
        else:
            shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
