"""Evaluation: figures equal ir-measures' own, recall vs exact on hand-made runs, the eval command."""

import json

import ir_measures
import numpy as np
import pytest
from click.testing import CliRunner

from sparseir import InputError, ParameterError, Qrel, ScoredDoc, write_run
from sparseir.cli.eval import eval_command
from sparseir.evaluate import (DEFAULT_MEASURES, evaluate, latency_stats, load_qrels, queries_per_second,
                               recall_vs_exact, results_to_run)
from conftest import SHARED_DATA

MEASURES = ["RR@10", "nDCG@10", "R@1000", "P@5", "AP", "nDCG@3"]


def random_judgements(seed: int, n_queries: int = 30, n_docs: int = 200):
    """Graded qrels and a scored run that ranks some relevant documents, some not, some not at all."""
    rng = np.random.default_rng(seed)
    qrels, run = [], []
    for q in range(n_queries):
        judged = rng.choice(n_docs, size=rng.integers(1, 12), replace=False)
        qrels += [Qrel(f"q{q}", f"d{d}", int(rng.integers(0, 4))) for d in judged]
        if q % 7 == 3:
            continue  # a judged query the run forgot: counts 0
        retrieved = rng.choice(n_docs, size=rng.integers(1, 40), replace=False)
        run += [ScoredDoc(f"q{q}", f"d{d}", float(s)) for d, s in zip(retrieved, rng.random(len(retrieved)))]
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_figures_equal_ir_measures(seed):
    qrels, run = random_judgements(seed)
    parsed = [ir_measures.parse_measure(m) for m in MEASURES]
    expected = ir_measures.calc_aggregate(parsed, qrels, run)
    evaluation = evaluate(run, qrels, MEASURES)
    assert list(evaluation.aggregate) == MEASURES
    for measure in parsed:
        assert evaluation.aggregate[str(measure)] == pytest.approx(expected[measure], abs=1e-12)
    for metric in ir_measures.iter_calc(parsed, qrels, run):
        assert evaluation.per_query[metric.query_id][str(metric.measure)] == pytest.approx(metric.value, abs=1e-12)


