"""Synthetic AFM scenes: frames in physical units, generated one at a time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def diffusing_particles(
    n_frames: int = 300,
    size: int = 128,
    *,
    scan_nm: float = 100.0,
    n_particles: int = 6,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(height_nm, phase_deg)`` frames of particles diffusing on a tilted surface.

    The surface has a plane tilt, slow drift and measurement noise; each particle is a
    Gaussian bump 2-6 nm high taking a random walk, with a small phase contrast.
    """
    rng = np.random.default_rng(seed)
    coords = (np.arange(size) + 0.5) * (scan_nm / size)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    tilt = 0.04 * xx + 0.02 * yy
    pos = rng.uniform(0.15 * scan_nm, 0.85 * scan_nm, (n_particles, 2))
    height = rng.uniform(2.0, 6.0, n_particles)
    radius = rng.uniform(2.5, 5.0, n_particles)
    for t in range(n_frames):
        pos = np.clip(pos + rng.normal(0.0, 0.6, pos.shape), 0, scan_nm)
        bumps = np.zeros((size, size))
        for (py, px), h, r in zip(pos, height, radius, strict=True):
            bumps += h * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * r**2))
        z = tilt + bumps + 0.3 * np.sin(t / 25.0) + rng.normal(0.0, 0.15, (size, size))
        phase = -0.4 * bumps + rng.normal(0.0, 0.05, (size, size))
        yield z, phase
