"""Indexes that change: immutable segments, tombstones and generation-numbered commit points.

Lucene's model, small. A segmented index directory holds

- ``seg-NNNNNN/``: one ordinary index directory per segment, never changed once written; it
  also keeps its documents' vectors (``vectors_*`` arrays), so that merges rebuild from
  the exact weights;
- ``seg-NNNNNN.deletes.G.npy``: the segment's tombstones (bool per row) as of generation G,
  their sha256 and count recorded in the commit point and checked at every open;
- ``vocab.G.txt``: the vocabulary as of generation G, one term per line, for an open
  vocabulary (a fixed one is the segments' own);
- ``generation.G.json``: commit point G, the live segments in order, their tombstone files
  and the vocabulary file;
- ``write.lock`` and the writers' hidden temporaries (``sparseir.fileio``).

Nothing else in the directory is the index's: writes delete only what matches these names
and no commit point references any more, and leave anything else (a user's notes, a backup)
alone. A commit point names only entries of its own directory (``seg-NNNNNN`` and the
file names above: no ``..``, no absolute path, no link leading out), and every field it
holds is checked when it is read.

Every write (``add``, ``delete``, ``compact``, and the merges ``add`` triggers) writes its
new files first, then commits ``generation.G+1.json`` atomically, then removes what no
generation references any more. A crash at any point leaves the last committed generation
loadable; an open reader keeps searching the generation it opened (its files stay mapped).
A reader opening generation G while a writer commits G+1 may find G's files removed under
it: it opens the latest generation instead (a bounded number of times).

Appends go to a new segment: below ``small_segment`` documents it is exact, above it of
the index's kind. When there are more than ``max_segments`` segments, the smallest
adjacent pair is merged (adjacent, so that rows keep insertion order). Deletes are
tombstones every kind's kernel honours, as filters. Search merges the segments' top-k with
the single index's tie rule (higher score, then lower row); rows are global, in insertion
order, so the live documents in row order are what a fresh build over them would hold.

Vocabulary: a fixed one (a model's, as BERT's) is shared by every segment, and documents
over another are refused. An open one only grows: an add maps its documents' terms by
string, appends the terms the index lacks, and commits the grown vocabulary as
``vocab.G+1.txt``. A segment keeps the vocabulary it was built with, a prefix of the
index's, so its term ids stay valid; queries go through the index's vocabulary, and each
segment drops the query terms past its own (no document of it holds them). Merges build
over the index's vocabulary.

External ids are unique among live documents: adding a live id is an error, or, with
``upsert=True``, replaces it (the old version is deleted, the new one appended).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import IndexFormatError, ParameterError, SparseirError, require
from .fileio import atomic_file, remove_stale_temps_in, temp_names
from .index import Index, build_index, in_build_order
from .kinds import DEFAULT_KIND, SMALL_SEGMENT_KIND, get_kind, kind_names, make_params
from .searchable import SearchableBase, check_k, prepare_queries
from .sharded import merge_topk
from .vectors import SparseVectors, Vocabulary

FORMAT_NAME = "sparseir-segmented-index"
# 2: tombstone checksums and vocabulary generations; commit points of version 1 (neither) still open.
FORMAT_VERSION = 2
SMALL_KIND = SMALL_SEGMENT_KIND
VECTOR_ARRAYS = ("vectors_offsets", "vectors_terms", "vectors_weights")
LOCK_FILE = "write.lock"
# The index's own names; everything else in its directory belongs to someone else.
GENERATION_FILE = re.compile(r"generation\.(\d+)\.json")
SEGMENT_DIR = re.compile(r"seg-(\d{6,})")
DELETES_FILE = re.compile(r"(seg-\d{6,})\.deletes\.(\d+)\.npy")
VOCAB_FILE = re.compile(r"vocab\.(\d+)\.txt")
OWN_FILES = (GENERATION_FILE, DELETES_FILE, VOCAB_FILE, re.compile(re.escape(LOCK_FILE)))
OWN_NAMES = "|".join(pattern.pattern for pattern in (SEGMENT_DIR, *OWN_FILES))
OWN_TEMPORARIES = temp_names(OWN_NAMES)
# A reader whose generation is replaced under it opens the latest one instead, this many
# times at most: each retry means a writer committed meanwhile, so only writers committing
# faster than one open can exhaust them.
OPEN_ATTEMPTS = 10


def is_segmented(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and any(GENERATION_FILE.fullmatch(name) for name in os.listdir(path))


def latest_generation(path: Path) -> int:
    generations = [int(m[1]) for name in os.listdir(path) if (m := GENERATION_FILE.fullmatch(name))]
    if not generations:
        raise IndexFormatError(f"{path}: no committed generation (generation.N.json)")
    return max(generations)


def is_own(entry: os.DirEntry) -> bool:
    """Whether a directory entry is one the index writes: its names, of their type (a link is never one)."""
    if entry.is_symlink():
        return False
    if SEGMENT_DIR.fullmatch(entry.name):
        return entry.is_dir(follow_symlinks=False)
    if any(pattern.fullmatch(entry.name) for pattern in OWN_FILES):
        return entry.is_file(follow_symlinks=False)
    return OWN_TEMPORARIES.fullmatch(entry.name) is not None


def foreign_names(path: str | os.PathLike) -> list[str]:
    """What the index directory holds that is not the index's (left alone by every write),
    directories marked with a trailing slash."""
    with os.scandir(path) as entries:
        return sorted(entry.name + ("/" if entry.is_dir() else "") for entry in entries if not is_own(entry))


def create_segmented(path: str | os.PathLike, kind: str = DEFAULT_KIND, small_segment: int = 10_000,
                     max_segments: int = 8, **build_params) -> "SegmentedIndex":
    """An empty segmented index of `kind` at `path` (which must not exist yet)."""
    path = Path(path)
    make_params(get_kind(kind).BuildParams, build_params, f"{kind} build")
    require(isinstance(small_segment, int) and small_segment >= 0, f"small_segment must be >= 0, got {small_segment!r}")
    require(isinstance(max_segments, int) and max_segments >= 1, f"max_segments must be >= 1, got {max_segments!r}")
    if path.exists():
        raise ParameterError(f"{path}: already exists")
    path.mkdir(parents=True)
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "generation": 0, "kind": kind,
                "build_params": build_params, "small_segment": small_segment, "max_segments": max_segments,
                "next_segment": 1, "segments": []}
    commit(path, manifest)
    return load_segmented(path)


def make_segmented(path: str | os.PathLike, vectors: SparseVectors | str | os.PathLike, small_segment: int = 10_000,
                   max_segments: int = 8) -> "SegmentedIndex":
    """Turn the saved index at `path` into a segmented one whose first segment is that index,
    so that add, delete and compact work on it; returns it opened.

    `vectors` are the documents the index was built from (a SparseVectors, or a vectors file
    or directory of parts): a segment keeps its documents' exact weights, which merges
    rebuild from, and an index keeps them only as its kind stores them. They must hold the
    index's ids and no term outside its vocabulary. The index's files move into the
    segment; files of the directory that the index did not list stay where they are.
    """
    from .index import in_rows_of
    from .sharded import is_sharded
    from .storage import MANIFEST, VOCAB_FILE as PLAIN_VOCAB, read_manifest

    path = Path(path)
    require(isinstance(small_segment, int) and small_segment >= 0, f"small_segment must be >= 0, got {small_segment!r}")
    require(isinstance(max_segments, int) and max_segments >= 1, f"max_segments must be >= 1, got {max_segments!r}")
    if is_segmented(path):
        raise ParameterError(f"{path}: already a segmented index")
    if is_sharded(path):
        raise ParameterError(f"{path}: a sharded index; segments hold one index each, so make each shard's instead")
    index = Index.load(path)
    if index.attributes is not None:
        raise ParameterError(f"{path}: this index stores document attributes, which segmented indexes do not keep yet")
    if not isinstance(vectors, SparseVectors):
        from .formats import read_vectors

        vectors = read_vectors(vectors, vocab=index.vocab)
    if vectors.vocab != index.vocab:
        raise ParameterError(f"the vectors use {vectors.vocab!r} but the index {index.vocab!r}: pass the vectors the "
                             "index was built from")
    docs = in_rows_of(vectors, index.doc_ids)
    name = f"seg-{1:06d}"
    arrays = {**index.arrays, **dict(zip(VECTOR_ARRAYS, (docs.offsets, docs.terms, docs.weights)))}
    Index(index.kind, arrays, index.doc_ids, index.vocab, index.build_params, index.search_defaults,
          index.info).save(path / name, overwrite=True)  # overwrite: what a killed conversion left
    old_files = [entry["file"] for entry in read_manifest(path)["arrays"].values()]
    commit(path, {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "generation": 1, "kind": index.kind,
                  "build_params": dataclasses.asdict(index.build_params), "small_segment": small_segment,
                  "max_segments": max_segments, "next_segment": 2,
                  "segments": [{"dir": name, "kind": index.kind, "n_docs": index.n_docs, "deletes": None,
                                "n_deleted": 0, "deletes_sha256": None}]})
    del index, arrays  # the old files' mappings, before they go
    # Committed: the plain index's files are now copies of the segment's, the manifest last.
    for file in [*old_files, PLAIN_VOCAB, MANIFEST]:
        (path / file).unlink(missing_ok=True)
    return load_segmented(path)


def commit(path: Path, manifest: dict) -> None:
    with atomic_file(path / f"generation.{manifest['generation']}.json", mode="wb", overwrite=False) as f:
        f.write((json.dumps(manifest, indent=2) + "\n").encode("utf-8"))


# --- opening a generation ------------------------------------------------------------------

def load_segmented(path: str | os.PathLike, verify: bool = False, memory: str = "mapped") -> "SegmentedIndex":
    """Open the latest committed generation.

    A writer removes generation G's files only after committing a later one, so a file of
    G found missing (or unreadable) while a later generation is committed means G was
    replaced under this reader: it opens the latest instead. Without a later generation
    the failure is damage, reported as it is.
    """
    path = Path(path)
    for _ in range(OPEN_ATTEMPTS):
        generation = latest_generation(path)
        try:
            return open_generation(path, generation, verify, memory)
        except (SparseirError, OSError) as error:
            if latest_generation(path) != generation:
                continue
            if isinstance(error, OSError):
                raise IndexFormatError(f"{error.filename or path}: {error.strerror or error}") from None
            raise
    raise IndexFormatError(f"{path}: {OPEN_ATTEMPTS} generations in a row were replaced while being opened; "
                           "open it again once writes pause")


def open_generation(path: Path, generation: int, verify: bool = False, memory: str = "mapped") -> "SegmentedIndex":
    """Open commit point `generation` and what it names (OSError where a file is missing)."""
    file = path / f"generation.{generation}.json"
    manifest = read_commit_point(file)
    check_commit_point(file, manifest, generation)
    for name in referenced_names(manifest):
        check_inside(path, name, file)
    vocab = read_vocab(path, manifest["vocab"]) if manifest.get("vocab") is not None else None
    segments, deletes = [], []
    for entry in manifest["segments"]:
        segment = open_segment(path, entry, file, verify, memory)
        if vocab is None:
            vocab = segment.vocab  # a fixed vocabulary (or a commit point from before vocabulary files)
        if not is_prefix(segment.vocab, vocab):
            raise IndexFormatError(f"{path / entry['dir']}: its vocabulary is not a prefix of the index's "
                                   f"({file.name})")
        segments.append(segment)
        deletes.append(read_tombstones(path, entry))
    return SegmentedIndex(path, manifest, segments, deletes, vocab)


def is_prefix(part: Vocabulary, whole: Vocabulary) -> bool:
    n = len(part)
    return n <= len(whole) and part.terms == (whole.terms if n == len(whole) else whole.terms[:n])


def read_commit_point(file: Path) -> dict:
    data = file.read_bytes()  # OSError: removed by a writer, or missing
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise IndexFormatError(f"{file}: unreadable commit point ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{file}: not a {FORMAT_NAME} commit point")
    version = manifest.get("format_version")
    if not is_count(version, 1):
        raise IndexFormatError(f"{file}: format_version is {version!r}, not a version number")
    if version > FORMAT_VERSION:
        raise IndexFormatError(f"{file}: {FORMAT_NAME} version {version} is newer than this sparseir reads "
                               f"({FORMAT_VERSION}); upgrade sparseir")
    return manifest


def is_count(value, low: int = 0) -> bool:
    """An int (not a bool) >= low."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def is_sha256(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def check_field(file: Path, mapping: dict, key: str, valid, expected: str, where: str = "") -> None:
    """One line naming the file and the key when `mapping[key]` is absent or fails `valid`."""
    if key not in mapping:
        raise IndexFormatError(f"{file}: commit point lacks {where}{key!r}")
    if not valid(mapping[key]):
        raise IndexFormatError(f"{file}: {where}{key!r} is {mapping[key]!r}, expected {expected}")


