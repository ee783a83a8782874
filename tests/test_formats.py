"""Every format round-trips; runs we write are read by ir-measures unchanged."""

import gzip

import numpy as np
import pytest

import sparseir
from sparseir import Qrel, ScoredDoc, SparseVectors, TextRecord, Vocabulary
from sparseir.formats import read_qrels, read_run, read_texts, write_run, write_texts
from conftest import random_vectors, shared_vectors


@pytest.fixture
def vectors():
    rng = np.random.default_rng(3)
    return random_vectors(rng, 50, 40, 6)


@pytest.mark.parametrize("name", ["v.jsonl", "v.jsonl.gz", "v.parquet", "v.bin", "v.bin.gz"])
def test_vector_formats_round_trip(tmp_path, vectors, name):
    path = tmp_path / name
    sparseir.write_vectors(vectors, path)
    back = sparseir.read_vectors(path, vocab=vectors.vocab)
    if name.startswith("v.bin"):
        # The Seismic format stores no ids: rows come back numbered.
        assert back.ids.tolist() == [str(i) for i in range(len(vectors))]
        back = SparseVectors(back.offsets, back.terms, back.weights, vectors.ids, back.vocab)
    assert back.equals(vectors)


def test_parquet_carries_its_vocabulary(tmp_path, vectors):
    sparseir.write_vectors(vectors, tmp_path / "v.parquet")
    assert sparseir.read_vectors(tmp_path / "v.parquet").vocab == vectors.vocab


def test_real_jsonl_round_trips_through_every_format(tmp_path):
    docs = sparseir.read_vectors(shared_vectors("cisi") / "queries.jsonl.gz")
    assert docs.vocab.name == "bert-base-uncased"
    for name in ("q.jsonl", "q.parquet"):
        sparseir.write_vectors(docs, tmp_path / name)
        assert sparseir.read_vectors(tmp_path / name).equals(docs)


def test_text_round_trip(tmp_path):
    records = [TextRecord("1", "hello world"), TextRecord("MED-10", "ünïcode text")]
    for name in ("c.tsv", "c.tsv.gz"):
        write_texts(records, tmp_path / name)
        assert list(read_texts(tmp_path / name)) == records


def test_qrels_and_runs_round_trip(tmp_path):
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\n")
    assert list(read_qrels(tmp_path / "qrels.txt")) == [Qrel("q1", "d1", 1), Qrel("q1", "d2", 0), Qrel("q2", "d3", 2)]
    doc_ids = np.array(["d1", "d2", "d3"])
    rows = np.array([[2, 0, -1], [1, -1, -1]])
    scores = np.array([[3.5, 1.25, -np.inf], [2.0, -np.inf, -np.inf]], dtype=np.float32)
    assert write_run(tmp_path / "run.trec", ["q1", "q2"], doc_ids, rows, scores) == 3
    assert list(read_run(tmp_path / "run.trec")) == [ScoredDoc("q1", "d3", 3.5), ScoredDoc("q1", "d1", 1.25),
                                                     ScoredDoc("q2", "d2", 2.0)]
    write_run(tmp_path / "run.tsv", ["q1", "q2"], doc_ids, rows, scores, format="msmarco")
    ranked = list(read_run(tmp_path / "run.tsv"))
    assert [(s.query_id, s.doc_id) for s in ranked] == [("q1", "d3"), ("q1", "d1"), ("q2", "d2")]
    assert ranked[0].score > ranked[1].score


def test_ir_measures_reads_our_runs(tmp_path):
    ir_measures = pytest.importorskip("ir_measures")
    doc_ids = np.array(["d1", "d2", "d3"])
    write_run(tmp_path / "run.trec.gz", ["q1"], doc_ids, np.array([[2, 0, 1]]),
              np.array([[3.0, 2.0, 1.0]], dtype=np.float32))
    with gzip.open(tmp_path / "run.trec.gz", "rt") as f:
        parsed = list(ir_measures.read_trec_run(f.read()))
    assert [(s.query_id, s.doc_id, s.score) for s in parsed] == [("q1", "d3", 3.0), ("q1", "d1", 2.0),
                                                                 ("q1", "d2", 1.0)]
    qrels = [ir_measures.Qrel("q1", "d1", 1)]
    assert ir_measures.calc_aggregate([ir_measures.RR @ 10], qrels, parsed)[ir_measures.RR @ 10] == 0.5


def test_unknown_extension_needs_a_format(tmp_path):
    with pytest.raises(sparseir.ParameterError, match="cannot tell the vector format"):
        sparseir.read_vectors(tmp_path / "vectors.xyz")


def test_growing_vocabulary_from_foreign_terms(tmp_path):
    (tmp_path / "v.jsonl").write_text('{"id": "a", "vector": {"Hund": 1.5}}\n{"id": "b", "vector": {"Katze": 2}}\n')
    vectors = sparseir.read_vectors(tmp_path / "v.jsonl", vocab="open")
    assert vectors.vocab.terms == ["Hund", "Katze"] and vectors.vocab.open
    with pytest.raises(sparseir.InputError, match=r"v.jsonl:1: unknown term 'Hund'"):
        sparseir.read_vectors(tmp_path / "v.jsonl", vocab=Vocabulary(["Katze"]))
