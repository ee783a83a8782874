"""Significance of differences between systems: each measure's per-query values paired across
systems, each system tested against the first (the baseline), p-values corrected for the
number of comparisons.

    comparison = compare(["bm25.trec", "splade.trec", "fused.trec"], "qrels.txt", ["RR@10", "nDCG@10"])
    comparison.p_values["fused.trec"]["nDCG@10"]      # Holm-corrected, against bm25.trec

Per-query values are ir-measures' (``sparseir.evaluate``), over every query the qrels judge; a
query a run does not answer counts 0, as in the means `sparseir eval` reports. Tests:

- ``t``: the two-sided paired t-test, as ranx runs it (scipy's ``ttest_rel``);
- ``randomization``: Fisher's paired randomization test (Smucker, Allan and Carterette,
  CIKM 2007): each query's two values swap places at random (the sign of their difference
  flips), and p is the share of `permutations` whose mean difference is at least the observed
  one in size, (count + 1) / (permutations + 1). It is computed here, with a seeded generator:
  ranx's own draws its permutations on numba's threads, whose generators its seed does not
  reach, so its p-values vary from run to run (the tests check this one against it).

Corrections, per measure over the comparisons with the baseline: ``holm`` (Holm-Bonferroni,
step-down), ``bonferroni`` (p x comparisons), or ``none``; a corrected p is capped at 1. A
difference is significant when its corrected p is at most `alpha`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .errors import ParameterError, require
from .evaluate import DEFAULT_MEASURES, QrelsLike, RunLike, evaluate, load_qrels

TESTS = ("t", "randomization")
CORRECTIONS = ("holm", "bonferroni", "none")
PERMUTATION_CHUNK = 1 << 20  # sign draws per chunk (permutations x queries): bounded memory


@dataclass(frozen=True)
class CompareConfig:
    test: str = "t"
    correction: str = "holm"
    alpha: float = 0.05
    permutations: int = 10_000
    seed: int = 0

    def __post_init__(self):
        require(self.test in TESTS, f"test must be one of {', '.join(TESTS)}, got {self.test!r}")
        require(self.correction in CORRECTIONS,
                f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        require(isinstance(self.alpha, (int, float)) and not isinstance(self.alpha, bool) and 0 < self.alpha < 1,
                f"alpha must lie in (0, 1), got {self.alpha!r}")
        require(isinstance(self.permutations, int) and not isinstance(self.permutations, bool)
                and self.permutations >= 1, f"permutations must be an integer >= 1, got {self.permutations!r}")


@dataclass(frozen=True)
class Comparison:
    """Means per system and measure; for every system but the first, p-values against it."""

    names: list[str]
    measures: list[str]
    n_queries: int
    means: dict[str, dict[str, float]]
    p_values: dict[str, dict[str, float]]  # corrected
    raw_p_values: dict[str, dict[str, float]]
    config: CompareConfig = field(default_factory=CompareConfig)

    def significant(self, name: str, measure: str) -> bool:
        return name in self.p_values and self.p_values[name][measure] <= self.config.alpha

    def as_dict(self) -> dict:
        return {"baseline": self.names[0], "test": self.config.test, "correction": self.config.correction,
                "alpha": self.config.alpha, "n_queries": self.n_queries,
                "systems": {name: {measure: {"mean": self.means[name][measure],
                                             **({"p": self.p_values[name][measure],
                                                 "p_uncorrected": self.raw_p_values[name][measure],
                                                 "significant": self.significant(name, measure)}
                                                if name in self.p_values else {})}
                                   for measure in self.measures} for name in self.names}}


def paired_t_p(baseline: np.ndarray, other: np.ndarray) -> float:
    """Two-sided paired t-test (ranx's, through scipy); 1 where the two never differ."""
    if np.array_equal(baseline, other):
        return 1.0
    from ranx.statistical_tests import paired_student_t_test

    p, _ = paired_student_t_test(baseline, other)
    return 1.0 if math.isnan(p) else float(p)


def randomization_p(baseline: np.ndarray, other: np.ndarray, permutations: int = 10_000, seed: int = 0) -> float:
    """Fisher's paired randomization test, two-sided: (count + 1) / (permutations + 1)."""
    differences = np.asarray(other, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    n = len(differences)
    if n == 0 or not differences.any():
        return 1.0
    observed = abs(differences.mean())
    rng = np.random.default_rng(seed)
    at_least = 0
    per_chunk = max(1, PERMUTATION_CHUNK // n)
    for start in range(0, permutations, per_chunk):
        signs = rng.integers(0, 2, size=(min(per_chunk, permutations - start), n), dtype=np.int8) * 2 - 1
        # A tolerance for the float error of summing in another order: a permutation equal to the
        # observed difference counts as at least as large.
        at_least += int(np.count_nonzero(np.abs(signs @ differences) / n >= observed * (1 - 1e-12)))
    return (at_least + 1) / (permutations + 1)


def corrected(p_values: Sequence[float], correction: str) -> list[float]:
    """p-values corrected for their number (Holm step-down, Bonferroni, or none), capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if correction == "none" or m == 0:
        return p.tolist()
    if correction == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum((m - np.arange(m)) * p[order], 1.0))
    result = np.empty(m)
    result[order] = adjusted
    return result.tolist()


def compare_per_query(per_query: Mapping[str, Mapping[str, Mapping[str, float]]], query_ids: Sequence[str],
                      measures: Sequence[str], config: CompareConfig = CompareConfig()) -> Comparison:
    """Compare systems given their per-query values ({system: {query: {measure: value}}}, the
    first system the baseline) over `query_ids` (a value missing counts 0)."""
    names = list(per_query)
    require(len(names) >= 2, f"a comparison needs at least 2 systems, got {len(names)}")
    require(len(query_ids) > 0, "no judged query to compare systems on")
    values = {name: {measure: np.array([per_query[name].get(q, {}).get(measure, 0.0) for q in query_ids])
                     for measure in measures} for name in names}
    means = {name: {measure: float(values[name][measure].mean()) for measure in measures} for name in names}
    raw: dict[str, dict[str, float]] = {name: {} for name in names[1:]}
    adjusted: dict[str, dict[str, float]] = {name: {} for name in names[1:]}
    baseline = values[names[0]]
    for measure in measures:
        if config.test == "t":
            ps = [paired_t_p(baseline[measure], values[name][measure]) for name in names[1:]]
        else:
            ps = [randomization_p(baseline[measure], values[name][measure], config.permutations, config.seed)
                  for name in names[1:]]
        for name, p, q in zip(names[1:], ps, corrected(ps, config.correction)):
            raw[name][measure], adjusted[name][measure] = p, q
    return Comparison(names, list(measures), len(query_ids), means, adjusted, raw, config)


def compare(runs: Sequence[RunLike], qrels: QrelsLike, measures: Sequence[str] = DEFAULT_MEASURES,
            names: Sequence[str] | None = None, config: CompareConfig = CompareConfig()) -> Comparison:
    """Each run against the first on every measure, over the queries `qrels` judges."""
    from .extras import require_extra

    require_extra("interop", "significance tests")
    runs = list(runs)
    require(len(runs) >= 2, f"a comparison needs at least 2 runs, got {len(runs)}")
    if names is None:
        names = [os.fspath(run) if isinstance(run, (str, os.PathLike)) else f"run {i + 1}" for i, run in enumerate(runs)]
    names = list(names)
    require(len(names) == len(runs) and len(set(names)) == len(names),
            f"give one distinct name per run ({len(runs)} runs, names {names})")
    judged = load_qrels(qrels)
    query_ids = sorted({qrel.query_id for qrel in judged})
    evaluations = [evaluate(run, judged, measures) for run in runs]
    measure_names = list(evaluations[0].aggregate)
    comparison = compare_per_query({name: evaluation.per_query for name, evaluation in zip(names, evaluations)},
                                   query_ids, measure_names, config)
    for name, evaluation in zip(names, evaluations):
        for measure in measure_names:  # the means here are ir-measures' own, over the same queries
            if not math.isclose(comparison.means[name][measure], evaluation.aggregate[measure], abs_tol=1e-9):
                raise ParameterError(f"{name}: {measure}'s per-query values do not average to its mean "
                                     f"({comparison.means[name][measure]} vs {evaluation.aggregate[measure]}); "
                                     "this measure cannot be tested per query")
    return comparison
