"""The built-in example: write a synthetic two-channel ASD video, open it lazily, and
export it to every format."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from . import batch
from .api import channels, open
from .synthetic import bipolar_levels, diffusing_particles, write_asd
from .writers import BUNDLES

N_FRAMES = 300
SIZE = 128
FRAME_TIME_MS = 100.0
Z_GAIN, Z_EXTENSION = 2.0, 10.0  # 20 nm/V: +-100 nm over the +-5 V range
PHASE_SENSITIVITY = 1.0  # deg/V


def make_example(path: Path) -> Path:
    """Write the example video: 300 frames of 128x128, height (TP) and phase (PH)."""

    def frames(which: int):
        for pair in diffusing_particles(N_FRAMES, SIZE, seed=7):
            factor = Z_GAIN * Z_EXTENSION if which == 0 else -PHASE_SENSITIVITY
            yield bipolar_levels(pair[which], factor)

    return write_asd(
        path,
        {"TP": frames(0), "PH": frames(1)},
        n_frames=N_FRAMES,
        shape=(SIZE, SIZE),
        scan_size_nm=(100, 100),
        frame_time_ms=FRAME_TIME_MS,
        z_piezo_gain=Z_GAIN,
        z_piezo_extension=Z_EXTENSION,
        phase_sensitivity=PHASE_SENSITIVITY,
        comment="afmio synthetic example: particles diffusing on a tilted surface",
    )


def run(out_dir: Path, report: Callable[[str], None]) -> list[batch.Result]:
    """Make the example in ``out_dir``, open it lazily, export it to every format and
    report what was done; returns the export's results (one per file: the example)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "example.asd"
    t0 = time.perf_counter()
    make_example(path)
    size_mib = path.stat().st_size / 2**20
    report(f"wrote {path} ({size_mib:.1f} MiB) in {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    video = open(path)
    opened = time.perf_counter() - t0
    report(f"opened it lazily in {opened * 1000:.1f} ms (headers only, no frame read)")
    report(f"channels: {', '.join(channels(path))}")
    report(video.afm.summary())
    for i in (0, N_FRAMES - 1):
        t0 = time.perf_counter()
        frame = video.afm.frame(i)
        report(
            f"frame {i} read on demand in {(time.perf_counter() - t0) * 1000:.1f} ms: "
            f"heights {frame.min():.2f} to {frame.max():.2f} nm"
        )
    # The example is rewritten on every run, so its exports are too.
    results = batch.convert([path], [*BUNDLES, "gif"], out_dir, overwrite=True)
    report(f"exported it in {results[0].seconds:.2f} s:")
    for target in results[0].targets.values():
        if Path(target).exists():
            report(f"  {target} ({batch.output_size(target) / 2**20:.1f} MiB)")
    return results
