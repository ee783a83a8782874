"""ir_datasets as a source of documents, queries and qrels: ``irds:<dataset id>``.

A dataset is read only from files ir_datasets already has on this machine. Before
reading, the files it would need for that part are looked up through its download and
cache objects, and a missing one is a one-line error naming where ir_datasets wants it;
while reading, any download it still attempts is refused the same way. Nothing is
ever downloaded.

Records are exactly what the equivalent file gives: ``TextRecord(id, default_text())``
(for BEIR, title + " " + text, as BEIR collections are joined into collection.tsv files)
and ``Qrel``, with the same checks (unique ids, at least one record).

Importing ir_datasets creates its home directory (``IR_DATASETS_HOME``, else
~/.ir_datasets) and a directory per dataset family in it. A mistyped id must leave the
machine as it was, so until ir_datasets is imported in this process an id is first looked up
in a child Python whose home is a scratch directory, and the import here follows only once
the id is known.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import types
from importlib.util import find_spec
from pathlib import Path
from typing import Iterator

from ..errors import InputError, ParameterError
from .lines import BadLines, parse_records
from .records import Qrel, TextRecord, qrel_key

IRDS_PREFIX = "irds:"
HOME_VARIABLE = "IR_DATASETS_HOME"
PART_NAMES = {"docs": "documents", "queries": "queries", "qrels": "qrels"}


def irds_dataset_id(source: str | os.PathLike) -> str | None:
    """The dataset id of an ``irds:<dataset id>`` source, None for a path."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    text = os.fspath(source)
    return text[len(IRDS_PREFIX):] if text.startswith(IRDS_PREFIX) else None


def is_irds_source(source: str | os.PathLike) -> bool:
    return irds_dataset_id(source) is not None


def is_registered_id(name: str) -> bool:
    """True when `name` is a dataset id ir_datasets knows (e.g. msmarco-passage/dev/small)."""
    if ("/" not in name and "-" not in name) or find_spec("ir_datasets") is None:
        return False
    return _lookup(name, name)[0]


def read_irds(source: str, part: str, bad_lines: BadLines | None = None) -> Iterator[TextRecord | Qrel]:
    """Stream `part` ("docs", "queries" or "qrels") of an ``irds:`` source.

    The dataset id, the part and its local files are checked here, before the first
    record is asked for, so every such error comes at once.
    """
    dataset = check_irds_source(source, part)
    convert, key = (_qrel, qrel_key) if part == "qrels" else (_text_record, _text_record_id)
    numbered = enumerate(_records(dataset, source, part), start=1)
    return parse_records(numbered, source, convert, bad_lines, key, f"no {PART_NAMES[part]} in this dataset")


def check_irds_source(source: str, part: str):
    """The ir_datasets dataset of `source`, once its id is known, it has `part` and the
    files for that part are on this machine; else a one-line InputError."""
    dataset = _load(source)
    if not getattr(dataset, f"has_{part}")():
        raise InputError(f"this ir_datasets dataset has no {PART_NAMES[part]}", source)
    wanted = missing_files(getattr(dataset, f"{part}_handler")())
    if wanted:
        raise _not_offline(source, part, wanted)
    return dataset


def _load(source: str):
    dataset_id = irds_dataset_id(source)
    if find_spec("ir_datasets") is None:
        raise ParameterError(f"{source}: reading ir_datasets ids needs ir_datasets, which is not installed: "
                             "pip install 'sparseir[eval]'")
    home = _check_home()
    known, close = _lookup(dataset_id, source)
    if not known:
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(f"not an ir_datasets dataset id{hint}", source)
    try:
        import ir_datasets
    except OSError as e:  # its home cannot be made: permissions, a full disk
        raise ParameterError(f"{_home_named(home)}: ir_datasets cannot make its home there "
                             f"({e.strerror or e})") from None
    return ir_datasets.load(dataset_id)


def _home_named(home: Path) -> str:
    return f"{HOME_VARIABLE}={home}" if os.environ.get(HOME_VARIABLE) else \
        f"{home} (ir_datasets' home: {HOME_VARIABLE} is unset)"


