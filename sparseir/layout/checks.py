"""What a loaded index's arrays must satisfy before a kernel reads them, declared per kind.

Each layout module lists its invariants as ``CHECKS``, a tuple of the declarations below,
and ``check_arrays`` runs them at every open. The checks read only the small arrays (the
offsets and directories, linear in terms, blocks and documents) and the bulk's lengths,
never the bulk's contents: the kernels are memory-safe on any bulk that passes them
(a row, term or block read from the bulk is bounds-checked where it is used), and
``verify=True`` hashes the bulk for damage that only changes scores.

Sizes are expressions over ``n_docs`` (the ids' count), ``n_terms`` (the vocabulary's),
integers, ``+ - * // **`` and ``len(a)`` (an array's length, or rows), ``last(a)`` (its
last entry), ``value(a)`` (a one-entry array's value), ``columns(a)`` (a 2-d array's
width, 0 where the optional array is absent) and ``has(a)`` (1 where present).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..errors import IndexFormatError

DAMAGED = "(damaged index; rebuild it)"


@dataclass(frozen=True)
class Offsets:
    """Non-decreasing from 0, of `length` entries, the last equal to `last` (where given):
    entries i and i + 1 bound item i's slice of the array that `last` measures."""

    name: str
    last: str | None
    length: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class Ids:
    """Every entry in [low, below): a small array whose values index another, or weigh something."""

    name: str
    below: str
    low: int = 0
    optional: bool = False


@dataclass(frozen=True)
class Length:
    """`length` entries (rows, for a 2-d array), or none where or_none (what a binary collection
    stores); read from the file's header alone."""

    name: str
    length: str
    or_none: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Weights:
    """`count` entries, or none at all as ``layout.UNIT_WEIGHTS`` (a binary collection's)."""

    name: str
    count: str
    optional: bool = False


@dataclass(frozen=True)
class Scalar:
    """One entry in [low, high]; equal to the build parameter `param` where one is named."""

    name: str
    low: int
    high: int
    param: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class Derived:
    """Equal to compute(arrays): a value the small arrays determine (a buffer size, a maximum)."""

    name: str
    compute: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    what: str
    optional: bool = False


@dataclass(frozen=True)
class Rule:
    """holds(arrays) true at every entry (a boolean per entry of `name`, or one boolean)."""

    name: str
    holds: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    what: str
    optional: bool = False


@dataclass(frozen=True)
class Param:
    """The build parameter `param` (as the manifest records it) equals `equals`."""

    param: str
    equals: str


@dataclass(frozen=True)
class Guarded:
    """Bulk holding rows, terms, blocks or offsets, never read whole at open: every kernel that
    indexes by its values checks them where it reads them (`holds` says what they are)."""

    name: str
    holds: str
    optional: bool = False


def array_names(checks) -> list[str]:
    """The arrays the declarations name, in order, each once (Param names none)."""
    return list(dict.fromkeys(check.name for check in checks if not isinstance(check, Param)))


def read_whole(checks) -> set[str]:
    """The arrays whose contents the checks read at every open (the rest, only their lengths)."""
    return {check.name for check in checks if isinstance(check, (Offsets, Ids, Scalar, Derived, Rule))}


class Missing(Exception):
    """An array the declarations need that the manifest does not list."""


def check_arrays(path: str | Path, files: Mapping[str, str], arrays: Mapping[str, np.ndarray], checks,
                 n_docs: int, n_terms: int, params: Mapping) -> None:
    """Run `checks` in order (later ones rely on earlier ones: a Derived value is computed from
    offsets already checked) over a loaded index's arrays; the first that fails raises
    IndexFormatError naming its file. files: array name -> file name; params: the build's."""
    path = Path(path)
    sizes = Sizes(arrays, n_docs, n_terms, params)
    try:
        for check in checks:
            if isinstance(check, Param):
                value, expected = params.get(check.param), sizes.eval(check.equals)
                if value != expected:
                    raise IndexFormatError(f"{path / 'manifest.json'}: build parameter {check.param} is {value!r}, "
                                           f"the arrays say {expected} ({check.equals}) {DAMAGED}")
            elif check.name in arrays:
                problem = find_problem(check, arrays[check.name], sizes, arrays)
                if problem is not None:
                    raise IndexFormatError(f"{path / files[check.name]}: {problem} {DAMAGED}")
            elif not check.optional:
                raise Missing(check.name)
    except Missing as e:
        raise IndexFormatError(f"{path / 'manifest.json'}: lists no {e.args[0]} array {DAMAGED}") from None


