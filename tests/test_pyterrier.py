"""PyTerrier transformers: an experiment on scifact evaluates as `sparseir eval` does on the same
run, the retriever returns Index.search's rows in PyTerrier's frame, and documents index
from text or from term-weight dicts alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pt = pytest.importorskip("pyterrier")
pd = pytest.importorskip("pandas")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("ir_measures")

from click.testing import CliRunner  # noqa: E402

import sparseir  # noqa: E402
from sparseir.cli import cli  # noqa: E402
from sparseir.errors import ParameterError  # noqa: E402
from sparseir.pyterrier import SparseirEncoder, SparseirIndex  # noqa: E402

SCIFACT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
# Slow: run with -m slow (CI runs both sets).
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SCIFACT.exists(), reason="the shared scifact collection is not here")]


def term_dict_records(vectors: sparseir.SparseVectors):
    """PyTerrier documents with precomputed `toks`, streamed."""
    for vector in vectors:
        yield {"docno": vector.id, "toks": vector.as_dict(vectors.vocab)}


@pytest.fixture(scope="module")
def encoder():
    return SparseirEncoder("default", threads=1)


@pytest.fixture(scope="module")
def topics():
    return pd.DataFrame([{"qid": r.id, "query": r.text} for r in sparseir.read_texts(SCIFACT / "queries.tsv")])


@pytest.fixture(scope="module")
def scifact_index(tmp_path_factory):
    docs = sparseir.read_vectors(SCIFACT / "vectors" / "collection.jsonl.gz")
    index = SparseirIndex(tmp_path_factory.mktemp("pt") / "scifact.sparseir")
    assert index.indexer(kind="sindi").index(term_dict_records(docs)) is index
    return index


def test_experiment_reports_what_sparseir_eval_reports_on_the_same_run(scifact_index, encoder, topics, tmp_path):
    qrels = pd.DataFrame([{"qid": q.query_id, "docno": q.doc_id, "label": q.relevance}
                          for q in sparseir.read_qrels(SCIFACT / "qrels.txt")])
    pipeline = encoder.query_encoder() >> scifact_index.retriever(k=100)
    measures = [pt.measures.RR @ 10, pt.measures.nDCG @ 10]
    experiment = pt.Experiment([pipeline], topics, qrels, eval_metrics=measures, names=["sparseir"])

    run = pipeline(topics)
    (tmp_path / "run.trec").write_text("".join(f"{row.qid} Q0 {row.docno} {row.rank} {row.score!r} sparseir\n"
                                               for row in run.itertuples()))
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "run.trec"), str(SCIFACT / "qrels.txt"),
                                      "-m", "RR@10,nDCG@10", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)["aggregate"]
    assert 0.3 < figures["nDCG@10"] < 1  # a real experiment, not an empty one
    assert experiment["nDCG@10"].iloc[0] == pytest.approx(figures["nDCG@10"], abs=1e-12)
    assert experiment["RR@10"].iloc[0] == pytest.approx(figures["RR@10"], abs=1e-12)


def test_retriever_returns_the_rows_of_index_search_in_pyterrier_frame(scifact_index, encoder, topics):
    knobs = {"query_prune_ratio": 0.3, "n_candidate": 40}
    queries = encoder.query_encoder().transform(topics.head(25))
    frame = scifact_index.retriever(k=10, **knobs).transform(queries)

    assert list(frame.columns) == ["qid", "query", "query_toks", "docid", "docno", "rank", "score"]
    assert {column: str(frame[column].dtype) for column in ("docid", "rank", "score")} == {
        "docid": "int64", "rank": "int64", "score": "float64"}
    index = sparseir.load_index(scifact_index.path)
    vectors = sparseir.SparseVectors.from_dicts(queries["query_toks"].tolist(), vocab=index.vocab)
    scores, rows = index.search(vectors, k=10, **knobs)
    for query_row, (qid, results) in enumerate(frame.groupby("qid", sort=False)):
        assert qid == topics["qid"].iloc[query_row]  # queries keep their input order
        found = rows[query_row] >= 0
        assert results["docid"].tolist() == rows[query_row][found].tolist()
        assert results["docno"].tolist() == [index.doc_ids[row] for row in rows[query_row][found]]
        assert results["score"].tolist() == scores[query_row][found].astype(np.float64).tolist()
        assert results["rank"].tolist() == list(range(found.sum()))  # PyTerrier ranks from 0


def test_raw_text_queries_are_encoded_inside_the_retriever(scifact_index, encoder, topics):
    encoded_first = (encoder.query_encoder() >> scifact_index.retriever(k=5)).transform(topics.head(8))
    encoded_inside = scifact_index.retriever(k=5, encoder=encoder).transform(topics.head(8))
    pd.testing.assert_frame_equal(encoded_first.drop(columns="query_toks"), encoded_inside)


def test_text_documents_index_like_their_encoded_vectors(encoder, tmp_path):
    records = [{"docno": r.id, "text": r.text} for r, _ in zip(sparseir.read_texts(SCIFACT / "collection.tsv"),
                                                                range(40))]
    from_text = SparseirIndex(tmp_path / "text").indexer(kind="exact", encoder=encoder).index(iter(records))
    vectors = encoder.encoder.encode_documents([r["text"] for r in records], ids=[r["docno"] for r in records])
    from_toks = SparseirIndex(tmp_path / "toks").indexer(kind="exact").index(term_dict_records(vectors))
    first, second = from_text.index, from_toks.index
    assert list(first.doc_ids) == [r["docno"] for r in records] and list(first.doc_ids) == list(second.doc_ids)
    queries = vectors[:5]
    for left, right in zip(first.search(queries, k=7), second.search(queries, k=7)):
        np.testing.assert_array_equal(left, right)


def test_doc_encoder_streams_the_same_toks_as_a_frame(encoder):
    records = [{"docno": r.id, "text": r.text} for r, _ in zip(sparseir.read_texts(SCIFACT / "collection.tsv"),
                                                                range(6))]
    streamed = list(encoder.doc_encoder().transform_iter(iter(records)))
    framed = encoder.doc_encoder().transform(pd.DataFrame(records))
    assert [record["toks"] for record in streamed] == framed["toks"].tolist()
    assert all(record["toks"] for record in streamed)


def test_bad_inputs_are_one_line_errors(scifact_index, tmp_path):
    with pytest.raises(ParameterError, match=r"needs column\(s\) 'query' or `query_toks`"):
        scifact_index.retriever().transform(pd.DataFrame([{"qid": "1", "text": "no query column"}]))
    with pytest.raises(ParameterError, match=r"needs column\(s\) 'text' or `toks`"):
        SparseirIndex(tmp_path / "x").indexer().index([{"docno": "d1", "body": "wrong column"}])
    with pytest.raises(sparseir.InputError, match="already exists"):
        SparseirIndex(scifact_index.path).indexer().index([{"docno": "d1", "toks": {"cat": 1.0}}])
    with pytest.raises(ParameterError, match="no documents to index"):
        SparseirIndex(tmp_path / "empty").indexer().index([])
    assert not (tmp_path / "x").exists() and not (tmp_path / "empty").exists()


def test_fusion_transformer_fuses_a_sparseir_retriever_with_another(scifact_index, tmp_path):
    pytest.importorskip("ranx")
    from sparseir.pyterrier import fuse

    docs = sparseir.read_vectors(SCIFACT / "vectors" / "collection.jsonl.gz")
    sparseir.build_index(docs, kind="exact").save(tmp_path / "exact")
    queries = sparseir.read_vectors(SCIFACT / "vectors" / "queries.jsonl.gz", vocab=docs.vocab)[:40]
    topics = pd.DataFrame({"qid": list(queries.ids), "query_toks": [q.as_dict(docs.vocab) for q in queries]})
    sparse, other = scifact_index.retriever(k=50, n_candidate=20), SparseirIndex(tmp_path / "exact").retriever(k=50)
    hybrid = fuse(sparse, other, method="wsum", weights=[0.5, 0.5], depth=20)
    result = hybrid(topics)
    assert list(result.columns) == ["qid", "query_toks", "docno", "rank", "score"]
    runs = [[sparseir.ScoredDoc(str(r.qid), r.docno, r.score) for r in t(topics).itertuples()] for t in (sparse, other)]
    expected = sparseir.fuse(runs, method="wsum", weights=[0.5, 0.5], depth=20)
    order = {qid: i for i, qid in enumerate(topics["qid"])}  # PyTerrier's: the queries in input order
    expected = sorted(expected, key=lambda s: order[s.query_id])  # stable: each query's ranking kept
    assert [(r.qid, r.docno) for r in result.itertuples()] == [(s.query_id, s.doc_id) for s in expected]
    assert np.allclose(result["score"], [s.score for s in expected], atol=1e-12)
    assert result.groupby("qid")["rank"].apply(lambda ranks: list(ranks) == list(range(len(ranks)))).all()
    with pytest.raises(ParameterError, match="weights: 3 given for 2 runs"):
        fuse(sparse, other, method="wsum", weights=[1, 2, 3])
