"""TREC qrels, TREC runs (`qid Q0 docid rank score tag`) and MS MARCO runs (`qid docid rank`)."""

from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np

from ..errors import ParameterError
from ..fileio import atomic_file
from .lines import BadLines, parse_lines
from .records import Qrel, ScoredDoc, qrel_key

RUN_FORMATS = ("trec", "msmarco")


def _parse_qrel(line: str) -> Qrel:
    fields = line.split()
    if len(fields) != 4:
        raise ParameterError(f"expected 4 fields (qid iteration docid relevance), got {len(fields)}")
    try:
        relevance = int(fields[3])
    except ValueError:
        raise ParameterError(f"relevance {fields[3]!r} is not an integer") from None
    return Qrel(fields[0], fields[2], relevance, fields[1])


def read_qrels(path: str | os.PathLike, bad_lines: BadLines | None = None) -> Iterator[Qrel]:
    return parse_lines(path, _parse_qrel, bad_lines, unique_key=qrel_key, what="qrel line")


def _parse_run_line(line: str) -> ScoredDoc:
    fields = line.split()
    if len(fields) == 6:
        query_id, _, doc_id, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise ParameterError(f"score {score_text!r} is not a number") from None
        if not math.isfinite(score):
            raise ParameterError(f"score {score_text!r} is not finite")
        return ScoredDoc(query_id, doc_id, score)
    if len(fields) == 3:
        query_id, doc_id, rank_text = fields
        try:
            rank = int(rank_text)
        except ValueError:
            raise ParameterError(f"rank {rank_text!r} is not an integer") from None
        if rank < 1:
            raise ParameterError(f"rank {rank} must be >= 1")
        # MS MARCO runs carry ranks only; a decreasing score keeps their order.
        return ScoredDoc(query_id, doc_id, -float(rank))
    raise ParameterError(f"expected 6 fields (TREC run) or 3 (MS MARCO run), got {len(fields)}")


def read_run(path: str | os.PathLike, bad_lines: BadLines | None = None) -> Iterator[ScoredDoc]:
    """Read a TREC or MS MARCO run, telling them apart line by line by column count."""
    return parse_lines(path, _parse_run_line, bad_lines, unique_key=lambda s: f"{s.query_id} {s.doc_id}",
                       what="run line")


def write_run(path: str | os.PathLike, query_ids, doc_ids, rows: np.ndarray, scores: np.ndarray,
              format: str = "trec", tag: str = "sparseir", overwrite: bool = False) -> int:
    """Write a (nq, k) result as a run; rows of -1 (padding) are left out. Returns lines written."""
    if format not in RUN_FORMATS:
        raise ParameterError(f"run format must be one of {RUN_FORMATS}, got {format!r}")
    if len(query_ids) != len(rows):
        raise ParameterError(f"{len(query_ids)} query ids for {len(rows)} result rows")
    written = 0
    with atomic_file(path, overwrite=overwrite) as f:
        for query_id, query_rows, query_scores in zip(query_ids, rows, scores):
            for rank, (row, score) in enumerate(zip(query_rows.tolist(), query_scores.tolist()), start=1):
                if row < 0:
                    break
                f.write(run_line(format, query_id, doc_ids[row], rank, score, tag))
                written += 1
    return written


def run_line(format: str, query_id, doc_id, rank: int, score: float, tag: str) -> str:
    if format == "trec":
        # Nine significant digits give back a float32 score exactly; a float64 one (a fused run's)
        # takes seventeen. A fixed number of decimals would not: small scores would tie, and
        # trec_eval orders a run by score.
        digits = 9 if isinstance(score, np.float32) or float(np.float32(score)) == score else 17
        return f"{query_id} Q0 {doc_id} {rank} {score:.{digits}g} {tag}\n"
    return f"{query_id}\t{doc_id}\t{rank}\n"


def write_scored(path: str | os.PathLike, run, format: str = "trec", tag: str = "sparseir",
                 overwrite: bool = False) -> int:
    """Write a run given as ScoredDoc records, best first within each query (ranks from 1 in that
    order); returns lines written."""
    if format not in RUN_FORMATS:
        raise ParameterError(f"run format must be one of {RUN_FORMATS}, got {format!r}")
    written = 0
    with atomic_file(path, overwrite=overwrite) as f:
        rank, previous = 0, None
        for scored in run:
            rank = rank + 1 if scored.query_id == previous else 1
            previous = scored.query_id
            f.write(run_line(format, scored.query_id, scored.doc_id, rank, scored.score, tag))
            written += 1
    return written