def check_commit_point(file: Path, manifest: dict, generation: int) -> None:
    """Every field a reader or writer uses, of its type and range; names only of the index's own form."""
    check_field(file, manifest, "generation", lambda value: is_count(value) and value == generation,
                f"{generation} (its file name)")
    check_field(file, manifest, "kind", lambda value: value in kind_names(), f"one of {', '.join(kind_names())}")
    check_field(file, manifest, "build_params", lambda value: isinstance(value, dict), "an object")
    try:
        make_params(get_kind(manifest["kind"]).BuildParams, manifest["build_params"], f"{manifest['kind']} build")
    except (ParameterError, TypeError) as e:
        raise IndexFormatError(f"{file}: 'build_params' {e}") from None
    check_field(file, manifest, "small_segment", is_count, "an integer >= 0")
    check_field(file, manifest, "max_segments", lambda value: is_count(value, 1), "an integer >= 1")
    check_field(file, manifest, "next_segment", lambda value: is_count(value, 1), "an integer >= 1")
    check_field(file, manifest, "segments", lambda value: isinstance(value, list), "a list")
    seen = set()
    for number, entry in enumerate(manifest["segments"]):
        where = f"segments[{number}] "
        if not isinstance(entry, dict):
            raise IndexFormatError(f"{file}: {where}is {entry!r}, expected an object")
        check_field(file, entry, "dir", lambda value: isinstance(value, str) and SEGMENT_DIR.fullmatch(value)
                    and int(value[4:]) < manifest["next_segment"] and value not in seen,
                    "a segment directory of the index (seg-NNNNNN, numbered below next_segment, listed once)", where)
        seen.add(entry["dir"])
        check_field(file, entry, "kind", lambda value: value in (manifest["kind"], SMALL_KIND),
                    f"{manifest['kind']} or {SMALL_KIND}", where)
        check_field(file, entry, "n_docs", lambda value: is_count(value, 1), "an integer >= 1", where)
        check_field(file, entry, "deletes", lambda value: value is None or (
            isinstance(value, str) and (match := DELETES_FILE.fullmatch(value)) is not None
            and match[1] == entry["dir"] and int(match[2]) <= generation),
            f"null or a tombstone file of the index ({entry['dir']}.deletes.G.npy, G <= {generation})", where)
        check_field(file, entry, "n_deleted", lambda value: is_count(value) and value <= entry["n_docs"]
                    and (value == 0 or entry["deletes"] is not None),
                    "an integer from 0 to n_docs (0 without a tombstone file)", where)
        if "deletes_sha256" in entry:  # absent from commit points of version 1
            check_field(file, entry, "deletes_sha256", lambda value: value is None if entry["deletes"] is None
                        else is_sha256(value), "the tombstone file's sha256 (null without one)", where)
    if manifest.get("vocab") is not None:
        vocab = manifest["vocab"]
        if not isinstance(vocab, dict):
            raise IndexFormatError(f"{file}: 'vocab' is {vocab!r}, expected an object")
        check_field(file, vocab, "file", lambda value: isinstance(value, str) and (
            match := VOCAB_FILE.fullmatch(value)) is not None and int(match[1]) <= generation,
            f"a vocabulary file of the index (vocab.G.txt, G <= {generation})", "vocab ")
        check_field(file, vocab, "size", is_count, "an integer >= 0", "vocab ")
        check_field(file, vocab, "sha256", is_sha256, "a sha256 digest", "vocab ")
        check_field(file, vocab, "open", lambda value: value is True, "true (files hold open vocabularies)", "vocab ")
        check_field(file, vocab, "name", lambda value: value is None or isinstance(value, str), "null or a string",
                    "vocab ")


