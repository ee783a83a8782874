"""Record types, named as in ir_datasets / ir_measures so they read the same."""

from __future__ import annotations

from typing import NamedTuple


class TextRecord(NamedTuple):
    """One line of an MS MARCO collection.tsv or queries.tsv."""

    id: str
    text: str


class Qrel(NamedTuple):
    query_id: str
    doc_id: str
    relevance: int
    iteration: str = "0"


def qrel_key(qrel: Qrel) -> str:
    """What must be unique among qrels: one judgement per (query, document)."""
    return f"{qrel.query_id} {qrel.doc_id}"


class ScoredDoc(NamedTuple):
    query_id: str
    doc_id: str
    score: float
