"""Batch conversion: many files to several formats, here or on a dask.distributed cluster.

The unit of work is one file converted to its missing formats (:func:`convert_one`). A
file whose outputs all exist is skipped, so an interrupted batch resumes where it
stopped; each output is written to a temporary file and renamed when complete, so an
output that exists is complete. On a cluster each file is one task; when a worker dies
the scheduler runs its task again on another worker, which writes the outputs still
missing. Nothing here prints: progress and results travel through :class:`Event`
callbacks.
"""

from __future__ import annotations

import os
import string
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import xarray as xr

from . import export, readers
from .errors import AfmIOError, AfmIOWarning, AfmOSError, UnsupportedFormatError
from .model import build_dataarray, build_dataset
from .recording import Recording
from .render import RenderOptions
from .writers import WRITERS
from .writers._target import _remove, stale_temps

if TYPE_CHECKING:
    from distributed import Client

PathLike = str | os.PathLike[str]

#: Every format :func:`convert` writes: those of :data:`afmio.writers.WRITERS`.
ALL_FORMATS = tuple(WRITERS)

FLOAT32 = np.dtype("float32")
#: The placeholders of an output name template (see :func:`plan`).
NAME_FIELDS = ("stem", "suffix", "channel", "format")
#: Extensions of the formats afmio reads, longest first: ``x.ome.tif`` has stem ``x``.
_EXTENSIONS = sorted({e for f in readers.formats() for e in f.extensions}, key=len, reverse=True)
#: Seconds between two progress events of one file sent from a worker.
EVENT_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Job:
    """One file to convert: where it is, what to read, and every output it should have.

    ``path`` is as given (for reports); ``source`` and the targets are absolute, so that
    workers started in another folder, or on another machine sharing the file system,
    find them.
    """

    index: int
    path: str
    source: str
    targets: dict[str, str]  # format -> output path
    n_frames: int
    channel: str | None = None
    raw: bool = False
    #: The headers :func:`plan` parsed, so that the file is not parsed again.
    recording: Recording | None = field(default=None, repr=False, compare=False)


@dataclass
class Result:
    """What became of one file.

    ``status`` is ``"done"`` (some outputs written), ``"skipped"`` (every output existed)
    or ``"failed"`` (``error`` says why, in one line naming the file). ``written`` and
    ``kept`` list the formats written now and those that already existed; ``size_bytes``
    is the total size of the outputs present and ``seconds`` the time spent converting.
    """

    index: int
    path: str
    status: str
    targets: dict[str, str] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    size_bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Event:
    """Progress of a batch, for progress bars.

    - ``"start"``: file ``index`` starts; ``todo`` lists the formats it will write, each
      ``total`` frames. On a cluster a file starts again if its worker died.
    - ``"frames"``: ``done`` of ``total`` frames of ``format`` written.
    - ``"end"``: the file is finished; ``result`` says how. No event follows for it.
    """

    kind: str
    index: int
    path: str
    format: str | None = None
    done: int = 0
    total: int = 0
    todo: tuple[str, ...] = ()
    result: Result | None = None


Report = Callable[[Event], None]


class NameTemplateError(AfmIOError, ValueError):
    """An output name template is unusable: an unknown placeholder, or two inputs of one
    batch that it names alike (``path`` is then the second). Raised before anything is
    read or written."""


def parse_name(template: str | None, channel: str | None = None) -> str:
    """Check an output name template; ``None`` gives the default, ``"{stem}"``, or
    ``"{stem}_{channel}"`` when converting one ``channel``.

    Raises
    ------
    NameTemplateError
        If the template is empty, names a folder, or uses a placeholder other than
        those of :data:`NAME_FIELDS` (or is not a valid format string).
    """
    if template is None:
        return "{stem}" if channel is None else "{stem}_{channel}"
    if not template or "/" in template or os.sep in template:
        raise NameTemplateError(None, f"name {template!r} must be a file name, not empty or a path")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        bad = [f for f in fields if f not in NAME_FIELDS]
        if not bad:
            template.format(**dict.fromkeys(NAME_FIELDS, "x"))
    except ValueError as exc:  # unbalanced braces, a bad format spec
        raise NameTemplateError(None, f"name {template!r} is not a valid template: {exc}") from None
    if bad:
        raise NameTemplateError(
            None,
            f"name {template!r} has unknown placeholder {', '.join('{' + f + '}' for f in bad)}; "
            f"use {', '.join('{' + f + '}' for f in NAME_FIELDS)}",
        )
    return template


