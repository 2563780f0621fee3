"""What the benchmarks share: measuring afmio and playNano in fresh processes.

Each measurement runs in its own interpreter (``python common.py TOOL PATH CHANNEL``), so
that its peak RSS (``ru_maxrss``) is its own, and prints one line of JSON.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss() -> int:
    """Peak resident memory of this process in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child_afmio(path: str, channel: str) -> dict:
    """Open (headers only), then the mean of every frame through dask."""
    import afmio

    # The first open and compute pay for imports and dask's start-up, not for the file.
    afmio.open(path, channel)[:1].mean().values  # noqa: B018
    opens = 20
    t0 = time.perf_counter()
    for _ in range(opens):
        video = afmio.open(path, channel)
    open_s = (time.perf_counter() - t0) / opens
    t0 = time.perf_counter()
    means = video.mean(("y", "x")).values
    pass_s = time.perf_counter() - t0
    return {"open_s": open_s, "pass_s": pass_s, "peak_rss": peak_rss(), "means": means.tolist()}


def child_playnano(path: str, channel: str) -> dict:
    """playNano 0.5.0: eager load, then the mean of every frame."""
    import logging

    logging.disable(logging.CRITICAL)
    try:  # AFMReader logs every step through loguru; time the loading, not the terminal
        from loguru import logger

        logger.remove()
    except ImportError:
        pass
    from playnano.io.loader import load_afm_stack

    t0 = time.perf_counter()
    stack = load_afm_stack(Path(path), channel=channel)
    open_s = time.perf_counter() - t0
    means = stack.data.mean(axis=(1, 2))
    pass_s = time.perf_counter() - t0
    return {"open_s": open_s, "pass_s": pass_s, "peak_rss": peak_rss(), "means": means.tolist()}


def measure(python: str, tool: str, path: Path, channel: str) -> dict | None:
    """Run ``tool`` ("afmio" or "playnano") on ``path`` in a fresh ``python`` process."""
    if not Path(python).exists():
        print(f"  {tool}: not run ({python} does not exist; see --playnano-python)")
        return None
    proc = subprocess.run(
        [python, __file__, tool, str(path), channel], capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(f"  {tool}: failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(a: dict | None, b: dict | None) -> str:
    """How far apart two runs' per-frame means are."""
    if not (a and b):
        return ""
    diff = np.abs(np.subtract(a["means"], b["means"])).max()
    return f"  per-frame means agree within {diff:.2e}"


def drop_caches() -> bool:
    """Evict the page cache (needs root on Linux), so that the next read hits the disk."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


if __name__ == "__main__":
    tool, path, channel = sys.argv[1:4]
    run = child_afmio if tool == "afmio" else child_playnano
    print(json.dumps(run(path, channel)))
