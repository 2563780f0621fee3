"""Synthetic AFM videos and small writers of instrument formats.

Used by ``afmio demo``, the test suite and the benchmarks to make files of every format
afmio reads, with known content, at any size (frames are streamed, never held whole).
One module per format (``afmio.synthetic.asd`` ...); scenes live in ``scenes``.
"""

from .asd import bipolar_levels, write_asd
from .h5jpk import write_h5jpk
from .jpk import JpkChannel, write_jpk
from .nanoscope import NanoscopeImage, write_nanoscope
from .scenes import diffusing_particles

__all__ = [
    "JpkChannel",
    "NanoscopeImage",
    "bipolar_levels",
    "diffusing_particles",
    "write_asd",
    "write_h5jpk",
    "write_jpk",
    "write_nanoscope",
]
