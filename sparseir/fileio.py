"""File plumbing shared by every reader and writer: transparent gzip, atomic writes."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path
from typing import IO, Iterator

from .errors import InputError

GZIP_MAGIC = b"\x1f\x8b"

# Crash tests stop a writer at each step of an atomic write in turn rather than after a
# guessed delay: a process with SPARSEIR_CRASH_AT=N in its environment SIGKILLs itself at
# the N-th crash_point() it reaches (counting from 1, over all its writes). Read once here,
# so that unset, a crash point costs one test of an int.
CRASH_AT_ENV = "SPARSEIR_CRASH_AT"
_crash_at = int(os.environ.get(CRASH_AT_ENV) or 0)
_crash_points_passed = 0


def crash_point() -> None:
    """Mark the end of one step of an atomic write: where a crash test may kill this process."""
    global _crash_points_passed
    if _crash_at:
        _crash_points_passed += 1
        if _crash_points_passed == _crash_at:
            os.kill(os.getpid(), signal.SIGKILL)


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def check_readable(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    if path.is_dir():
        raise InputError("is a directory, expected a file", path)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied", path)
    return path


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open for reading, decompressing gzip when the content is gzip."""
    path = check_readable(path)
    if is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, line without its newline), decoding UTF-8 strictly.

    Blank lines are skipped; a line that is not valid UTF-8 raises InputError naming it.
    """
    with open_binary(path) as raw:
        try:
            for number, data in enumerate(raw, start=1):
                try:
                    line = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise InputError(f"invalid UTF-8 at byte {e.start}", path, number) from None
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
        except (OSError, EOFError) as e:
            # gzip.BadGzipFile and truncated streams surface here.
            raise InputError(f"cannot read: {e}", path) from None


def refuse_existing(path: str | os.PathLike, overwrite: bool) -> Path:
    """Validate an output path: refuse to replace an existing file or directory unless told to."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError("already exists (pass overwrite=True / --overwrite to replace it)", path)
    if not path.parent.exists():
        raise InputError("parent directory does not exist", path)
    return path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", overwrite: bool = True) -> Iterator[IO]:
    """Write to a temporary sibling, fsync, then rename into place.

    A failure or a kill part-way leaves no file at `path` (only a hidden temp file,
    removed on a normal exception, else by the next write of `path`). Paths ending in .gz
    are gzip-compressed.
    """
    path = refuse_existing(path, overwrite)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make shared outputs unreadable
        with os.fdopen(fd, "wb") as raw:
            compressed = gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) if path.suffix == ".gz" else None
            binary = compressed or raw
            text = io.TextIOWrapper(binary, encoding="utf-8", newline="\n") if "b" not in mode else None
            yield text or binary
            if text is not None:
                text.flush()
                text.detach()  # closing the wrapper would close `raw` before fsync
            if compressed is not None:
                compressed.close()  # writes the gzip trailer; leaves `raw` open
            raw.flush()
            os.fsync(raw.fileno())
        crash_point()  # complete and synced, not yet in place
        os.replace(tmp, path)
        crash_point()
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_prefix(path: Path) -> str:
    """Name start of a temporary beside `path`: hidden, tied to its target, and naming its writer's PID."""
    return f".{path.name}.{os.getpid()}."


def remove_stale_temps(path: Path) -> None:
    """Delete the temporaries that killed writers of `path` left beside it (as Lucene deletes
    unreferenced files), so that crashes do not pile up copies of an index.

    Only names given by temp_prefix (`.NAME.PID.XXXXXXXX.tmp` or `.old`) whose PID no longer
    runs are removed: a running writer's temporaries and anything else are left alone (a
    PID reused since only keeps a leftover longer). A PID means something on its own machine
    only: writers of one output must share one machine.
    """
    _remove_dead_writers_temps(path.parent, re.escape(path.name))


def remove_stale_temps_in(directory: Path, names: str = r".+") -> None:
    """remove_stale_temps for every target in `directory` whose name matches `names` (a regular
    expression: the names its writer owns there)."""
    _remove_dead_writers_temps(directory, names)


def temp_names(name_pattern: str) -> re.Pattern:
    """The names temp_prefix gives temporaries of targets whose names match `name_pattern`
    (group "pid": the writer's PID)."""
    return re.compile(r"\.(?:" + name_pattern + r")\.(?P<pid>\d+)\.[a-z0-9_]+\.(?:tmp|old)")


def _remove_dead_writers_temps(directory: Path, name_pattern: str) -> None:
    ours = temp_names(name_pattern)
    with os.scandir(directory) as entries:
        stale = [entry for entry in entries if entry.name.startswith(".")
                 and (match := ours.fullmatch(entry.name)) and not _running(int(match["pid"]))]
    for entry in stale:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a number no PID reaches
        return True
    return True


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block completes.

    A kill part-way leaves at `path` the old directory, nothing (between moving the old one
    aside and renaming the new one in) or the complete new one; its temporaries are removed
    by the next write of `path`.
    """
    path = refuse_existing(path, overwrite)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        for child in tmp.iterdir():
            if child.is_dir():  # nested index directories (a sharded index) were synced when written
                fsync_dir(child)
                continue
            with open(child, "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(tmp)
        crash_point()  # complete and synced, not yet in place
        # Move the old one aside first so that `path` is never half old, half new.
        trash = _move_aside(path) if path.exists() else None
        os.replace(tmp, path)
        crash_point()
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_aside(path: Path) -> Path:
    """Move `path` into a fresh temporary directory (to delete once replaced); returns that directory."""
    trash = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".old", dir=path.parent))
    os.replace(path, trash / "old")
    crash_point()  # nothing at `path` until the new one is renamed in
    return trash
