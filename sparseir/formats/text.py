"""MS MARCO text files: collection.tsv and queries.tsv (`id<TAB>text`)."""

from __future__ import annotations

import os
from typing import Iterable, Iterator

from ..errors import ParameterError
from ..fileio import atomic_file
from .lines import BadLines, parse_lines
from .records import TextRecord


def parse_text_line(line: str) -> TextRecord:
    fields = line.split("\t")
    if len(fields) != 2:
        raise ParameterError(f"expected 2 tab-separated fields (id, text), got {len(fields)}")
    if not fields[0].strip():
        raise ParameterError("empty id")
    return TextRecord(fields[0].strip(), fields[1])


def read_texts(path: str | os.PathLike, bad_lines: BadLines | None = None) -> Iterator[TextRecord]:
    """Stream (id, text) records; ids must be unique."""
    return parse_lines(path, parse_text_line, bad_lines, unique_key=lambda r: r.id, what="id<TAB>text line")


def write_texts(records: Iterable[TextRecord], path: str | os.PathLike, overwrite: bool = False) -> None:
    with atomic_file(path, overwrite=overwrite) as f:
        for record_id, text in records:
            if "\t" in text or "\n" in text or "\t" in record_id:
                raise ParameterError(f"record {record_id!r}: tabs and newlines cannot be written to TSV")
            f.write(f"{record_id}\t{text}\n")
