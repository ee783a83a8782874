"""Every format round-trips; runs we write are read by ir-measures unchanged."""

import gzip
import json

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


def test_runs_keep_float32_scores_exactly(tmp_path):
    """Small and close scores survive the run file: trec_eval orders by score, so rounding could reorder."""
    rng = np.random.default_rng(3)
    scores = np.sort(np.concatenate([rng.random(50) * 1e-3, 0.0242752 + rng.random(50) * 1e-6, rng.random(50) * 30,
                                     [1e-12, 3.4e38]]).astype(np.float32))[::-1][None]
    doc_ids = np.array([f"d{i}" for i in range(scores.shape[1])])
    write_run(tmp_path / "run.trec", ["q"], doc_ids, np.arange(scores.shape[1])[None], scores)
    np.testing.assert_array_equal(np.array([s.score for s in read_run(tmp_path / "run.trec")], dtype=np.float32),
                                  scores[0])


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


# --- vocab="auto" (the default): BERT when every term is in it, else open ----------------

def write_jsonl_lines(path, records) -> None:
    text = "".join(json.dumps({"id": vector_id, "vector": vector}) + "\n" for vector_id, vector in records)
    path.write_bytes(gzip.compress(text.encode()) if path.name.endswith(".gz") else text.encode())


def assert_rows(vectors, records) -> None:
    """Each row holds exactly its record's {term: weight}, and the CSR arrays are valid."""
    SparseVectors(vectors.offsets, vectors.terms, vectors.weights, vectors.ids, vectors.vocab)  # validates
    assert vectors.ids.tolist() == [vector_id for vector_id, _ in records]
    for row, (_, vector) in zip(vectors, records):
        assert row.as_dict(vectors.vocab) == pytest.approx(vector)


@pytest.mark.parametrize("name", ["v.jsonl", "v.jsonl.gz"])
def test_auto_vocab_is_bert_when_every_term_is_in_it(tmp_path, name):
    records = [("d1", {"cat": 1.0, "##s": 0.5}), ("d2", {"paris": 2.0})]
    write_jsonl_lines(tmp_path / name, records)
    vectors = sparseir.read_vectors(tmp_path / name)
    assert vectors.vocab == Vocabulary.default() and vectors.vocab.name == "bert-base-uncased"
    assert not vectors.vocab.open
    assert_rows(vectors, records)


@pytest.mark.parametrize("name", ["v.jsonl", "v.jsonl.gz"])
def test_auto_vocab_opens_for_integer_dimensions(tmp_path, name):
    # "17" and "42" are BERT tokens, "70000" is not: the vocabulary holds just the three.
    records = [("d1", {"17": 0.5, "70000": 1.0}), ("d2", {"42": 2.0, "17": 1.5})]
    write_jsonl_lines(tmp_path / name, records)
    vectors = sparseir.read_vectors(tmp_path / name)
    assert vectors.vocab.open and sorted(vectors.vocab.terms) == ["17", "42", "70000"]
    assert_rows(vectors, records)
    assert sparseir.read_vectors(tmp_path / name, vocab=None).equals(vectors)


@pytest.mark.parametrize("name", ["v.jsonl", "v.jsonl.gz"])
def test_auto_vocab_switches_late_without_disturbing_earlier_rows(tmp_path, name):
    rng = np.random.default_rng(5)
    bert_terms = Vocabulary.default().terms[1000:1400]
    records = [(f"d{i}", {term: float(rng.integers(1, 100)) / 8
                          for term in rng.choice(bert_terms, size=int(rng.integers(1, 12)), replace=False)})
               for i in range(300)]
    # The first foreign term comes late, after known terms of its own row (rows must be redone whole).
    records.append(("late", {"paris": 1.0, "zebra": 0.75, "Grüezi": 2.5, "cat": 0.5}))
    records.append(("after", {"70000": 3.0, "paris": 0.25}))
    write_jsonl_lines(tmp_path / name, records)
    vectors = sparseir.read_vectors(tmp_path / name)
    assert vectors.vocab.open and vectors.vocab.name is None
    assert_rows(vectors, records)
    assert set(vectors.vocab.terms) == set(sparseir.read_vectors(tmp_path / name, vocab="open").vocab.terms)