def _check_home() -> Path:
    """Where ir_datasets keeps its datasets; a one-line error naming it when no directory can be there."""
    value = os.environ.get(HOME_VARIABLE)
    home = Path(value).expanduser() if value else Path.home() / ".ir_datasets"
    existing = next((path for path in (home, *home.parents) if os.path.exists(path)), None)
    if existing is not None and not existing.is_dir():
        where = "is not a directory" if existing == home else f"is inside {existing}, which is not a directory"
        raise ParameterError(f"{_home_named(home)}: {where}; ir_datasets keeps its datasets in that directory: "
                             f"point {HOME_VARIABLE} at a directory")
    return home


# Run in a child Python whose IR_DATASETS_HOME is a scratch directory: is argv[1] an id (and
# if not, the ids closest to it)? Indexing the registry, as ir_datasets.load does, also
# resolves the ids it knows by pattern.
_LOOKUP = """
import difflib, json, sys
import ir_datasets
try:
    ir_datasets.registry[sys.argv[1]]
    known, close = True, []
except KeyError:
    known, close = False, difflib.get_close_matches(sys.argv[1], list(ir_datasets.registry), n=3)
print(json.dumps({"known": known, "close": close}))
"""


def _lookup(dataset_id: str, source: str) -> tuple[bool, list[str]]:
    """(whether ir_datasets knows `dataset_id`, the known ids closest to it when not), found
    without ir_datasets touching its home: in this process once it is imported here (its
    home is made by then), else in a child Python pointed at a scratch home."""
    if "ir_datasets" in sys.modules:
        import difflib

        import ir_datasets

        try:
            ir_datasets.registry[dataset_id]
        except KeyError:
            return False, difflib.get_close_matches(dataset_id, list(ir_datasets.registry), n=3)
        return True, []
    with tempfile.TemporaryDirectory(prefix="sparseir-irds-") as scratch:
        child = subprocess.run([sys.executable, "-c", _LOOKUP, dataset_id], capture_output=True, text=True,
                               env={**os.environ, HOME_VARIABLE: scratch})
    try:
        answer = json.loads(child.stdout.strip().splitlines()[-1])
        return bool(answer["known"]), [str(name) for name in answer["close"]]
    except (IndexError, ValueError, KeyError, TypeError):
        lines = child.stderr.strip().splitlines() or [f"exit status {child.returncode}"]
        raise ParameterError(f"{source}: ir_datasets could not look the id up ({lines[-1]})") from None


def _not_offline(source: str, part: str, wanted: list[str]) -> InputError:
    return InputError(f"{PART_NAMES[part]} are not available offline: ir_datasets wants {'; '.join(wanted)}; "
                      f"fetch them once with ir_datasets or pass a file", source)


def _records(dataset, source: str, part: str) -> Iterator:
    with _downloads_refused():
        try:
            yield from getattr(dataset, f"{part}_iter")()
        except _DownloadRefused as refused:
            raise _not_offline(source, part, refused.wanted) from None


def _text_record(record) -> TextRecord:
    record_id = record.doc_id if hasattr(record, "doc_id") else record.query_id
    if hasattr(record, "default_text"):
        text = record.default_text()
    elif hasattr(record, "text"):
        text = record.text
    else:
        raise ParameterError(f"{type(record).__name__} records have no text (id {record_id!r})")
    if not str(record_id).strip():
        raise ParameterError("empty id")
    return TextRecord(str(record_id), text)


def _text_record_id(record: TextRecord) -> str:
    return record.id


def _qrel(record) -> Qrel:
    return Qrel(record.query_id, record.doc_id, int(record.relevance), str(getattr(record, "iteration", "0")))


# --- which local files a part needs ------------------------------------------------------


def missing_files(handler) -> list[str]:
    """The local files that reading `handler` (an ir_datasets docs/queries/qrels handler)
    needs and this machine lacks, each with the files it would be made from; [] when it
    reads offline.

    Walks the handler's file objects down to their local paths: a download is there when
    its cache path (or a local copy ir_datasets accepts in its place) exists; a cached,
    extracted or re-packed file is there when it exists, or when what it is made from is.
    What a filter reads lazily from another whole dataset is not seen here; the guard
    around reading refuses its downloads instead.
    """
    found: dict[int, list[str]] = {}
    return list(dict.fromkeys(_missing(handler, found)))


def _made_files() -> dict[type, str]:
    """File objects that write their output to a local path, and the attribute naming it."""
    from ir_datasets.util import Cache, ReTar, TarExtractAll, ZipExtractCache

    return {Cache: "_path", TarExtractAll: "_extract_path", ZipExtractCache: "extract_path", ReTar: "_output_file"}


