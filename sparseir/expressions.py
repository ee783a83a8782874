"""Filter expressions over document attributes: parsed and checked here, never evaluated by Python.

An expression is SQL-flavoured, parsed by Python's `ast` and translated into a
`pyarrow.compute` expression (`compile_filter`), which ``sparseir.attributes.predicate_mask``
evaluates over an index's attributes. Examples, one per line::

    lang = 'en' and year >= 2020
    2019 <= year < 2022
    lang in ('en', 'fr') or not (score > 0.5)
    venue is not null
    reviewed = true
    reviewed
    `pub-year` > 2000

Grammar: comparisons ``= == != <> < <= > >=`` between a field and a literal (or two fields
of compatible types); ``in (...)`` / ``not in (...)`` with a list of literals; ``is null`` /
``is not null``; a boolean field alone; ``and``, ``or``, ``not`` (in Python's order of
precedence: ``not`` binds tighter than ``and``, which binds tighter than ``or``) and
parentheses. Chained comparisons (``2019 <= year < 2022``) mean each pair holds. Backticks
quote a field name that is not an identifier or is a keyword (`pub-year`, `in`). Literals: 'strings' or "strings"
(SQL's doubled quote ``'it''s'`` works), numbers (``-1.5e3``), ``true``/``false``. Keywords are
case-insensitive. Function calls, arithmetic and the like are refused.

Missing values follow SQL: a comparison with null is unknown, ``not`` unknown is unknown,
``and``/``or`` use three-valued logic, and a document is kept only where the whole
expression is true. So a document without ``year`` matches neither ``year >= 2020`` nor
``not (year >= 2020)``; write ``year is null or ...`` to keep it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import ParameterError, first_line
from .formats.attributes import INT64_MAX, INT64_MIN, kind_of_type, value_kind

# Filter expressions are bounded, so that one is refused with its own message rather than
# taking Python's parser or the translator's recursion past their limits: at most
# MAX_FILTER_LENGTH characters, and at most MAX_FILTER_DEPTH levels of brackets inside
# brackets, or of sub-expressions inside each other (each `not`, sign, and/or, comparison,
# and the field or value at the bottom counts one). Messages show at most FILTER_SHOWN
# characters of the expression.
MAX_FILTER_LENGTH = 10_000
MAX_FILTER_DEPTH = 100
FILTER_SHOWN = 80


class CompiledFilter(NamedTuple):
    condition: Any  # pyarrow.compute Expression: true, false or null (unknown) per row
    fields: set[str]  # the fields it reads


# Kinds that compare with each other; a null column (no value anywhere) compares with anything.
_COMPARABLE = {"string": "string", "int": "number", "float": "number", "bool": "bool"}

def _comparable(kind: str, other: str) -> bool:
    """Whether values of two kinds compare; kinds outside the attribute ones are left to pyarrow."""
    if "null" in (kind, other) or kind not in _COMPARABLE or other not in _COMPARABLE:
        return True
    return _COMPARABLE[kind] == _COMPARABLE[other]


_KEYWORDS = {"and": "and", "or": "or", "not": "not", "in": "in", "is": "is",
             "null": "None", "true": "True", "false": "False"}

_FIELD_PLACEHOLDER = "_sparseir_field_{}_"

_UNSUPPORTED_NAMES = {ast.Call: "function call", ast.BinOp: "arithmetic", ast.Attribute: "attribute access",
                      ast.Subscript: "indexing", ast.IfExp: "conditional expression", ast.Lambda: "lambda",
                      ast.NamedExpr: "assignment", ast.Tuple: "list (lists go after 'in')",
                      ast.List: "list (lists go after 'in')", ast.Set: "list (lists go after 'in')"}


@dataclass
class _Normalised:
    """Python source for the expression, with where each of its characters came from."""

    source: str
    origin: list[int]  # origin[i]: index in the user's expression of source[i]
    quoted_fields: dict[str, str]  # placeholder identifier -> backtick-quoted field name


def _normalise(expression: str) -> _Normalised:
    """Rewrite the SQL-isms into Python: = to ==, <> to !=, keywords to lower case, null/true/false
    to None/True/False, 'it''s' to 'it\\'s', `any name` to an identifier; newlines to spaces.

    What Python would read past without a trace is refused here, since the filter would then
    mean less than was typed: a # comment, a backslash line continuation, a ; before another
    statement, and two strings in a row (which Python joins into one: a missing comma). So are
    brackets nested deeper than MAX_FILTER_DEPTH, before the parser meets its own limit.
    """
    out: list[str] = []
    origin: list[int] = []
    quoted_fields: dict[str, str] = {}
    brackets = 0
    string_ended = -1  # where the last string literal ended, while only spaces follow it

    def emit(text: str, *positions: int) -> None:
        for offset, char in enumerate(text):
            out.append(char)
            origin.append(positions[min(offset, len(positions) - 1)])

    i, n = 0, len(expression)
    while i < n:
        char = expression[i]
        if char in "'\"":
            if string_ended >= 0:
                raise _syntax_error(expression, i, "two strings in a row, which would be read as one "
                                                   "(a missing comma?)")
            i = _copy_string(expression, i, emit)
            string_ended = i
            continue
        if not char.isspace():
            string_ended = -1
        if char in _DROPPED:
            raise _syntax_error(expression, i, _DROPPED[char])
        if char in "([{":
            brackets += 1
            if brackets > MAX_FILTER_DEPTH:
                raise _too_deep(expression)
        elif char in ")]}":
            brackets -= 1
        if char == "`":
            end = expression.find("`", i + 1)
            if end < 0:
                raise _syntax_error(expression, i, "unterminated `quoted field name`")
            placeholder = _FIELD_PLACEHOLDER.format(len(quoted_fields))
            quoted_fields[placeholder] = expression[i + 1:end]
            # First character at the opening backtick, the rest at the closing one: a node's span maps back whole.
            emit(placeholder, i, *([end] * (len(placeholder) - 1)))
            i = end + 1
        elif char.isalpha() or char == "_":
            end = i + 1
            while end < n and (expression[end].isalnum() or expression[end] == "_"):
                end += 1
            word = expression[i:end]
            replacement = _KEYWORDS.get(word.lower(), word)
            emit(replacement, *range(i, i + len(replacement)))
            i = end
        elif char == "=":
            preceded = i > 0 and expression[i - 1] in "<>!=:"
            followed = i + 1 < n and expression[i + 1] == "="
            emit("=" if preceded or followed else "==", i)
            i += 1
        elif char == "<" and i + 1 < n and expression[i + 1] == ">":
            emit("!=", i, i + 1)
            i += 2
        elif char.isspace():
            emit(" ", i)
            i += 1
        else:
            emit(char, i)
            i += 1
    return _Normalised("".join(out), origin, quoted_fields)


# Characters outside strings that Python would not read as part of one expression.
_DROPPED = {"#": "'#' starts a comment, which would drop the rest of the filter (put it inside a string "
                 "to match it)",
            "\\": "a backslash outside a string continues a line, which a filter has no use for",
            ";": "';' ends a statement; a filter is a single expression"}


def _copy_string(expression: str, start: int, emit) -> int:
    """Copy the string literal opening at `start`; return the index after it."""
    quote = expression[start]
    emit(quote, start)
    i = start + 1
    while i < len(expression):
        char = expression[i]
        if char == "\\" and i + 1 < len(expression) and expression[i + 1] in "\r\n":
            raise _syntax_error(expression, i, "a backslash before a line break inside a string drops the "
                                               "line break")
        if char == "\\" and i + 1 < len(expression):
            emit(expression[i:i + 2], i, i + 1)
            i += 2
        elif char == quote and i + 1 < len(expression) and expression[i + 1] == quote:
            emit("\\" + quote, i, i + 1)  # SQL's doubled quote
            i += 2
        elif char == quote:
            emit(quote, i)
            return i + 1
        else:
            emit(char, i)
            i += 1
    raise _syntax_error(expression, start, "unterminated string")


def _syntax_error(expression: str, index: int, message: str) -> ParameterError:
    where = f"column {index + 1}" if index < len(expression) else "the end"
    return ParameterError(f"filter syntax error at {where} of {shown(expression)}: {message}")


def shown(text: str) -> str:
    """`text` quoted for a message, cut to FILTER_SHOWN characters so the message stays one short line."""
    return repr(text) if len(text) <= FILTER_SHOWN else repr(text[:FILTER_SHOWN]) + "..."


def _too_deep(expression: str) -> ParameterError:
    return ParameterError(f"filter {shown(expression)} is nested more than {MAX_FILTER_DEPTH} levels deep "
                          f"(the limit is {MAX_FILTER_DEPTH})")


def _depth(tree: ast.AST) -> int:
    """Levels of nested sub-expressions of `tree`, counted without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return deepest


