"""Sharded indexes: one index per slice of the collection, behind one top-level manifest.

A sharded directory holds ``manifest.json`` (format ``sparseir-sharded-index``) and one
ordinary index directory per shard. Each shard searches its own rows; results carry
*global* rows (positions in the original collection) and are merged into one top-k with
the single index's order: higher score first, then lower global row. Because every shard
scores a document exactly as the single index does and keeps its local rows in global
order, merged exact search equals single-index exact search, ties included.

    index = build_sharded(docs, "index/", shards=4, kind="exact")
    index = load_sharded("index/")
    scores, rows = index.search(queries, k=10)      # rows index the whole collection
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import storage
from .errors import IndexFormatError, ParameterError, require
from .fileio import atomic_directory
from .index import Index, in_build_order
from .kinds import DEFAULT_KIND, get_kind, make_params
from .filters import resolve as resolve_filters, split_per_query
from .searchable import SearchableBase, check_k, prepare_queries
from .vectors import SparseVectors

FORMAT_NAME = "sparseir-sharded-index"
FORMAT_VERSION = 1
PARTITIONS = ("contiguous", "hash")


# --- partitioning ----------------------------------------------------------------------

def partition_rows(doc_ids: np.ndarray, shards: int, partition: str = "contiguous") -> list[np.ndarray]:
    """Global rows of each shard, ascending within a shard.

    "contiguous" cuts the collection into near-equal consecutive ranges; "hash" places a
    document by crc32 of its id, stable across processes and machines, so a document
    lands in the same shard whatever the collection order.
    """
    n_docs = len(doc_ids)
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or not 1 <= shards <= max(1, n_docs):
        raise ParameterError(f"shards must be an integer in [1, {n_docs}] (the number of documents), got {shards!r}")
    if partition == "contiguous":
        bounds = np.linspace(0, n_docs, int(shards) + 1).round().astype(np.int64)
        return [np.arange(lo, hi, dtype=np.int64) for lo, hi in zip(bounds[:-1], bounds[1:])]
    if partition == "hash":
        owner = np.fromiter((zlib.crc32(str(i).encode("utf-8")) % shards for i in doc_ids), dtype=np.int64,
                            count=n_docs)
        parts = [np.flatnonzero(owner == s).astype(np.int64) for s in range(shards)]
        empty = [s for s, rows in enumerate(parts) if len(rows) == 0]
        if empty:
            raise ParameterError(f"shards={shards}: hash partition leaves shard {empty[0]} empty; use fewer shards")
        return parts
    raise ParameterError(f"unknown partition {partition!r}; choose one of {', '.join(PARTITIONS)}")


def merge_topk(scores: Sequence[np.ndarray], rows: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard top-k lists (global rows) into the global top-k.

    Each part is (n_queries, k). Order is the single index's: higher score first, then
    lower row; padding (-inf, -1) sorts last.
    """
    all_scores = np.concatenate(scores, axis=1)
    all_rows = np.concatenate(rows, axis=1)
    row_key = np.where(all_rows < 0, np.iinfo(np.int64).max, all_rows)
    order = np.lexsort((row_key, -all_scores), axis=1)[:, :k]
    merged_scores = np.take_along_axis(all_scores, order, axis=1)
    return merged_scores, np.take_along_axis(all_rows, order, axis=1)


# --- one shard -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """Where a shard lives and which global rows it holds (a range, or a row map file)."""

    number: int
    dir: str
    n_docs: int
    manifest_sha256: str
    row_range: tuple[int, int] | None = None
    row_map: dict | None = None

    def global_rows(self, root: Path) -> np.ndarray:
        if self.row_range is not None:
            return np.arange(*self.row_range, dtype=np.int64)
        file = root / self.row_map["file"]
        # A row map places every result of its shard, as doc_ids do: hashed at every open.
        storage.check_file(file, self.row_map, verify=True)
        rows = np.load(file, mmap_mode="r", allow_pickle=False)
        if rows.shape != (self.n_docs,) or rows.dtype != np.int64:
            raise IndexFormatError(f"{file}: row map shape/dtype differ from the manifest")
        return rows

    def to_json(self) -> dict:
        entry = {"dir": self.dir, "n_docs": self.n_docs, "manifest_sha256": self.manifest_sha256}
        if self.row_range is not None:
            entry["rows"] = list(self.row_range)
        else:
            entry["row_map"] = self.row_map
        return entry


