"""afmio: lazy, chunked xarray/dask access to high-speed AFM videos."""

from importlib.metadata import PackageNotFoundError, version

from . import accessor as _accessor  # noqa: F401  (registers the ``.afm`` accessor)
from .api import channels, formats, open, open_dataset
from .errors import (
    AfmFileExistsError,
    AfmFileNotFoundError,
    AfmIOError,
    AfmIOWarning,
    AfmNoSpaceError,
    AfmOSError,
    ChannelNotFoundError,
    CorruptFileError,
    TruncatedFileWarning,
    UnsupportedFormatError,
)
from .export import (
    export_bundles,
    export_gif,
    export_mp4,
    load_h5_bundle,
    load_npz_bundle,
    load_ome_tiff_stack,
    load_zarr,
    save_h5_bundle,
    save_npz_bundle,
    save_ome_tiff_stack,
    save_zarr,
)
from .playnano import load_afm_stack

try:
    __version__ = version("afmio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AfmFileExistsError",
    "AfmFileNotFoundError",
    "AfmIOError",
    "AfmIOWarning",
    "AfmNoSpaceError",
    "AfmOSError",
    "ChannelNotFoundError",
    "CorruptFileError",
    "TruncatedFileWarning",
    "UnsupportedFormatError",
    "__version__",
    "channels",
    "export_bundles",
    "export_gif",
    "export_mp4",
    "formats",
    "load_afm_stack",
    "load_h5_bundle",
    "load_npz_bundle",
    "load_ome_tiff_stack",
    "load_zarr",
    "open",
    "open_dataset",
    "save_h5_bundle",
    "save_npz_bundle",
    "save_ome_tiff_stack",
    "save_zarr",
]
