"""Per-document attributes: the fields of a vector file beside the vectors themselves.

In JSONL, the keys of each line other than ``id``, ``vector`` and ``contents`` (``{"id": "d1",
"vector": {...}, "lang": "en", "year": 2021}``); in Parquet, the columns other than ``id``,
``terms``, ``weights`` (and ``contents``). `read_attributes` reads them into a pyarrow Table
with one row per vector, in the order of `sparseir.read_vectors`; an index keeps that table
(``sparseir.attributes``) for filter expressions over it (``sparseir.expressions``).
Attribute values are strings, integers, floats or booleans (`value_kind`, `kind_of_type`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, ParameterError
from ..fileio import check_readable, iter_lines
from . import detect_format, vector_parts

# Fields that hold the vector or its text, never attributes (unless asked for by name).
JSONL_RESERVED = ("id", "vector", "contents")
PARQUET_RESERVED = ("id", "terms", "weights", "contents")

# JSONL values are collected in Python lists and turned into Arrow arrays every CHUNK_ROWS
# lines, so that a large file costs Arrow memory, not Python objects, per value.
CHUNK_ROWS = 65536

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def read_attributes(path: str | os.PathLike, fields: Sequence[str] | None = None, *,
                    format: str | None = None):
    """The attribute columns of a JSONL(.gz) or Parquet vector file, one row per vector.

    Rows are in the order (and number) of `sparseir.read_vectors(path)` read strictly.
    `fields=None` takes every field but the id, vector and text ones; a listed field that
    no line has is an error. A field missing on some lines is null there. Values must be
    strings, integers, floats or booleans (integers and floats mix into floats); lists,
    objects and other mixes of types are InputErrors naming the file, line and field.
    `format` ("jsonl" or "parquet") overrides the extension.
    """
    fields = _check_field_list(fields)
    parts = vector_parts(path)
    if len(parts) > 1:  # a directory or glob of one collection's parts, in read_vectors' order
        import pyarrow as pa

        tables = [read_attributes(part, fields, format=format) for part in parts]
        return pa.concat_tables(tables, promote_options="default")
    format = format or detect_format(path)
    if format == "jsonl":
        return _read_jsonl_attributes(path, fields)
    if format == "parquet":
        return _read_parquet_attributes(path, fields)
    raise ParameterError(f"{os.fspath(path)}: attributes are read from JSONL or Parquet vector files "
                         f"(format {format or 'unknown'}); pass format='jsonl' or 'parquet'")


def _check_field_list(fields: Sequence[str] | None) -> list[str] | None:
    if fields is None:
        return None
    if isinstance(fields, (str, bytes)):
        raise ParameterError(f"fields must be a list of field names, not the string {fields!r}")
    fields = list(fields)
    for name in fields:
        if not isinstance(name, str) or not name:
            raise ParameterError(f"field names must be non-empty strings, got {name!r}")
    duplicates = sorted({name for name in fields if fields.count(name) > 1})
    if duplicates:
        raise ParameterError(f"fields listed twice: {duplicates}")
    return fields


def value_kind(value: Any) -> str | None:
    """The attribute kind of one JSON value (None for null); bool before int, as bool is an int."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, dict)):
        return "list" if isinstance(value, list) else "object"
    return type(value).__name__


def _arrow_type(kind: str | None):
    import pyarrow as pa

    return {None: pa.null(), "bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(),
            "string": pa.string()}[kind]


@dataclass
class _JsonColumn:
    """One attribute being read from JSONL: finished Arrow chunks plus the values of the current chunk."""

    leading_nulls: int  # rows read before the field first appeared, flushed in earlier chunks
    pending: list = field(default_factory=list)
    chunks: list = field(default_factory=list)
    kind: str | None = None

    def flush(self) -> None:
        import pyarrow as pa

        if self.pending:
            self.chunks.append(pa.array(self.pending, type=_arrow_type(self.kind)))
            self.pending = []

    def finish(self):
        import pyarrow as pa

        self.flush()
        arrow_type = _arrow_type(self.kind)
        # Earlier chunks may be typed null (no value yet) or int64 (before a float came).
        pieces = [pa.nulls(self.leading_nulls, arrow_type)] + [chunk.cast(arrow_type) for chunk in self.chunks]
        return pa.concat_arrays(pieces)