def find_problem(check, array: np.ndarray, sizes: "Sizes", arrays) -> str | None:
    """What is wrong with `array` under `check`, or None."""
    if isinstance(check, Guarded):
        return None
    if isinstance(check, (Length, Weights)):
        if array.ndim and array.shape[0] == 0 and (array.dtype == np.bool_ if isinstance(check, Weights)
                                                    else check.or_none):
            return None
        want = sizes.eval(check.length if isinstance(check, Length) else check.count)
        if array.ndim == 0 or array.shape[0] != want:
            return f"{array.shape[0] if array.ndim else 0} entries, expected {want} ({describe(check)})"
        return None
    if isinstance(check, Scalar):
        if array.shape != (1,):
            return f"shape {array.shape}, expected one entry"
        value = array[0].item()
        if not check.low <= value <= check.high:
            return f"value {value} outside [{check.low}, {check.high}]"
        if check.param is not None and sizes.params.get(check.param, value) != value:
            return f"value {value}, the build parameter {check.param} says {sizes.params[check.param]!r}"
        return None
    if isinstance(check, Derived):
        want = np.asarray(check.compute(arrays))
        if array.shape != want.shape or not np.array_equal(array, want):
            return f"holds {summarize(array)}, {check.what} give {summarize(want)}"
        return None
    if isinstance(check, Rule):
        held = np.asarray(check.holds(arrays))
        if not held.all():
            return check.what if held.ndim == 0 else f"entry {int(np.argmin(held))}: {check.what}"
        return None
    if array.ndim != 1:
        return f"{array.ndim} dimensions, expected 1"
    if isinstance(check, Ids):
        below = sizes.eval(check.below)
        if array.size and (array.min() < check.low or array.max() >= below):
            bad = int(np.flatnonzero((array < check.low) | (array >= below))[0])
            return f"entry {bad} is {array[bad]}, outside [{check.low}, {below}) ({check.below})"
        return None
    return offsets_problem(check, array, sizes)


def offsets_problem(check: Offsets, array: np.ndarray, sizes: "Sizes") -> str | None:
    if check.length is not None:
        want = sizes.eval(check.length)
        if array.shape[0] != want:
            return f"{array.shape[0]} entries, expected {want} ({check.length})"
    if array.shape[0] == 0:
        return "empty, expected at least one entry"
    if array[0] != 0:
        return f"starts at {array[0]}, not 0"
    # Compared, not differenced: a difference of unsigned offsets wraps instead of going negative.
    falling = np.flatnonzero(array[1:] < array[:-1])
    if len(falling):
        return f"not monotone at entry {int(falling[0]) + 1}"
    want = array[-1] if check.last is None else sizes.eval(check.last)
    if array[-1] != want:
        return f"ends at {array[-1]}, expected {want} ({check.last})"
    return None


def describe(check) -> str:
    return check.length if isinstance(check, Length) else check.count


def summarize(array: np.ndarray) -> str:
    values = np.asarray(array).ravel()
    shown = ", ".join(str(v) for v in values[:6].tolist()) + (", ..." if values.size > 6 else "")
    return f"[{shown}]"


class Sizes:
    """Evaluates the size expressions of the declarations over one index's arrays."""

    FUNCTIONS = ("len", "last", "value", "columns", "has")

    def __init__(self, arrays: Mapping[str, np.ndarray], n_docs: int, n_terms: int, params: Mapping):
        self.arrays = arrays
        self.names = {"n_docs": int(n_docs), "n_terms": int(n_terms)}
        self.params = params

    def eval(self, expression: str) -> int:
        return self._eval(ast.parse(expression, mode="eval").body)

    def _eval(self, node) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return self.names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self._eval(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left), self._eval(node.right)
            operations = {ast.Add: lambda: left + right, ast.Sub: lambda: left - right,
                          ast.Mult: lambda: left * right, ast.FloorDiv: lambda: left // right,
                          ast.Pow: lambda: left ** right}
            return operations[type(node.op)]()
        if isinstance(node, ast.Call) and node.func.id in self.FUNCTIONS and len(node.args) == 1:
            return self._function(node.func.id, node.args[0].id)
        raise ValueError(f"unsupported size expression {ast.unparse(node)!r}")

    def _function(self, function: str, name: str) -> int:
        if function == "has":
            return int(name in self.arrays)
        if function == "columns" and name not in self.arrays:
            return 0
        if name not in self.arrays:
            raise Missing(name)
        array = self.arrays[name]
        if function == "len":
            return int(array.shape[0])
        if function == "columns":
            return int(array.shape[1]) if array.ndim == 2 else -1
        if array.ndim != 1 or array.shape[0] == 0:
            return -1  # matches no size: the check that reads it reports the array
        return int(array[-1] if function == "last" else array[0])
