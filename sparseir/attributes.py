"""The attributes of an index's documents: stored with it, and filtered.

An index keeps the table that `sparseir.formats.attributes.read_attributes` read (one row per
document, in the index's row order) as ``attributes.parquet`` (`save_attributes`,
`load_attributes`). `predicate_mask` evaluates a filter expression (``sparseir.expressions``)
over it: one boolean per document.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .errors import IndexFormatError, ParameterError, first_line
from .expressions import compile_filter, shown
from .formats.attributes import attribute_table

ATTRIBUTES_FILE = "attributes.parquet"


def save_attributes(table, directory: str | os.PathLike) -> dict:
    """Write `table` as attributes.parquet into `directory` (an index being written); return
    its manifest entry: file, rows, columns (name and type), bytes and sha256."""
    import pyarrow.parquet as pq

    from .storage import sha256_file

    file = Path(directory) / ATTRIBUTES_FILE
    pq.write_table(table, file)
    return {"file": ATTRIBUTES_FILE, "rows": table.num_rows,
            "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "bytes": file.stat().st_size, "sha256": sha256_file(file)}


def load_attributes(directory: str | os.PathLike, entry: dict, verify: bool = False):
    """Read attributes.parquet back (memory-mapped) after checking its size, and its hash when
    verify, as `storage.load_arrays` does; rows and columns must match the entry."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .storage import check_file

    file = Path(directory) / entry["file"]
    check_file(file, entry, verify)
    try:
        table = pq.read_table(file, memory_map=True)
    except (pa.ArrowException, OSError) as e:
        raise IndexFormatError(f"{file}: unreadable attributes ({first_line(e)})") from None
    if not entry["columns"]:
        # Parquet keeps no row count without a column: the manifest's count is the truth.
        table = attribute_table({}, entry["rows"])
    columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    if table.num_rows != entry["rows"] or columns != entry["columns"]:
        raise IndexFormatError(f"{file}: rows/columns differ from the manifest")
    return table


def predicate_mask(table, expression: str) -> np.ndarray:
    """One bool per row of `table`: True where the filter `expression` (``sparseir.expressions``)
    holds; unknown (a null compared) counts as false.

    Errors (syntax, unknown field, unsupported construct, type mismatch) are one-line
    ParameterErrors.
    """
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    condition, fields = compile_filter(expression, table.schema)
    return _evaluate(table, condition, fields, expression)


def _evaluate(table, condition, referenced: Iterable[str], expression: str) -> np.ndarray:
    """Evaluate `condition` row by row: filter a row-number column along, then mark the survivors."""
    import pyarrow as pa

    row_column = "_sparseir_row_"
    while row_column in table.column_names:
        row_column += "_"
    narrowed = table.select(sorted(referenced))
    narrowed = narrowed.append_column(row_column, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    try:
        # Table.filter drops rows where the condition is null: unknown counts as not matching.
        kept = narrowed.filter(condition).column(row_column)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ParameterError(f"filter {shown(expression)} cannot be evaluated: {first_line(e)}") from None
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[kept.to_numpy()] = True
    return mask