def to_global(rows: np.ndarray, global_rows: np.ndarray) -> np.ndarray:
    """Shard-local result rows -> global rows, keeping the -1 padding."""
    return np.where(rows >= 0, global_rows[np.maximum(rows, 0)], -1)


def open_shard(root: Path, info: ShardInfo, kind: str, verify: bool = False, memory: str = "mapped"
               ) -> tuple[Index, np.ndarray]:
    """Load one shard after checking its manifest against the top-level checksum."""
    shard_dir = root / info.dir
    manifest_file = shard_dir / storage.MANIFEST
    if not manifest_file.exists():
        raise IndexFormatError(f"{shard_dir}: shard {info.number} missing (no {storage.MANIFEST})")
    if storage.sha256_file(manifest_file) != info.manifest_sha256:
        raise IndexFormatError(f"{manifest_file}: shard {info.number} manifest checksum mismatch "
                               "(replaced or corrupted)")
    index = Index.load(shard_dir, verify=verify, memory=memory)
    if index.kind != kind or index.n_docs != info.n_docs:
        raise IndexFormatError(f"{shard_dir}: shard {info.number} holds {index.n_docs} {index.kind} docs, "
                               f"the sharded manifest says {info.n_docs} {kind}")
    return index, info.global_rows(root)


# --- the sharded index -----------------------------------------------------------------

class ShardedIndex(SearchableBase):
    """Shards searched in turn on this machine; ``Searchable`` like ``Index``."""

    def __init__(self, path: Path, manifest: dict, infos: list[ShardInfo], shards: list[Index],
                 global_rows: list[np.ndarray]):
        self.path = path
        self.manifest = manifest
        self.infos = infos
        self.kind = manifest["kind"]
        self.partition = manifest["partition"]
        self.shards = shards
        self.global_rows = global_rows

    @property
    def n_docs(self) -> int:
        return int(self.manifest["n_docs"])

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    def __repr__(self) -> str:
        return f"ShardedIndex(kind={self.kind!r}, n_docs={self.n_docs}, shards={self.n_shards}, {self.vocab!r})"

    @property
    def vocab(self):
        return self.shards[0].vocab

    @cached_property
    def doc_ids(self) -> np.ndarray:
        """External ids by global row (assembled from the shards on first use)."""
        parts = [shard.doc_ids for shard in self.shards]
        ids = np.empty(self.n_docs, dtype=np.result_type(*parts))
        for part, rows in zip(parts, self.global_rows):
            ids[rows] = part
        return ids

    def search_params(self, **knobs):
        return self.shards[0].search_params(**knobs)

    def search(self, queries, k: int = 10, threads: int | None = None, filter=None, filters=None,
               **knobs) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over the whole collection: (scores float32, global rows int64), each (n_queries, k).

        Filters name global rows or ids (or attributes); each shard gets its part of them."""
        k = check_k(k)
        self.search_params(**knobs)  # one clear error before touching any shard
        queries = prepare_queries(queries, self.vocab)
        resolved = resolve_filters(self, len(queries), filter, filters)
        scores, rows = [], []
        for shard, global_rows in zip(self.shards, self.global_rows):
            shard_filters = None if resolved is None else split_per_query(resolved, global_rows)
            shard_scores, shard_rows = shard.search(queries, k=k, threads=threads, filters=shard_filters, **knobs)
            scores.append(shard_scores)
            rows.append(to_global(shard_rows, global_rows))
        return merge_topk(scores, rows, k)

    def part_of_row(self, row: int) -> tuple[Index, int]:
        """The shard holding global row `row`, and the row there."""
        for shard, global_rows in zip(self.shards, self.global_rows):
            local = np.flatnonzero(np.asarray(global_rows) == row)
            if len(local):
                return shard, int(local[0])
        raise ParameterError(f"row {row} outside the collection (0..{self.n_docs - 1})")

    def doc_frequency(self) -> np.ndarray:
        return np.sum([shard.doc_frequency() for shard in self.shards], axis=0)

    def attribute_mask(self, expression: str) -> np.ndarray:
        mask = np.empty(self.n_docs, dtype=bool)
        for shard, global_rows in zip(self.shards, self.global_rows):
            mask[global_rows] = shard.attribute_mask(expression)
        return mask

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write a copy under `path` (each shard re-saved, the manifest rewritten)."""
        write_sharded(path, zip(self.shards, self.global_rows), self.kind, self.partition,
                      self.shards[0].build_params, self.n_docs, overwrite)
        self.path = Path(path)
        self.manifest, self.infos = read_sharded_manifest(path)
        for shard, info in zip(self.shards, self.infos):
            shard.path = self.path / info.dir


