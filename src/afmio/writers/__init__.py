"""Streaming writers, one module per format, and the registry that lists them.

Writers take a :class:`~afmio.writers._common.BundleContent` built from xarray objects and
never import readers or one another. Adding a format is one module here that defines
``WRITER`` (a :class:`~afmio.writers._common.Writer`) and one line in :data:`WRITERS`.
"""

from __future__ import annotations

from . import gif, hdf5, mp4, npz, ometiff, zarr
from ._common import Writer

__all__ = ["BUNDLES", "RENDERINGS", "WRITERS", "Writer"]

#: Every writer by format name, bundles first, in the order formats are listed.
WRITERS: dict[str, Writer] = {
    w.name: w
    for w in (hdf5.WRITER, npz.WRITER, ometiff.WRITER, zarr.WRITER, gif.WRITER, mp4.WRITER)
}
#: The bundle formats (afmio reads them back) and the renderings (for people).
BUNDLES = tuple(name for name, w in WRITERS.items() if not w.rendering)
RENDERINGS = tuple(name for name, w in WRITERS.items() if w.rendering)
