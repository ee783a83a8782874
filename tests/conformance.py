"""What every index kind must do, as one suite each kind runs (as Lucene's
BaseKnnVectorsFormatTestCase is for its vector formats): subclass ``KindConformance`` and
name the kind. tests/test_kind_conformance.py runs it over every built-in kind and the toy
kind of docs/adding-a-kind.md.

Small integer weights make every score exact in float32, so that where a kind is exact its
rows must match exact search's, ties (to the lower row) included.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparseir
from conftest import assert_same_topk, random_vectors
from sparseir.errors import ParameterError
from sparseir.index import in_rows_of
from sparseir.kinds import CAPABILITIES, REQUIRED_CAPABILITIES, contract_problems, get_kind
from sparseir.storage import MEMORY_MODES

N_DOCS, N_TERMS, K = 160, 40, 10


def collection(seed: int = 5):
    rng = np.random.default_rng(seed)
    docs = random_vectors(rng, N_DOCS, N_TERMS, 6, integer_weights=True)
    queries = random_vectors(rng, 14, N_TERMS, 3, prefix="q", integer_weights=True)
    return docs, queries.take(np.flatnonzero(np.diff(queries.offsets) > 0))


class KindConformance:
    kind: str  # set by each subclass

    @property
    def spec(self):
        return get_kind(self.kind)

    def exhaustive_index(self, docs, **build):
        params, knobs = self.spec.exhaustive(len(docs))
        return sparseir.build_index(docs, kind=self.kind, **{**params, **build}), knobs

    def assert_exact(self, index, docs, queries, scores, rows, allowed=None):
        """Exact search's results over the weights the kind scores (its own, or scored_vectors'),
        in the index's rows (a kind may reorder by default); `allowed` masks those rows."""
        docs = in_rows_of(docs, index.doc_ids)
        if self.spec.scored_vectors is None:
            assert_same_topk(docs, queries, scores, rows, allowed=allowed)
            return
        scored_docs, scored_queries = self.spec.scored_vectors(index.arrays, docs, queries)
        reference = sparseir.build_index(scored_docs, kind="exact")
        kwargs = {} if allowed is None else {"filters": list(allowed)}
        _, want_rows = reference.search(scored_queries, k=rows.shape[1], **kwargs)
        np.testing.assert_array_equal(rows, want_rows)
        assert np.all(np.diff(np.where(rows >= 0, scores, np.finfo(np.float32).min), axis=1) <= 0)

    # --- the contract ---------------------------------------------------------------

    def test_contract(self):
        spec = self.spec
        assert not contract_problems(*(__import__(name, fromlist=["_"]) for name in (
            spec.build_arrays.__module__, spec.search.__module__, spec.layout.__name__)))
        assert REQUIRED_CAPABILITIES <= spec.capabilities <= set(CAPABILITIES)
        assert spec.disk_mode is None or spec.disk_mode.reads

    # --- search -----------------------------------------------------------------------

    def test_exhaustive_settings_equal_exact_search(self):
        docs, queries = collection()
        index, knobs = self.exhaustive_index(docs)
        for k in (1, K, N_DOCS + 5):
            scores, rows = index.search(queries, k=k, **knobs)
            assert scores.shape == rows.shape == (len(queries), k)
            self.assert_exact(index, docs, queries, scores, rows)

    def test_filters(self):
        docs, queries = collection(6)
        index, knobs = self.exhaustive_index(docs)
        rng = np.random.default_rng(1)
        for share in (0.0, 0.01, 0.3, 1.0):
            mask = rng.random(len(docs)) < share
            scores, rows = index.search(queries, k=K, filter=mask, **knobs)
            self.assert_exact(index, docs, queries, scores, rows, np.broadcast_to(mask, (len(queries), len(docs))))
            assert np.all(mask[rows[rows >= 0]])
        masks = rng.random((len(queries), len(docs))) < 0.2
        scores, rows = index.search(queries, k=K, filters=list(masks), **knobs)
        self.assert_exact(index, docs, queries, scores, rows, masks)

    def test_reordering_changes_rows_not_results(self):
        docs, queries = collection(7)
        index, knobs = self.exhaustive_index(docs)
        reordered, _ = self.exhaustive_index(docs, reorder="bp")
        assert sorted(map(str, reordered.doc_ids)) == sorted(map(str, docs.ids))
        scores, _ = index.search(queries, k=K, **knobs)
        other_scores, other_rows = reordered.search(queries, k=K, **knobs)
        np.testing.assert_allclose(other_scores, scores, rtol=1e-6)
        # In the collection's order, the results are exact search's, ties apart (they go to lower rows).
        row_of = {str(doc_id): row for row, doc_id in enumerate(docs.ids)}
        mapped = np.array([[row_of[str(reordered.doc_ids[row])] if row >= 0 else -1 for row in found]
                           for found in other_rows], dtype=np.int64).reshape(other_rows.shape)
        if self.spec.scored_vectors is None:
            assert_same_topk(docs, queries, other_scores, mapped)

    # --- storage ----------------------------------------------------------------------

    def test_save_load_round_trip(self, tmp_path):
        docs, queries = collection(8)
        index = sparseir.build_index(docs, kind=self.kind)
        expected = index.search(queries, k=K)
        index.save(tmp_path / "index")
        loaded = sparseir.load_index(tmp_path / "index", verify=True)
        assert loaded.kind == self.kind and list(loaded.doc_ids) == list(index.doc_ids)
        for got, want in zip(loaded.search(queries, k=K), expected):
            np.testing.assert_array_equal(got, want)

    def test_every_memory_mode_equals_all(self, tmp_path):
        docs, queries = collection(9)
        disk = self.spec.disk_mode
        index = sparseir.build_index(docs, kind=self.kind, **(disk.build if disk is not None else {}))
        index.save(tmp_path / "index")
        want = sparseir.load_index(tmp_path / "index", memory="all").search(queries, k=K)
        modes = [mode for mode in MEMORY_MODES if mode != "disk" or disk is not None]
        for mode in modes:
            got = sparseir.load_index(tmp_path / "index", memory=mode).search(queries, k=K)
            for got_array, want_array in zip(got, want):
                np.testing.assert_array_equal(got_array, want_array)
        if disk is None:
            with pytest.raises(ParameterError, match="memory='disk'"):
                sparseir.load_index(tmp_path / "index", memory="disk")

    # --- edges ------------------------------------------------------------------------

    def test_an_empty_collection_is_one_line(self):
        docs, _ = collection()
        with pytest.raises(ParameterError, match="zero documents"):
            sparseir.build_index(docs[:0], kind=self.kind)

    def test_one_document(self):
        docs, queries = collection(10)
        one = docs[3:4]
        index, knobs = self.exhaustive_index(one)
        scores, rows = index.search(queries, k=K, **knobs)
        assert scores.shape == (len(queries), K)
        assert set(np.unique(rows)) <= {-1, 0} and np.all(np.isneginf(scores[rows < 0]))
        self.assert_exact(index, one, queries, scores, rows)
