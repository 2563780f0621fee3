"""afmio: lazy, chunked xarray/dask access to high-speed AFM videos."""

from importlib.metadata import PackageNotFoundError, version

from . import accessor as _accessor  # noqa: F401  (registers the ``.afm`` accessor)
from .api import channels, formats, load_afm_stack, open, open_dataset
from .errors import (
    AfmFileNotFoundError,
    AfmIOError,
    AfmIOWarning,
    AfmOSError,
    ChannelNotFoundError,
    CorruptFileError,
    TruncatedFileWarning,
    UnsupportedFormatError,
)

try:
    __version__ = version("afmio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AfmFileNotFoundError",
    "AfmIOError",
    "AfmIOWarning",
    "AfmOSError",
    "ChannelNotFoundError",
    "CorruptFileError",
    "TruncatedFileWarning",
    "UnsupportedFormatError",
    "__version__",
    "channels",
    "formats",
    "load_afm_stack",
    "open",
    "open_dataset",
]
