"""What a reader hands to the data model: a :class:`Recording` of :class:`ChannelInfo`.

This module knows no format and builds nothing: readers fill these records from headers,
and :mod:`afmio.model` turns them into DataArrays and Datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import AfmIOWarning
from .lazy import FrameSource

#: Canonical (playNano-style) channel names and what they mean.
CANONICAL_LONG_NAMES = {
    "height_trace": "Height",
    "error_trace": "Error signal",
    "phase_trace": "Phase",
}


@dataclass(frozen=True)
class ChannelInfo:
    """One channel of a recording.

    ``name`` is the canonical name (``height_trace``); ``native`` is the file's own
    (``TP``); both are accepted by :func:`afmio.open`. ``warnings`` are raised when the
    channel is opened, e.g. when its values cannot be scaled to physical units.

    ``role`` is ``"data"`` for a channel, ``"layer"`` for a processed layer of a bundle
    (named ``processed__<step>``) and ``"mask"`` for a boolean mask (``masks__<name>``).
    ``dtype``, when set, is the values' type whatever the caller asks (``"bool"`` for
    masks, ``"float32"`` for bundle layers read bit for bit).
    """

    name: str
    native: str
    units: str
    long_name: str
    frames: FrameSource
    warnings: tuple[AfmIOWarning, ...] = ()
    role: str = "data"
    dtype: str | None = None


@dataclass
class Recording:
    """What a reader found in a file: its channels, geometry, times and header.

    Per-frame arrays (``time_s`` and ``frame_coords``) have one entry per frame of the
    longest channel; a shorter channel uses their leading part. ``frame_coords`` may also
    hold ``frame_index``.

    Bundle readers restore what was written: ``default_channel`` names the current data,
    ``attrs`` are its attributes exactly as saved (they replace the ones built from the
    other fields), and ``x_nm``/``y_nm`` the saved pixel-centre coordinates.
    """

    path: str
    format: str
    format_version: str
    size_bytes: int
    channels: tuple[ChannelInfo, ...]
    pixel_size_x_nm: float
    pixel_size_y_nm: float
    time_s: np.ndarray
    frame_coords: dict[str, np.ndarray]
    acquisition: dict[str, Any]
    reader_notes: dict[str, Any] = field(default_factory=dict)
    warnings: list[AfmIOWarning] = field(default_factory=list)
    default_channel: str | None = None
    attrs: dict[str, Any] | None = None
    x_nm: np.ndarray | None = None
    y_nm: np.ndarray | None = None
