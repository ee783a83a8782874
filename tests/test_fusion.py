"""Run fusion against ranx's own fusion of the same runs, missing documents and queries, bad runs
and weights, weight tuning, and the command line."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

import sparseir
from sparseir.cli import cli
from sparseir.errors import InputError, ParameterError
from sparseir.evaluate import results_to_run
from sparseir.formats import ScoredDoc, read_run
from sparseir.fusion import METHODS, NORMS, optimize_weights, weight_grid
from conftest import SHARED_DATA, shared_vectors

ranx = pytest.importorskip("ranx")

RANK_BASED = {"rrf"}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ranx_reference(runs: list[list[ScoredDoc]], method: str, norm: str, weights=None, rrf_k: int = 60):
    """ranx's public fusion of the same runs: {query: {doc: score}}. Where only order counts (RRF,
    rank norm), each run is handed over as its order (score descending, line order among ties,
    as sparseir documents), so that ranx's unstable sort of equal scores does not decide it."""
    queries = sorted({s.query_id for r in runs for s in r})
    ordinal = method in RANK_BASED or norm == "rank"
    ranx_runs = []
    for r in runs:
        table = {q: {} for q in queries}
        by_query: dict[str, list[ScoredDoc]] = {q: [] for q in queries}
        for s in r:
            by_query[s.query_id].append(s)
        for q, docs in by_query.items():
            ranked = sorted(docs, key=lambda s: -s.score)
            table[q] = {s.doc_id: (float(len(ranked) - i) if ordinal else s.score) for i, s in enumerate(ranked)}
        ranx_runs.append(ranx.Run(table))
    params = {"rrf": {"k": rrf_k}, "wsum": {"weights": list(weights or [1.0] * len(runs))}}.get(method, {})
    fused = ranx.fuse(ranx_runs, norm={"none": None, "minmax": "min-max"}.get(norm, norm),
                      method={"combsum": "sum", "combmnz": "mnz"}.get(method, method), params=params)
    return {q: dict(fused.run[q]) for q in queries}


def assert_equals_ranx(fused: list[ScoredDoc], reference: dict, depth=None):
    by_query: dict[str, list[ScoredDoc]] = {}
    for s in fused:
        by_query.setdefault(s.query_id, []).append(s)
    assert set(by_query) <= set(reference)
    for q, expected in reference.items():
        ranked = sorted(expected.items(), key=lambda item: (-item[1], item[0]))[:depth]
        got = by_query.get(q, [])
        assert [s.doc_id for s in got] == [doc for doc, _ in ranked], q  # exactly in order
        assert np.allclose([s.score for s in got], [score for _, score in ranked], rtol=0, atol=1e-9)


def toy_runs():
    """Two runs with ties, documents missing from one run, and a query only one run answers."""
    a = [ScoredDoc("q1", "d1", 3.0), ScoredDoc("q1", "d2", 2.0), ScoredDoc("q1", "d3", 2.0), ScoredDoc("q1", "d4", 0.5),
         ScoredDoc("q2", "d9", 1.0), ScoredDoc("q2", "d1", 0.25), ScoredDoc("q3", "d5", 7.0)]
    b = [ScoredDoc("q1", "d3", 10.0), ScoredDoc("q1", "d5", 9.0), ScoredDoc("q1", "d1", 9.0), ScoredDoc("q1", "d6", 1.0),
         ScoredDoc("q2", "d1", 4.0), ScoredDoc("q2", "d7", 4.0)]
    return a, b


# The default set compiles ranx's kernels for RRF (and CombSUM, which it ends with) only.
@pytest.mark.parametrize("method, norm", [("rrf", "none"),
                                          pytest.param("rrf", "minmax", marks=pytest.mark.slow),
                                          pytest.param("wsum", "none", marks=pytest.mark.slow),
                                          pytest.param("combmnz", "zmuv", marks=pytest.mark.slow),
                                          pytest.param("combsum", "rank", marks=pytest.mark.slow)])
def test_toy_runs_fuse_as_ranx_fuses_them(method, norm):
    a, b = toy_runs()
    weights = [0.3, 0.7] if method == "wsum" else None
    fused = sparseir.fuse([a, b], method=method, norm=norm, weights=weights)
    assert_equals_ranx(fused, ranx_reference([a, b], method, norm, weights))
    assert {s.doc_id for s in fused if s.query_id == "q3"} == {"d5"}  # a query only run a answers


