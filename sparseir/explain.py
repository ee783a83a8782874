"""Why a document scores what it scores: each shared term's query weight, document weight and
contribution (``Index.explain``, ``POST /explain`` of ``sparseir serve``).

A score is a dot product, so it splits by term: the contributions of the terms a query and
a document share add up to the document's score. The document's weights come from what the
index keeps, best first:

- the exact weights a segment keeps for merges (``sparseir.segments``);
- the forward index of a kind that has one (``layout.forward``; float16 where the index
  was built with ``forward_dtype="float16"``);
- else the kind's own postings, read by searching one term at a time, restricted to the
  document, under the kind's exhaustive settings (``Kind.exhaustive``): the exact weights
  of kinds that store them, the dequantized impacts of one that scores quantized weights
  (``Kind.scored_vectors``).

``exact_score`` is the sum of the contributions (float64, over those weights); ``score`` is
what the kind's search gives the document with the settings passed, restricted to it (its
pruning, quantization and candidate limits included), None when that search does not
reach it. The two differ where the kind scores other weights than it keeps (quantized
impacts) or rounds them; both are given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ParameterError
from .kinds import get_kind
from .searchable import prepare_queries

# What the document weights of an explanation are (``Explanation.weights``): the exact ones
# (float32, as indexed), rounded to float16, or dequantized impacts.
EXACT, FLOAT16, QUANTIZED = "float32", "float16", "quantized"


@dataclass(frozen=True)
class TermContribution:
    term: str
    query_weight: float
    doc_weight: float
    contribution: float  # query_weight x doc_weight


@dataclass(frozen=True)
class Explanation:
    doc_id: str
    score: float | None      # the kind's score for the document (None: its search does not reach it)
    exact_score: float       # sum of the contributions
    weights: str             # EXACT ("float32"), FLOAT16 or QUANTIZED: what the document weights are
    terms: tuple[TermContribution, ...]  # the shared terms, largest contribution first

    def as_dict(self) -> dict:
        return {"id": self.doc_id, "score": self.score, "exact_score": self.exact_score, "weights": self.weights,
                "terms": [vars(term) for term in self.terms]}


def explain(index, query, doc_id, **knobs) -> Explanation:
    """Explain document `doc_id`'s score for one query (a {term: weight} dict or one SparseVectors
    row) on any index shape; knobs are the search settings of the kind's score."""
    queries = prepare_queries(query, index.vocab)
    if len(queries) != 1:
        raise ParameterError(f"explain takes one query, got {len(queries)}")
    index.search_params(**knobs)  # one clear error for a bad setting before anything runs
    doc_id = str(doc_id)
    row = int(index.rows_of_ids([doc_id])[0])
    part, local = index.part_of_row(row)  # the Index holding the row (a segment's or shard's), and its row there
    lo, hi = queries.offsets[0], queries.offsets[1]
    terms, query_weights = queries.terms[lo:hi], queries.weights[lo:hi]
    doc_weights, source = stored_weights(part, local, terms)
    shared = np.flatnonzero(doc_weights != 0)
    contributions = query_weights[shared].astype(np.float64) * doc_weights[shared].astype(np.float64)
    explained = tuple(TermContribution(index.vocab.term(int(terms[j])), float(query_weights[j]), float(doc_weights[j]),
                                       float(contributions[i]))
                      for i, j in ((i, shared[i]) for i in np.argsort(-contributions, kind="stable").tolist()))
    scores, rows = index.search(queries, k=1, filter=np.array([row], dtype=np.int64), **knobs)
    score = float(scores[0, 0]) if rows[0, 0] == row else None
    return Explanation(doc_id, score, float(contributions.sum()), source, explained)


def stored_weights(index, row: int, terms: np.ndarray) -> tuple[np.ndarray, str]:
    """Document `row`'s weights (float32, 0 where it lacks the term) for `terms` of a single
    ``Index``, and where they come from (the module docstring)."""
    from .layout.forward import read_doc, read_forward
    from .segments import VECTOR_ARRAYS

    arrays, kind = index.arrays, get_kind(index.kind)
    if all(name in arrays for name in VECTOR_ARRAYS):
        offsets, doc_terms, doc_weights = (arrays[name] for name in VECTOR_ARRAYS)
        lo, hi = int(offsets[row]), int(offsets[row + 1])
        return lookup(np.asarray(doc_terms[lo:hi]), np.asarray(doc_weights[lo:hi], dtype=np.float32), terms), EXACT
    forward = None
    if kind.supports("forward_index"):
        try:
            forward = read_forward(arrays)
        except KeyError:  # left on disk (memory="disk"): read through the kind's search below
            pass
    if forward is not None:
        length = int(forward.doc_offsets[row + 1]) - int(forward.doc_offsets[row])
        doc_terms, doc_weights = np.empty(length, dtype=np.int64), np.empty(length, dtype=np.float32)
        read_doc(forward.doc_offsets, forward.doc_terms, forward.doc_weights, forward.term_gaps, row, doc_terms,
                 doc_weights)
        rounded = forward.doc_weights.dtype == np.uint16  # float16 bits
        return lookup(doc_terms, doc_weights, terms), FLOAT16 if rounded else EXACT
    # The kind's postings: one single-term query per term (weight 1 scores the stored weight),
    # restricted to the document, exhaustively.
    weights = np.zeros(len(terms), dtype=np.float32)
    asked = np.flatnonzero(terms < len(index.vocab))  # a segment's vocabulary may be a prefix of the query's
    if len(asked):
        from .vectors import SparseVectors

        probes = SparseVectors(np.arange(len(asked) + 1), terms[asked], np.ones(len(asked), dtype=np.float32),
                               None, index.vocab, validate=False)
        scores, rows = index.search(probes, k=1, filter=np.array([row], dtype=np.int64),
                                    **kind.exhaustive(index.n_docs)[1])
        weights[asked] = np.where(rows[:, 0] == row, scores[:, 0], 0)
    return weights, QUANTIZED if kind.scored_vectors is not None else EXACT


def lookup(doc_terms: np.ndarray, doc_weights: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """The weights of `terms` in a document whose terms ascend (0 where it lacks one)."""
    weights = np.zeros(len(terms), dtype=np.float32)
    if len(doc_terms):
        at = np.minimum(np.searchsorted(doc_terms, terms), len(doc_terms) - 1)
        found = doc_terms[at] == terms
        weights[found] = doc_weights[at[found]]
    return weights