def read_sharded_manifest(path: str | os.PathLike) -> tuple[dict, list[ShardInfo]]:
    path = Path(path)
    manifest_file = path / storage.MANIFEST
    manifest = storage.read_manifest(path, FORMAT_NAME, FORMAT_VERSION, label="sharded index")
    try:
        get_kind(manifest["kind"])
        infos = [ShardInfo(number, entry["dir"], int(entry["n_docs"]), entry["manifest_sha256"],
                           tuple(entry["rows"]) if "rows" in entry else None, entry.get("row_map"))
                 for number, entry in enumerate(manifest["shards"])]
    except (KeyError, TypeError, ValueError, ParameterError) as e:
        raise IndexFormatError(f"{manifest_file}: malformed sharded manifest ({type(e).__name__}: {e})") from None
    if sum(info.n_docs for info in infos) != manifest.get("n_docs"):
        raise IndexFormatError(f"{manifest_file}: shard sizes do not add up to n_docs")
    return manifest, infos


def is_sharded(path: str | os.PathLike) -> bool:
    """True when `path` holds a sharded index manifest (cheap: reads only the manifest)."""
    try:
        manifest = json.loads((Path(path) / storage.MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME


def load_sharded(path: str | os.PathLike, verify: bool = False, memory: str = "mapped") -> ShardedIndex:
    """Open a sharded index directory (every shard memory-mapped). verify=True hashes every file."""
    path = Path(path)
    manifest, infos = read_sharded_manifest(path)
    opened = [open_shard(path, info, manifest["kind"], verify, memory) for info in infos]
    vocab = opened[0][0].vocab
    for info, (shard, _) in zip(infos, opened):
        if shard.vocab != vocab:
            raise IndexFormatError(f"{path / info.dir}: shard {info.number} vocabulary differs from shard 0")
    return ShardedIndex(path, manifest, infos, [shard for shard, _ in opened], [rows for _, rows in opened])


def build_sharded(docs: SparseVectors, path: str | os.PathLike, shards: int, kind: str = DEFAULT_KIND,
                  partition: str = "contiguous", overwrite: bool = False, attributes=None, **params) -> ShardedIndex:
    """Partition `docs`, build and save one `kind` index per shard under `path`, then open it.

    Shards are built one at a time (only one shard's index in memory), and the whole
    directory appears atomically: an interrupted build leaves nothing at `path`.
    """
    build_params = make_params(get_kind(kind).BuildParams, params, f"{kind} build")
    require(len(docs) > 0, "cannot build an index over zero documents")
    # The whole collection is reordered once, so that global rows stay the shards' rows in order.
    docs, attributes = in_build_order(docs, attributes, build_params.reorder)
    shard_params = {**params, "reorder": "none"}
    parts = partition_rows(docs.ids, shards, partition)
    built = ((Index.build(docs.take(rows), kind, None if attributes is None else attributes.take(rows),
                          **shard_params), rows) for rows in parts)
    write_sharded(path, built, kind, partition, build_params, len(docs), overwrite)
    return load_sharded(path)


def write_sharded(path: str | os.PathLike, shards: Iterable[tuple[Index, np.ndarray]], kind: str, partition: str,
                  build_params, n_docs: int, overwrite: bool = False) -> None:
    """Save (shard index, its global rows) pairs and the top-level manifest, atomically."""
    from . import __version__

    with atomic_directory(path, overwrite=overwrite) as tmp:
        entries = []
        for number, (shard, rows) in enumerate(shards):
            name = f"shard-{number:04d}"
            shard.save(tmp / name)
            info = ShardInfo(number, name, len(rows), storage.sha256_file(tmp / name / storage.MANIFEST))
            if partition == "contiguous":
                info = dataclasses.replace(info, row_range=(int(rows[0]), int(rows[-1]) + 1))
            else:
                row_file = tmp / f"{name}.rows.npy"
                np.save(row_file, np.asarray(rows, dtype=np.int64), allow_pickle=False)
                info = dataclasses.replace(info, row_map={"file": row_file.name, "bytes": row_file.stat().st_size,
                                                          "sha256": storage.sha256_file(row_file)})
            entries.append(info.to_json())
            vocab = shard.vocab
        manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "sparseir_version": __version__,
                    "kind": kind, "partition": partition, "n_docs": n_docs,
                    "build_params": dataclasses.asdict(build_params),
                    "vocab": {"name": vocab.name, "size": len(vocab)}, "shards": entries}
        (tmp / storage.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
