"""The reorder build option: any kind, any shape of index; rows change, documents found do not."""

from __future__ import annotations

import numpy as np
import pytest

import sparseir
from sparseir.errors import ParameterError
from sparseir.index import in_build_order

from conftest import random_vectors

LOSSLESS = {"exact": {}, "blockmax": {}, "saat": {}, "seismic": dict(n_postings=10_000, summary_energy=1.0),
            "sindi": dict(doc_prune_ratio=0.0)}
KNOBS = {"seismic": dict(query_cut=100, heap_factor=1.0), "sindi": dict(n_candidate=500, query_prune_ratio=0.0)}


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(3)
    return random_vectors(rng, 400, 80, 8), random_vectors(rng, 30, 80, 5, prefix="q")


def found_ids(index, queries, k=10, **knobs):
    """Scores, and per query the ids scoring above its k-th score (ties at the k-th may change places)."""
    scores, rows = index.search(queries, k=k, **knobs)
    return scores, [set(index.doc_ids[r[s > s[r >= 0].min()]]) if (r >= 0).any() else set()
                    for s, r in zip(scores, rows)]


@pytest.mark.parametrize("kind", sparseir.KINDS)
def test_every_kind_finds_the_same_documents_in_bp_order(collection, kind):
    docs, queries = collection
    given = sparseir.build_index(docs, kind=kind, **{**LOSSLESS[kind], "reorder": "none"})
    bp = sparseir.build_index(docs, kind=kind, **{**LOSSLESS[kind], "reorder": "bp"})
    assert bp.info["n_docs"] == len(docs) and sorted(bp.doc_ids) == sorted(docs.ids)
    assert not np.array_equal(bp.doc_ids, docs.ids)  # 400 random documents: BP moves some
    want_scores, want = found_ids(given, queries, **KNOBS.get(kind, {}))
    got_scores, got = found_ids(bp, queries, **KNOBS.get(kind, {}))
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6)
    assert got == want


def test_attributes_follow_their_documents(collection):
    pyarrow = pytest.importorskip("pyarrow")
    docs, queries = collection
    table = pyarrow.table({"doc": docs.ids.tolist(), "even": [i % 2 == 0 for i in range(len(docs))]})
    index = sparseir.build_index(docs, kind="blockmax", attributes=table)
    assert index.attributes.column("doc").to_pylist() == index.doc_ids.tolist()
    _, rows = index.search(queries, k=5, filter="even")
    kept = rows[rows >= 0]
    assert len(kept) and all(int(index.doc_ids[r][1:]) % 2 == 0 for r in kept)


def test_sharded_and_segmented_indexes_take_the_order(tmp_path, collection):
    docs, queries = collection
    exact_scores, _ = sparseir.build_index(docs, kind="exact").search(queries, k=10)
    from sparseir.sharded import build_sharded

    sharded = build_sharded(docs, tmp_path / "sharded", shards=3, kind="blockmax")
    scores, rows = sharded.search(queries, k=10)
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-6)
    # Global rows are the shards' rows in order, over the one reordered collection.
    assert sorted(sharded.doc_ids) == sorted(docs.ids)
    from sparseir.segments import create_segmented

    segmented = create_segmented(tmp_path / "segmented", kind="blockmax", small_segment=50)
    segmented.add(docs[:250])
    segmented.add(docs[250:])
    segmented.delete(docs.ids[:10])
    segmented.compact()
    scores, rows = segmented.search(queries, k=10)
    alive = docs.take(np.arange(10, len(docs)))
    want_scores, _ = sparseir.build_index(alive, kind="exact").search(queries, k=10)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)


def test_bp_order_is_a_permutation_and_unknown_orders_are_refused(collection):
    docs, _ = collection
    reordered, _ = in_build_order(docs, None, "bp")
    assert sorted(reordered.ids) == sorted(docs.ids)
    with pytest.raises(ParameterError, match="reorder"):
        sparseir.build_index(docs, kind="exact", reorder="random")
