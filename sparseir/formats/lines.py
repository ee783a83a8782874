"""Line-oriented parsing with one policy for bad lines: fail (default) or skip and count."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

from ..errors import InputError, ParameterError
from ..fileio import iter_lines

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
    bad_lines = bad_lines if bad_lines is not None else BadLines()
    seen: set[str] = set()
    produced = 0
    for number, line in iter_lines(path):
        try:
            record = parse(line)
            if unique_key is not None:
                key = unique_key(record)
                if key in seen:
                    raise ParameterError(f"duplicate id {key!r}")
                seen.add(key)
        except (ParameterError, ValueError) as e:
            bad_lines.handle(InputError(str(e), path, number))
            continue
        produced += 1
        yield record
    if produced == 0:
        raise InputError(f"no {what} found (empty file?)", path)
