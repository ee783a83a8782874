"""Anserini JsonVectorCollection: one `{"id", "contents", "vector": {term: weight}}` per line.

Reading takes two paths to one result. The Numba parser (fastjson.py) reads the lines
shaped as encoders write them, a block of lines at a time; every other line goes through
`_parse` (the json module), which gives every error message. Rows enter one builder in
file order either way, so ids, duplicates, bad lines and the vocabulary ("auto" opening
on the first unknown term included) come out as a line-by-line json reading gives them.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence

import numpy as np

from ..errors import InputError, ParameterError
from ..fileio import atomic_file
from ..workspace import IN_MEMORY
from ..vectors import SparseVectors, UnknownTermError, VectorBuilder, Vocabulary
from . import fastjson
from .fastjson import FAST, UNKNOWN, UNRESOLVED
from .lines import BadLines, Block, decode_line, iter_blocks, read_ahead
from .vocabs import is_auto, resolve_vocab, unknown_term_hint


def _parse(line: str) -> tuple[str, dict, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ParameterError(f"invalid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(record, dict):
        raise ParameterError("expected a JSON object")
    if "id" not in record:
        raise ParameterError('missing field "id"')
    vector = record.get("vector")
    if not isinstance(vector, dict):
        raise ParameterError('missing or non-object field "vector"')
    for term, weight in vector.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ParameterError(f"weight of {term!r} is not a number: {weight!r}")
        if not math.isfinite(weight):
            raise ParameterError(f"weight of {term!r} is not finite: {weight!r}")
        if weight < 0:
            raise ParameterError(f"weight of {term!r} is negative: {weight!r}")
    return str(record["id"]), vector, record.get("contents", "")


def read_jsonl(paths: str | os.PathLike | Sequence[str | os.PathLike], vocab: Vocabulary | str | None = "auto",
               bad_lines: BadLines | None = None, workspace=None) -> SparseVectors:
    """One file, or the parts of one collection in order (ids unique across them all); an
    out-of-core `workspace` spools the rows to its files."""
    reader = _JsonlReader(vocab, bad_lines if bad_lines is not None else BadLines(), workspace)
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    sizes = np.cumsum([os.path.getsize(path) if os.path.isfile(path) else 0 for path in paths])
    with (workspace or IN_MEMORY).progress_bar("reading (bytes)", int(sizes[-1])) as bar:  # part by part
        for path, read in zip(paths, sizes.tolist()):
            reader.read(path)
            bar.advance_to(read)
    return reader.builder.build()


class _Block:
    """A parsed block: its rows (fastjson.Rows), their entries and ids."""

    def __init__(self, block: Block, spellings: fastjson.Spellings):
        self.block = block
        buf = np.frombuffer(block.data, dtype=np.uint8)
        self.rows = fastjson.new_rows(block.lines)
        self.slots = np.empty(len(buf) // 5 + 2, np.int32)
        self.weights = np.empty(len(self.slots), np.float64)
        position = line = self.n_rows = n_nnz = 0
        while True:
            position, line, self.n_rows, n_nnz = fastjson.parse_block(
                buf, position, line, self.n_rows, n_nnz, self.rows, self.slots, self.weights, spellings)
            if position >= len(buf):
                break
            spellings = fastjson.grown(spellings)
        self.spellings = spellings
        self.ids = fastjson.joined_ids(buf, self.rows, self.n_rows).tobytes().decode("utf-8").split("\n")
        for row in np.flatnonzero(self.rows.id_escaped[:self.n_rows]).tolist():
            self.ids[row] = json.loads(bytes(block.data[self.rows.id_start[row] - 1:self.rows.id_end[row] + 1]))

    def entries(self, first: int, last: int) -> tuple[int, int]:
        """The span of rows first..last-1 in slots/weights."""
        return int(self.rows.nnz_end[first - 1]) if first else 0, int(self.rows.nnz_end[last - 1])

    def row_of(self, entry: int, first: int, last: int) -> int:
        return first + int(np.searchsorted(self.rows.nnz_end[first:last], entry, side="right"))


class _JsonlReader:
    def __init__(self, vocab: Vocabulary | str | None, bad_lines: BadLines, workspace=None):
        self.builder = VectorBuilder(resolve_vocab(vocab), open_on_unknown_term=is_auto(vocab),
                                     unknown_term_hint=unknown_term_hint(vocab), workspace=workspace)
        self.bad_lines = bad_lines
        self.seen: set[str] = set()
        self.spellings = fastjson.new_spellings()
        # Slot -> term id in `ids_of`, looked up once per spelling; a switch to an open vocabulary renumbers.
        self.term_ids = np.full(len(self.spellings.starts), UNRESOLVED, np.int32)
        self.ids_of = self.builder.vocab

    def read(self, path: str | os.PathLike) -> None:
        """Three stages, each in a thread of its own: reading (and decompressing), parsing
        (the Numba kernel, without the GIL), then the rest here."""
        produced = 0
        with contextlib.closing(read_ahead(self._parsed(read_ahead(iter_blocks(path))))) as blocks:
            for parsed in blocks:  # a bad line ends the read here: closing stops the other stages
                produced += self._read_block(path, parsed)
        if produced == 0:
            raise InputError("no JSON vector line found (empty file?)", path)

    def _parsed(self, blocks: Generator[Block, None, None]) -> Generator[_Block, None, None]:
        """The blocks parsed, in the parsing thread, which alone adds to `spellings` (a
        block's slots are all in the table that comes with it)."""
        try:
            for block in blocks:
                parsed = _Block(block, self.spellings)
                self.spellings = parsed.spellings
                yield parsed
        finally:
            blocks.close()

    def _read_block(self, path, parsed: _Block) -> int:
        if len(self.term_ids) < len(parsed.spellings.starts):
            self.term_ids = np.concatenate([self.term_ids, np.full(len(parsed.spellings.starts) - len(self.term_ids),
                                                                   UNRESOLVED, np.int32)])
        slow = np.flatnonzero(parsed.rows.status[:parsed.n_rows] != FAST).tolist() + [parsed.n_rows]
        produced = row = 0
        while row < parsed.n_rows:
            added = self._add_fast(parsed, row, slow[bisect.bisect_left(slow, row)])
            produced += added
            row += added
            if row < parsed.n_rows:  # a SLOW row, or one the fast path stopped before: the json module's
                produced += self._add_slow(path, parsed, row)
                row += 1
        return produced

    def _add_slow(self, path, parsed: _Block, row: int) -> int:
        rows, number = parsed.rows, parsed.block.first_line + int(parsed.rows.line[row])
        line = decode_line(bytes(parsed.block.data[rows.start[row]:rows.end[row]]), path, number)
        if line is None:
            return 0
        ok, _ = self.bad_lines.attempt(self._parse_and_add, line, path, number)
        return int(ok)

    def _parse_and_add(self, line: str) -> None:
        vector_id, vector, _ = _parse(line)
        # Checked before adding: a skipped duplicate (skip_bad_lines) must not be kept.
        if vector_id in self.seen:
            raise ParameterError(f"duplicate id {vector_id!r}")
        self.builder.add(vector_id, vector)
        self.seen.add(vector_id)

    def _add_fast(self, parsed: _Block, first: int, last: int) -> int:
        """Add FAST rows from `first` on, up to `last` or to a row that needs the json module
        (a repeated id, a term the fixed vocabulary lacks, a repeated term); returns how many."""
        ids = parsed.ids[first:last]
        if len(set(ids)) < len(ids) or not self.seen.isdisjoint(ids):
            last = first + _first_repeat(ids, self.seen)
        row = first
        while row < last:
            stop = self._resolve(parsed, row, last)
            row = self._emit(parsed, row, stop)
            if row < stop or stop == last or not self.builder.open_on_unknown_term:
                break
            self.builder.open_vocabulary()  # as VectorBuilder.add does on its first unknown term
        return row - first

    def _resolve(self, parsed: _Block, first: int, last: int) -> int:
        """Give every term of rows first..last-1 its id, in order of first use (an open
        vocabulary grows in that order); returns the first row with a term the fixed
        vocabulary lacks, else `last`."""
        if self.builder.vocab is not self.ids_of:
            self.term_ids[:] = UNRESOLVED
            self.ids_of = self.builder.vocab
        slots, entries = fastjson.unresolved(self.term_ids, parsed.slots, *parsed.entries(first, last))
        for index, slot in enumerate(slots.tolist()):
            if self.term_ids[slot] == UNKNOWN or not self._look_up(parsed.spellings, slot):
                self.term_ids[slots[index + 1:]] = UNRESOLVED
                return parsed.row_of(int(entries[index]), first, last)
        return last

    def _look_up(self, spellings: fastjson.Spellings, slot: int) -> bool:
        raw = fastjson.spelling(spellings, slot)
        term = json.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode("utf-8")
        try:
            self.term_ids[slot] = self.builder.term_id(term)
        except UnknownTermError:
            self.term_ids[slot] = UNKNOWN
            return False
        return True

    def _emit(self, parsed: _Block, first: int, last: int) -> int:
        """Add rows first..last-1 up to one holding a term twice; returns the row reached."""
        if last == first:
            return first
        start, end = parsed.entries(first, last)
        sizes = np.empty(last - first, np.int64)
        terms = np.empty(end - start, np.int32)
        weights = np.empty(end - start, np.float32)
        rows, written = fastjson.emit_rows(self.term_ids, parsed.slots, parsed.weights, parsed.rows.nnz_end,
                                           first, last, sizes, terms, weights)
        ids = parsed.ids[first:first + rows]
        self.builder.add_rows(ids, sizes[:rows], terms[:written], weights[:written])
        self.seen.update(ids)
        return first + rows


def _first_repeat(ids: list[str], seen: set[str]) -> int:
    """Index of the first id in `ids` already in `seen` or earlier in `ids`."""
    run: set[str] = set()
    for index, vector_id in enumerate(ids):
        if vector_id in seen or vector_id in run:
            return index
        run.add(vector_id)
    return len(ids)


@contextlib.contextmanager
def jsonl_writer(path: str | os.PathLike, vocab: Vocabulary, overwrite: bool = False) -> Iterator[Callable]:
    """Yield write(vectors, texts=None), appending records to one JSONL file written atomically."""
    with atomic_file(path, overwrite=overwrite) as f:
        def write(vectors: SparseVectors, texts: Iterable[str] | None = None) -> None:
            texts = iter(texts) if texts is not None else None
            for vector in vectors:
                record = {"id": vector.id, "contents": next(texts) if texts is not None else "",
                          "vector": vector.as_dict(vocab)}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        yield write


def write_jsonl(vectors: SparseVectors, path: str | os.PathLike, overwrite: bool = False) -> None:
    with jsonl_writer(path, vectors.vocab, overwrite) as write:
        write(vectors)
