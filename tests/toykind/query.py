"""Searching the toy kind: every document scored, in numpy."""

from dataclasses import dataclass

import numpy as np

from sparseir.query.allow import allowed_masks
from sparseir.query.topk import empty_results


@dataclass(frozen=True)
class SearchParams:
    """No knobs: every search is exhaustive."""


def exhaustive(n_docs: int) -> tuple[dict, dict]:
    return {}, {}


def search(arrays, n_docs: int, queries, k: int, params: SearchParams, allowed=None):
    offsets, terms, weights = (np.asarray(arrays[name]) for name in ("toy_offsets", "toy_terms", "toy_weights"))
    doc_of_entry = np.repeat(np.arange(n_docs), np.diff(offsets))
    masks = allowed_masks(allowed, len(queries), n_docs)
    scores, rows = empty_results(len(queries), k)
    for q in range(len(queries)):
        lo, hi = queries.offsets[q], queries.offsets[q + 1]
        query = np.zeros(max(int(terms.max(initial=0)), int(queries.terms[lo:hi].max(initial=0))) + 1, np.float32)
        query[queries.terms[lo:hi]] = queries.weights[lo:hi]
        matched = np.bincount(doc_of_entry, query[terms] != 0, minlength=n_docs) > 0
        totals = np.bincount(doc_of_entry, weights * query[terms], minlength=n_docs).astype(np.float32)
        found = np.flatnonzero(matched & masks[q])
        found = found[np.lexsort((found, -totals[found]))][:k]  # higher score, then lower row
        scores[q, :len(found)], rows[q, :len(found)] = totals[found], found
    return scores, rows