def test_files_in_both_run_formats_give_the_same_figures(tmp_path):
    qrels, _ = random_judgements(5)
    (tmp_path / "qrels.txt").write_text("".join(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n" for q in qrels))
    doc_ids = np.array([f"d{i}" for i in range(200)])
    rng = np.random.default_rng(5)
    rows = np.stack([rng.choice(200, size=10, replace=False) for _ in range(30)])
    scores = -np.sort(-rng.random((30, 10)), axis=1).astype(np.float32)
    query_ids = [f"q{q}" for q in range(30)]
    write_run(tmp_path / "run.trec", query_ids, doc_ids, rows, scores, format="trec")
    write_run(tmp_path / "run.tsv", query_ids, doc_ids, rows, scores, format="msmarco")
    direct = evaluate(results_to_run(scores, rows, query_ids, doc_ids), qrels).aggregate
    assert evaluate(tmp_path / "run.trec", tmp_path / "qrels.txt").aggregate == pytest.approx(direct)
    assert evaluate(tmp_path / "run.tsv", str(tmp_path / "qrels.txt")).aggregate == pytest.approx(direct)


def test_perfect_run_scores_one():
    qrels, _ = random_judgements(3)
    relevant = [q for q in qrels if q.relevance > 0]
    run = [ScoredDoc(q.query_id, q.doc_id, float(q.relevance)) for q in relevant]
    evaluation = evaluate(run, relevant, DEFAULT_MEASURES)
    assert evaluation.aggregate == {"RR@10": 1.0, "nDCG@10": 1.0, "R@1000": 1.0}


def test_recall_vs_exact_on_hand_made_runs():
    exact = [ScoredDoc("q1", d, s) for d, s in [("a", 3.0), ("b", 2.0), ("c", 1.0)]]
    exact += [ScoredDoc("q2", d, s) for d, s in [("x", 5.0), ("y", 4.0)]]
    exact += [ScoredDoc("q3", "z", 1.0)]
    run = [ScoredDoc("q1", "c", 9.0), ScoredDoc("q1", "a", 8.0), ScoredDoc("q1", "e", 7.0)]  # 2 of 3
    run += [ScoredDoc("q2", "y", 1.0), ScoredDoc("q2", "w", 2.0)]  # 1 of 2; q3 missing: 0
    assert recall_vs_exact(run, exact, k=3) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    # k cuts both lists by score, not by file order: top-1 of q1 is "c" in the run, "a" exact.
    assert recall_vs_exact(run, exact, k=1) == pytest.approx((0 + 0 + 0) / 3)
    assert recall_vs_exact(run, exact, k=2) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert recall_vs_exact(exact, exact, k=10) == 1.0
    assert recall_vs_exact([], exact, k=10) == 0.0


def test_recall_vs_exact_rejects_bad_input():
    with pytest.raises(ParameterError, match="k must be"):
        recall_vs_exact([], [ScoredDoc("q", "d", 1.0)], k=0)
    with pytest.raises(ParameterError, match="no results"):
        recall_vs_exact([], [], k=10)


def test_results_to_run_drops_padding_and_maps_ids():
    scores = np.array([[2.0, 1.0, -np.inf], [5.0, -np.inf, -np.inf]], dtype=np.float32)
    rows = np.array([[2, 0, -1], [1, -1, -1]])
    run = results_to_run(scores, rows, ["q1", "q2"], np.array(["a", "b", "c"]))
    assert run == [ScoredDoc("q1", "c", 2.0), ScoredDoc("q1", "a", 1.0), ScoredDoc("q2", "b", 5.0)]
    with pytest.raises(ParameterError, match="n_queries=3"):
        results_to_run(scores, rows, ["q1", "q2", "q3"], ["a", "b", "c"])


def test_latency_and_throughput():
    stats = latency_stats([0.001] * 99 + [0.101])
    assert stats["mean"] == pytest.approx(2.0)
    assert stats["p50"] == pytest.approx(1.0)
    assert stats["p99"] == pytest.approx(1.0 + 0.01 * 100.0)  # linear interpolation between the last two
    assert queries_per_second(500, 0.25) == 2000.0
    with pytest.raises(ParameterError):
        latency_stats([])
    with pytest.raises(ParameterError):
        queries_per_second(1, 0.0)


def test_bad_measure_and_missing_qrels_are_one_line_errors(tmp_path):
    with pytest.raises(ParameterError, match="Foo@3"):
        evaluate([ScoredDoc("q", "d", 1.0)], [Qrel("q", "d", 1)], ["Foo@3"])
    with pytest.raises(InputError, match="nor an ir_datasets id"):
        load_qrels(tmp_path / "missing.txt")


def test_ir_datasets_id_not_on_disk_fails_offline():
    ir_datasets = pytest.importorskip("ir_datasets")
    source = ir_datasets.load("msmarco-passage/dev/small").qrels_handler()._qrels_dlc
    if source._path.exists():
        pytest.skip("msmarco-passage/dev/small qrels are downloaded on this machine")
    with pytest.raises(InputError, match="not available offline"):
        load_qrels("msmarco-passage/dev/small")


@pytest.fixture
def run_files(tmp_path):
    qrels, run = random_judgements(11)
    (tmp_path / "qrels.txt").write_text("".join(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n" for q in qrels))
    (tmp_path / "run.trec").write_text("".join(f"{s.query_id} Q0 {s.doc_id} 1 {s.score} t\n" for s in run))
    return tmp_path, qrels, run


def test_eval_command_table_and_json(run_files):
    tmp_path, qrels, run = run_files
    expected = evaluate(run, qrels, ["RR@10", "AP"]).aggregate
    table = CliRunner().invoke(eval_command, [str(tmp_path / "run.trec"), str(tmp_path / "qrels.txt"),
                                              "-m", "RR@10,AP"], catch_exceptions=False)
    assert table.exit_code == 0
    rows = [line.split() for line in table.output.splitlines()]
    assert rows[0] == ["measure", "value"]
    assert rows[2:] == [["RR@10", f"{expected['RR@10']:.4f}"], ["AP", f"{expected['AP']:.4f}"]]
    result = CliRunner().invoke(eval_command, [str(tmp_path / "run.trec"), str(tmp_path / "qrels.txt"), "-m", "RR@10",
                                               "-m", "AP", "--json", "--per-query", "--exact",
                                               str(tmp_path / "run.trec")], catch_exceptions=False)
    payload = json.loads(result.output)
    assert payload["aggregate"] == {**expected, "recall@10 vs exact": 1.0}
    assert payload["per_query"] == evaluate(run, qrels, ["RR@10", "AP"]).per_query


def test_eval_command_per_query_table(run_files):
    tmp_path, _, _ = run_files
    result = CliRunner().invoke(eval_command, [str(tmp_path / "run.trec"), str(tmp_path / "qrels.txt"), "--per-query"],
                                catch_exceptions=False)
    lines = result.output.splitlines()
    assert lines[0].split() == ["query", *DEFAULT_MEASURES]
    assert any(line.startswith("q0 ") for line in lines)


def test_shared_collection_qrels_read_as_ir_measures_does():
    qrels_path = SHARED_DATA / "scifact" / "qrels.txt"
    if not qrels_path.exists():
        pytest.skip("shared data not available")
    qrels = load_qrels(qrels_path)
    run = [ScoredDoc(q.query_id, q.doc_id, 1.0) for q in qrels[::2]]
    parsed = [ir_measures.parse_measure(m) for m in DEFAULT_MEASURES]
    expected = ir_measures.calc_aggregate(parsed, list(ir_measures.read_trec_qrels(str(qrels_path))), run)
    assert evaluate(run, qrels_path).aggregate == pytest.approx({str(m): v for m, v in expected.items()})
