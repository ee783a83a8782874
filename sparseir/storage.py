"""Index directories: ``manifest.json`` plus one ``.npy`` per array, loaded with mmap.

The manifest records the format version, kind, parameters, counts, the vocabulary and
each array's size and sha256. Loading checks sizes always and hashes on request, so a
truncated or corrupted file is refused instead of answering wrongly.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .errors import IndexFormatError, require
from .fileio import atomic_directory, atomic_file, crash_point
from .vectors import Vocabulary

FORMAT_NAME = "sparseir-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VOCAB_FILE = "vocab.txt"


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


def update_manifest(path: str | os.PathLike, changes: Mapping) -> dict:
    """Rewrite the manifest with `changes` merged in, atomically (arrays untouched)."""
    manifest = read_manifest(path)
    manifest.update(changes)
    with atomic_file(Path(path) / MANIFEST) as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    return manifest


MEMORY_MODES = ("mapped", "all", "summaries")


def load_arrays(path: str | os.PathLike, manifest: dict, verify: bool = False, memory: str = "mapped",
                on_disk: Sequence[str] = ()) -> tuple[dict[str, np.ndarray], Vocabulary]:
    """Open each array after checking its size, and its hash when verify.

    memory: "mapped" memory-maps every array (the OS pages them in as they are used);
    "all" reads every array into RAM; "summaries" reads all but the `on_disk` arrays into
    RAM and leaves those mapped with random-access advice, so that the page cache does not
    read ahead around each document a query touches.
    """
    require(memory in MEMORY_MODES, f"memory must be one of {', '.join(MEMORY_MODES)}, got {memory!r}")
    path = Path(path)
    arrays = {}
    for name, entry in manifest["arrays"].items():
        file = path / entry["file"]
        check_file(file, entry, verify)
        mapped = memory == "mapped" or (memory == "summaries" and name in on_disk)
        try:
            arrays[name] = np.load(file, mmap_mode="r" if mapped else None, allow_pickle=False)
            if memory == "summaries" and mapped:
                advise_random(arrays[name])
        except ValueError as e:
            raise IndexFormatError(f"{file}: unreadable array ({e})") from None
        if list(arrays[name].shape) != entry["shape"] or str(arrays[name].dtype) != entry["dtype"]:
            raise IndexFormatError(f"{file}: shape/dtype differ from the manifest")
    vocab_entry = manifest["vocab"]
    vocab_file = path / vocab_entry["file"]
    check_file(vocab_file, vocab_entry, verify=True)  # small: always hashed
    terms = vocab_file.read_text(encoding="utf-8").split("\n")[:-1]
    return arrays, Vocabulary(terms, vocab_entry.get("name"), vocab_entry.get("open", False))


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
    if verify and sha256_file(file) != entry["sha256"]:
        raise IndexFormatError(f"{file}: checksum mismatch (corrupted)")
