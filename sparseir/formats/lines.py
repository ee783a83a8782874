"""Line-oriented parsing with one policy for bad lines: fail (default) or skip and count."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

from ..errors import InputError, ParameterError
from ..fileio import iter_lines

S = TypeVar("S")
T = TypeVar("T")


@dataclass
class BadLines:
    """Strict by default; with skip=True bad lines are counted and the first is kept."""

    skip: bool = False
    count: int = 0
    first: str | None = field(default=None)

    def handle(self, error: InputError) -> None:
        if not self.skip:
            raise error
        self.count += 1
        if self.first is None:
            self.first = str(error)


def parse_lines(path: str | os.PathLike, parse: Callable[[str], T], bad_lines: BadLines | None = None,
                unique_key: Callable[[T], str] | None = None, what: str = "record") -> Iterator[T]:
    """Parse each non-blank line; errors become InputError(path, line).

    `unique_key` rejects repeated keys (duplicate ids). An input with no valid record
    is an error: an empty collection is never what the user meant.
    """
    return parse_records(iter_lines(path), path, parse, bad_lines, unique_key, f"no {what} found (empty file?)")


def parse_records(numbered: Iterable[tuple[int, S]], source: str | os.PathLike, parse: Callable[[S], T],
                  bad_lines: BadLines | None, unique_key: Callable[[T], str] | None, empty_message: str) -> Iterator[T]:
    """The bad-line policy over any numbered items (a file's lines, a dataset's records):
    errors become InputError(source, number), repeated keys are errors, and so is no record."""
    bad_lines = bad_lines if bad_lines is not None else BadLines()
    seen: set[str] = set()
    produced = 0
    for number, item in numbered:
        try:
            record = parse(item)
            if unique_key is not None:
                key = unique_key(record)
                if key in seen:
                    raise ParameterError(f"duplicate id {key!r}")
                seen.add(key)
        except (ParameterError, ValueError) as e:
            bad_lines.handle(InputError(str(e), source, number))
            continue
        produced += 1
        yield record
    if produced == 0:
        raise InputError(empty_message, source)
