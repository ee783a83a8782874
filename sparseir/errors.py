"""One exception type for every input problem the user can fix.

Messages are one line and name the file and line, or the parameter, so the CLI can
print them as they are and exit 1 without a traceback.
"""

from __future__ import annotations

import os


class SparseirError(Exception):
    """An error in the user's input: a file, a line in it, or a parameter."""


class InputError(SparseirError, ValueError):
    """Bad content in an input file."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class ParameterError(SparseirError, ValueError):
    """A parameter out of its allowed range, named in the message."""


class IndexFormatError(SparseirError):
    """A directory that is not a (valid, readable) sparseir index."""


def require(condition: bool, message: str) -> None:
    """Raise ParameterError(message) unless condition holds."""
    if not condition:
        raise ParameterError(message)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
