"""Sparse vectors in CSR form, with their external ids and vocabulary.

Dtypes are fixed at this boundary (int64 offsets, int32 term ids, float32 weights) so
that every kernel downstream receives exactly one signature.
"""

from __future__ import annotations

import array
import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import ParameterError, require

DEFAULT_VOCAB_NAME = "bert-base-uncased"
BINARY_CHECK_SLICE = 1 << 22


class Vocabulary:
    """Term string <-> term id.

    A *fixed* vocabulary (a model's tokenizer vocabulary) rejects unknown terms; an
    *open* one grows as documents are read (word-level or foreign vectors), and query
    terms it has never seen simply match nothing.
    """

    def __init__(self, terms: Sequence[str], name: str | None = None, open: bool = False):
        self._terms = list(terms)
        self._ids = {t: i for i, t in enumerate(self._terms)}
        if len(self._ids) != len(self._terms):
            raise ParameterError("vocabulary has duplicate terms")
        self.name = name
        self.open = open
        self._sha256: str | None = None

    @classmethod
    def default(cls) -> "Vocabulary":
        """The BERT uncased WordPiece vocabulary (30,522 terms) that SPLADE models use."""
        text = resources.files("sparseir.data").joinpath(f"{DEFAULT_VOCAB_NAME}.vocab.txt").read_text("utf-8")
        return cls(text.split("\n")[:-1], name=DEFAULT_VOCAB_NAME)

    @classmethod
    def growing(cls) -> "Vocabulary":
        return cls([], open=True)

    def __len__(self) -> int:
        return len(self._terms)

    def __contains__(self, term: str) -> bool:
        return term in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._terms == other._terms

    def __repr__(self) -> str:
        label = self.name or ("open" if self.open else "custom")
        return f"Vocabulary({label}, {len(self)} terms)"

    @property
    def terms(self) -> list[str]:
        return self._terms

    def term(self, term_id: int) -> str:
        return self._terms[term_id]

    def get(self, term: str) -> int | None:
        return self._ids.get(term)

    def add(self, term: str) -> int:
        term_id = self._ids.get(term)
        if term_id is None:
            term_id = len(self._terms)
            self._ids[term] = term_id
            self._terms.append(term)
            self._sha256 = None
        return term_id

    def frozen(self) -> "Vocabulary":
        """A copy that no longer grows (what an index stores)."""
        return Vocabulary(self._terms, self.name, open=self.open)

    def sha256(self) -> str:
        """Digest of the term list, computed once per vocabulary (cheap equality for searches)."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256("\n".join(self._terms).encode("utf-8")).hexdigest()
        return self._sha256


@dataclass(frozen=True)
class SparseVector:
    id: str
    terms: np.ndarray
    weights: np.ndarray

    def as_dict(self, vocab: Vocabulary | None = None) -> dict:
        keys = self.terms.tolist() if vocab is None else [vocab.term(t) for t in self.terms.tolist()]
        return dict(zip(keys, self.weights.tolist()))


class SparseVectors:
    """A batch of sparse vectors: CSR arrays + external ids + vocabulary.

    Within each row term ids are unique and sorted ascending; weights are finite and
    non-negative. Zero weights are kept out.
    """

    def __init__(self, offsets, terms, weights, ids: Sequence[str] | np.ndarray | None = None,
                 vocab: Vocabulary | None = None, validate: bool = True):
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self.terms = np.ascontiguousarray(terms, dtype=np.int32)
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        n = len(self.offsets) - 1
        if ids is None:
            ids = np.arange(n).astype(str)
        self.ids = np.asarray(ids, dtype=str)
        self.vocab = vocab if vocab is not None else Vocabulary.default()
        if validate:
            self._validate()

    def _validate(self) -> None:
        n = len(self.offsets) - 1
        if n < 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.terms):
            raise ParameterError("offsets must start at 0 and end at len(terms)")
        if len(self.terms) != len(self.weights):
            raise ParameterError("terms and weights differ in length")
        if len(self.ids) != n:
            raise ParameterError(f"{len(self.ids)} ids for {n} vectors")
        if np.any(np.diff(self.offsets) < 0):
            raise ParameterError("offsets must be non-decreasing")
        if len(self.terms):
            if self.terms.min() < 0 or self.terms.max() >= len(self.vocab):
                raise ParameterError(f"term ids must lie in [0, {len(self.vocab)}) (the vocabulary size)")
            if not np.all(np.isfinite(self.weights)) or self.weights.min() < 0:
                raise ParameterError("weights must be finite and non-negative")
            if not _rows_strictly_increasing(self.offsets, self.terms):
                raise ParameterError("term ids must be unique within a vector")

    # --- construction -------------------------------------------------------------

    @classmethod
    def from_dicts(cls, vectors: Iterable[Mapping], ids: Sequence[str] | None = None,
                   vocab: Vocabulary | None = None) -> "SparseVectors":
        """Build from {term: weight} dicts; terms are strings (looked up in vocab) or ids."""
        vocab = vocab if vocab is not None else Vocabulary.default()
        builder = VectorBuilder(vocab)
        for row, vector in enumerate(vectors):
            builder.add(str(row) if ids is None else ids[row], vector)
        return builder.build()

    @classmethod
    def from_scipy(cls, matrix, ids: Sequence[str] | None = None, vocab: Vocabulary | None = None) -> "SparseVectors":
        """Build from a scipy.sparse matrix (or anything with indptr/indices/data)."""
        csr = matrix.tocsr() if hasattr(matrix, "tocsr") else matrix
        csr = csr.copy()
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        vocab = vocab if vocab is not None else Vocabulary.default()
        if csr.shape[1] > len(vocab):
            raise ParameterError(f"matrix has {csr.shape[1]} columns but the vocabulary {len(vocab)} terms")
        return cls(csr.indptr, csr.indices, csr.data, ids, vocab)

    @classmethod
    def concatenate(cls, parts: Sequence["SparseVectors"]) -> "SparseVectors":
        if not parts:
            raise ParameterError("nothing to concatenate")
        vocab = parts[0].vocab
        if any(p.vocab != vocab for p in parts[1:]):
            raise ParameterError("cannot concatenate vectors over different vocabularies")
        sizes = np.concatenate([[0]] + [np.diff(p.offsets) for p in parts])
        return cls(np.cumsum(sizes), np.concatenate([p.terms for p in parts]),
                   np.concatenate([p.weights for p in parts]), np.concatenate([p.ids for p in parts]), vocab)

    # --- access -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nnz(self) -> int:
        return len(self.terms)

    @property
    def is_binary(self) -> bool:
        """Whether every weight is 1 (binarized vectors, as UHD's): indexes then store no weights."""
        # By slices: no temporary the size of the collection, and an early stop at the first other weight.
        return self.nnz > 0 and all(bool(np.all(self.weights[lo:lo + BINARY_CHECK_SLICE] == 1.0))
                                    for lo in range(0, self.nnz, BINARY_CHECK_SLICE))

    def binarized(self, top_k: int) -> "SparseVectors":
        """Each vector's `top_k` heaviest terms (ties: the lower term id) with weight 1, as UHD
        binarizes its winner-take-all codes."""
        require(isinstance(top_k, (int, np.integer)) and not isinstance(top_k, bool) and top_k >= 1,
                f"top_k must be an integer >= 1, got {top_k!r}")
        rows = np.repeat(np.arange(len(self)), np.diff(self.offsets))
        # Within each row: heaviest first, then the lower term; the first top_k of each row stay.
        order = np.lexsort((self.terms, -self.weights, rows))
        rank = np.arange(self.nnz) - self.offsets[rows[order]]
        keep = np.sort(order[rank < top_k])  # back in row order, terms ascending
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.minimum(np.diff(self.offsets), top_k), out=offsets[1:])
        return SparseVectors(offsets, self.terms[keep], np.ones(len(keep), dtype=np.float32), self.ids, self.vocab,
                             validate=False)

    def __getitem__(self, item):
        if isinstance(item, (int, np.integer)):
            row = int(item) + (len(self) if item < 0 else 0)
            if not 0 <= row < len(self):
                raise IndexError(item)
            lo, hi = self.offsets[row], self.offsets[row + 1]
            return SparseVector(str(self.ids[row]), self.terms[lo:hi], self.weights[lo:hi])
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self))
            if step == 1:
                lo, hi = self.offsets[start], self.offsets[max(start, stop)]
                return SparseVectors(self.offsets[start:max(start, stop) + 1] - lo, self.terms[lo:hi],
                                     self.weights[lo:hi], self.ids[start:stop], self.vocab, validate=False)
            item = np.arange(start, stop, step)
        return self.take(np.asarray(item))

    def take(self, rows: np.ndarray) -> "SparseVectors":
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        sizes = ends - starts
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        gather = np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1])
        return SparseVectors(offsets, self.terms[gather], self.weights[gather], self.ids[rows], self.vocab,
                             validate=False)

    def __iter__(self) -> Iterator[SparseVector]:
        for row in range(len(self)):
            yield self[row]

    def __repr__(self) -> str:
        return f"SparseVectors({len(self)} vectors, {self.nnz} non-zeros, {self.vocab!r})"

    def to_scipy(self):
        import scipy.sparse

        return scipy.sparse.csr_matrix((self.weights, self.terms, self.offsets), shape=(len(self), len(self.vocab)))

    def equals(self, other: "SparseVectors") -> bool:
        return (np.array_equal(self.offsets, other.offsets) and np.array_equal(self.terms, other.terms)
                and np.array_equal(self.weights, other.weights) and np.array_equal(self.ids, other.ids)
                and self.vocab == other.vocab)