@pytest.mark.parametrize("name", ["v.jsonl", "v.jsonl.gz"])
def test_explicit_bert_vocab_still_rejects_unknown_terms_with_a_hint(tmp_path, name):
    write_jsonl_lines(tmp_path / name, [("d1", {"cat": 1.0}), ("d2", {"dog": 1.0, "70000": 2.0})])
    with pytest.raises(sparseir.InputError) as raised:
        sparseir.read_vectors(tmp_path / name, vocab="bert")
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / name}:2: unknown term '70000'")
    assert "(not in the bert-base-uncased vocabulary; pass vocab='open' / --vocab open" in message


def test_an_index_vocabulary_for_queries_gives_no_hint(tmp_path):
    write_jsonl_lines(tmp_path / "q.jsonl", [("q1", {"70000": 1.0})])
    with pytest.raises(sparseir.InputError, match=r"q.jsonl:1: unknown term '70000' "
                                                  r"\(not in the bert-base-uncased vocabulary\)$"):
        sparseir.read_vectors(tmp_path / "q.jsonl", vocab=Vocabulary.default())


def test_unknown_vocab_choice_is_a_parameter_error(tmp_path):
    write_jsonl_lines(tmp_path / "v.jsonl", [("d1", {"cat": 1.0})])
    with pytest.raises(sparseir.ParameterError, match="vocab must be a Vocabulary or one of auto, bert, open"):
        sparseir.read_vectors(tmp_path / "v.jsonl", vocab="BERT")


def write_term_ids(path, rows: list[dict[int, float]]) -> None:
    """Vectors as bare term ids: a .bin file, or a Parquet file from elsewhere (no vocabulary)."""
    if path.name.startswith("v.bin"):
        ids_as_terms = Vocabulary([str(i) for i in range(max(max(row) for row in rows) + 1)])
        sparseir.write_vectors(SparseVectors.from_dicts(rows, vocab=ids_as_terms), path, overwrite=True)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [str(i) for i in range(len(rows))], "terms": [list(row) for row in rows],
                             "weights": [list(row.values()) for row in rows]}), path)


@pytest.mark.parametrize("name", ["v.bin", "v.bin.gz", "v.parquet"])
def test_term_id_formats_keep_bert_ids_that_fit_and_name_the_others(tmp_path, name):
    write_term_ids(tmp_path / name, [{4: 2.0, 2000: 1.0}, {17: 0.5}])
    fitting = sparseir.read_vectors(tmp_path / name)
    assert fitting.vocab == Vocabulary.default() and fitting.terms.tolist() == [4, 2000, 17]

    write_term_ids(tmp_path / name, [{4: 2.0, 70000: 1.0}, {17: 0.5}])
    beyond = sparseir.read_vectors(tmp_path / name)
    assert beyond.vocab.open and beyond.vocab.terms == ["4", "17", "70000"]
    assert [row.as_dict(beyond.vocab) for row in beyond] == [{"4": 2.0, "70000": 1.0}, {"17": 0.5}]
    assert sparseir.read_vectors(tmp_path / name, vocab="open").equals(beyond)
    with pytest.raises(sparseir.InputError, match=r"vector 0: term id 70000 outside the vocabulary "
                                                  r"\(size 30522; pass vocab='open' / --vocab open"):
        sparseir.read_vectors(tmp_path / name, vocab="bert")


def test_a_parquet_files_own_vocabulary_still_wins(tmp_path, vectors):
    sparseir.write_vectors(vectors, tmp_path / "v.parquet")
    for vocab in ("auto", "bert", "open"):
        assert sparseir.read_vectors(tmp_path / "v.parquet", vocab=vocab).equals(vectors)


def test_a_skipped_duplicate_vector_is_not_kept(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "d1", "vector": {"cat": 1.0}}\n{"id": "d1", "vector": {"dog": 2.0}}\n'
                    '{"id": "d2", "vector": {"dog": 3.0}}\n')
    bad_lines = sparseir.BadLines(skip=True)
    vectors = sparseir.read_vectors(path, bad_lines=bad_lines)
    assert list(vectors.ids) == ["d1", "d2"] and bad_lines.count == 1 and "dup.jsonl:2: duplicate id" in bad_lines.first
    assert vectors[0].as_dict(vectors.vocab) == {"cat": 1.0}