def referenced_names(manifest: dict) -> set[str]:
    """The entries of the index directory a (checked) commit point references, itself included."""
    names = {f"generation.{manifest['generation']}.json"}
    for entry in manifest["segments"]:
        names.add(entry["dir"])
        if entry["deletes"] is not None:
            names.add(entry["deletes"])
    if manifest.get("vocab") is not None:
        names.add(manifest["vocab"]["file"])
    return names


def check_inside(path: Path, name: str, file: Path) -> None:
    """A name the commit point gives (already a plain name of the index's form) must not be a
    link leading out of the index directory."""
    target = path / name
    if target.is_symlink() and target.resolve().parent != path.resolve():
        raise IndexFormatError(f"{file}: {name} is a link leading out of the index directory")


def open_segment(path: Path, entry: dict, file: Path, verify: bool, memory: str) -> Index:
    """The segment an entry of commit point `file` names, checked against the entry."""
    directory = path / entry["dir"]
    if not directory.exists():
        raise FileNotFoundError(2, "segment directory missing", str(directory))
    segment = Index.load(directory, verify=verify, memory=memory)
    if segment.n_docs != entry["n_docs"] or segment.kind != entry["kind"]:
        raise IndexFormatError(f"{directory}: {segment.n_docs} {segment.kind} documents, {file.name} says "
                               f"{entry['n_docs']} {entry['kind']}")
    return segment