class UnknownTermError(ParameterError):
    """A term string the (fixed) vocabulary lacks."""


class VectorBuilder:
    """Accumulates rows one at a time (streaming readers), then freezes them into CSR.

    Rows go straight into flat growable buffers, so memory stays ~8 bytes per non-zero
    however many rows are read (no per-row Python objects kept).
    """

    def __init__(self, vocab: Vocabulary, open_on_unknown_term: bool = False, unknown_term_hint: str = "",
                 workspace=None):
        """open_on_unknown_term: the first term `vocab` lacks switches to an open vocabulary
        (vocab="auto"); else unknown terms are errors, `unknown_term_hint` ending their message.
        An out-of-core `workspace` (``sparseir.workspace``) spools the rows to its files."""
        self.vocab = vocab
        self.open_on_unknown_term = open_on_unknown_term
        self.unknown_term_hint = unknown_term_hint
        self._ids: list[str] = []
        if workspace is not None and workspace.out_of_core:
            self._sizes, self._terms, self._weights = (SpooledArray(workspace, name, dtype) for name, dtype in
                                                       (("sizes", np.int64), ("terms", np.int32),
                                                        ("weights", np.float32)))
        else:
            self._sizes, self._terms, self._weights = array.array("q"), array.array("i"), array.array("f")

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, vector_id: str, vector: Mapping) -> None:
        """Add one {term: weight} row; raises ParameterError (for the caller to locate)."""
        try:
            term_ids = self._term_ids(vector)
        except UnknownTermError:
            if not self.open_on_unknown_term:
                raise
            self._switch_to_open_vocabulary()
            term_ids = self._term_ids(vector)  # ids of this row's earlier terms changed too
        weights = np.fromiter(vector.values(), dtype=np.float64, count=len(vector))
        self.add_arrays(vector_id, term_ids, weights)

    def _term_ids(self, vector: Mapping) -> np.ndarray:
        return np.fromiter((self.term_id(term) for term in vector), dtype=np.int64, count=len(vector))

    def _switch_to_open_vocabulary(self) -> None:
        """Carry on with an open vocabulary holding the terms the rows so far use.

        Renumbering those rows in place beats reading the file again: it costs one pass
        over the prefix already read (often a single line), works on streams, and needs
        O(vocabulary) memory plus one temporary copy of the prefix's term ids. The used
        terms keep their relative order, so the renumbering is monotone and every row stays
        sorted. (Seeding the open vocabulary with all of BERT would need no renumbering but
        would carry ~30k terms the collection never uses into the index.)
        """
        terms = values(self._terms, np.int32)  # a writable view of the buffer
        used = np.zeros(len(self.vocab), dtype=bool)
        used[terms] = True
        new_ids = (np.cumsum(used) - 1).astype(np.int32)
        terms[:] = new_ids[terms]
        del terms  # a live view would stop the buffer from growing
        self.vocab = Vocabulary([self.vocab.term(t) for t in np.flatnonzero(used).tolist()], open=True)
        self.open_on_unknown_term = False

    def term_id(self, term) -> int:
        if isinstance(term, (int, np.integer)) and not isinstance(term, bool):
            if not 0 <= term < len(self.vocab):
                raise ParameterError(f"term id {term} outside the vocabulary (size {len(self.vocab)})")
            return int(term)
        if self.vocab.open:
            return self.vocab.add(term)
        term_id = self.vocab.get(term)
        if term_id is None:
            label = self.vocab.name or "the index"
            raise UnknownTermError(f"unknown term {term!r} (not in the {label} vocabulary{self.unknown_term_hint})")
        return term_id

    def add_arrays(self, vector_id: str, term_ids: np.ndarray, weights: np.ndarray) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(weights)):
            raise ParameterError("weight is NaN or infinite")
        if np.any(weights < 0):
            raise ParameterError("weight is negative")
        order = np.argsort(term_ids, kind="stable")
        term_ids, weights = np.asarray(term_ids)[order], weights[order]
        if len(term_ids) > 1 and np.any(term_ids[1:] == term_ids[:-1]):
            raise ParameterError("term repeated within one vector")
        keep = weights > 0
        self._ids.append(vector_id)
        self._sizes.frombytes(np.int64(keep.sum()).tobytes())
        self._terms.frombytes(term_ids[keep].astype(np.int32).tobytes())
        self._weights.frombytes(weights[keep].astype(np.float32).tobytes())

    def add_rows(self, ids: list[str], sizes: np.ndarray, terms: np.ndarray, weights: np.ndarray) -> None:
        """Add rows in bulk, already checked and in this vocabulary's ids: `sizes` int64,
        `terms` int32 and `weights` float32, as a fast reader makes them."""
        self._ids.extend(ids)
        for buffer, values in ((self._sizes, sizes), (self._terms, terms), (self._weights, weights)):
            buffer.frombytes(values.view(np.uint8))

    def open_vocabulary(self) -> None:
        """Carry on with an open vocabulary, as `add` does on its first unknown term."""
        self._switch_to_open_vocabulary()

    def build(self) -> SparseVectors:
        offsets = np.zeros(len(self._sizes) + 1, dtype=np.int64)
        np.cumsum(values(self._sizes, np.int64, final=True), out=offsets[1:])
        terms = values(self._terms, np.int32, final=True)  # shares the buffer: no second copy
        weights = values(self._weights, np.float32, final=True)
        return SparseVectors(offsets, terms, weights, self._ids, self.vocab.frozen(), validate=False)


