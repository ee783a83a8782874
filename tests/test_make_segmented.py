"""A built index made segmented (sparseir.make_segmented, `sparseir segment`): its first segment is
the index itself, and add, delete and compact then work on it."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import sparseir
from conftest import random_vectors
from sparseir.cli import cli
from sparseir.errors import ParameterError
from sparseir.segments import load_segmented, make_segmented

K = 10


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(11)
    docs = random_vectors(rng, 300, 150, 12)
    extra = random_vectors(rng, 80, 150, 12, prefix="new")
    queries = random_vectors(rng, 40, 150, 4, prefix="q")
    queries = queries.take(np.flatnonzero(np.diff(queries.offsets) > 0))  # the command line refuses empty ones
    return docs, extra, queries


def live_docs(docs: sparseir.SparseVectors, gone: set[str]) -> sparseir.SparseVectors:
    return docs.take(np.array([row for row, doc_id in enumerate(docs.ids) if str(doc_id) not in gone], dtype=np.int64))


def assert_same_results(index, expected_index, queries):
    """Equal scores, and the same ids wherever scores are not tied."""
    scores, rows = index.search(queries, k=K)
    expected_scores, expected_rows = expected_index.search(queries, k=K)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    ids = np.where(rows >= 0, np.asarray(index.doc_ids, dtype=object)[rows], None)
    expected_ids = np.where(expected_rows >= 0, np.asarray(expected_index.doc_ids, dtype=object)[expected_rows], None)
    np.testing.assert_array_equal(ids, expected_ids)


@pytest.mark.parametrize("kind, params", [("exact", {}), ("seismic", {}), ("sindi", {}), ("exact", {"reorder": "bp"})])
def test_a_made_segmented_index_searches_as_before_and_takes_writes(tmp_path, collection, kind, params):
    docs, extra, queries = collection
    path = tmp_path / "index"
    built = sparseir.build_index(docs, kind=kind, **params)
    built.save(path)
    (path / "NOTES.txt").write_text("mine")
    before = built.search(queries, k=K)

    index = make_segmented(path, docs, small_segment=50)
    assert len(index.segments) == 1 and index.segments[0].kind == kind and index.n_live == len(docs)
    after = index.search(queries, k=K)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])  # the index itself: its rows, its order
    assert (path / "NOTES.txt").read_text() == "mine"  # not the index's: left where it was
    assert not (path / "manifest.json").exists() and isinstance(sparseir.load_index(path), type(index))

    index.add(extra)
    gone = {str(docs.ids[3]), str(docs.ids[100]), str(extra.ids[5])}
    index.delete(sorted(gone))
    index = load_segmented(path)
    survivors = live_docs(sparseir.SparseVectors.concatenate([docs, extra]), gone)
    expected_ids = [str(doc_id) for doc_id in survivors.ids]
    # Rows keep the index's own order, which reordering changed: then only the set is the same.
    assert (sorted(index.live_ids()) == sorted(expected_ids) if params else index.live_ids() == expected_ids)
    exact = sparseir.build_index(survivors, kind="exact")
    if kind == "exact":
        assert_same_results(index, exact, queries)
    index.compact()
    index = load_segmented(path)
    assert len(index.segments) == 1 and index.n_live == len(survivors)
    assert sorted(index.live_ids()) == sorted(str(doc_id) for doc_id in survivors.ids)
    if kind == "exact":
        assert_same_results(index, exact, queries)
    assert (path / "NOTES.txt").read_text() == "mine"


def test_vectors_that_are_not_the_index_s_are_refused(tmp_path, collection):
    docs, extra, _ = collection
    path = tmp_path / "index"
    sparseir.build_index(docs, kind="exact").save(path)
    with pytest.raises(ParameterError, match="not among the vectors|documents, the index"):
        make_segmented(path, extra)
    with pytest.raises(ParameterError, match="documents, the index"):
        make_segmented(path, docs[:100])
    assert (path / "manifest.json").exists() and not (path / "generation.1.json").exists()
    with pytest.raises(ParameterError, match="small_segment"):
        make_segmented(path, docs, small_segment=-1)
    make_segmented(path, docs)
    with pytest.raises(ParameterError, match="already a segmented index"):
        make_segmented(path, docs)


def test_adding_to_a_plain_index_says_how_to_make_it_segmented(tmp_path, collection):
    docs, extra, _ = collection
    sparseir.build_index(docs, kind="exact").save(tmp_path / "index")
    index = sparseir.load_index(tmp_path / "index")
    for call in (lambda: index.add(extra), lambda: index.delete(["d1"]), index.compact):
        with pytest.raises(ParameterError, match="make_segmented.*sparseir segment"):
            call()
    sparseir.write_vectors(extra, tmp_path / "extra.jsonl")
    result = CliRunner().invoke(cli, ["add", str(tmp_path / "index"), str(tmp_path / "extra.jsonl")])
    assert result.exit_code == 1 and "sparseir segment" in result.output and "Traceback" not in result.output


def test_command_line_segment_then_add_equals_a_fresh_build(tmp_path, collection):
    docs, extra, queries = collection
    for name, vectors in (("docs", docs), ("extra", extra), ("all", sparseir.SparseVectors.concatenate([docs, extra])),
                          ("queries", queries)):
        sparseir.write_vectors(vectors, tmp_path / f"{name}.jsonl")
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(cli, [str(arg) for arg in args])
        assert result.exit_code == 0, result.output
        return result

    run("index", tmp_path / "docs.jsonl", "-o", tmp_path / "index", "--vocab", "open")
    refused = runner.invoke(cli, ["segment", str(tmp_path / "index"), "--vectors", str(tmp_path / "extra.jsonl")])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    run("segment", tmp_path / "index", "--vectors", tmp_path / "docs.jsonl")
    run("add", tmp_path / "index", tmp_path / "extra.jsonl")
    run("index", tmp_path / "all.jsonl", "-o", tmp_path / "fresh", "--vocab", "open")
    for name in ("index", "fresh"):
        run("search", tmp_path / name, tmp_path / "queries.jsonl", "-o", tmp_path / f"{name}.trec")
    assert (tmp_path / "index.trec").read_text() == (tmp_path / "fresh.trec").read_text()