def read_tombstones(path: Path, entry: dict) -> np.ndarray:
    """A segment's tombstones, checked against the commit point's count and (when it records
    one) checksum: they are small, so this is done at every open."""
    if entry["deletes"] is None:
        return np.zeros(entry["n_docs"], dtype=bool)
    file = path / entry["deletes"]
    data = file.read_bytes()  # OSError: removed by a writer, or missing
    expected = entry.get("deletes_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise IndexFormatError(f"{file}: checksum mismatch (corrupted or replaced)")
    try:
        deleted = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise IndexFormatError(f"{file}: unreadable tombstones ({e})") from None
    if deleted.shape != (entry["n_docs"],) or deleted.dtype != bool:
        raise IndexFormatError(f"{file}: tombstones of shape {deleted.shape} and dtype {deleted.dtype} do not fit "
                               f"the segment's {entry['n_docs']} documents")
    if int(deleted.sum()) != entry["n_deleted"]:
        raise IndexFormatError(f"{file}: {int(deleted.sum())} tombstones, the commit point says "
                               f"{entry['n_deleted']} (corrupted or replaced)")
    return deleted


def read_vocab(path: Path, entry: dict) -> Vocabulary:
    """The vocabulary file a commit point names, always hashed (it is read whole anyway)."""
    file = path / entry["file"]
    data = file.read_bytes()  # OSError: removed by a writer, or missing
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise IndexFormatError(f"{file}: checksum mismatch (corrupted or replaced)")
    try:
        terms = data.decode("utf-8").split("\n")[:-1]
        vocab = Vocabulary(terms, entry["name"], open=True)
    except (UnicodeDecodeError, ParameterError) as e:
        raise IndexFormatError(f"{file}: unreadable vocabulary ({e})") from None
    if len(vocab) != entry["size"]:
        raise IndexFormatError(f"{file}: {len(vocab)} terms, the commit point says {entry['size']}")
    return vocab


def vocab_bytes(vocab: Vocabulary) -> bytes:
    return "".join(term + "\n" for term in vocab.terms).encode("utf-8")


def grown_with(docs: SparseVectors, vocab: Vocabulary) -> SparseVectors:
    """`docs` over the open vocabulary `vocab`, their terms mapped by string; the terms `vocab`
    lacks that the documents use are appended, in the documents' vocabulary order (so an
    extension of `vocab`, as reading with it gives, keeps its ids). Returns `vocab` itself
    as the documents' vocabulary when nothing was appended."""
    used = np.unique(docs.terms)
    n = len(vocab)
    if len(docs.vocab) >= n and docs.vocab.terms[:n] == vocab.terms:
        # An extension (what reading with the index's vocabulary gives): the first n ids stay.
        added = used[used >= n]
        target = np.arange(len(docs.vocab), dtype=np.int32)
        target[added] = n + np.arange(len(added), dtype=np.int32)
        new_terms = [docs.vocab.term(term_id) for term_id in added.tolist()]
    else:
        target = np.zeros(len(docs.vocab), dtype=np.int32)
        new_terms = []
        for term_id in used.tolist():
            term = docs.vocab.term(term_id)
            index_id = vocab.get(term)
            if index_id is None:
                index_id = n + len(new_terms)
                new_terms.append(term)
            target[term_id] = index_id
    grown = Vocabulary([*vocab.terms, *new_terms], vocab.name, open=True) if new_terms else vocab
    terms, weights = target[docs.terms], docs.weights
    if np.any(np.diff(target[used]) < 0):  # another order of terms: sort each row again
        order = np.lexsort((terms, np.repeat(np.arange(len(docs)), np.diff(docs.offsets))))
        terms, weights = terms[order], weights[order]
    return SparseVectors(docs.offsets, terms, weights, docs.ids, grown, validate=False)


def over(vectors: SparseVectors, vocab: Vocabulary) -> SparseVectors:
    """The same vectors labelled with `vocab` (their term ids must be ids of it)."""
    return SparseVectors(vectors.offsets, vectors.terms, vectors.weights, vectors.ids, vocab, validate=False)


class SegmentedIndex(SearchableBase):
    """Segments searched in turn, deletes as tombstones; ``Searchable`` like ``Index``."""

    def __init__(self, path: Path, manifest: dict, segments: list[Index], deletes: list[np.ndarray],
                 vocab: Vocabulary | None):
        self.path = path
        self.manifest = manifest
        self.kind = manifest["kind"]
        self.segments = segments
        self.deletes = deletes
        self._vocab = vocab  # None until the first documents are added
        sizes = [segment.n_docs for segment in segments]
        self.bases = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._live_filters = [None if not deleted.any() else segment.prepare_filter(~deleted)
                              for segment, deleted in zip(segments, deletes)]

    def __repr__(self) -> str:
        return (f"SegmentedIndex(kind={self.kind!r}, n_live={self.n_live}, segments={len(self.segments)}, "
                f"generation={self.generation})")

    # --- metadata -----------------------------------------------------------------

    @property
    def generation(self) -> int:
        return int(self.manifest["generation"])

    @property
    def n_docs(self) -> int:
        """Rows, deleted ones included (rows are what search returns)."""
        return int(self.bases[-1])

    @property
    def n_live(self) -> int:
        return int(sum(len(deleted) - deleted.sum() for deleted in self.deletes))

    @property
    def has_vocab(self) -> bool:
        """False until documents were added: the first ones set the vocabulary."""
        return self._vocab is not None

    @property
    def vocab(self) -> Vocabulary:
        """The index's vocabulary; each segment's own is a prefix of it."""
        if self._vocab is None:
            raise ParameterError("this segmented index is empty: add documents first")
        return self._vocab

    @cached_property
    def doc_ids(self) -> np.ndarray:
        """External ids by global row (assembled from the segments on first use)."""
        if not self.segments:
            return np.empty(0, dtype=object)
        return np.concatenate([np.asarray(segment.doc_ids, dtype=object) for segment in self.segments])

    def live_ids(self) -> list[str]:
        """The live documents' external ids, in row order."""
        return [str(doc_id) for segment, deleted in zip(self.segments, self.deletes)
                for doc_id, gone in zip(segment.doc_ids, deleted) if not gone]

    def doc_frequency(self) -> np.ndarray:
        """Documents per term over the segments (deleted documents count until they are merged away)."""
        counts = np.zeros(len(self.vocab), dtype=np.int64)
        for segment in self.segments:
            frequency = segment.doc_frequency()
            counts[:len(frequency)] += frequency  # a segment's terms are the first of the index's
        return counts

    def search_params(self, **knobs):
        return make_params(get_kind(self.kind).SearchParams, knobs, f"{self.kind} search")

    def part_of_row(self, row: int) -> tuple[Index, int]:
        """The segment holding live global row `row`, and the row there."""
        number = int(np.searchsorted(self.bases, row, side="right") - 1)
        local = row - int(self.bases[number])
        if self.deletes[number][local]:
            raise ParameterError(f"id {str(self.doc_ids[row])!r} is not a live document of the index")
        return self.segments[number], local

    def attribute_mask(self, expression: str) -> np.ndarray:
        raise ParameterError("attribute filters are not kept by segmented indexes yet")

    # --- search -------------------------------------------------------------------

    def search(self, queries, k: int = 10, threads: int | None = None, filter=None, filters=None,
               **knobs) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over the live documents: (scores float32, global rows int64), each (n_queries, k)."""
        from .filters import resolve as resolve_filters, split_per_query
        from .query.topk import empty_results

        k = check_k(k)
        self.search_params(**knobs)
        if not self.segments:
            n_queries = 1 if isinstance(queries, dict) else len(queries)
            return empty_results(n_queries, k)
        queries = prepare_queries(queries, self.vocab)
        resolved = resolve_filters(self, len(queries), filter, filters)
        scores, rows = [], []
        for number, segment in enumerate(self.segments):
            lo, hi = self.bases[number], self.bases[number + 1]
            # Small segments are exact: the index kind's knobs are not theirs.
            segment_knobs = knobs if segment.kind == self.kind else {}
            # Over the segment's own vocabulary (a prefix of the index's): its search drops the
            # query terms past it, which none of its documents holds.
            segment_queries = over(queries, segment.vocab)
            if resolved is None:
                found = segment.search(segment_queries, k=k, threads=threads, filter=self._live_filters[number],
                                       **segment_knobs)
            else:
                found = segment.search(segment_queries, k=k, threads=threads,
                                       filters=split_per_query(resolved, slice(lo, hi), ~self.deletes[number]),
                                       **segment_knobs)
            scores.append(found[0])
            rows.append(np.where(found[1] >= 0, found[1] + lo, -1))
        return merge_topk(scores, rows, k)

    # --- writes -------------------------------------------------------------------

    def add(self, docs: SparseVectors, upsert: bool = False) -> int:
        """Append `docs` as a new segment (then merge if there are too many); returns the generation.

        Over an open vocabulary, the documents' terms are mapped by string and the new ones
        appended to the index's vocabulary; a fixed one takes only documents over itself."""
        require(len(docs) > 0, "nothing to add")
        docs = self._in_vocab(docs)
        if docs.vocab.open and docs.vocab is not self._vocab:  # terms a vocabulary file will hold
            new_terms = docs.vocab.terms[len(self._vocab) if self._vocab is not None else 0:]
            bad = next((term for term in new_terms if "\n" in term), None)
            require(bad is None, f"term {bad!r} holds a line break, which a vocabulary file cannot")
        ids = [str(doc_id) for doc_id in docs.ids]
        if len(set(ids)) != len(ids):
            raise ParameterError("the documents repeat an id")
        live = self._live_rows()
        present = [doc_id for doc_id in ids if doc_id in live]
        if present and not upsert:
            raise ParameterError(f"id {present[0]!r} is already in the index (pass upsert=True / --upsert to "
                                 "replace it)")
        with self._writing():
            deletes = self._with_deleted([live[doc_id] for doc_id in present])
            manifest = self._next_manifest()
            if docs.vocab.open and (manifest.get("vocab") is None or len(docs.vocab) > len(self.vocab)):
                manifest["vocab"] = self._write_vocab(docs.vocab, manifest["generation"])
            entries = self._entries(deletes, manifest["generation"])
            entries.append(self._write_segment(docs, manifest))
            manifest["segments"] = entries
            generation = self._commit(manifest)
            return self._merge_if_needed() or generation

    def delete(self, ids) -> int:
        """Tombstone the live documents with these external ids (each counted once); returns the generation."""
        ids = list(dict.fromkeys(str(doc_id) for doc_id in ids))
        require(len(ids) > 0, "no ids to delete")
        live = self._live_rows()
        missing = [doc_id for doc_id in ids if doc_id not in live]
        if missing:
            raise ParameterError(f"id {missing[0]!r} is not a live document of the index")
        with self._writing():
            manifest = self._next_manifest()
            manifest["segments"] = self._entries(self._with_deleted([live[doc_id] for doc_id in ids]),
                                                 manifest["generation"])
            return self._commit(manifest)

    def compact(self) -> int:
        """Merge every segment into one of the index's kind, deleted documents dropped."""
        with self._writing():
            return self._merge(0, len(self.segments), force_kind=True)

    # --- internals ----------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self):
        """One writer at a time (Lucene's write.lock), on the latest generation, after clearing what
        killed writers left (the index's files no commit point references, their temporaries)."""
        with open(self.path / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                latest = latest_generation(self.path)
                if latest != self.generation:
                    raise ParameterError(f"{self.path}: opened at generation {self.generation}, but generation "
                                         f"{latest} has been committed since; open the index again to write to it")
                self._remove_unreferenced()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _in_vocab(self, docs: SparseVectors) -> SparseVectors:
        """`docs` over the vocabulary the index has once they are added."""
        if self._vocab is None:
            return docs  # the first documents set the vocabulary
        vocab = self._vocab
        if docs.vocab is vocab or docs.vocab == vocab:
            return over(docs, vocab)
        if not vocab.open:
            raise ParameterError(f"the documents use {docs.vocab!r} but the index the fixed {vocab!r}: read them "
                                 "with the index's vocabulary")
        return grown_with(docs, vocab)

    def _live_rows(self) -> dict[str, int]:
        return {str(doc_id): int(self.bases[number] + row)
                for number, (segment, deleted) in enumerate(zip(self.segments, self.deletes))
                for row, doc_id in enumerate(segment.doc_ids) if not deleted[row]}

    def _with_deleted(self, global_rows: list[int]) -> list[np.ndarray]:
        deletes = [deleted.copy() for deleted in self.deletes]
        for row in global_rows:
            number = int(np.searchsorted(self.bases, row, side="right") - 1)
            deletes[number][row - self.bases[number]] = True
        return deletes

    def _next_manifest(self) -> dict:
        return {**self.manifest, "format_version": FORMAT_VERSION, "generation": self.generation + 1}

    def _write_new(self, name: str, data: bytes) -> str:
        """Write one new file of the index; returns its sha256."""
        with atomic_file(self.path / name, mode="wb", overwrite=False) as f:
            f.write(data)
        return hashlib.sha256(data).hexdigest()

    def _write_vocab(self, vocab: Vocabulary, generation: int) -> dict:
        name = f"vocab.{generation}.txt"
        return {"file": name, "size": len(vocab), "sha256": self._write_new(name, vocab_bytes(vocab)),
                "name": vocab.name, "open": True}

    def _entries(self, deletes: list[np.ndarray], generation: int) -> list[dict]:
        """The commit point's entries of the current segments, writing tombstones that changed."""
        entries = []
        for entry, old, new in zip(self.manifest["segments"], self.deletes, deletes):
            entry = dict(entry)
            if not np.array_equal(old, new):
                name = f"{entry['dir']}.deletes.{generation}.npy"
                buffer = io.BytesIO()
                np.save(buffer, new, allow_pickle=False)
                entry["deletes"], entry["n_deleted"] = name, int(new.sum())
                entry["deletes_sha256"] = self._write_new(name, buffer.getvalue())
            entries.append(entry)
        return entries

    def _write_segment(self, docs: SparseVectors, manifest: dict, force_kind: bool = False) -> dict:
        number = manifest["next_segment"]
        manifest["next_segment"] = number + 1
        large = force_kind or len(docs) >= manifest["small_segment"]
        kind = self.kind if large else SMALL_KIND
        params = manifest["build_params"] if large else {}
        # Reordered here, not by the build, so that the vectors kept for merges share the index's rows.
        docs, _ = in_build_order(docs, None, make_params(get_kind(kind).BuildParams, params, f"{kind} build").reorder)
        segment = build_index(docs, kind=kind, **{**params, "reorder": "none"})
        segment.arrays.update(zip(VECTOR_ARRAYS, (docs.offsets, docs.terms, docs.weights)))
        name = f"seg-{number:06d}"
        segment.save(self.path / name)
        return {"dir": name, "kind": kind, "n_docs": len(docs), "deletes": None, "n_deleted": 0,
                "deletes_sha256": None}

    def _commit(self, manifest: dict) -> int:
        commit(self.path, manifest)
        fresh = load_segmented(self.path)
        # Replace, not merge: what was derived from the old generation (ids, their rows) goes too.
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)
        self._remove_unreferenced()
        return self.generation

    def _remove_unreferenced(self) -> None:
        """Delete the index's own entries that no commit point references any more (older commit
        points included), and dead writers' temporaries; anything else is not the index's to delete."""
        keep = referenced_names(self.manifest) | {LOCK_FILE}
        with os.scandir(self.path) as entries:
            unreferenced = [entry for entry in entries if entry.name not in keep and not entry.name.startswith(".")
                            and is_own(entry)]
        for entry in unreferenced:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        # A running writer's temporaries stay: only those of writers no longer running go.
        remove_stale_temps_in(self.path, OWN_NAMES)

    def _segment_vectors(self, number: int) -> SparseVectors:
        """The live documents of one segment, with their exact weights, over the index's vocabulary."""
        segment = self.segments[number]
        arrays = segment.arrays
        vectors = SparseVectors(np.asarray(arrays["vectors_offsets"]), np.asarray(arrays["vectors_terms"]),
                                np.asarray(arrays["vectors_weights"]), segment.doc_ids, self.vocab, validate=False)
        return vectors.take(np.flatnonzero(~self.deletes[number]))

    def _merge(self, first: int, last: int, force_kind: bool = False) -> int:
        """Replace segments first..last-1 by one; returns the generation."""
        manifest = self._next_manifest()
        entries = [dict(entry) for entry in self.manifest["segments"]]
        parts = [self._segment_vectors(number) for number in range(first, last)]
        parts = [part for part in parts if len(part)]
        merged = [self._write_segment(SparseVectors.concatenate(parts), manifest, force_kind)] if parts else []
        manifest["segments"] = entries[:first] + merged + entries[last:]
        return self._commit(manifest)

    def _merge_if_needed(self) -> int | None:
        """Merge the smallest adjacent pair while there are more than max_segments segments."""
        generation = None
        while len(self.segments) > self.manifest["max_segments"]:
            live = [len(deleted) - int(deleted.sum()) for deleted in self.deletes]
            pair = int(np.argmin([a + b for a, b in zip(live[:-1], live[1:])]))
            generation = self._merge(pair, pair + 2)
        return generation
