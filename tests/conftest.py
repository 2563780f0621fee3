"""Shared fixtures: the real sample files, an ASD file factory, the video and processed
Dataset the bundle tests export, a playNano stack, and a guard against tests that leave
files open."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import cloudpickle
import numpy as np
import psutil
import pytest
import xarray as xr
from playnano.afm_stack import AFMImageStack

import afmio
from afmio.model import CHANNEL_ATTRS
from afmio.synthetic import write_asd

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AFMIO_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def data_dir() -> Path:
    """The folder of real instrument files (``AFMIO_TEST_DATA``, default ../shared/data)."""
    if not DATA.is_dir():
        pytest.skip(f"real sample files not found at {DATA}; set AFMIO_TEST_DATA to their folder")
    return DATA


@pytest.fixture(autouse=True)
def _no_leaked_file_handles(tmp_path):
    """Fail any test that leaves a data file open (afmio must close what it opens)."""
    proc = psutil.Process()
    before = {f.path for f in proc.open_files()}
    yield
    watched = (str(tmp_path), str(DATA))
    leaked = {
        f.path for f in proc.open_files() if f.path not in before and f.path.startswith(watched)
    }
    assert not leaked, f"files left open: {sorted(leaked)}"


def random_levels(n: int, ny: int, nx: int, seed: int = 0) -> np.ndarray:
    """Random 12-bit ADC levels."""
    return np.random.default_rng(seed).integers(0, 4096, (n, ny, nx), dtype=np.int16)


@pytest.fixture
def make_asd(tmp_path):
    """Write an ASD file from levels: ``make_asd(name, {"TP": levels}, **header)``."""

    def make(name: str = "video.asd", channels=None, **kwargs) -> Path:
        if channels is None:
            channels = {"TP": random_levels(4, 6, 8)}
        first = next(iter(channels.values()))
        kwargs.setdefault("n_frames", len(first))
        kwargs.setdefault("shape", first.shape[1:])
        return write_asd(tmp_path / name, channels, **kwargs)

    return make


@pytest.fixture
def video(make_asd) -> xr.DataArray:
    """7 frames of 12 x 10 pixels, 0.125 s apart, non-square pixels, in chunks of 3."""
    path = make_asd(channels={"TP": random_levels(7, 12, 10)}, frame_time_ms=125.0)
    return afmio.open(path, chunks=3)


def as_dataset(video: xr.DataArray) -> xr.Dataset:
    """``video`` as open_dataset shapes it: the shared attrs on the Dataset, the channel's
    own on its variable, ``attrs["channel"]`` naming the current data."""
    own = {k: video.attrs[k] for k in CHANNEL_ATTRS}
    shared = {k: v for k, v in video.attrs.items() if k not in CHANNEL_ATTRS}
    current = video.copy()
    current.attrs = own
    return current.to_dataset().assign_attrs(shared, channel=video.name)


@pytest.fixture
def processed(video) -> xr.Dataset:
    """A Dataset with a raw layer, a levelled current data and a mask, as playNano keeps."""
    levelled = video.copy(data=(video - video.mean(("y", "x"))).astype("float32").data)
    ds = as_dataset(levelled).afm.with_layer("raw", video).afm.with_layer("level", levelled)
    return ds.afm.with_mask("high", levelled > 0)


def playnano_stack(n: int = 5, ny: int = 6, nx: int = 8) -> AFMImageStack:
    """A playNano stack with two processed layers, a mask and acquisition metadata."""
    data = np.random.default_rng(1).normal(size=(n, ny, nx)).astype(np.float32)
    meta = [
        {
            "timestamp": 0.25 * i,
            "frame_pixel_size_nm": 2.5,
            "frame_duration_s": 0.25,
            "start_epoch_ms": 1.7e12 + 250.0 * i,
            "scan_direction": "up" if i % 2 else "down",
            "line_rate": 24.0,
        }
        for i in range(n)
    ]
    stack = AFMImageStack(data.copy(), 2.5, "height_trace", Path("clip.asd"), meta)
    level = data - data.mean(axis=(1, 2), keepdims=True)
    stack.processed["raw"] = data
    stack.processed["level"] = level
    stack.masks["high"] = level > 0
    stack.provenance["acquisition"] = {"operator": "playNano", "scan_rate_hz": 24.0}
    stack.state_backups = {"note": "kept"}
    return stack


def bytes_read() -> int:
    """Bytes this process has passed through read() calls so far (Linux ``rchar``)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def fails_cleanly(path, error, match, max_bytes: int = 4 * 2**20):
    """Open ``path``: it must raise ``error`` naming the file, within 1 s, allocating little."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(error, match=match) as info:
            afmio.open(path)
    finally:
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert isinstance(info.value, afmio.AfmIOError)
    assert Path(path).name in str(info.value)
    assert elapsed < 1.0
    assert peak < max_bytes
    return info.value


def compute_in_another_process(lazy) -> np.ndarray:
    """Pickle a lazy array with cloudpickle, compute it in a fresh Python, return the result."""
    code = (
        "import sys, cloudpickle, numpy as np\n"
        "obj = cloudpickle.loads(sys.stdin.buffer.read())\n"
        "out = np.asarray(obj.compute(scheduler='threads'))\n"
        "sys.stdout.buffer.write(out.dtype.str.encode().ljust(8) + out.tobytes())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=cloudpickle.dumps(lazy),
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    return np.frombuffer(out[8:], dtype=out[:8].decode().strip())
