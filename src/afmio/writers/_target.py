"""A target written atomically: a temporary file (or store) beside it, moved into place
only when complete; failures reported as afmio errors naming the target; temporary files
of writers that died found and removed by whoever writes the target next."""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import socket
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

from ..errors import AfmFileExistsError, AfmIOError, AfmNoSpaceError, AfmOSError


class AtomicTarget:
    """Write to a temporary path beside ``path``; move it into place only when complete.

    Use as ``with AtomicTarget(path, overwrite) as tmp: write(tmp)``. An existing target
    is an error unless ``overwrite``, and even then only a target ``replaceable`` accepts
    (by default a file: never a folder) is replaced. Without ``overwrite`` the final step
    fails if the target appeared meanwhile, so of two exports racing to one name exactly
    one wins. On any exception the temporary file (or folder, for Zarr stores) is
    removed, the target is left as it was, and an ``OSError`` (a full disk, a read-only
    folder) is reported as an :class:`~afmio.AfmOSError` naming the target.

    Temporary names carry their writer's identity (see :func:`stale_temps`), so entering
    also removes the temporary files that killed exports of the same target left behind.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        overwrite: bool = False,
        replaceable: Callable[[Path], bool] | None = None,
        kind: str = "a file",
    ) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.replaceable = replaceable or _is_file
        self.kind = kind
        self.tmp = _temp_path(self.path, TEMP)

    def __enter__(self) -> Path:
        self._check_replaceable()
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise AfmOSError(
                self.path, f"cannot be written: {_file_ancestor(parent)} is a file, not a folder"
            ) from None
        except OSError as exc:
            raise AfmOSError(self.path, f"cannot create its folder: {_reason(exc)}") from exc
        for stale in stale_temps(self.path):
            _remove(stale)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            try:
                # Data on disk before the name: after a crash the target is whole or absent.
                _flush(self.tmp)
                self._commit()
                return False
            except BaseException as failed:  # cleaned up below, then re-raised
                exc = failed
        # Judged before the temporary file goes: removing it frees the space it filled.
        error = export_error(self.path, exc, self.tmp)
        _remove(self.tmp)
        if error is not None:
            raise error from exc
        if exc_type is None:
            raise exc
        return False

    def _check_replaceable(self) -> None:
        if not os.path.lexists(self.path):
            return
        if not self.overwrite:
            raise AfmFileExistsError(self.path, "already exists; pass overwrite=True to replace it")
        if not self.replaceable(self.path):
            raise AfmFileExistsError(
                self.path,
                f"exists and is not {self.kind}; overwrite=True replaces only {self.kind}: "
                "remove it yourself or choose another name",
            )

    def _commit(self) -> None:
        tmp, path = self.tmp, self.path
        try:
            if not self.overwrite:
                _place_new(tmp, path)
                return
            self._check_replaceable()  # it may have changed while the export ran
            if tmp.is_dir() and os.path.lexists(path):
                # os.replace cannot put a folder over an existing one: move the old one aside.
                old = _temp_path(path, OLD)
                os.rename(path, old)
                try:
                    os.rename(tmp, path)
                except OSError:
                    if not os.path.lexists(path):
                        os.rename(old, path)
                    raise
                _remove(old)
            else:
                os.replace(tmp, path)
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
            raise AfmFileExistsError(path, _APPEARED) from exc
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
            raise AfmFileExistsError(path, _APPEARED) from exc


_APPEARED = "was created by another writer while this export ran; it was left as it is"


def _place_new(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` only if nothing has that name, in one step."""
    if tmp.is_dir():
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path))
        # rename() fails onto a folder that is not empty, and every store has a
        # zarr.json: of two exports racing to one store, the second fails here. An empty
        # folder made in the instant since the check above would be replaced: it held
        # nothing, and no afmio writer makes one.
        os.rename(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if ``path`` exists, whoever made it in the meantime
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # A file system without hard links (FAT, some network shares): check, then rename.
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


#: What ``link()`` raises where the file system has no hard links.
_NO_HARD_LINKS = {
    errno.EPERM,
    errno.EXDEV,
    errno.EMLINK,
    errno.ENOSYS,
    errno.ENOTSUP,
    getattr(errno, "EOPNOTSUPP", errno.ENOTSUP),
}


def _is_file(path: Path) -> bool:
    return path.is_file()


def _file_ancestor(folder: Path) -> Path:
    """The first of ``folder`` and its parents that exists (a file, when mkdir failed)."""
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def _flush(path: Path) -> None:
    """fsync a written file, or every file of a written folder (a Zarr store)."""
    for file in path.rglob("*") if path.is_dir() else (path,):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _remove(path: Path) -> None:
    """Delete a file or folder if it is there. Never raises: cleaning up after a failure
    (in a read-only folder, say) must not hide the failure itself."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


# --- why an export failed -------------------------------------------------------------

_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: How the libraries say so without an errno: HDF5 quotes the errno in its message, and
#: tifffile reports a short write (what a full disk does) as "N requested and M written".
_NO_SPACE_TEXT = re.compile(
    "|".join(
        [
            *(rf"errno = {e}\b" for e in sorted(_NO_SPACE_ERRNOS)),
            *(re.escape(os.strerror(e)) for e in sorted(_NO_SPACE_ERRNOS)),
            r"\d+ requested and \d+ written",
        ]
    )
)
#: Below this many free bytes a failed write is put down to a full file system.
_FULL_BYTES = 2**20


def export_error(path: Path, exc: BaseException, tmp: Path | None = None) -> AfmIOError | None:
    """The afmio error to report for ``exc``, raised while writing ``path``, or None to
    let ``exc`` through as it is (an afmio error already, or not about the file)."""
    if isinstance(exc, AfmIOError) or not isinstance(exc, (OSError, RuntimeError)):
        return None
    code = getattr(exc, "errno", None)
    if code in _NO_SPACE_ERRNOS or _NO_SPACE_TEXT.search(str(exc)):
        return AfmNoSpaceError(path, f"no space left to write it ({_reason(exc)})")
    if code is None and tmp is not None and (why := no_space(tmp)):
        return AfmNoSpaceError(path, f"no space left to write it: {why} ({_reason(exc)})")
    if isinstance(exc, OSError):
        return AfmOSError(path, f"cannot be written: {_reason(exc)}")
    return None


def no_space(tmp: Path) -> str | None:
    """Why writing ``tmp`` ran out of room, if it did: its file system is (nearly) full,
    or the file reached the process's size limit (``RLIMIT_FSIZE``)."""
    try:
        st = os.statvfs(tmp.parent)
        if st.f_bavail * st.f_frsize < _FULL_BYTES:
            return "the file system is full"
    except (OSError, AttributeError):  # no statvfs on Windows
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and tmp.is_file() and tmp.stat().st_size >= soft:
            return "the file reached this process's file size limit"
    except (ImportError, OSError, ValueError):
        pass
    return None


def _reason(exc: BaseException) -> str:
    """A one-line reason: the OS's words when there are some, HDF5's error message, or
    the exception's text."""
    if isinstance(exc, OSError) and exc.strerror and exc.errno is not None:
        return exc.strerror
    text = str(exc)
    quoted = re.search(r"error message = '([^']*)'", text)
    return quoted.group(1) if quoted else " ".join(text.split())


# --- temporary names and the stale ones of killed writers -----------------------------

#: Suffixes of a temporary export, and of an old store moved aside while being replaced.
TEMP, OLD = "afmio-tmp", "afmio-old"
#: ``<host>-<boot>-<pid>-<start>-<random>``: who wrote it (see :func:`_owner`).
_OWNED = re.compile(
    r"(?P<host>[0-9a-f]{8})-(?P<boot>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-[0-9a-f]{8}"
)
#: ``<random>``, as afmio named temporary files before they carried their writer.
_LEGACY = re.compile(r"[0-9a-f]{8}")


def _temp_path(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{_owner()}-{uuid.uuid4().hex[:8]}.{suffix}")


@functools.cache
def _machine() -> tuple[str, str]:
    """This machine's host name and its current boot, as 8 hex digits each (the boot is
    ``00000000`` where the system does not say)."""
    host = f"{zlib.crc32(socket.gethostname().encode()):08x}"
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().replace("-", "")[:8]
    except OSError:
        boot = "0" * 8
    return host, boot


def _start_time(pid: int) -> tuple[str, int] | None:
    """A process's state and start time (clock ticks since boot) from ``/proc``, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold anything: split after its last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _owner() -> str:
    """Who is writing: machine, boot, process and its start time (``pid`` alone may be
    reused by a later process)."""
    pid = os.getpid()
    stat = _start_time(pid)
    return "-".join([*_machine(), str(pid), str(stat[1] if stat else 0)])


def _writer_gone(owner: re.Match[str]) -> bool:
    """True if the process named in a temporary name is certainly no longer running."""
    host, boot = _machine()
    if owner["host"] != host or os.name != "posix":
        return False  # another machine's, or no os.kill(pid, 0) to ask: cannot tell
    if owner["boot"] != boot:
        return boot != "0" * 8  # written before this machine last started
    pid = int(owner["pid"])
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists, but belongs to someone else
        pass
    stat = _start_time(pid)
    if stat is None:
        return False
    state, started = stat
    # A zombie has stopped writing; another start time is another process with that pid.
    return state in "ZX" or (owner["start"] != "0" and started != int(owner["start"]))


def stale_temps(target: str | os.PathLike[str], legacy: bool = False) -> list[Path]:
    """The temporary files and folders beside ``target`` left by writers that are gone.

    A name whose writer may still be running (here or on another machine) is never
    listed; ``legacy`` also lists those that name no writer (``.<name>.<random>.afmio-tmp``,
    as afmio 0.1.0 named them). Never raises: an unreadable folder has none.
    """
    target = Path(target)
    prefix = f".{target.name}."
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    stale = []
    for name in names:
        token, _, suffix = name[len(prefix) :].rpartition(".")
        if not name.startswith(prefix) or suffix not in (TEMP, OLD):
            continue
        owner = _OWNED.fullmatch(token)
        if (owner and _writer_gone(owner)) or (legacy and _LEGACY.fullmatch(token)):
            stale.append(target.parent / name)
    return stale
