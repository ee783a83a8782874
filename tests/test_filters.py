"""Filtered search: exact search equals brute force over each query's allowed documents, every
kind returns only allowed documents and keeps its recall against filtered exact search, and
filters given as masks, rows, ids, attribute predicates or one per query agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparseir
from conftest import assert_same_topk, random_vectors, shared_vectors
from sparseir import filters as filters_module
from sparseir.evaluate import recall_at_k
from sparseir.sharded import build_sharded

APPROXIMATE = ("seismic", "saat", "sindi")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 200), k=st.integers(1, 15),
       selectivity=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]), per_query=st.booleans())
def test_filtered_exact_equals_brute_force_over_the_allowed_documents(seed, n_docs, k, selectivity, per_query):
    rng = np.random.default_rng(seed)
    # Integer weights make ties, so the tie order among allowed documents is exercised too.
    docs = random_vectors(rng, n_docs, 40, 5, integer_weights=True)
    queries = random_vectors(rng, 6, 40, 3, prefix="q", integer_weights=True)
    index = sparseir.build_index(docs, kind="exact")
    if per_query:
        masks = rng.random((len(queries), n_docs)) < selectivity
        scores, rows = index.search(queries, k=k, filters=list(masks))
    else:
        mask = rng.random(n_docs) < selectivity
        masks = np.broadcast_to(mask, (len(queries), n_docs))
        scores, rows = index.search(queries, k=k, filter=mask)
    assert_same_topk(docs, queries, scores, rows, allowed=masks)


@pytest.mark.parametrize("kind", ["seismic", "sindi"])
@pytest.mark.parametrize("selectivity", [0.005, 0.3])
def test_direct_and_kernel_paths_agree_with_brute_force(kind, selectivity, monkeypatch):
    """A selective filter is scored directly from the forward index, a loose one by the kernel;
    with float32 weights and every posting kept, both are exact."""
    rng = np.random.default_rng(3)
    docs = random_vectors(rng, 600, 50, 6)
    queries = random_vectors(rng, 20, 50, 3, prefix="q")
    exact_build = {"seismic": dict(forward_dtype="float32", n_postings=600, summary_energy=1.0),
                   "sindi": dict(forward_dtype="float32", doc_prune_ratio=0.0, value_dtype="float32")}[kind]
    index = sparseir.build_index(docs, kind=kind, **exact_build)
    mask = rng.random(len(docs)) < selectivity
    knobs = {"seismic": dict(query_cut=10, heap_factor=0.1), "sindi": dict(query_prune_ratio=0.0,
                                                                          n_candidate=600)}[kind]
    direct_used = []
    original = filters_module.direct_queries
    monkeypatch.setattr(sparseir.index, "direct_queries",
                        lambda resolved, n: direct_used.append(int(original(resolved, n).sum())) or original(resolved, n))
    scores, rows = index.search(queries, k=10, filter=mask, **knobs)
    assert_same_topk(docs, queries, scores, rows, allowed=np.broadcast_to(mask, (len(queries), len(docs))))
    assert (direct_used[0] == len(queries)) == (selectivity < filters_module.DIRECT_FRACTION)


@pytest.fixture(scope="module")
def debian():
    path = shared_vectors("debian-pkgs")
    docs = sparseir.read_vectors(path / "collection.jsonl.gz")
    queries = sparseir.read_vectors(path / "queries.jsonl.gz", vocab=docs.vocab)
    return docs, queries[np.random.default_rng(0).permutation(len(queries))[:300]]


@pytest.fixture(scope="module")
def debian_indexes(debian):
    docs, _ = debian
    return {kind: sparseir.build_index(docs, kind=kind) for kind in ("exact", *APPROXIMATE)}


@pytest.mark.slow
@pytest.mark.parametrize("selectivity", [0.001, 0.01, 0.1, 0.5])
def test_filtered_recall_on_a_real_collection(debian, debian_indexes, selectivity):
    """Default settings keep recall@10 >= 0.95 against filtered exact search, and return only
    allowed documents."""
    docs, queries = debian
    mask = np.random.default_rng(int(selectivity * 1e4)).random(len(docs)) < selectivity
    _, truth = debian_indexes["exact"].search(queries, k=10, filter=mask)
    for kind in APPROXIMATE:
        _, rows = debian_indexes[kind].search(queries, k=10, filter=mask)
        assert mask[rows[rows >= 0]].all(), kind
        recall = np.nanmean(recall_at_k(rows, truth))
        assert recall >= 0.95, (kind, selectivity, recall)


@pytest.mark.slow
def test_every_form_of_a_filter_selects_the_same_documents(debian, debian_indexes):
    docs, queries = debian
    index = debian_indexes["sindi"]
    rows_allowed = np.random.default_rng(1).choice(len(docs), 2000, replace=False)
    mask = np.zeros(len(docs), dtype=bool)
    mask[rows_allowed] = True
    expected = index.search(queries[:20], k=10, filter=mask)
    for form in (rows_allowed, list(rows_allowed), [str(docs.ids[row]) for row in rows_allowed],
                 np.asarray(docs.ids)[rows_allowed]):
        for got, want in zip(index.search(queries[:20], k=10, filter=form), expected):
            np.testing.assert_array_equal(got, want)
    # One filter per query: the same as searching each query with its own.
    per_query = [mask, None, rows_allowed[:10], *([mask] * 17)]
    batch = index.search(queries[:20], k=10, filters=per_query)
    for q, spec in enumerate(per_query):
        single = index.search(queries[q:q + 1], k=10, filter=spec)
        np.testing.assert_array_equal(batch[1][q], single[1][0])
    unfiltered = index.search(queries[1:2], k=10)
    np.testing.assert_array_equal(batch[1][1], unfiltered[1][0])


@pytest.mark.slow
def test_sharded_filtered_search_equals_single(tmp_path, debian, debian_indexes):
    docs, queries = debian
    mask = np.random.default_rng(2).random(len(docs)) < 0.05
    sharded = build_sharded(docs, tmp_path / "sharded", shards=3, partition="hash")
    for got, want in zip(sharded.search(queries[:50], k=10, filter=mask),
                         debian_indexes["exact"].search(queries[:50], k=10, filter=mask)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_bad_filters_are_one_line_errors(debian_indexes):
    index = debian_indexes["exact"]
    query = {"linux": 1.0}
    cases = [({"filter": np.ones(3, dtype=bool)}, "one value per document"),
             ({"filter": [index.n_docs]}, "outside the collection"),
             ({"filter": ["no-such-document"]}, "'no-such-document' is not in the index"),
             ({"filter": [1.5]}, "got an array of float64"),
             ({"filters": [None, None]}, "one filter per query"),
             ({"filter": [0], "filters": [[0]]}, "not both"),
             ({"filter": "lang = 'en'"}, "stores no document attributes")]
    for arguments, message in cases:
        with pytest.raises(sparseir.ParameterError, match=message):
            index.search(query, k=3, **arguments)


def test_attribute_filters_from_the_command_line(tmp_path):
    from click.testing import CliRunner
    from sparseir.cli import cli

    rng = np.random.default_rng(4)
    docs = random_vectors(rng, 300, 30, 5)
    langs = rng.choice(["en", "de", "fr"], len(docs))
    years = rng.integers(2000, 2025, len(docs))
    with open(tmp_path / "docs.jsonl", "w") as f:
        for vector, lang, year in zip(docs, langs, years):
            f.write(json.dumps({"id": vector.id, "vector": vector.as_dict(docs.vocab), "lang": str(lang),
                                "year": int(year)}) + "\n")
    queries = random_vectors(rng, 10, 30, 3, prefix="q")
    sparseir.write_vectors(queries, tmp_path / "queries.jsonl")
    runner = CliRunner()
    for shards in ("1", "2"):
        out = tmp_path / f"index{shards}"
        built = runner.invoke(cli, ["index", str(tmp_path / "docs.jsonl"), "-o", str(out), "--vocab", "open",
                                    "--kind", "seismic", "--attributes", "lang,year", "--shards", shards])
        assert built.exit_code == 0, built.output
        searched = runner.invoke(cli, ["search", str(out), str(tmp_path / "queries.jsonl"), "-k", "5", "-o",
                                       str(tmp_path / f"run{shards}.trec"), "--filter",
                                       "lang = 'en' and year >= 2015"])
        assert searched.exit_code == 0, searched.output
        allowed = {vector.id for vector, lang, year in zip(docs, langs, years) if lang == "en" and year >= 2015}
        returned = {r.doc_id for r in sparseir.read_run(tmp_path / f"run{shards}.trec")}
        assert returned and returned <= allowed
    index = sparseir.load_index(tmp_path / "index1")
    np.testing.assert_array_equal(index.attribute_mask("lang = 'en' and year >= 2015"),
                                  (langs == "en") & (years >= 2015))
    bad = runner.invoke(cli, ["search", str(tmp_path / "index1"), str(tmp_path / "queries.jsonl"), "-o",
                              str(tmp_path / "bad.trec"), "--filter", "colour = 'red'"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "colour" in bad.output
    assert not (tmp_path / "bad.trec").exists()


@pytest.mark.slow
def test_a_prepared_filter_searches_as_its_spec(debian, debian_indexes):
    docs, queries = debian
    index = debian_indexes["seismic"]
    for selectivity in (0.005, 0.2):  # the direct path, then the kernel
        mask = np.random.default_rng(5).random(len(docs)) < selectivity
        prepared = index.prepare_filter(mask)
        assert prepared.count == mask.sum() and np.array_equal(prepared.rows, np.flatnonzero(mask))
        for got, want in zip(index.search(queries[:30], k=10, filter=prepared),
                             index.search(queries[:30], k=10, filter=mask)):
            np.testing.assert_array_equal(got, want)
    other = sparseir.build_index(docs[:100], kind="exact")
    with pytest.raises(sparseir.ParameterError, match="prepared for"):
        other.search(queries[:1], k=3, filter=prepared)


def test_dict_queries_never_grow_an_open_index_vocabulary():
    docs = sparseir.SparseVectors.from_dicts([{"cat": 1.0}, {"dog": 2.0}], vocab=sparseir.Vocabulary.growing())
    index = sparseir.build_index(docs, kind="exact")
    before = list(index.vocab.terms)
    scores, rows = index.search({"cat": 1.0, "never-seen": 5.0}, k=2)
    assert index.vocab.terms == before  # the unseen query term matched nothing and left no trace
    assert rows[0].tolist() == [0, -1] and scores[0][0] == 1.0
