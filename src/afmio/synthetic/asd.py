"""A small ASD writer for the demo, the tests and the benchmarks.

It produces files of every ASD version (0, 1, 2) with one or two channels, laid
out as ``docs/formats/asd.md#byte-layout`` describes, from raw int16 levels. It streams:
frames come from iterables, so files larger than memory can be written.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

_KIND_CODES = {"TP": 0x5054, "ER": 0x5245, "PH": 0x4850}


def _v1_header(fields: dict, operator: bytes, comment: bytes, version: int, n_frames: int) -> bytes:
    trailer = struct.pack("<i", n_frames) if version == 2 else b""
    size = 165 + len(operator) + len(comment) + len(trailer)
    fixed = struct.pack(
        "<16i?i6i2i3fi12xiIi6f",
        version, size, fields["frame_header_size"], 932, len(operator), len(comment),
        fields["ch1"], fields["ch2"], n_frames, n_frames, 1, 0,
        fields["nx"], fields["ny"], fields["x_range_nm"], fields["y_range_nm"],
        False, 1, *fields["date"], 0, 0,
        fields["frame_time_ms"], fields["sensor_sensitivity"], fields["phase_sensitivity"], 0,
        0, fields["ad_range_code"], fields["ad_bits"],
        fields["x_range_nm"], fields["y_range_nm"], 10.0, 10.0,
        fields["z_piezo_extension"], fields["z_piezo_gain"],
    )  # fmt: skip
    return fixed + operator + comment + trailer


def _v0_header(fields: dict, operator: bytes, comment: bytes, n_frames: int) -> bytes:
    year, month, day, hour, minute, second = fields["date"]
    size = 117 + len(operator) + len(comment)
    fixed = struct.pack(
        "<ihhiiiiihhhhfffIi?ihh6Bff12xiiih",
        0, fields["ch1"], fields["ch2"], size, fields["frame_header_size"], len(operator), 0,
        len(comment), fields["nx"], fields["ny"], fields["x_range_nm"], fields["y_range_nm"],
        fields["frame_time_ms"], fields["z_piezo_extension"], fields["z_piezo_gain"],
        fields["ad_range_code"], fields["ad_bits"], False, 1, 0, year, month, day, hour,
        minute, second, 0, fields["x_range_nm"], fields["y_range_nm"], n_frames, n_frames, 0, 0,
    )  # fmt: skip
    after = struct.pack("<ffi", fields["sensor_sensitivity"], fields["phase_sensitivity"], 1)
    return fixed + operator + after + comment


def write_asd(
    path: str | os.PathLike[str],
    channels: Mapping[str, Iterable[np.ndarray]],
    *,
    n_frames: int,
    shape: tuple[int, int],
    version: int = 1,
    scan_size_nm: tuple[int, int] = (100, 100),
    frame_time_ms: float = 100.0,
    ad_range_code: int = 0x40000,
    ad_bits: int = 12,
    z_piezo_extension: float = 10.0,
    z_piezo_gain: float = 2.0,
    sensor_sensitivity: float = 1.0,
    phase_sensitivity: float = 1.0,
    date: tuple[int, int, int, int, int, int] = (2024, 5, 17, 10, 30, 0),
    operator: str = "afmio",
    comment: str = "",
    frame_header_size: int = 32,
) -> Path:
    """Write an ASD file from raw int16 levels.

    Parameters
    ----------
    path : str or PathLike
        Output file.
    channels : mapping
        One or two of ``"TP"``, ``"ER"``, ``"PH"`` mapped to ``n_frames`` frames of
        ``shape`` int16 levels (an array or any iterable of 2-D arrays), stored in order.
    n_frames : int
        Frames per channel (written into the header counts).
    shape : (int, int)
        ``(y_pixels, x_pixels)``.
    version : {0, 1, 2}
        File version.
    Other parameters are the header fields of the same name.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    kinds = [_KIND_CODES[k.upper()] for k in channels]
    if not 1 <= len(kinds) <= 2:
        raise ValueError("an ASD file holds one or two channels")
    ny, nx = shape
    fields = {
        "ch1": kinds[0], "ch2": kinds[1] if len(kinds) > 1 else 0, "nx": nx, "ny": ny,
        "x_range_nm": scan_size_nm[0], "y_range_nm": scan_size_nm[1], "date": date,
        "frame_time_ms": frame_time_ms, "ad_range_code": ad_range_code, "ad_bits": ad_bits,
        "z_piezo_extension": z_piezo_extension, "z_piezo_gain": z_piezo_gain,
        "sensor_sensitivity": sensor_sensitivity, "phase_sensitivity": phase_sensitivity,
        "frame_header_size": frame_header_size,
    }  # fmt: skip
    name, note = operator.encode("cp932"), comment.encode("cp932")
    if version == 0:
        header = _v0_header(fields, name, note, n_frames)
    elif version in (1, 2):
        header = _v1_header(fields, name, note, version, n_frames)
    else:
        raise ValueError(f"ASD version must be 0, 1 or 2, not {version}")
    path = Path(path)
    with open(path, "wb") as f:
        f.write(header)
        for frames in channels.values():
            written = 0
            for i, frame in enumerate(frames):
                frame = np.asarray(frame)
                if frame.shape != (ny, nx):
                    raise ValueError(f"frame {i} has shape {frame.shape}, expected {(ny, nx)}")
                hdr = struct.pack("<ihhhhff?", i + 1, int(frame.max()), int(frame.min()), 0, 0,
                                  0.0, 0.0, False)  # fmt: skip
                f.write(hdr.ljust(frame_header_size, b"\x00")[:frame_header_size])
                f.write(np.ascontiguousarray(frame, dtype="<i2").tobytes())
                written += 1
            if written != n_frames:
                raise ValueError(f"a channel gave {written} frames, expected {n_frames}")
    return path


def bipolar_levels(
    values: np.ndarray, factor: float, volts: float = 5.0, bits: int = 12
) -> np.ndarray:
    """Invert the ASD bipolar scaling ``(volts - 2*volts*L/2**bits) * factor`` to levels."""
    levels = (volts - np.asarray(values) / factor) * (2**bits) / (2 * volts)
    return np.clip(np.rint(levels), 0, 2**bits - 1).astype("<i2")
