"""The ``afmio`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__, demo
from .errors import AfmIOError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afmio",
        description="Lazy reader and exporter for high-speed AFM videos.",
        epilog="Example: afmio demo --out /tmp/afmio-demo",
    )
    parser.add_argument("--version", action="version", version=f"afmio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "demo",
        help="write a synthetic example video and open it lazily",
        description="Write a synthetic two-channel ASD video and open it lazily.",
        epilog="Example: afmio demo --out ./afmio-demo",
    )
    p.add_argument("--out", type=Path, default=Path("afmio-demo"), help="output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            demo.run(args.out, print)
    except AfmIOError as exc:
        print(f"afmio: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