def split_name(path: PathLike) -> tuple[str, str]:
    """The name of ``path`` as given (not of a symlink's target) as ``(stem, suffix)``: the
    suffix is the extension of a format afmio reads when the name ends with one
    (``.ome.tif``, ``.h5-jpk``), else the last one; a folder's is usually empty."""
    name = Path(os.path.abspath(path)).name  # "." and "dir/" have the folder's name
    lower = name.lower()
    end = next((e for e in _EXTENSIONS if lower.endswith(e) and len(e) < len(name)), None)
    if end is None:
        stem, suffix = Path(name).stem, Path(name).suffix
    else:
        stem, suffix = name[: -len(end)], name[-len(end) :]
    return stem, suffix


def parse_formats(text: str | Iterable[str]) -> list[str]:
    """``"h5,npz"`` or ``["h5", "npz"]`` as a list of known formats, without repeats.

    Raises
    ------
    afmio.UnsupportedFormatError
        If a format is unknown.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    formats = list(dict.fromkeys(f.strip().lower() for f in items if f.strip()))
    bad = [f for f in formats if f not in ALL_FORMATS]
    if bad or not formats:
        raise UnsupportedFormatError(
            None,
            f"cannot convert to {', '.join(map(repr, bad)) or 'nothing'}; "
            f"choose from {', '.join(ALL_FORMATS)}",
        )
    return formats


def open_source(rec: Recording, channel: str | None = None) -> xr.DataArray | xr.Dataset:
    """Open a file's parsed headers lazily as a conversion reads them: ``channel`` alone
    when given, else the current data, with its processed layers and masks when the file
    has any."""
    if channel is None and any(ch.role != "data" for ch in rec.channels):
        return build_dataset(rec, FLOAT32, None)
    return build_dataarray(rec, channel, FLOAT32, None)


def plan(
    path: PathLike,
    formats: Sequence[str],
    out_dir: PathLike,
    *,
    channel: str | None = None,
    raw: bool = False,
    name: str | None = None,
    index: int = 0,
) -> Job:
    """Work out the outputs of ``path`` (``<out_dir>/<name><suffix>``), reading headers only.

    ``name`` is a template (checked by :func:`parse_name`) with the placeholders
    ``{stem}`` and ``{suffix}``, the name of ``path`` as given split at its extension
    (``run7`` and ``.asd``; a symlink's target is not looked at), ``{channel}``, the
    canonical name of the channel converted (the current data's without ``channel``), and
    ``{format}`` (``h5``, ``tif``...). ``_filtered`` is added when the current data is a
    processed layer other than ``raw`` (see :func:`afmio.export.with_filtered`).
    """
    with warnings.catch_warnings():
        # Reported once, by convert_one, when the frames are actually read.
        warnings.simplefilter("ignore", AfmIOWarning)
        rec = readers.read(path)
        obj = open_source(rec, channel)
    stem, suffix = split_name(path)
    fields = {"stem": stem, "suffix": suffix, "channel": obj.attrs.get("channel", channel)}
    template = parse_name(name, channel)
    folder = Path(out_dir).absolute()
    targets = {}
    for f in formats:
        base = export.with_filtered(obj, template.format(**fields, format=f), raw)
        targets[f] = str(folder / (base + WRITERS[f].suffix))
    source = str(Path(path).absolute())
    n = int(obj.sizes["time"])
    return Job(index, str(path), source, targets, n, channel, raw, recording=rec)


def output_size(path: PathLike) -> int:
    """Bytes of an output file, or of every file in an output folder (a Zarr store)."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


def remove_stale_temps(target: PathLike) -> list[Path]:
    """Remove what killed writers left beside ``target``; returns what was removed.

    Writers write ``.<name>.<writer>-<random>.afmio-tmp`` beside the target and rename it
    when complete; replacing a Zarr store moves the old one to ``...afmio-old`` first. A
    process killed meanwhile leaves these behind. ``<writer>`` names the machine, boot
    and process: a file is removed only if that process is gone, never while it may
    still be writing. Names without a writer (``.<name>.<random>.afmio-tmp``, from afmio
    0.1.0) are removed too: a batch never writes one target from two tasks at once (see
    :func:`convert`).
    """
    stale = stale_temps(target, legacy=True)
    for s in stale:
        _remove(s)
    return stale


def _write(fmt: str, target: str, obj: Any, raw: bool, render: Mapping[str, Any], progress):
    options = {"render": RenderOptions(**render)} if WRITERS[fmt].rendering else {}
    # overwrite=True: the caller has decided to write this target; the writer still
    # replaces it only once the new file is complete.
    return export.write(fmt, obj, target, raw=raw, overwrite=True, progress=progress, **options)


def convert_one(
    job: Job,
    *,
    overwrite: bool = False,
    render: Mapping[str, Any] | None = None,
    report: Report | None = None,
) -> Result:
    """Write the outputs of ``job`` that are missing (all of them with ``overwrite``).

    An :class:`~afmio.AfmIOError` (bad input) is returned as a failed :class:`Result`;
    any other exception propagates, so that a cluster can retry the task.
    """
    report = report or (lambda event: None)
    t0 = time.perf_counter()
    targets = job.targets
    todo = [f for f, t in targets.items() if overwrite or not Path(t).exists()]
    result = Result(job.index, job.path, "skipped", dict(targets))
    result.kept = [f for f in targets if f not in todo]
    report(Event("start", job.index, job.path, total=job.n_frames, todo=tuple(todo)))
    errors: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AfmIOWarning)
        try:
            rec = (job.recording or readers.read(job.source)) if todo else None
            obj = open_source(rec, job.channel) if rec else None
        except AfmIOError as exc:
            errors.append(error_line(exc, job.path))
            todo = []
        for fmt in todo:  # a format that fails does not stop the others

            def progress(done: int, total: int, fmt: str = fmt) -> None:
                report(Event("frames", job.index, job.path, fmt, done, total))

            remove_stale_temps(targets[fmt])
            try:
                _write(fmt, targets[fmt], obj, job.raw, render or {}, progress)
            except AfmIOError as exc:
                errors.append(error_line(exc, job.path))
                continue
            result.written.append(fmt)
    result.error = "; ".join(dict.fromkeys(errors)) or None
    for w in caught:
        if issubclass(w.category, AfmIOWarning):
            result.warnings.append(str(w.message))
        else:  # not ours to judge: pass it on as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    result.status = "failed" if result.error else "done" if result.written else "skipped"
    result.size_bytes = sum(output_size(t) for t in targets.values())
    result.seconds = time.perf_counter() - t0
    return result


def error_line(error: BaseException, path: str) -> str:
    """One line naming ``path``: an afmio error's message, or any other's type and text."""
    if isinstance(error, AfmIOError):
        text = str(error) if error.path else f"{path}: {error}"
    else:  # unexpected: its type tells more than its text
        text = f"{path}: {type(error).__name__}: {error}"
    return " ".join(text.split())


def _failed(job_or_index: Job | int, path: str, error: BaseException) -> Result:
    index = job_or_index.index if isinstance(job_or_index, Job) else job_or_index
    text = error_line(error, path)
    targets = job_or_index.targets if isinstance(job_or_index, Job) else {}
    size = sum(output_size(t) for t in targets.values())
    return Result(index, path, "failed", dict(targets), size_bytes=size, error=text)


def _run_on_worker(job: Job, overwrite: bool, render: Mapping[str, Any], topic: str) -> Result:
    """The cluster task: convert one file, sending throttled progress events to the client."""
    from distributed import get_worker

    worker = get_worker()
    last = 0.0

    def report(event: Event) -> None:
        nonlocal last
        now = time.monotonic()
        if event.kind == "frames" and event.done < event.total and now - last < EVENT_INTERVAL_S:
            return
        last = now
        msg = asdict(event)
        del msg["result"]  # always None here; events carry plain values (msgpack)
        worker.log_event(topic, {**msg, "todo": list(event.todo)})

    # Writers compute chunk by chunk; doing that on the worker's own threads (not by
    # submitting to the cluster from inside a task) cannot deadlock the cluster.
    with dask.config.set(scheduler="threads"):
        return convert_one(job, overwrite=overwrite, render=render, report=report)


def convert(
    paths: Iterable[PathLike],
    formats: str | Iterable[str],
    out_dir: PathLike = ".",
    *,
    channel: str | None = None,
    raw: bool = False,
    name: str | None = None,
    overwrite: bool = False,
    render: Mapping[str, Any] | None = None,
    client: Client | None = None,
    retries: int = 2,
    progress: Report | None = None,
) -> list[Result]:
    """Convert every file of ``paths`` to each of ``formats`` in ``out_dir``.

    Outputs are ``<out_dir>/<name><suffix>`` (see :func:`plan`). A file whose outputs
    all exist is skipped, and only the missing outputs of the others are written, unless
    ``overwrite``. One failing file never stops the others.

    Parameters
    ----------
    paths : iterable of str or PathLike
        Files (or folders of one-frame files) afmio reads.
    formats : str or iterable of str
        Among ``h5``, ``npz``, ``tif``, ``zarr``, ``gif``, ``mp4``; ``"h5,npz"`` works.
    out_dir : str or PathLike
        Output folder, made if missing.
    channel : str, optional
        Convert this channel only (the name then ends with it); default: the current
        data with its processed layers and masks.
    raw : bool
        Export the ``raw`` processed layer instead of the current data.
    name : str, optional
        Output name template with the placeholders ``{stem}``, ``{suffix}``,
        ``{channel}`` and ``{format}`` (see :func:`plan`); default ``"{stem}"``, or
        ``"{stem}_{channel}"`` with ``channel``. ``"{stem}{suffix}"`` tells ``x.jpk`` and
        ``x.h5-jpk`` apart.
    overwrite : bool
        Write every output again, even those that exist.
    render : mapping, optional
        Keyword arguments of :func:`afmio.export.export_gif` / ``export_mp4`` (``fps``,
        ``cmap``, ``zmin``, ``zmax``...), used for ``gif`` and ``mp4`` only.
    client : distributed.Client, optional
        Run each file as one task on this cluster (retried ``retries`` times if it
        raises something other than an afmio error; rerun by the scheduler if its
        worker dies). Default: one file after the other in this process.
    progress : callable, optional
        Called with each :class:`Event` (from the client's event thread on a cluster).

    Returns
    -------
    list of Result
        One per path, in the order given.

    Raises
    ------
    afmio.UnsupportedFormatError
        If a format is unknown (before anything is read).
    NameTemplateError
        If ``name`` is unusable (before anything is read), or names two inputs' outputs
        alike (after reading headers only; nothing is written then).
    """
    formats = parse_formats(formats)
    name = parse_name(name, channel)
    emit = _Emitter(progress)
    results: dict[int, Result] = {}
    planned: list[Job] = []
    for i, path in enumerate(map(str, paths)):
        try:
            planned.append(
                plan(path, formats, out_dir, channel=channel, raw=raw, name=name, index=i)
            )
        except Exception as exc:  # one bad file never stops the others
            results[i] = _failed(i, path, exc)
    _refuse_clashes(planned)
    for i in sorted(results):
        emit(Event("end", i, results[i].path, result=results[i]))
    jobs: list[Job] = []
    for job in planned:
        i, path = job.index, job.path
        if not overwrite and all(Path(t).exists() for t in job.targets.values()):
            results[i] = Result(
                i,
                path,
                "skipped",
                dict(job.targets),
                kept=list(job.targets),
                size_bytes=sum(output_size(t) for t in job.targets.values()),
            )
            emit(Event("end", i, path, result=results[i]))
            continue
        jobs.append(job)
    run = _run_here if client is None else _run_on_cluster
    for result in run(jobs, overwrite, dict(render or {}), emit, client, retries):
        results[result.index] = result
        emit(Event("end", result.index, result.path, result=result))
    return [results[i] for i in sorted(results)]


def _refuse_clashes(jobs: Sequence[Job]) -> None:
    """Raise :class:`NameTemplateError` if two jobs would write one output."""
    claimed: dict[str, str] = {}
    for job in jobs:
        for target in job.targets.values():
            if target in claimed:
                raise NameTemplateError(
                    job.path,
                    f"would write {target}, as {claimed[target]} does; give a name "
                    'template (--name) that tells them apart, such as "{stem}{suffix}", or '
                    "separate output folders; nothing was converted",
                )
            claimed[target] = job.path


class _Emitter:
    """Hands events to the callback one at a time, and none for a file after its end."""

    def __init__(self, progress: Report | None) -> None:
        self.progress = progress
        self.ended: set[int] = set()
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            if event.index in self.ended:
                return
            if event.kind == "end":
                self.ended.add(event.index)
            if self.progress is not None:
                self.progress(event)


def _run_here(jobs, overwrite, render, emit, client, retries) -> Iterator[Result]:
    for job in jobs:
        try:
            yield convert_one(job, overwrite=overwrite, render=render, report=emit)
        except Exception as exc:  # reported in the file's result; the batch goes on
            yield _failed(job, job.path, exc)


def _run_on_cluster(jobs, overwrite, render, emit, client, retries) -> Iterator[Result]:
    from distributed import as_completed

    topic = f"afmio-batch-{uuid.uuid4().hex}"

    names = set(Event.__dataclass_fields__) - {"result"}

    def on_event(event: tuple[float, dict[str, Any]]) -> None:
        msg = {k: v for k, v in event[1].items() if k in names}  # the worker adds its own
        emit(Event(**{**msg, "todo": tuple(msg["todo"])}))

    client.subscribe_topic(topic, on_event)
    futures = {
        client.submit(
            _run_on_worker,
            job,
            overwrite,
            render,
            topic,
            key=f"afmio-convert-{job.index}-{uuid.uuid4().hex[:8]}",
            retries=retries,
            pure=False,
        ): job
        for job in jobs
    }
    try:
        for future in as_completed(futures):
            job = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # the task failed on every try, or its workers died
                yield _failed(job, job.path, exc)
    finally:
        client.unsubscribe_topic(topic)
        for future in futures:
            future.cancel()


@contextmanager
def cluster(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client | None]:
    """A dask.distributed client for :func:`convert`, closed on exit.

    ``workers`` starts a ``LocalCluster`` of that many single-threaded worker processes;
    ``scheduler`` (an address such as ``tcp://host:8786``) connects to a running cluster;
    neither yields ``None`` (convert in this process).

    Raises
    ------
    ImportError
        If dask.distributed is not installed.
    afmio.AfmOSError
        If the local cluster failed to start twice (a worker lost while starting).
    """
    if workers is None and scheduler is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError(
            "batch conversion on a cluster needs dask.distributed: pip install 'afmio[distributed]'"
        ) from exc
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with _start_local_cluster(LocalCluster, workers) as local, Client(local) as client:
        yield client


def _start_local_cluster(local_cluster: Any, workers: int) -> Any:
    """A started ``LocalCluster`` of ``workers`` single-threaded worker processes, tried
    twice: a worker lost while the cluster starts ("Nanny failed to start") is usually a
    passing accident."""
    import logging

    def start() -> Any:
        return local_cluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )

    try:
        return start()
    except Exception:  # dask raises RuntimeError, TimeoutError or OSError: try again
        pass
    try:
        return start()
    except Exception as exc:
        text = " ".join(str(exc).split())
        raise AfmOSError(
            None,
            f"could not start a local cluster of {workers} workers (tried twice): "
            f"{type(exc).__name__}: {text}",
        ) from exc