def _read_jsonl_attributes(path: str | os.PathLike, fields: list[str] | None):
    columns: dict[str, _JsonColumn] = {}
    if fields is not None:
        columns = {name: _JsonColumn(leading_nulls=0) for name in fields}
    seen_fields: set[str] = set()
    rows = flushed_rows = 0
    for line_number, line in iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} at column {e.colno}", path, line_number) from None
        if not isinstance(record, dict):
            raise InputError("expected a JSON object", path, line_number)
        if fields is None:
            for name in record:
                if name not in columns and name not in JSONL_RESERVED:
                    # Rows of this chunk before the field appeared are padded here, earlier chunks at the end.
                    columns[name] = _JsonColumn(leading_nulls=flushed_rows, pending=[None] * (rows - flushed_rows))
        for name, column in columns.items():
            value = record.get(name)
            kind = value_kind(value)
            if kind is not None:
                seen_fields.add(name)
                _check_value(name, value, kind, column, path, line_number)
            column.pending.append(value)
        rows += 1
        if rows - flushed_rows == CHUNK_ROWS:
            for column in columns.values():
                column.flush()
            flushed_rows = rows
    if rows == 0:
        raise InputError("no JSON vector line found (empty file?)", path)
    never_seen = [name for name in columns if name not in seen_fields]
    if fields is not None and never_seen:
        raise InputError(f"field(s) {never_seen} not found on any line", path)
    return attribute_table({name: column.finish() for name, column in columns.items()}, rows)


def _check_value(name: str, value: Any, kind: str, column: _JsonColumn, path, line_number: int) -> None:
    if kind not in ("bool", "int", "float", "string"):
        raise InputError(f"field {name!r} holds a {kind}; attributes must be strings, numbers or booleans",
                         path, line_number)
    if kind == "int" and not INT64_MIN <= value <= INT64_MAX:
        raise InputError(f"field {name!r}: integer {value} does not fit in 64 bits", path, line_number)
    if column.kind is None or column.kind == kind:
        column.kind = kind
    elif {column.kind, kind} == {"int", "float"}:
        column.kind = "float"  # JSON writes 1.0 as 1 as often as not: both are numbers
    else:
        raise InputError(f"field {name!r} mixes types: {kind} here, {column.kind} on earlier lines",
                         path, line_number)


def _read_parquet_attributes(path: str | os.PathLike, fields: list[str] | None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = check_readable(path)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"not a Parquet file: {e}", path) from None
    schema = parquet.schema_arrow
    if fields is None:
        fields = [name for name in schema.names if name not in PARQUET_RESERVED]
    missing = [name for name in fields if name not in schema.names]
    if missing:
        raise InputError(f"no column(s) {missing}; the columns are {schema.names}", path)
    for name in fields:
        _check_parquet_type(name, schema.field(name).type, path)
    rows = parquet.metadata.num_rows
    if rows == 0:
        raise InputError("no vectors found (empty file?)", path)
    if not fields:
        return attribute_table({}, rows)
    try:
        table = parquet.read(columns=fields)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"cannot read columns {fields}: {e}", path) from None
    # Dictionary-encoded strings (pandas categoricals) are decoded so every table looks alike.
    columns = {name: (column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column)
               for name, column in zip(table.column_names, table.columns)}
    return attribute_table(columns, rows)


def _check_parquet_type(name: str, arrow_type, path) -> None:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_nested(arrow_type):
        raise InputError(f"column {name!r} holds nested values ({arrow_type}); "
                         "attributes must be strings, numbers or booleans", path)
    if kind_of_type(arrow_type) is None:
        raise InputError(f"column {name!r} has type {arrow_type}; attributes must be strings, numbers or booleans",
                         path)


def attribute_table(columns: dict, rows: int):
    """A table of these columns; with no column at all it still has `rows` rows, to stay aligned."""
    import pyarrow as pa

    if columns:
        return pa.table(columns)
    return pa.table({"_": pa.nulls(rows)}).select([])


def kind_of_type(arrow_type) -> str | None:
    """string / int / float / bool / null for the attribute types, else None."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or \
            getattr(pa.types, "is_string_view", lambda t: False)(arrow_type):
        return "string"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_null(arrow_type):
        return "null"
    return None
