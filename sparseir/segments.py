"""Indexes that change: immutable segments, tombstones and generation-numbered commit points.

Lucene's model, small. A segmented index directory holds

- ``seg-NNNNNN/``: one ordinary index directory per segment, never changed once written; it
  also keeps its documents' vectors (``vectors_*`` arrays), so that merges rebuild from
  the exact weights;
- ``seg-NNNNNN.deletes.G.npy``: the segment's tombstones (bool per row) as of generation G;
- ``generation.G.json``: commit point G, the live segments in order and their tombstone files.

Every write (``add``, ``delete``, ``compact``, and the merges ``add`` triggers) writes its
new files first, then commits ``generation.G+1.json`` atomically, then removes what no
generation references any more. A crash at any point leaves the last committed generation
loadable; an open reader keeps searching the generation it opened (its files stay mapped).

Appends go to a new segment: below ``small_segment`` documents it is exact, above it of
the index's kind. When there are more than ``max_segments`` segments, the smallest
adjacent pair is merged (adjacent, so that rows keep insertion order). Deletes are
tombstones every kind's kernel honours, as filters. Search merges the segments' top-k with
the single index's tie rule (higher score, then lower row); rows are global, in insertion
order, so the live documents in row order are what a fresh build over them would hold.

External ids are unique among live documents: adding a live id is an error, or, with
``upsert=True``, replaces it (the old version is deleted, the new one appended).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import IndexFormatError, ParameterError, require
from .fileio import atomic_file, remove_stale_temps_in
from .index import Index, build_index, in_build_order
from .kinds import get_kind, make_params
from .searchable import SearchableBase, check_k, prepare_queries
from .sharded import merge_topk
from .vectors import SparseVectors

FORMAT_NAME = "sparseir-segmented-index"
FORMAT_VERSION = 1
GENERATION_FILE = re.compile(r"generation\.(\d+)\.json")
SMALL_KIND = "exact"
VECTOR_ARRAYS = ("vectors_offsets", "vectors_terms", "vectors_weights")
LOCK_FILE = "write.lock"


def is_segmented(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and any(GENERATION_FILE.fullmatch(name) for name in os.listdir(path))


def latest_generation(path: Path) -> int:
    generations = [int(m[1]) for name in os.listdir(path) if (m := GENERATION_FILE.fullmatch(name))]
    if not generations:
        raise IndexFormatError(f"{path}: no committed generation (generation.N.json)")
    return max(generations)


def create_segmented(path: str | os.PathLike, kind: str = "exact", small_segment: int = 10_000,
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


def commit(path: Path, manifest: dict) -> None:
    with atomic_file(path / f"generation.{manifest['generation']}.json", mode="wb", overwrite=False) as f:
        f.write((json.dumps(manifest, indent=2) + "\n").encode("utf-8"))


def load_segmented(path: str | os.PathLike, verify: bool = False, memory: str = "mapped") -> "SegmentedIndex":
    """Open the latest committed generation."""
    path = Path(path)
    generation = latest_generation(path)
    file = path / f"generation.{generation}.json"
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IndexFormatError(f"{file}: unreadable commit point ({e})") from None
    if manifest.get("format") != FORMAT_NAME or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(f"{file}: not a {FORMAT_NAME} of version {FORMAT_VERSION}")
    segments, deletes = [], []
    for entry in manifest["segments"]:
        segment = Index.load(path / entry["dir"], verify=verify, memory=memory)
        if segment.n_docs != entry["n_docs"]:
            raise IndexFormatError(f"{path / entry['dir']}: {segment.n_docs} documents, the commit point says "
                                   f"{entry['n_docs']}")
        deleted = np.zeros(segment.n_docs, dtype=bool)
        if entry["deletes"] is not None:
            deleted = np.load(path / entry["deletes"], allow_pickle=False)
            if deleted.shape != (segment.n_docs,) or deleted.dtype != bool:
                raise IndexFormatError(f"{path / entry['deletes']}: tombstones do not fit the segment")
        segments.append(segment)
        deletes.append(deleted)
    return SegmentedIndex(path, manifest, segments, deletes)


class SegmentedIndex(SearchableBase):
    """Segments searched in turn, deletes as tombstones; ``Searchable`` like ``Index``."""

    def __init__(self, path: Path, manifest: dict, segments: list[Index], deletes: list[np.ndarray]):
        self.path = path
        self.manifest = manifest
        self.kind = manifest["kind"]
        self.segments = segments
        self.deletes = deletes
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
    def vocab(self):
        if not self.segments:
            raise ParameterError("this segmented index is empty: add documents first")
        return self.segments[0].vocab

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
        return np.sum([segment.doc_frequency() for segment in self.segments], axis=0)

    def search_params(self, **knobs):
        return make_params(get_kind(self.kind).SearchParams, knobs, f"{self.kind} search")

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
            if resolved is None:
                found = segment.search(queries, k=k, threads=threads, filter=self._live_filters[number],
                                       **segment_knobs)
            else:
                found = segment.search(queries, k=k, threads=threads,
                                       filters=split_per_query(resolved, slice(lo, hi), ~self.deletes[number]),
                                       **segment_knobs)
            scores.append(found[0])
            rows.append(np.where(found[1] >= 0, found[1] + lo, -1))
        return merge_topk(scores, rows, k)

    # --- writes -------------------------------------------------------------------

    def add(self, docs: SparseVectors, upsert: bool = False) -> int:
        """Append `docs` as a new segment (then merge if there are too many); returns the generation."""
        require(len(docs) > 0, "nothing to add")
        if self.segments and docs.vocab != self.vocab:
            raise ParameterError(f"the documents use {docs.vocab!r} but the index {self.vocab!r}: segments share "
                                 "one vocabulary")
        ids = [str(doc_id) for doc_id in docs.ids]
        if len(set(ids)) != len(ids):
            raise ParameterError("the documents repeat an id")
        live = self._live_rows()
        present = [doc_id for doc_id in ids if doc_id in live]
        if present and not upsert:
            raise ParameterError(f"id {present[0]!r} is already in the index (add(..., upsert=True) replaces it)")
        with self._writing():
            deletes = self._with_deleted([live[doc_id] for doc_id in present])
            manifest = self._next_manifest()
            entries = self._entries(deletes, manifest["generation"])
            entries.append(self._write_segment(docs, manifest))
            manifest["segments"] = entries
            generation = self._commit(manifest)
            return self._merge_if_needed() or generation

    def delete(self, ids) -> int:
        """Tombstone the live documents with these external ids; returns the generation."""
        live = self._live_rows()
        missing = [str(doc_id) for doc_id in ids if str(doc_id) not in live]
        if missing:
            raise ParameterError(f"id {missing[0]!r} is not a live document of the index")
        with self._writing():
            manifest = self._next_manifest()
            manifest["segments"] = self._entries(self._with_deleted([live[str(doc_id)] for doc_id in ids]),
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
        killed writers left (files no commit point references, their temporaries)."""
        with open(self.path / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                latest = latest_generation(self.path)
                if latest != self.generation:
                    raise ParameterError(f"{self.path}: this handle is at generation {self.generation} but "
                                         f"generation {latest} is committed; reopen it (sparseir.load_index)")
                self._remove_unreferenced()
                remove_stale_temps_in(self.path)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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
        return {**self.manifest, "generation": self.generation + 1}

    def _entries(self, deletes: list[np.ndarray], generation: int) -> list[dict]:
        """The commit point's entries of the current segments, writing tombstones that changed."""
        entries = []
        for entry, old, new in zip(self.manifest["segments"], self.deletes, deletes):
            entry = dict(entry)
            if not np.array_equal(old, new):
                name = f"{entry['dir']}.deletes.{generation}.npy"
                buffer = io.BytesIO()
                np.save(buffer, new, allow_pickle=False)
                with atomic_file(self.path / name, mode="wb", overwrite=False) as f:
                    f.write(buffer.getvalue())
                entry["deletes"], entry["n_deleted"] = name, int(new.sum())
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
        return {"dir": name, "kind": kind, "n_docs": len(docs), "deletes": None, "n_deleted": 0}

    def _commit(self, manifest: dict) -> int:
        commit(self.path, manifest)
        fresh = load_segmented(self.path)
        # Replace, not merge: what was derived from the old generation (ids, their rows) goes too.
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)
        self._remove_unreferenced()
        return self.generation

    def _remove_unreferenced(self) -> None:
        """Delete the files no commit point references any more (older commit points included)."""
        keep = {f"generation.{self.generation}.json", LOCK_FILE}
        for entry in self.manifest["segments"]:
            keep.add(entry["dir"])
            if entry["deletes"] is not None:
                keep.add(entry["deletes"])
        for name in os.listdir(self.path):
            if name in keep or name.startswith("."):  # temporaries are the writers' own to clear
                continue
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)

    def _segment_vectors(self, number: int) -> SparseVectors:
        """The live documents of one segment, with their exact weights."""
        segment = self.segments[number]
        arrays = segment.arrays
        vectors = SparseVectors(np.asarray(arrays["vectors_offsets"]), np.asarray(arrays["vectors_terms"]),
                                np.asarray(arrays["vectors_weights"]), segment.doc_ids, segment.vocab, validate=False)
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
