"""File plumbing shared by every reader and writer: transparent gzip, atomic writes."""

from __future__ import annotations

import contextlib
import glob
import gzip
import io
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator

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


def refuse_existing(path: str | os.PathLike, overwrite: bool, kind: str | None = None) -> Path:
    """Validate an output path: refuse to replace an existing file or directory unless told to,
    and then only what sparseir writes there (`check_output` without inputs)."""
    return check_output(path, overwrite=overwrite, kind=kind)


# --- where an output may go ------------------------------------------------------------------
#
# An output replaces only what sparseir wrote: a command's --overwrite (overwrite=True in the
# API) is consent to lose an earlier result, never the user's other files. So whatever a
# command reads stays out of what it writes, and an existing output is replaced only when it is
# what sparseir itself puts there.

OUTPUT_KINDS = ("file", "directory")


def check_output(output: str | os.PathLike, inputs: Iterable = (), overwrite: bool = False,
                 kind: str | None = None) -> Path:
    """Refuse, before any work, an output that would destroy what sparseir did not write.

    - `output` may not be, hold, or lie inside any of `inputs` (`check_apart`).
    - Something already at `output` is replaced only with `overwrite`, and only when it is
      what sparseir writes there (`check_replaceable`); `kind` ("file", "directory", None for
      either) says which.
    - The directory it goes into must exist.

    Every writing command calls this before its long work; the atomic writers call it again
    (without inputs) right before they write. Returns `output` as a Path.
    """
    if kind not in (None, *OUTPUT_KINDS):
        raise ValueError(f"kind must be one of {OUTPUT_KINDS} or None, got {kind!r}")
    path = Path(output)
    check_apart(path, inputs)
    if os.path.lexists(path):
        if not overwrite:
            raise InputError("already exists (pass overwrite=True / --overwrite to replace it)", path)
        check_replaceable(path, kind)
    elif not path.parent.is_dir():
        raise InputError("parent directory does not exist", path)
    return path


def check_apart(output: str | os.PathLike, inputs: Iterable) -> None:
    """Refuse an output that is, holds, or lies inside one of `inputs`: files, directories (of
    parts, or an index), glob patterns (each file they match) or ``irds:`` ids (no path).
    Paths are compared once symlinks are resolved, so no other name for an input gets through.
    Writing such an output would replace what the command reads, or change it as it reads.
    """
    target = _real(output)
    for given in inputs:
        if given is None:
            continue
        for path in _input_paths(given):
            real = _real(path)
            if real == target:
                raise InputError(f"is an input of this command ({os.fspath(path)}); sparseir will not write over "
                                 "what it reads", output)
            if target in real.parents:
                raise InputError(f"holds an input of this command ({os.fspath(path)}); sparseir will not write "
                                 "over what it reads", output)
            if real in target.parents:
                raise InputError(f"lies inside an input of this command ({os.fspath(path)}); sparseir will not "
                                 "write into what it reads", output)


def _input_paths(given: str | os.PathLike) -> list[Path]:
    text = os.fspath(given)
    if text.startswith("irds:"):  # an ir_datasets id names no path of the user's
        return []
    if not os.path.lexists(text) and any(char in text for char in "*?["):
        return [Path(match) for match in glob.glob(text)]
    return [Path(text)]


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def check_replaceable(path: str | os.PathLike, kind: str | None = None) -> None:
    """Refuse to replace `path` unless it is what sparseir writes there: a regular file for a
    file output; for a directory output, a sparseir index that holds nothing sparseir did not
    write (`index_entries`), or an empty directory. Never `/`, a mount point, or the current
    directory or one above it: those cannot be renamed aside, and are never an output's own.
    """
    path = Path(path)
    if path.is_dir():  # a link to a directory is judged by the directory
        if kind == "file":
            raise InputError("is a directory; sparseir will not replace it with a file", path)
        real, here = _real(path), _real(os.getcwd())
        if real == here or real in here.parents:
            raise InputError(f"is the current directory{' or one above it' if real != here else ''}; "
                             "sparseir will not replace it", path)
        if os.path.ismount(real):
            raise InputError("is a mount point; sparseir will not replace it", path)
        names = sorted(os.listdir(path))
        if not names:
            return
        index = index_entries(path)
        if index is None:
            raise InputError(f"is a directory that holds no sparseir index ({_some(names)}); "
                             "sparseir will not replace it", path)
        foreign = [name for name in names if name not in index[1] and not _is_temporary(name)]
        if foreign:
            raise InputError(f"holds a {index[0]} and also files sparseir did not write ({_some(foreign)}); "
                             "sparseir will not replace it", path)
        return
    if not path.is_file():
        what = "a dangling link" if path.is_symlink() else "not a regular file (a device, pipe or socket)"
        raise InputError(f"is {what}; sparseir will not replace it", path)
    if kind == "directory":
        raise InputError("is a file; sparseir will not replace it with a directory", path)


