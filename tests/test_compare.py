"""Significance tests between runs: p-values against scipy, ranx and statsmodels, the
corrections, and `sparseir eval --compare`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from sparseir.cli import cli
from sparseir.compare import CompareConfig, compare, compare_per_query, corrected, paired_t_p, randomization_p
from sparseir.errors import ParameterError
from sparseir.formats import Qrel, ScoredDoc

pytest.importorskip("ranx")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_paired_t_test_is_scipys():
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(0)
    a, b = rng.random(50), rng.random(50)
    assert paired_t_p(a, b) == pytest.approx(ttest_rel(a, b).pvalue, rel=1e-12)
    assert paired_t_p(a, a) == 1.0


def test_randomization_test_converges_to_the_enumerated_p():
    """With few queries every sign pattern can be enumerated: the Monte Carlo estimate converges to it."""
    import itertools

    differences = np.array([0.3, -0.1, 0.25, 0.4, 0.05, -0.2, 0.35])
    base = np.zeros(len(differences))
    observed = abs(differences.mean())
    patterns = np.array(list(itertools.product([-1, 1], repeat=len(differences))))
    exact = np.mean(np.abs(patterns @ differences) / len(differences) >= observed * (1 - 1e-12))
    assert randomization_p(base, differences, 200_000, seed=1) == pytest.approx(exact, abs=0.005)
    assert randomization_p(base, differences, 1000, seed=3) == randomization_p(base, differences, 1000, seed=3)
    assert randomization_p(base, base) == 1.0


@pytest.mark.slow
def test_randomization_test_is_near_ranxs():
    """ranx's own test (compiled on first use, and not reproducible: see sparseir.compare) agrees
    within its Monte Carlo error."""
    from ranx.statistical_tests import fisher_randomization_test

    rng = np.random.default_rng(2)
    a = rng.random(200)
    b = a + rng.normal(0.01, 0.1, 200)
    theirs, _ = fisher_randomization_test(a, b, 20_000, 0.05, 42)
    assert randomization_p(a, b, 20_000) == pytest.approx(theirs, abs=0.02)


def test_holm_and_bonferroni_by_hand():
    # Holm: sorted 0.01, 0.02, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 1 x 0.04); back in input order.
    assert corrected([0.04, 0.01, 0.02], "holm") == pytest.approx([0.04, 0.03, 0.04])
    assert corrected([0.04, 0.01, 0.5], "bonferroni") == pytest.approx([0.12, 0.03, 1.0])


@pytest.mark.slow
@given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_corrections_are_statsmodels(p_values):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    for ours, theirs in (("holm", "holm"), ("bonferroni", "bonferroni")):
        expected = multitest.multipletests(p_values, method=theirs)[1]
        assert np.allclose(corrected(p_values, ours), expected, atol=1e-12)
    assert corrected(p_values, "none") == p_values


def toy():
    qrels = [Qrel(f"q{i}", f"d{i}", 1) for i in range(30)]
    good = [ScoredDoc(f"q{i}", f"d{i}", 1.0) for i in range(30)]
    worse = [ScoredDoc(f"q{i}", f"x{i}", 2.0) for i in range(30)] + [ScoredDoc(f"q{i}", f"d{i}", 1.0)
                                                                    for i in range(0, 30, 3)]
    same = list(good)
    return qrels, good, worse, same


def test_compare_marks_a_real_difference_and_not_an_equal_run():
    qrels, good, worse, same = toy()
    comparison = compare([good, worse, same], qrels, ["RR@10", "nDCG@10"], names=["good", "worse", "same"])
    assert comparison.means["good"]["RR@10"] == 1.0 and comparison.means["worse"]["RR@10"] == pytest.approx(1 / 6)
    assert comparison.significant("worse", "RR@10") and not comparison.significant("same", "RR@10")
    assert comparison.p_values["same"]["nDCG@10"] == 1.0
    # Holm over the two comparisons: the smaller p doubled.
    assert comparison.p_values["worse"]["RR@10"] == pytest.approx(min(1.0, 2 * comparison.raw_p_values["worse"]["RR@10"]))
    randomized = compare([good, worse, same], qrels, ["RR@10"], config=CompareConfig(test="randomization",
                                                                                      permutations=2000))
    assert randomized.significant("run 2", "RR@10") and not randomized.significant("run 3", "RR@10")


def test_a_query_a_run_misses_counts_zero():
    qrels, good, _, _ = toy()
    partial = [s for s in good if s.query_id != "q0"]
    comparison = compare_per_query({"a": {"q0": {"RR@10": 1.0}, "q1": {"RR@10": 1.0}}, "b": {"q1": {"RR@10": 1.0}}},
                                   ["q0", "q1"], ["RR@10"])
    assert comparison.means["b"]["RR@10"] == 0.5
    assert compare([good, partial], qrels, ["RR@10"]).means["run 2"]["RR@10"] == pytest.approx(29 / 30)


def test_bad_comparisons():
    qrels, good, worse, _ = toy()
    for kwargs, message in [({"config": CompareConfig()}, None)]:
        compare([good, worse], qrels, ["RR@10"], **kwargs)
    with pytest.raises(ParameterError, match="at least 2 runs"):
        compare([good], qrels)
    with pytest.raises(ParameterError, match="one distinct name per run"):
        compare([good, worse], qrels, names=["a", "a"])
    for bad in [{"test": "wilcoxon"}, {"correction": "fdr"}, {"alpha": 1.5}, {"permutations": 0}]:
        with pytest.raises(ParameterError):
            CompareConfig(**bad)


def test_eval_compare_on_the_command_line(tmp_path):
    qrels, good, worse, same = toy()
    (tmp_path / "qrels.txt").write_text("".join(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n" for q in qrels))
    for name, records in (("good.trec", good), ("worse.trec", worse), ("same.trec", same)):
        (tmp_path / name).write_text("".join(f"{s.query_id} Q0 {s.doc_id} 1 {s.score} t\n" for s in records))
    paths = [tmp_path / "good.trec", tmp_path / "worse.trec", tmp_path / "same.trec"]
    result = run("eval", *paths, tmp_path / "qrels.txt", "--compare", "-m", "RR@10")
    assert result.exit_code == 0, result.output
    assert re.search(r"worse\.trec\s+0\.1667\*\s+0\.0\d+", result.output)
    assert re.search(r"same\.trec\s+1\.0000\s+1\.0000", result.output) and "holm-corrected" in result.output
    data = json.loads(run("eval", *paths, tmp_path / "qrels.txt", "--compare", "--json", "--test", "randomization",
                          "--permutations", "500").output)
    assert data["systems"][str(paths[1])]["RR@10"]["significant"] is True and data["test"] == "randomization"
    for args, message in [([paths[0], paths[1]], "pass --compare"),
                          ([paths[0], paths[1], "--compare", "--per-query"], "neither --exact nor --per-query"),
                          ([paths[0], "--compare"], "at least 2 runs")]:
        options = [arg for arg in args if str(arg).startswith("--")]
        result = run("eval", *[arg for arg in args if arg not in options], tmp_path / "qrels.txt", *options)
        assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1, result.output


def test_bench_tables_mark_significant_differences_from_the_first_row():
    import dataclasses

    from sparseir.bench.sweep import SettingResult, format_table, with_significance

    qrels, good, worse, same = toy()
    blank = SettingResult(**{f.name: None for f in dataclasses.fields(SettingResult)})
    settings = [dataclasses.replace(blank, method=name, search={}, quality={"RR@10": value}, recall_vs_exact=1.0,
                                    latency_ms={"mean": 1.0, "p99": 2.0}, qps=1.0, build_seconds=0.0)
                for name, value in (("good", 1.0), ("worse", 1 / 6), ("same", 1.0))]
    per_query = [{s.query_id: {"RR@10": 1.0 if s.doc_id.startswith("d") else 0.0} for s in run} for run in
                 (good, [s for s in worse if s.doc_id.startswith("x") or int(s.doc_id[1:]) % 3], same)]
    marked = with_significance(settings, per_query, qrels)
    assert marked[0].significance is None and marked[1].significance["RR@10"] < 0.05
    assert marked[2].significance["RR@10"] == 1.0
    table = format_table({"k": 10, "measures": ["RR@10"], "settings": [dataclasses.asdict(s) for s in marked]})
    rows = table.splitlines()
    assert re.search(r"^worse .* 0\.\d{3}\* ", rows[3]) and "*" not in rows[2] + rows[4]
    assert rows[-1].startswith("* differs from the first row: paired t-test")
    assert with_significance(settings, per_query, None) == settings  # no qrels: nothing to test
