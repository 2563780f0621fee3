"""Laziness is the product: opening reads headers only, tasks read their own frames by
path, graphs pickle and run in other processes, and no file handle stays open."""

from __future__ import annotations

import os
import struct

import numpy as np
import psutil
import pytest

import afmio

from conftest import bytes_read, compute_in_another_process, random_levels

GIB = 2**30


@pytest.fixture
def big_asd(make_asd):
    """A sparse 1 GiB ASD file: 2048 frames of 512x512 (frame data reads back as zeros)."""
    ny = nx = 512
    stride = 32 + 2 * ny * nx
    n = GIB // stride + 1
    path = make_asd("big.asd", channels={"TP": np.zeros((1, ny, nx), np.int16)})
    with open(path, "r+b") as f:
        (header_size,) = struct.unpack("<i", f.read(8)[4:])
        f.seek(32)
        f.write(struct.pack("<ii", n, n))
        f.truncate(header_size + n * stride)
    assert path.stat().st_size > GIB
    return path, n, stride


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_open_reads_headers_only_and_indexing_reads_one_frame(big_asd):
    path, n, stride = big_asd
    afmio.open(path).afm.frame(0)  # warm up imports and dask's thread pool
    before = bytes_read()
    video = afmio.open(path)
    opened = bytes_read()
    assert opened - before < 2**20
    assert video.shape == (n, 512, 512)
    frame = video[1234].values
    one = bytes_read() - opened
    assert stride - 32 <= one < 2 * stride
    assert frame.shape == (512, 512)
    video.afm.frame(7)
    assert bytes_read() - opened - one < 2 * stride


def test_default_chunks_hold_about_32_mib_of_whole_frames(big_asd):
    path, n, _ = big_asd
    video = afmio.open(path)
    assert video.chunks[1:] == ((512,), (512,))
    assert set(video.chunks[0][:-1]) == {32}  # 32 frames x 1 MiB of float32
    assert sum(video.chunks[0]) == n
    assert afmio.open(path, dtype="float64").chunks[0][0] == 16


def test_user_chunks(make_asd):
    path = make_asd(channels={"TP": random_levels(10, 4, 6)})
    assert afmio.open(path, chunks=3).chunks[0] == (3, 3, 3, 1)
    assert afmio.open(path, chunks={"time": 4}).chunks[0] == (4, 4, 2)
    video = afmio.open(path, chunks={"time": -1, "y": 2})
    assert video.chunks == ((10,), (2, 2), (6,))
    np.testing.assert_array_equal(video.values, afmio.open(path).values)
    with pytest.raises(ValueError, match="positive"):
        afmio.open(path, chunks=0)
    with pytest.raises(ValueError, match="unknown dimension"):
        afmio.open(path, chunks={"channel": 2})


def test_every_indexing_form_matches_numpy(make_asd):
    path = make_asd(channels={"TP": random_levels(9, 5, 6)})
    video = afmio.open(path, chunks=4)
    full = video.values
    for key in [3, -1, slice(2, 7), slice(None, None, 3), slice(8, 1, -2), [0, 5, 2]]:
        np.testing.assert_array_equal(video[key].values, full[key])
    np.testing.assert_array_equal(video[2:5, 1, ::2].values, full[2:5, 1, ::2])
    np.testing.assert_array_equal(video.isel(time=[True] * 4 + [False] * 5).values, full[:4])


def test_no_file_handle_stays_open(make_asd):
    path = make_asd()
    proc = psutil.Process()
    video = afmio.open(path)
    afmio.channels(path)
    afmio.open_dataset(path)
    assert str(path) not in {f.path for f in proc.open_files()}
    video.mean().compute()
    assert str(path) not in {f.path for f in proc.open_files()}


def test_graph_names_follow_the_file_state(make_asd):
    path = make_asd()
    a, b = afmio.open(path), afmio.open(path)
    assert a.data.name == b.data.name
    assert afmio.open(path, chunks=1).data.name != a.data.name
    os.utime(path, ns=(0, 0))
    assert afmio.open(path).data.name != a.data.name


def test_graph_pickles_and_computes_in_another_process(make_asd):
    path = make_asd(channels={"TP": random_levels(6, 5, 7)})
    video = afmio.open(path, chunks=2)
    expected = video.mean(("y", "x")).values
    np.testing.assert_array_equal(compute_in_another_process(video.mean(("y", "x"))), expected)


def test_computes_on_a_distributed_cluster_of_processes(make_asd):
    distributed = pytest.importorskip("distributed")
    path = make_asd(channels={"TP": random_levels(12, 16, 16)})
    video = afmio.open(path, chunks=3)
    expected = video.max(("y", "x")).values
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = client.compute(video.max(("y", "x")).data).result()
    np.testing.assert_array_equal(result, expected)