@contextlib.contextmanager
def output_directory(path: str | os.PathLike, marker: str | None = None) -> Iterator[Path]:
    """Create `path` (and its missing parents) for outputs written into it one by one.

    marker: a file written into it first that names it as this writer's (an empty file).
    When the block fails, what this call made goes again: the marker, then each directory it
    created, where nothing else was written into it (the outputs already written stay).
    """
    path = Path(path)
    made = [directory for directory in (path, *path.parents) if not os.path.lexists(directory)]
    path.mkdir(parents=True, exist_ok=True)
    if marker is not None:
        (path / marker).touch()
    try:
        yield path
    except BaseException:
        if made:
            if marker is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path / marker)
            for directory in made:  # deepest first; rmdir leaves any directory that is not empty
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
        raise


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def index_entries(path: str | os.PathLike) -> tuple[str, set[str]] | None:
    """(what it is, the names sparseir wrote in it) of the sparseir index in directory `path`:
    a single index (its manifest names its files), a sharded one (its shards) or a segmented
    one (its commit points and what they name); None when `path` holds none of them."""
    from . import segments, sharded, storage

    path = Path(path)
    manifest = _json_object(path / storage.MANIFEST) or {}
    if manifest.get("format") == storage.FORMAT_NAME:
        sections = _dicts(manifest.get("arrays")) + _dicts([manifest.get("vocab"), manifest.get("attributes")])
        return "sparseir index", {storage.MANIFEST, *_names(section.get("file") for section in sections)}
    if manifest.get("format") == sharded.FORMAT_NAME:
        shards = _dicts(manifest.get("shards"))
        row_maps = _dicts([shard.get("row_map") for shard in shards])
        return "sharded sparseir index", {storage.MANIFEST, *_names(shard.get("dir") for shard in shards),
                                          *_names(row_map.get("file") for row_map in row_maps)}
    names: set[str] = set()
    for name in os.listdir(path):
        if segments.GENERATION_FILE.fullmatch(name):
            commit = _json_object(path / name) or {}
            if commit.get("format") != segments.FORMAT_NAME:
                return None
            segment_entries = _dicts(commit.get("segments"))
            names |= {name, *_names(entry.get(key) for entry in segment_entries for key in ("dir", "deletes"))}
    if not names:
        return None
    return "segmented sparseir index", names | {segments.LOCK_FILE}


def _names(values: Iterable) -> set[str]:
    return {value for value in values if isinstance(value, str)}


def _json_object(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _dicts(value) -> list[dict]:
    """The objects of a JSON list, or the values of a JSON object, that are themselves objects."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [item for item in items if isinstance(item, dict)]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", overwrite: bool = True) -> Iterator[IO]:
    """Write to a temporary sibling, fsync, then rename into place.

    A failure or a kill part-way leaves no file at `path` (only a hidden temp file,
    removed on a normal exception, else by the next write of `path`). Paths ending in .gz
    are gzip-compressed.
    """
    path = check_output(path, overwrite=overwrite, kind="file")
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
        _check_still_replaceable(path, overwrite, "file")
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


_ANY_TEMPORARY = temp_names(r".+")


def _is_temporary(name: str) -> bool:
    return _ANY_TEMPORARY.fullmatch(name) is not None


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
    by the next write of `path`. A failure (not a kill) leaves the old one in place.
    """
    path = check_output(path, overwrite=overwrite, kind="directory")
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
        # What is there may have changed during the build: judged again just before it goes.
        _check_still_replaceable(path, overwrite, "directory")
        # Move the old one aside first so that `path` is never half old, half new.
        trash = _move_aside(path) if os.path.lexists(path) else None
        try:
            os.replace(tmp, path)
        except BaseException:
            if trash is not None:  # put the old one back rather than leave it for deletion
                os.replace(trash / "old", path)
                os.rmdir(trash)
            raise
        crash_point()
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_still_replaceable(path: Path, overwrite: bool, kind: str) -> None:
    if os.path.lexists(path):
        if not overwrite:
            raise InputError("appeared while this output was being written; sparseir will not replace it", path)
        check_replaceable(path, kind)


def _move_aside(path: Path) -> Path:
    """Move `path` into a fresh temporary directory (to delete once replaced); returns that directory."""
    trash = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".old", dir=path.parent))
    try:
        os.replace(path, trash / "old")
    except BaseException:
        os.rmdir(trash)
        raise
    crash_point()  # nothing at `path` until the new one is renamed in
    return trash