def test_rrf_by_hand():
    """RRF sums 1 / (k + rank) over the runs that hold a document; ties keep each run's line order."""
    a, b = toy_runs()
    fused = {(s.query_id, s.doc_id): s.score for s in sparseir.fuse([a, b], method="rrf", rrf_k=60)}
    assert fused["q1", "d1"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["q1", "d2"] == pytest.approx(1 / 62) and fused["q1", "d3"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["q1", "d6"] == pytest.approx(1 / 64) and fused["q3", "d5"] == pytest.approx(1 / 61)


def test_depth_cuts_each_query():
    a, b = toy_runs()
    fused = sparseir.fuse([a, b], method="combsum", depth=2)
    assert [s.query_id for s in fused] == ["q1", "q1", "q2", "q2", "q3"]


def test_bad_fusion_parameters():
    a, b = toy_runs()
    for kwargs, message in [({"weights": [1.0]}, "1 given for 2 runs"), ({"weights": [1, 2, 3]}, "3 given for 2"),
                            ({"method": "rrf", "weights": [1, 1]}, "weights apply to method wsum"),
                            ({"method": "borda"}, "method must be"), ({"norm": "max"}, "norm must be"),
                            ({"weights": [1, float("nan")]}, "finite"), ({"depth": 0}, "depth")]:
        with pytest.raises(ParameterError, match=message):
            sparseir.fuse([a, b], **{"method": "wsum", **kwargs})
    with pytest.raises(ParameterError, match="at least 2 runs"):
        sparseir.fuse([a])
    with pytest.raises(ParameterError, match="lists document 'd1' twice"):
        sparseir.fuse([a + [ScoredDoc("q1", "d1", 0.1)], b])


def test_weight_grid():
    assert weight_grid(2, 0.5) == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    assert len(weight_grid(3, 0.1)) == 66 and all(abs(sum(w) - 1) < 1e-12 for w in weight_grid(3, 0.1))
    with pytest.raises(ParameterError, match="step"):
        weight_grid(2, 0.3)


def write_runs(tmp_path):
    a, b = toy_runs()
    for name, r in (("a.trec", a), ("b.trec", b)):
        sparseir.formats.trec.write_scored(tmp_path / name, sorted(r, key=lambda s: (s.query_id, -s.score)))
    (tmp_path / "qrels.txt").write_text("q1 0 d5 1\nq2 0 d7 1\nq3 0 d5 1\n")


def test_fuse_on_the_command_line(tmp_path):
    write_runs(tmp_path)
    result = run("fuse", tmp_path / "a.trec", tmp_path / "b.trec", "-o", tmp_path / "f.trec", "--rrf-k", "10")
    assert result.exit_code == 0, result.output
    written = list(read_run(tmp_path / "f.trec"))
    a, b = toy_runs()
    assert written == sparseir.fuse([a, b], rrf_k=10)  # scores exactly, in order
    assert run("fuse", tmp_path / "a.trec", tmp_path / "b.trec", "-o", tmp_path / "f.trec").exit_code == 1  # exists


@pytest.mark.slow
def test_weights_tuned_on_the_command_line(tmp_path):
    write_runs(tmp_path)
    a, b = toy_runs()
    result = run("fuse", tmp_path / "a.trec", tmp_path / "b.trec", "-o", tmp_path / "f.trec", "--method", "wsum",
                 "--weights", "0.3,0.7", "--norm", "minmax")
    assert result.exit_code == 0, result.output
    assert list(read_run(tmp_path / "f.trec")) == sparseir.fuse([a, b], method="wsum", weights=[0.3, 0.7])
    result = run("fuse", tmp_path / "a.trec", tmp_path / "b.trec", "-o", tmp_path / "o.tsv", "--method", "wsum",
                 "--optimize", tmp_path / "qrels.txt", "--step", "0.5", "--measure", "RR@10", "--run-format", "msmarco")
    assert result.exit_code == 0 and re.search(r"optimized over 3 weightings: weights [\d.]+,[\d.]+ give RR@10", result.output)
    best, value, tried = optimize_weights([a, b], tmp_path / "qrels.txt", measure="RR@10", step=0.5)
    assert value == max(v for _, v in tried) and len(tried) == 3


@pytest.mark.parametrize("args, message", [
    (["--method", "wsum", "--weights", "1,2,3"], "weights: 3 given for 2 runs"),
    (["--method", "wsum", "--weights", "1,x"], "--weights must be numbers"),
    (["--method", "rrf", "--weights", "1,1"], "weights apply to method wsum"),
    (["--optimize", "QRELS"], "--optimize tunes the weights of --method wsum"),
])
def test_bad_weights_on_the_command_line_are_one_line(tmp_path, args, message):
    write_runs(tmp_path)
    args = [str(tmp_path / "qrels.txt") if arg == "QRELS" else arg for arg in args]
    result = run("fuse", tmp_path / "a.trec", tmp_path / "b.trec", "-o", tmp_path / "f.trec", *args)
    assert result.exit_code == 1 and result.output.count("\n") == 1 and message in result.output, result.output
    assert not (tmp_path / "f.trec").exists()


def test_a_run_with_duplicate_rows_is_one_line_naming_the_line(tmp_path):
    write_runs(tmp_path)
    with open(tmp_path / "a.trec", "a") as f:
        f.write("q1 Q0 d2 9 0.1 x\n")
    result = run("fuse", tmp_path / "a.trec", tmp_path / "b.trec", "-o", tmp_path / "f.trec")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert re.search(r"a\.trec:8: .*duplicate", result.output) and not (tmp_path / "f.trec").exists()
    with pytest.raises(InputError):
        sparseir.fuse([tmp_path / "a.trec", tmp_path / "b.trec"])


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("norm", NORMS)
def test_exact_and_saat_runs_on_scifact_fuse_as_ranx_fuses_them(scifact_runs, method, norm):
    weights = [0.4, 0.6] if method == "wsum" else None
    fused = sparseir.fuse(scifact_runs, method=method, norm=norm, weights=weights, depth=None)
    assert_equals_ranx(fused, ranx_reference(scifact_runs, method, norm, weights))


@pytest.fixture(scope="module")
def scifact_runs():
    docs = sparseir.read_vectors(shared_vectors("scifact") / "collection.jsonl.gz")
    queries = sparseir.read_vectors(SHARED_DATA / "scifact" / "vectors" / "queries.jsonl.gz", vocab=docs.vocab)
    runs = []
    for kind, knobs in (("exact", {}), ("saat", {"rho": 20_000})):
        index = sparseir.build_index(docs, kind=kind)
        scores, rows = index.search(queries, k=100, **knobs)
        runs.append(results_to_run(scores, rows, queries.ids, index.doc_ids))
    assert any(len({s.score for s in runs[1] if s.query_id == q}) < 100 for q in queries.ids[:50])  # saat ties
    return runs