class SpooledArray:
    """A growing array appended to a file of an out-of-core workspace: VectorBuilder's buffer
    when the rows read must not stay in memory."""

    def __init__(self, workspace, name: str, dtype):
        self.workspace = workspace
        self.path = workspace.new_file(f"spool-{name}.bin")
        self.dtype = np.dtype(dtype)
        self.file = open(self.path, "wb")
        self.count = 0

    def frombytes(self, data) -> None:
        self.file.write(data)
        self.count += memoryview(data).nbytes // self.dtype.itemsize

    def __len__(self) -> int:
        return self.count

    def mapped(self, final: bool = False) -> np.ndarray:
        """The values so far, mapped writable; appending may go on after them unless final."""
        self.file.flush()
        if final:
            self.file.close()
        return self.workspace.adopt(self.path, self.dtype, (self.count,))


def values(buffer, dtype, final: bool = False) -> np.ndarray:
    """A VectorBuilder buffer's values as a writable array, without a copy (final: no more appends)."""
    return buffer.mapped(final) if isinstance(buffer, SpooledArray) else np.frombuffer(buffer, dtype=dtype)


def _rows_strictly_increasing(offsets: np.ndarray, terms: np.ndarray) -> bool:
    if len(terms) < 2:
        return True
    increasing = terms[1:] > terms[:-1]
    # A step across a row boundary may go down; mark those positions as fine.
    row_starts = offsets[1:-1]
    row_starts = row_starts[(row_starts > 0) & (row_starts < len(terms))]
    increasing[row_starts - 1] = True
    return bool(increasing.all())
