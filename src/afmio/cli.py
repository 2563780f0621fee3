"""The ``afmio`` command line: argument parsing and what is shown; the work is elsewhere
(:mod:`afmio.batch` converts, :mod:`afmio.demo` makes the example)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from . import __version__, batch, demo, readers
from .accessor import _fmt_bytes
from .errors import AfmIOError
from .model import default_channel, frame_interval

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130

MAIN_EXAMPLES = """\
examples:
  afmio demo                              write and open an example video
  afmio info video.asd                    what a file holds, from its headers
  afmio convert *.asd --to h5,tif --out exported/

Run "afmio COMMAND --help" for the options of each command.
"""

INFO_EXAMPLES = """\
examples:
  afmio info video.asd
  afmio info data/*.asd data/jpk_folder/
  afmio info video.asd --json > video.json

Only headers are read, so this is quick even for large files.
exit codes: 0 every path was read, 1 some path could not be read.
"""

CONVERT_EXAMPLES = """\
examples:
  afmio convert video.asd --to h5
  afmio convert data/*.asd --to h5,npz,tif,zarr --out exported/
  afmio convert video.asd --to gif --fps 20 --zmin auto --zmax auto
  afmio convert video.asd --to tif --channel phase_trace
  afmio convert data/*.asd --to h5,gif --workers 4
  afmio convert data/*.asd --to zarr --scheduler tcp://head-node:8786
  afmio convert x.jpk x.h5-jpk --to h5 --name "{stem}{suffix}"   # x.jpk.h5, x.h5-jpk.h5

Outputs are OUT/<stem>.h5, .npz, .ome.tif, .zarr, .gif, .mp4, the stem being that of
the path given (--name makes it another). A file whose outputs all exist is skipped
and only missing outputs are written, so running the same command again resumes an
interrupted batch; --overwrite writes everything again.
exit codes: 0 every file done or skipped, 1 some file failed, 2 bad usage.
"""

DEMO_EXAMPLES = """\
examples:
  afmio demo
  afmio demo --out /tmp/afmio-demo
"""

#: Each command's line in ``afmio --help``, its description and its examples.
COMMANDS = {
    "info": (
        "show what files hold: format, channels, size, timing",
        "Show the format, channels, dims, pixel size, frame interval, duration\n"
        "and size on disk of each file (or folder of one-frame files).",
        INFO_EXAMPLES,
    ),
    "convert": (
        "export files to HDF5, NPZ, OME-TIFF, Zarr, GIF or MP4",
        "Export videos to other formats, with progress bars and a summary\n"
        "table; in parallel on a dask cluster with --workers or --scheduler.",
        CONVERT_EXAMPLES,
    ),
    "demo": (
        "write a synthetic example video, open it and export it",
        "Write a synthetic two-channel ASD video, open it lazily and export\nit to every format.",
        DEMO_EXAMPLES,
    ),
}


def _formats(text: str) -> list[str]:
    try:
        return batch.parse_formats(text)
    except AfmIOError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from exc


def _name(text: str) -> str:
    try:
        return batch.parse_name(text)
    except AfmIOError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from exc


def _level(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="afmio",
        description="Lazy reader and exporter for high-speed AFM videos.",
        epilog=MAIN_EXAMPLES,
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"afmio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {
        name: sub.add_parser(
            name, help=summary, description=text, epilog=epilog, formatter_class=raw
        )
        for name, (summary, text, epilog) in COMMANDS.items()
    }

    p = commands["info"]
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to describe")
    p.add_argument("--json", action="store_true", help="print one JSON list for machines")

    p = commands["convert"]
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to convert")
    p.add_argument(
        "--to",
        required=True,
        type=_formats,
        metavar="FORMATS",
        help=f"comma-separated output formats: {','.join(batch.ALL_FORMATS)}",
    )
    p.add_argument(
        "--channel",
        help="convert this channel only (default: the current data, with a bundle's layers)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="output folder (default: .)"
    )
    p.add_argument(
        "--name",
        type=_name,
        metavar="TEMPLATE",
        help="output name from {stem}, {suffix}, {channel}, {format} (default: {stem}, "
        'or {stem}_{channel} with --channel); "{stem}{suffix}" keeps x.jpk and x.h5-jpk apart',
    )
    p.add_argument("--raw", action="store_true", help="export a bundle's raw layer")
    p.add_argument("--overwrite", action="store_true", help="write outputs that exist again")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=_positive, metavar="N", help="convert N files at once on a local cluster"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="convert on a running dask cluster (tcp://...)"
    )
    # Option errors found after parsing are reported with convert's own usage line.
    p.set_defaults(usage_error=p.error)
    gif = p.add_argument_group("GIF and MP4 options")
    gif.add_argument("--fps", type=float, help="frames per second (default: real timing)")
    gif.add_argument("--cmap", help="matplotlib colour map name (default: afmhot)")
    for end, (where, percentile, extreme, other) in {
        "zmin": ("bottom", "1st", "minimum", "zmax"),
        "zmax": ("top", "99th", "maximum", "zmin"),
    }.items():
        gif.add_argument(
            f"--{end}",
            type=_level,
            help=f"value at the colour map's {where}: a number, or 'auto' ({percentile} "
            f"percentile); default: the {extreme} (of each frame when --{other} is not "
            "given either)",
        )

    p = commands["demo"]
    p.add_argument(
        "--out", type=Path, default=Path("afmio-demo"), metavar="DIR", help="output folder"
    )
    return parser


# --- afmio info ------------------------------------------------------------------------


def _number(x: float) -> float | None:
    """JSON-safe: NaN and infinities become null."""
    return float(x) if math.isfinite(x) else None


def describe(path: str) -> dict[str, Any]:
    """What ``afmio info`` reports about ``path``, JSON-safe, from its headers only."""
    rec = readers.read(path)
    current = default_channel(rec)
    n, ny, nx = current.frames.shape
    interval = frame_interval(rec.time_s[:n], rec.frame_coords.get("frame_duration_s"))
    data = [ch for ch in rec.channels if ch.role == "data"]
    found = [*rec.warnings, *(w for ch in data for w in ch.warnings)]
    return {
        "path": str(path),
        "format": rec.format,
        "format_version": rec.format_version,
        "channels": [{"name": c.name, "native": c.native, "units": c.units} for c in data],
        "layers": [c.name for c in rec.channels if c.role == "layer"],
        "masks": [c.name for c in rec.channels if c.role == "mask"],
        "dims": {"time": int(n), "y": int(ny), "x": int(nx)},
        "pixel_size_nm": {"x": _number(rec.pixel_size_x_nm), "y": _number(rec.pixel_size_y_nm)},
        "frame_interval_s": _number(interval),
        "duration_s": _number(interval * n),
        "size_bytes": int(rec.size_bytes),
        "warnings": [str(w) for w in found],
    }


def _g(x: float | None, unit: str = "") -> str:
    return "unknown" if x is None else f"{x:.6g}{unit}"


def _info_text(d: dict[str, Any]) -> str:
    px, dims = d["pixel_size_nm"], d["dims"]
    version = f" v{d['format_version']}" if d["format_version"] else ""
    channels = ", ".join(f"{c['name']} ({c['native']}, {c['units']})" for c in d["channels"])
    dt = d["frame_interval_s"]
    rate = f" ({1 / dt:.3g} frames/s)" if dt else ""
    scan = ""
    if px["x"] is not None and px["y"] is not None:
        scan = f"; scan {px['x'] * dims['x']:.6g} x {px['y'] * dims['y']:.6g} nm"
    lines = [
        d["path"],
        f"  format      {d['format']}{version}",
        f"  channels    {channels}",
        *([f"  layers      {', '.join(d['layers'])}"] if d["layers"] else []),
        *([f"  masks       {', '.join(d['masks'])}"] if d["masks"] else []),
        f"  dims        time: {dims['time']}, y: {dims['y']}, x: {dims['x']}",
        f"  pixel size  {_g(px['x'], ' nm')} (x), {_g(px['y'], ' nm')} (y){scan}",
        f"  frame time  {_g(dt, ' s')}{rate}",
        f"  duration    {_g(d['duration_s'], ' s')}",
        f"  size        {_fmt_bytes(d['size_bytes'])} ({d['size_bytes']:,} bytes)",
        *(f"  warning     {w}" for w in d["warnings"]),
    ]
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> int:
    found, code = [], EXIT_OK
    for path in args.paths:
        try:
            found.append(describe(path))
        except Exception as exc:  # one bad path never stops the others
            error = batch.error_line(exc, path)
            print(f"afmio: error: {error}", file=sys.stderr)
            found.append({"path": str(path), "error": error})
            code = EXIT_FAILED
            continue
        if not args.json:
            print(_info_text(found[-1]), flush=True)
    if args.json:
        print(json.dumps(found, indent=2))
    return code


# --- afmio convert ---------------------------------------------------------------------


class Bars:
    """Progress bars for a batch: one for the files and one per file being converted
    (frames written, summed over its formats). Errors and warnings are written between
    the bars, one line each, as soon as a file ends."""

    def __init__(self, n_files: int, file: TextIO | None = None) -> None:
        self.file = file or sys.stderr
        # disable=None: no bars when the output is not a terminal (logs, pipes).
        self.kw = {"file": self.file, "disable": None, "dynamic_ncols": True, "leave": False}
        self.files = tqdm(total=n_files, desc="files", unit="file", **self.kw)
        self.bars: dict[int, tqdm] = {}
        self.done: dict[int, dict[str, tuple[int, int]]] = {}

    def __call__(self, event: batch.Event) -> None:
        name = Path(event.path).name
        if event.kind == "start":
            self._close(event.index)  # a rerun after its worker died starts over
            self.done[event.index] = {f: (0, event.total) for f in event.todo}
            total = event.total * len(event.todo)
            self.bars[event.index] = tqdm(total=total, desc=name, unit="frame", **self.kw)
        elif event.kind == "frames" and event.index in self.bars:
            bar, done = self.bars[event.index], self.done[event.index]
            done[event.format] = (event.done, event.total)
            bar.total = sum(t for _, t in done.values())
            bar.set_description(f"{name} {event.format}", refresh=False)
            bar.update(sum(d for d, _ in done.values()) - bar.n)
        elif event.kind == "end":
            self._close(event.index)
            self.files.update(1)
            result = event.result
            for w in result.warnings:
                tqdm.write(f"afmio: warning: {w}", file=self.file)
            if result.error:
                tqdm.write(f"afmio: error: {result.error}", file=self.file)

    def _close(self, index: int) -> None:
        bar = self.bars.pop(index, None)
        if bar is not None:
            bar.close()

    def close(self) -> None:
        for index in list(self.bars):
            self._close(index)
        self.files.close()


def _formats_cell(r: batch.Result) -> str:
    """The formats written, then those kept and those that failed, in parentheses: a
    group alone (every output kept, or every one failed) goes without them."""
    failed = [f for f in r.targets if f not in r.written and f not in r.kept]
    groups = [(label, fs) for label, fs in (("kept", r.kept), ("failed", failed)) if fs]
    if not r.written and len(groups) <= 1:
        return " ".join(r.kept or failed) or "-"
    return " ".join([*r.written, *(f"({label} {' '.join(fs)})" for label, fs in groups)])


def summary_table(results: list[batch.Result], seconds: float) -> str:
    """The table printed after a conversion: one row per file, then the totals."""
    rows = [("file", "formats", "status", "size", "time")]
    for r in results:
        size = _fmt_bytes(r.size_bytes) if r.size_bytes else "-"
        rows.append((r.path, _formats_cell(r), r.status, size, f"{r.seconds:.1f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(
            cell.rjust(w) if i >= 3 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    lines.append(
        f"{len(results)} file{'s' if len(results) != 1 else ''}: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f" in {seconds:.1f} s"
    )
    return "\n".join(lines)


def _convert(args: argparse.Namespace) -> int:
    render = {
        k: getattr(args, k) for k in ("fps", "cmap", "zmin", "zmax") if getattr(args, k) is not None
    }
    t0 = time.perf_counter()
    try:
        with batch.cluster(args.workers, args.scheduler) as client:
            bars = Bars(len(args.paths))
            try:
                results = batch.convert(
                    args.paths,
                    args.to,
                    args.out,
                    channel=args.channel,
                    raw=args.raw,
                    name=args.name,
                    overwrite=args.overwrite,
                    render=render,
                    client=client,
                    progress=bars,
                )
            finally:
                bars.close()
    except batch.NameTemplateError as exc:  # two inputs named alike: nothing was converted
        args.usage_error(str(exc))
    except (ImportError, OSError) as exc:  # no dask.distributed, or no scheduler there
        print(f"afmio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(summary_table(results, time.perf_counter() - t0))
    return EXIT_FAILED if any(r.status == "failed" for r in results) else EXIT_OK


# --- afmio demo ------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    results = demo.run(args.out, print)
    for r in results:
        if r.error:
            print(f"afmio: error: {r.error}", file=sys.stderr)
    return EXIT_FAILED if any(r.status == "failed" for r in results) else EXIT_OK


def _check_render_options(args: argparse.Namespace) -> None:
    """Refuse bad GIF/MP4 options before any file is touched (and before a cluster would
    retry them on every file)."""
    levels = (args.zmin, args.zmax)
    if all(isinstance(z, float) for z in levels) and args.zmin >= args.zmax:
        args.usage_error(f"--zmin {args.zmin:g} must be below --zmax {args.zmax:g}")
    if args.cmap is not None:
        from matplotlib import colormaps

        if args.cmap not in colormaps:
            args.usage_error(f"--cmap {args.cmap!r} is not a matplotlib colour map")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "convert":
        _check_render_options(args)
    command = {"info": _info, "convert": _convert, "demo": _demo}[args.command]
    try:
        return command(args)
    except AfmIOError as exc:
        print(f"afmio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("afmio: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
