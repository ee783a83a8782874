"""Index.explain: the shared terms' contributions add up to the exact score, on every kind and shape."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sparseir
from sparseir.errors import ParameterError
from sparseir.explain import EXACT, FLOAT16, QUANTIZED
from sparseir.kinds import get_kind
from sparseir.segments import create_segmented
from sparseir.sharded import build_sharded

from conftest import random_vectors, true_scores

# (kind, build params, where its document weights come from)
BUILDS = [("exact", {}, EXACT), ("blockmax", {}, EXACT), ("saat", {}, QUANTIZED),
          ("sindi", {"doc_prune_ratio": 0.5}, FLOAT16), ("sindi", {"forward_dtype": "float32"}, EXACT),
          ("seismic", {"forward_dtype": "float32"}, EXACT)]


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(7)
    docs = random_vectors(rng, 240, 150, 10)
    queries = random_vectors(rng, 12, 150, 5, prefix="q")
    return docs, queries, true_scores(docs, queries)


@pytest.fixture(scope="module")
def indexes(collection):
    docs = collection[0]
    return [(sparseir.build_index(docs, kind=kind, **params), source) for kind, params, source in BUILDS]


def check(explanation, query_weights: dict, doc_weights: dict, truth: float, source: str):
    contributions = [term.contribution for term in explanation.terms]
    assert abs(sum(contributions) - explanation.exact_score) <= 1e-5 * max(1.0, abs(explanation.exact_score))
    assert contributions == sorted(contributions, reverse=True)
    assert {term.term for term in explanation.terms} == set(query_weights) & set(doc_weights)
    for term in explanation.terms:
        assert term.query_weight == pytest.approx(query_weights[term.term], rel=1e-6)
        assert term.contribution == pytest.approx(term.query_weight * term.doc_weight, rel=1e-9)
    assert explanation.weights == source
    if source == EXACT:
        for term in explanation.terms:
            assert term.doc_weight == np.float32(doc_weights[term.term])
        assert explanation.exact_score == pytest.approx(truth, rel=1e-5, abs=1e-5)
    elif source == FLOAT16:
        assert explanation.exact_score == pytest.approx(truth, rel=2e-3)


def as_dict(vectors, row: int) -> dict:
    return vectors[row].as_dict(vectors.vocab)


@settings(max_examples=15)
@given(query=st.integers(0, 11), pick=st.integers(0, 239))
def test_contributions_add_up_to_the_exact_score_on_every_kind(indexes, collection, query, pick):
    docs, queries, truth = collection
    order = np.argsort(-truth[query], kind="stable")
    doc = int(order[pick % 12]) if pick % 2 else pick  # a top document or any one (sharing no term, often)
    for index, source in indexes:
        explanation = index.explain(as_dict(queries, query), docs.ids[doc])
        check(explanation, as_dict(queries, query), as_dict(docs, doc), truth[query, doc], source)
        # The kind's score is what its search gives the document.
        scores, rows = index.search(queries[query:query + 1], k=len(docs), **get_exhaustive(index))
        found = np.flatnonzero(rows[0] == index.rows_of_ids([docs.ids[doc]])[0])  # rows may be reordered
        if len(found):
            assert explanation.score is not None
            exhaustive_explanation = index.explain(as_dict(queries, query), docs.ids[doc], **get_exhaustive(index))
            assert exhaustive_explanation.score == scores[0, found[0]]
        if not explanation.terms:  # no shared term: nothing to score
            assert explanation.score is None and explanation.exact_score == 0
        elif source != QUANTIZED:  # the kind scores the weights explained (restricted to the document, it reaches it)
            assert explanation.score == pytest.approx(explanation.exact_score, rel=1e-5)


def get_exhaustive(index) -> dict:
    return get_kind(index.kind).exhaustive(index.n_docs)[1]


def test_a_kind_that_scores_quantized_weights_gives_both_scores(indexes, collection):
    docs, queries, truth = collection
    saat = next(index for index, source in indexes if source == QUANTIZED)
    doc = int(np.argmax(truth[0]))
    explanation = saat.explain(as_dict(queries, 0), docs.ids[doc])
    assert explanation.score is not None and explanation.score != explanation.exact_score
    assert explanation.exact_score == pytest.approx(truth[0, doc], rel=0.05)


def test_segmented_and_sharded_indexes_explain_their_live_documents(tmp_path, collection):
    docs, queries, truth = collection
    segmented = create_segmented(tmp_path / "live", kind="sindi", small_segment=100)
    segmented.add(docs[:150])
    segmented.add(docs[150:])
    segmented.delete([docs.ids[3]])
    sharded = build_sharded(docs, tmp_path / "sharded", shards=3, kind="blockmax")
    for query in range(3):
        doc = int(np.argmax(np.where(np.arange(len(docs)) == 3, 0, truth[query])))
        for index in (segmented, sharded):
            check(index.explain(as_dict(queries, query), docs.ids[doc]), as_dict(queries, query), as_dict(docs, doc),
                  truth[query, doc], EXACT)
    with pytest.raises(ParameterError, match="'d3' is not a live document"):
        segmented.explain(as_dict(queries, 0), "d3")
    with pytest.raises(ParameterError, match="'nope' is not in the index"):
        sharded.explain(as_dict(queries, 0), "nope")


def test_explain_takes_one_query_and_valid_settings(indexes, collection):
    docs, queries, _ = collection
    index = indexes[0][0]
    with pytest.raises(ParameterError, match="one query, got 2"):
        index.explain(queries[:2], docs.ids[0])
    with pytest.raises(ParameterError, match="unknown exact search parameter"):
        index.explain(as_dict(queries, 0), docs.ids[0], n_candidate=5)
