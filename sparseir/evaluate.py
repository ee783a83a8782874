"""Evaluation: ir-measures over runs and qrels, recall against an exact run, latency figures.

    run = evaluate.results_to_run(scores, rows, query_ids, index.doc_ids)
    evaluate.evaluate(run, "qrels.txt")                  # {"RR@10": ..., "nDCG@10": ..., "R@1000": ...}
    evaluate.recall_vs_exact(run, exact_run, k=10)

Runs are lists of ``ScoredDoc`` or paths to TREC / MS MARCO run files; qrels are lists
of ``Qrel``, paths to TREC qrels, or ir_datasets ids (``irds:msmarco-passage/dev/small``, or
the bare id) whose files are already on disk.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np

from .errors import InputError, ParameterError
from .extras import require_extra
from .formats import IRDS_PREFIX, Qrel, ScoredDoc, is_irds_source, read_qrels, read_run
from .formats.irds import is_registered_id
from .searchable import check_k

DEFAULT_MEASURES = ("RR@10", "nDCG@10", "R@1000")

RunLike = Union[str, os.PathLike, Iterable[ScoredDoc]]
QrelsLike = Union[str, os.PathLike, Iterable[Qrel]]


@dataclass(frozen=True)
class Evaluation:
    """Mean of each measure over the judged queries, and the per-query values behind it."""

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]


def parse_measures(names: Sequence[str]) -> list:
    """ir-measures measure objects for names such as ``RR@10`` or ``nDCG@10``."""
    require_extra("eval", "evaluation with ir-measures")
    import ir_measures

    if isinstance(names, str):
        names = [names]
    if not names:
        raise ParameterError("measures: give at least one measure, e.g. RR@10")
    measures = []
    for name in names:
        try:
            measures.append(ir_measures.parse_measure(name))
        except (NameError, ValueError, TypeError, SyntaxError) as e:
            raise ParameterError(f"measure {name!r} is not an ir-measures measure ({e})") from None
    return measures


def load_run(run: RunLike) -> list[ScoredDoc]:
    """A run as a list of ScoredDoc: read from a TREC or MS MARCO file, or taken as given."""
    if isinstance(run, (str, os.PathLike)):
        return list(read_run(run))
    return list(run)


def load_qrels(qrels: QrelsLike) -> list[Qrel]:
    """Qrels from a file, an ir_datasets id (``irds:<dataset id>``, or the bare id; files
    already on this machine), or a list of Qrel."""
    if not isinstance(qrels, (str, os.PathLike)):
        return list(qrels)
    if is_irds_source(qrels) or os.path.exists(qrels):
        return list(read_qrels(qrels))
    if is_registered_id(os.fspath(qrels)):
        return list(read_qrels(IRDS_PREFIX + os.fspath(qrels)))
    raise InputError("no such file, nor an ir_datasets id", qrels)


def evaluate(run: RunLike, qrels: QrelsLike, measures: Sequence[str] = DEFAULT_MEASURES) -> Evaluation:
    """ir-measures figures for `run`; queries judged in `qrels` but absent from the run count 0."""
    parsed = parse_measures(measures)  # first: it says so when ir-measures is not installed
    import ir_measures

    names = {measure: str(measure) for measure in parsed}
    run, qrels = load_run(run), load_qrels(qrels)
    evaluator = ir_measures.evaluator(parsed, qrels)
    aggregate = {names[measure]: float(value) for measure, value in evaluator.calc_aggregate(run).items()}
    per_query: dict[str, dict[str, float]] = defaultdict(dict)
    for metric in evaluator.iter_calc(run):
        per_query[metric.query_id][names[metric.measure]] = float(metric.value)
    order = [names[measure] for measure in parsed]
    return Evaluation({name: aggregate[name] for name in order},
                      {query_id: {name: values[name] for name in order if name in values}
                       for query_id, values in sorted(per_query.items())})


def ranked_lists(run: Iterable[ScoredDoc], k: int | None = None) -> dict[str, list[str]]:
    """Doc ids per query, best first (score descending, file order among ties), cut at k."""
    by_query: dict[str, list[ScoredDoc]] = defaultdict(list)
    for scored in run:
        by_query[scored.query_id].append(scored)
    return {query_id: [s.doc_id for s in sorted(docs, key=lambda s: -s.score)][:k]
            for query_id, docs in by_query.items()}


def recall_vs_exact(run: RunLike, exact_run: RunLike, k: int = 10) -> float:
    """Recall@k of a run against an exact run, the usual figure for approximate search.

    For each query with at least one exact result, the share of the exact top-k
    (``E``) found in the run's top-k (``R``): ``|R ∩ E| / |E|``, where ``|E| = k``
    unless the exact search found fewer documents. The mean is over those queries;
    a query missing from the run scores 0. Documents tied with the exact k-th score
    count only when they are the one the exact search kept.
    """
    k = check_k(k)
    exact = ranked_lists(load_run(exact_run), k)
    found = ranked_lists(load_run(run), k)
    shares = [len(set(found.get(query_id, ())) & set(docs)) / len(docs) for query_id, docs in exact.items() if docs]
    if not shares:
        raise ParameterError("the exact run has no results to compare against")
    return float(np.mean(shares))


def recall_at_k(rows: np.ndarray, exact_rows: np.ndarray) -> np.ndarray:
    """Per query, from search output: |top-k ∩ exact top-k| / |exact top-k|, as recall_vs_exact
    defines it; NaN for a query whose exact search found nothing (left out of means)."""
    recalls = np.full(len(rows), np.nan)
    for q, (found, truth) in enumerate(zip(rows, exact_rows)):
        truth = truth[truth >= 0]
        if len(truth):
            recalls[q] = np.intersect1d(found[found >= 0], truth).size / truth.size
    return recalls


def results_to_run(scores: np.ndarray, rows: np.ndarray, query_ids: Sequence[str],
                   doc_ids: Sequence[str]) -> list[ScoredDoc]:
    """Turn search output, (n_queries, k) scores and collection rows, into a run (padding dropped)."""
    scores, rows = np.asarray(scores), np.asarray(rows)
    if scores.shape != rows.shape or scores.ndim != 2 or len(rows) != len(query_ids):
        raise ParameterError(f"scores {scores.shape} and rows {rows.shape} must both be "
                             f"(n_queries={len(query_ids)}, k)")
    run = []
    for query_id, query_scores, query_rows in zip(query_ids, scores.tolist(), rows.tolist()):
        run.extend(ScoredDoc(str(query_id), str(doc_ids[row]), score)
                   for score, row in zip(query_scores, query_rows) if row >= 0)
    return run


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """Mean, median and 99th percentile of per-query latencies, in milliseconds."""
    milliseconds = np.asarray(seconds, dtype=np.float64) * 1e3
    if milliseconds.size == 0:
        raise ParameterError("latency_stats needs at least one timing")
    return {"mean": float(milliseconds.mean()), "p50": float(np.percentile(milliseconds, 50)),
            "p99": float(np.percentile(milliseconds, 99))}


def queries_per_second(n_queries: int, seconds: float) -> float:
    """Throughput of a batch that answered `n_queries` in `seconds` of wall time."""
    if seconds <= 0:
        raise ParameterError(f"seconds must be positive, got {seconds!r}")
    return n_queries / seconds