def _missing(node, found: dict[int, list[str]]) -> list[str]:
    from ir_datasets.util import BaseDownload, Download, LocalDownload

    # A download shared by several files (one zip for docs, queries and qrels) is
    # judged once, and every file made from it reports it.
    if id(node) in found:
        return found[id(node)]
    found[id(node)] = []  # a cycle back to this node adds nothing
    if isinstance(node, Download):
        result = _download_missing(node)
    elif isinstance(node, LocalDownload):
        result = [] if node._path.exists() else [os.fspath(node._path)]
    elif isinstance(node, BaseDownload):
        result = [f"{_url(node)} (no local copy)"]
    else:
        made = next((getattr(node, attribute, None) for kind, attribute in _made_files().items()
                     if isinstance(node, kind)), None)
        if made is not None and os.path.exists(made):
            result = []
        else:
            result = [wanted for child in _children(node) for wanted in _missing(child, found)]
            if made is not None and result:
                result = [f"{os.fspath(made)} (made from {', '.join(dict.fromkeys(result))})"]
    found[id(node)] = result
    return result


def _children(node) -> list:
    """What a handler or file object reads from: its attributes, a pending filter's inputs."""
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.util import Lazy

    if isinstance(node, (list, tuple)):
        return list(node)
    if isinstance(node, Lazy):
        return [] if node.is_loaded else _children(node._fn)
    if isinstance(node, types.FunctionType):
        return [cell.cell_contents for cell in node.__closure__ or () if _cell_filled(cell)]
    # A whole dataset would bring every part's files; what is read from it is guarded instead.
    if isinstance(node, Dataset) or not type(node).__module__.startswith("ir_datasets."):
        return []
    return list(vars(node).values()) if hasattr(node, "__dict__") else []


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _download_missing(download) -> list[str]:
    """[] when ir_datasets gets `download` from this machine, else where it wants the file."""
    from ir_datasets.util import LocalDownload

    local_copies = [mirror._path for mirror in download.mirrors if isinstance(mirror, LocalDownload)]
    cache_path = getattr(download, "_cache_path", None)
    if getattr(download, "_stream", False):
        # A streamed download reads its first source every time and never its cache.
        first = download.mirrors[0]
        if isinstance(first, LocalDownload) and first._path.exists():
            return []
        return [os.fspath(first._path) if isinstance(first, LocalDownload) else f"{_url(first)} (no local copy)"]
    if download._path is not None or (cache_path is not None and os.path.exists(cache_path)):
        return []
    if any(path.exists() for path in local_copies):
        return []
    if cache_path is not None:
        return [os.fspath(cache_path)]
    if local_copies:
        return [os.fspath(local_copies[0])]
    return [f"{_url(download.mirrors[0])} (no local copy)"]


def _url(remote) -> str:
    return str(getattr(remote, "url", None) or getattr(remote, "uri", None) or type(remote).__name__)


# --- no downloads while reading -------------------------------------------------------------


class _DownloadRefused(Exception):
    def __init__(self, wanted: list[str]):
        super().__init__("; ".join(wanted))
        self.wanted = wanted


_guard_lock = threading.Lock()
_guard_users = 0
_unguarded: tuple | None = None  # Download.path and Download.stream as ir_datasets defines them


@contextlib.contextmanager
def _downloads_refused():
    """While any ``irds:`` reader is open, ir_datasets' Download refuses to fetch.

    Every file ir_datasets downloads goes through a Download; guarding it there also
    covers the files read lazily that `missing_files` cannot see ahead. Readers may be
    open together (documents and queries of one run), so the guard is counted.
    """
    global _guard_users, _unguarded
    from ir_datasets.util import Download

    with _guard_lock:
        if _guard_users == 0:
            _unguarded = (Download.path, Download.stream)
            original_path, original_stream = _unguarded

            def path(download, force=True):
                # Without a cache path even path(force=False) downloads (to a temporary file).
                if force or getattr(download, "_cache_path", None) is None:
                    _refuse_remote(download)
                return original_path(download, force)

            def stream(download):
                _refuse_remote(download)
                return original_stream(download)

            Download.path, Download.stream = path, stream
        _guard_users += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_users -= 1
            if _guard_users == 0:
                Download.path, Download.stream = _unguarded


def _refuse_remote(download) -> None:
    wanted = _download_missing(download)
    if wanted:
        raise _DownloadRefused(wanted)
