"""``python -m afmio`` runs the command line."""

import sys

from .cli import main

# Guarded: worker processes started by dask.distributed import this module again.
if __name__ == "__main__":
    sys.exit(main())
