"""Index directories: ``manifest.json`` plus one ``.npy`` per array, loaded with mmap.

The manifest records the format version, kind, parameters, counts, the vocabulary and
each array's size and sha256. Loading checks every file's size; it hashes the small files
(the vocabulary, and the arrays its caller names: ``hashed_at_open``) at every open, and
every file on request (verify), so a truncated or corrupted file is refused instead of
answering wrongly.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Collection, Mapping, NamedTuple, Sequence

import numpy as np

from .errors import IndexFormatError, require
from .fileio import atomic_directory, atomic_file, crash_point
from .vectors import Vocabulary

FORMAT_NAME = "sparseir-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VOCAB_FILE = "vocab.txt"
# Arrays outside an index's bulk are hashed at every open up to this size (and the ones the
# layout checks read whole, whatever theirs): a few milliseconds each, against an index whose
# bulk is many times larger. The bulk is hashed by verify alone.
HASHED_AT_OPEN_BYTES = 4 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_index_dir(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], vocab: Vocabulary,
                    manifest: dict, overwrite: bool = False,
                    extra_files: Callable[[Path], dict] | None = None) -> None:
    """Write arrays + vocabulary + manifest into a fresh directory that replaces `path` atomically.

    extra_files(directory) writes further files into the directory being built and returns
    their manifest entries (the document attributes, say).
    """
    with atomic_directory(path, overwrite=overwrite) as tmp:
        entries = {}
        for name, array in arrays.items():
            file = tmp / f"{name}.npy"
            if not link_whole_file(array, file):
                np.save(file, np.ascontiguousarray(array), allow_pickle=False)
            entries[name] = {"file": file.name, "dtype": str(array.dtype), "shape": list(array.shape),
                             "bytes": file.stat().st_size, "sha256": sha256_file(file)}
            crash_point()
        (tmp / VOCAB_FILE).write_text("\n".join(vocab.terms) + "\n", encoding="utf-8")
        crash_point()
        if extra_files is not None:
            manifest = {**manifest, **extra_files(tmp)}
            crash_point()
        full = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **manifest,
                "vocab": {"file": VOCAB_FILE, "name": vocab.name, "open": vocab.open, "size": len(vocab),
                          "sha256": sha256_file(tmp / VOCAB_FILE)},
                "arrays": entries}
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
        crash_point()  # complete, still under its temporary name


def link_whole_file(array: np.ndarray, file: Path) -> bool:
    """Hard-link an out-of-core build's .npy file (``Workspace.empty(whole_file=True)``) as
    `file`; False where the array is not one, or the file system cannot link."""
    source = getattr(array, "whole_npy", None)
    if source is None:
        return False
    array.flush()
    try:
        os.link(source, file)
    except OSError:
        return False
    return True


def read_manifest(path: str | os.PathLike, format_name: str = FORMAT_NAME, format_version: int = FORMAT_VERSION,
                  label: str = "index") -> dict:
    """The manifest of an index directory, refusing foreign, unreadable or too-new ones."""
    path = Path(path)
    if not path.is_dir():
        raise IndexFormatError(f"{path}: not a directory (expected an index directory)")
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise IndexFormatError(f"{path}: not a sparseir index (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{manifest_path}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != format_name:
        raise IndexFormatError(f"{manifest_path}: not a sparseir {label} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > format_version:
        raise IndexFormatError(f"{manifest_path}: {label} format version {version} is newer than this sparseir "
                               f"reads ({format_version}); upgrade sparseir")
    return manifest


def hashed_at_open(manifest: dict, bulk: Collection[str], always: Collection[str]) -> set[str]:
    """The arrays that every open hashes: those outside `bulk` of at most HASHED_AT_OPEN_BYTES,
    and those in `always` (which the caller reads whole anyway, or which place every result)."""
    return {name for name, entry in manifest["arrays"].items()
            if name not in bulk and (name in always or entry.get("bytes", 0) <= HASHED_AT_OPEN_BYTES)}


def check_counts(path: str | os.PathLike, manifest: dict, n_docs: int, n_terms: int) -> None:
    """The manifest's counts against the arrays': an edited count is refused, never believed."""
    path = Path(path) / MANIFEST
    info = manifest.get("info") or {}
    for name, value, actual in (("info.n_docs", info.get("n_docs"), n_docs),
                                ("info.n_terms", info.get("n_terms"), n_terms),
                                ("vocab.size", manifest["vocab"].get("size"), n_terms)):
        if value is not None and value != actual:
            raise IndexFormatError(f"{path}: {name} is {value!r}, the index holds {actual} "
                                   "(damaged index; rebuild it)")


def update_manifest(path: str | os.PathLike, changes: Mapping) -> dict:
    """Rewrite the manifest with `changes` merged in, atomically (arrays untouched)."""
    manifest = read_manifest(path)
    manifest.update(changes)
    with atomic_file(Path(path) / MANIFEST) as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    return manifest


MEMORY_MODES = ("mapped", "all", "summaries", "disk")


class DiskArray(NamedTuple):
    """An array that kernels read range by range from its file (``load_index(memory="disk")``),
    copying what a query needs into buffers of their own (``query.reads``)."""

    fd: int  # open read-only for as long as the LoadedArrays that holds it
    start: int  # byte offset of element 0 in the file, past the .npy header
    size: int  # elements
    empty: np.ndarray  # zero-length, of the array's dtype: compiled code takes the dtype from it
    path: str  # the file, for messages
    random: bool  # opened with random-access advice (no readahead); False for arrays read in long runs


class LoadedArrays(dict):
    """A loaded index's arrays, by name. Under memory="disk", ``disk`` maps the names of the
    arrays that kernels read from disk to their DiskArray; the files stay open while this lives."""

    def __init__(self, arrays: Mapping[str, np.ndarray], files: Mapping[str, "DiskFile"] | None = None):
        super().__init__(arrays)
        self._files = dict(files or {})
        self.disk = {name: file.array for name, file in self._files.items()}


class DiskFile:
    """One array file opened for reading ranges: with random-access advice (no readahead) where
    queries read it at random, and the kernel's default where they read it in long runs.
    An empty array (which numpy does not map) has no file to read: fd -1."""

    def __init__(self, array: np.ndarray, random: bool = True):
        self._file = None
        if isinstance(array, np.memmap):
            self._file = open(array.filename, "rb", buffering=0)
            if random and hasattr(os, "posix_fadvise"):
                os.posix_fadvise(self._file.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
        self.array = DiskArray(-1 if self._file is None else self._file.fileno(),
                               int(getattr(array, "offset", 0)), int(array.size), np.empty(0, dtype=array.dtype),
                               str(getattr(array, "filename", "")), random)


def load_arrays(path: str | os.PathLike, manifest: dict, verify: bool = False, memory: str = "mapped",
                on_disk: Sequence[str] = (), disk_reads: Sequence[str] = (), disk_only: Sequence[str] = (),
                hashed: Collection[str] = (), disk_runs: Sequence[str] = ()) -> tuple[LoadedArrays, Vocabulary]:
    """Open each array after checking its size, and its hash when verify or it is `hashed`.

    memory: "mapped" memory-maps every array (the OS pages them in as they are used);
    "all" reads every array into RAM; "summaries" reads all but the `on_disk` arrays into
    RAM and leaves those mapped with random-access advice, so that the page cache does not
    read ahead around each document a query touches; "disk" also leaves the `disk_reads`
    arrays out of RAM, and opens their files for kernels to read the ranges a query needs,
    so that what stays resident is the other arrays plus a few buffers (the `disk_runs` among
    them, read in long ranges, keep the kernel's readahead). The `disk_only`
    arrays, which only "disk" reads, stay mapped (and untouched) in every mode.
    """
    require(memory in MEMORY_MODES, f"memory must be one of {', '.join(MEMORY_MODES)}, got {memory!r}")
    path = Path(path)
    left_on_disk = {"mapped": set(manifest["arrays"]), "all": set(), "summaries": set(on_disk),
                    "disk": {*on_disk, *disk_reads}}[memory] | set(disk_only)
    arrays, files = {}, {}
    for name, entry in manifest["arrays"].items():
        file = path / entry["file"]
        check_file(file, entry, verify or name in hashed)
        mapped = name in left_on_disk
        try:
            arrays[name] = np.load(file, mmap_mode="r" if mapped else None, allow_pickle=False)
        except ValueError as e:
            raise IndexFormatError(f"{file}: unreadable array ({e})") from None
        if list(arrays[name].shape) != entry["shape"] or str(arrays[name].dtype) != entry["dtype"]:
            raise IndexFormatError(f"{file}: shape/dtype differ from the manifest")
        if mapped and memory != "mapped":
            advise_random(arrays[name])
        if memory == "disk" and name in disk_reads:
            files[name] = DiskFile(arrays[name], random=name not in disk_runs)
    vocab_entry = manifest["vocab"]
    vocab_file = path / vocab_entry["file"]
    check_file(vocab_file, vocab_entry, verify=True)  # small: always hashed
    terms = vocab_file.read_text(encoding="utf-8").split("\n")[:-1]
    return LoadedArrays(arrays, files), Vocabulary(terms, vocab_entry.get("name"), vocab_entry.get("open", False))


def check_entries(path: Path, manifest: dict) -> None:
    """The manifest's file entries well formed, as load_arrays reads them: a hand-edited or damaged
    one is refused in one line."""
    entries = manifest.get("arrays")
    vocab = manifest.get("vocab")
    well_formed = isinstance(entries, dict) and isinstance(vocab, dict) and isinstance(vocab.get("file"), str) and all(
        isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("dtype"), str)
        and isinstance(entry.get("shape"), list) for entry in entries.values())
    if not well_formed:
        raise IndexFormatError(f"{path / MANIFEST}: malformed manifest (its arrays or vocabulary entries); "
                               "rebuild the index")


def advise_random(array: np.ndarray) -> None:
    """madvise(MADV_RANDOM) over a memory-mapped array, where the platform has it."""
    import mmap

    mapping = getattr(array, "_mmap", None)
    if mapping is not None and hasattr(mmap, "MADV_RANDOM"):
        mapping.madvise(mmap.MADV_RANDOM)


def check_file(file: Path, entry: dict, verify: bool) -> None:
    """A file the manifest lists: present, of its size, and (verify) of its sha256."""
    if not file.exists():
        raise IndexFormatError(f"{file}: missing (index incomplete)")
    if "bytes" in entry and file.stat().st_size != entry["bytes"]:
        raise IndexFormatError(f"{file}: size {file.stat().st_size} bytes, manifest says {entry['bytes']} "
                               "(truncated or replaced)")
    if verify and sha256_file(file) != entry.get("sha256"):
        raise IndexFormatError(f"{file}: checksum mismatch (corrupted)")