@dataclass
class _Translator:
    """Turns the Python AST of a filter into a pyarrow.compute Expression, checking types on the way."""

    expression: str
    normalised: _Normalised
    field_kinds: dict[str, str | None]
    referenced: set[str] = field(default_factory=set)

    def span(self, node: ast.AST) -> str:
        origin = self.normalised.origin
        start, end = origin[node.col_offset], origin[node.end_col_offset - 1] + 1
        return f"{shown(self.expression[start:end])} at column {start + 1}"

    def refuse(self, node: ast.AST, message: str) -> ParameterError:
        return ParameterError(f"filter {shown(self.expression)}: {message}: {self.span(node)}")

    def condition(self, node: ast.AST):
        """An Expression of booleans (true, false or null per row)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(node, ast.BoolOp):
            parts = [self.condition(value) for value in node.values]
            combined = parts[0]
            for part in parts[1:]:
                combined = combined & part if isinstance(node.op, ast.And) else combined | part
            return combined
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self.condition(node.operand)
        if isinstance(node, ast.Compare):
            left, parts = node.left, []
            for op, right in zip(node.ops, node.comparators):
                parts.append(self.comparison(left, op, right, node))
                left = right
            combined = parts[0]
            for part in parts[1:]:
                combined = combined & part
            return combined
        if isinstance(node, ast.Name):
            name = self.field_name(node)
            kind = self.field_kinds[name]
            if kind == "null":
                return pc.scalar(pa.scalar(None, pa.bool_()))
            if kind != "bool":
                raise self.refuse(node, f"field {name!r} holds {kind} values, not booleans: compare it to something")
            return pc.field(name)
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return pc.scalar(node.value)
        if isinstance(node, ast.Constant):
            raise self.refuse(node, "a literal alone is not a condition")
        raise self.refuse(node, f"unsupported {_UNSUPPORTED_NAMES.get(type(node), 'construct')}")

    def field_name(self, node: ast.Name) -> str:
        name = self.normalised.quoted_fields.get(node.id, node.id)
        if name not in self.field_kinds:
            known = ", ".join(self.field_kinds) if self.field_kinds else "none (the index has no attributes)"
            raise ParameterError(f"filter {shown(self.expression)}: unknown field {shown(name)}; "
                                 f"known fields: {known}")
        self.referenced.add(name)
        return name

    def operand(self, node: ast.AST) -> tuple[Any, str, bool]:
        """(Expression, kind, is a field) of one side of a comparison."""
        import pyarrow.compute as pc

        if isinstance(node, ast.Name):
            name = self.field_name(node)
            return pc.field(name), self.field_kinds[name], True
        value = self.literal(node)
        kind = value_kind(value)
        if kind == "int" and not INT64_MIN <= value <= INT64_MAX:
            value, kind = float(value), "float"
        return pc.scalar(value), kind, False

    def literal(self, node: ast.AST) -> Any:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.literal(node.operand)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.refuse(node, "a sign applies to numbers only")
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Constant):
            if node.value is None:
                raise self.refuse(node, "null compares with nothing: use 'is null' or 'is not null'")
            if not isinstance(node.value, (str, int, float, bool)):
                raise self.refuse(node, f"unsupported literal ({type(node.value).__name__})")
            return node.value
        if isinstance(node, (ast.Compare, ast.BoolOp)) or \
                (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            raise self.refuse(node, "a comparison inside a comparison: add parentheses or 'and'")
        raise self.refuse(node, f"unsupported {_UNSUPPORTED_NAMES.get(type(node), 'construct')}")

    def comparison(self, left_node: ast.AST, op: ast.cmpop, right_node: ast.AST, whole: ast.Compare):
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(op, (ast.Is, ast.IsNot)):
            if not isinstance(left_node, ast.Name):
                raise self.refuse(whole, "'is null' applies to a field")
            if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                raise self.refuse(whole, "'is' takes null only ('is null', 'is not null')")
            name = self.field_name(left_node)
            return pc.field(name).is_null() if isinstance(op, ast.Is) else pc.field(name).is_valid()
        if isinstance(op, (ast.In, ast.NotIn)):
            return self.membership(left_node, op, right_node, whole)
        left, left_kind, left_is_field = self.operand(left_node)
        right, right_kind, right_is_field = self.operand(right_node)
        if not (left_is_field or right_is_field):
            raise self.refuse(whole, "a comparison needs a field on one side")
        if not _comparable(left_kind, right_kind):
            raise self.refuse(whole, f"type mismatch: compares {left_kind} with {right_kind}")
        if "null" in (left_kind, right_kind):
            return pc.scalar(pa.scalar(None, pa.bool_()))  # a column with no value: unknown everywhere
        compare = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
                   ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}
        return compare[type(op)](left, right)

    def membership(self, left_node: ast.AST, op: ast.cmpop, right_node: ast.AST, whole: ast.Compare):
        import pyarrow as pa
        import pyarrow.compute as pc

        if not isinstance(left_node, ast.Name):
            raise self.refuse(whole, "'in' needs a field on its left")
        name = self.field_name(left_node)
        kind = self.field_kinds[name]
        # A parenthesised single literal, ('en'), is a one-element list as in SQL.
        items = right_node.elts if isinstance(right_node, (ast.Tuple, ast.List, ast.Set)) else [right_node]
        values = [self.literal(item) for item in items]
        value_kinds = {value_kind(value) for value in values}
        mismatched = sorted(value_kind for value_kind in value_kinds if not _comparable(kind, value_kind))
        if mismatched:
            raise self.refuse(whole, f"type mismatch: {kind} field {name!r} against {'/'.join(mismatched)} values")
        unknown = pc.scalar(pa.scalar(None, pa.bool_()))
        if kind == "null":
            return unknown
        # is_in wants the column and the value set of one type.
        if kind not in _COMPARABLE:  # a type attributes do not have: pyarrow decides
            found = pc.field(name).isin(pa.array(values))
            return found if isinstance(op, ast.In) else ~found
        if kind == "string":
            value_type = pa.string()
        elif kind == "bool":
            value_type = pa.bool_()
        elif kind == "int" and value_kinds <= {"int"} and all(INT64_MIN <= v <= INT64_MAX for v in values):
            value_type = pa.int64()
        else:
            value_type, values = pa.float64(), [float(value) for value in values]
        column = pc.field(name).cast(value_type)
        found = column.isin(pa.array(values, type=value_type))
        # is_in says false for a null row; SQL says unknown, which keeps 'not in' false there too.
        found = pc.if_else(pc.field(name).is_valid(), found, unknown)
        return found if isinstance(op, ast.In) else ~found


def compile_filter(expression: str, schema) -> CompiledFilter:
    """The filter `expression` as a pyarrow.compute Expression over tables of `schema` (a
    pyarrow Schema), checked against its fields and their types (see the module doc).

    Errors (syntax, unknown field, unsupported construct, type mismatch, limits) are one-line
    ParameterErrors.
    """
    if not isinstance(expression, str):
        raise ParameterError(f"a filter expression must be a string, got {type(expression).__name__}")
    if not expression.strip():
        raise ParameterError("empty filter expression")
    if len(expression) > MAX_FILTER_LENGTH:
        raise ParameterError(f"filter {shown(expression)} is {len(expression):,} characters long, more than "
                             f"the limit of {MAX_FILTER_LENGTH:,}")
    normalised = _normalise(expression)
    # ast's offsets will refer to the stripped source: drop the origins of what strip() removes.
    leading = len(normalised.source) - len(normalised.source.lstrip())
    normalised = _Normalised(normalised.source.strip(), normalised.origin[leading:], normalised.quoted_fields)
    try:
        tree = ast.parse(normalised.source, mode="eval")
    except SyntaxError as e:
        # Python puts an error at the end of the input at offset 0 (or past the last character).
        at = (e.offset or 0) - 1
        index = normalised.origin[at] if 0 <= at < len(normalised.origin) else len(expression)
        raise _syntax_error(expression, index, e.msg) from None
    except (RecursionError, MemoryError):  # the parser's own limits, reached before MAX_FILTER_DEPTH
        raise _too_deep(expression) from None
    except ValueError as e:  # a null character
        raise ParameterError(f"filter {shown(expression)} cannot be parsed: {first_line(e)}") from None
    if _depth(tree.body) > MAX_FILTER_DEPTH:
        raise _too_deep(expression)
    field_kinds = {f.name: kind_of_type(f.type) or str(f.type) for f in schema}
    translator = _Translator(expression, normalised, field_kinds)
    try:
        condition = translator.condition(tree.body)
    except RecursionError:
        raise _too_deep(expression) from None
    return CompiledFilter(condition, translator.referenced)
