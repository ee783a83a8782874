"""Where encoded vectors go: a .jsonl(.gz) or .parquet file, written atomically as chunks arrive."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import ParameterError
from ..vectors import Vocabulary


@contextmanager
def vector_writer(path: str | os.PathLike, vocab: Vocabulary, overwrite: bool) -> Iterator[Callable]:
    """Yield write(vectors, texts) appending to a .jsonl(.gz) or .parquet file written atomically."""
    from ..formats import detect_format
    from ..formats.jsonl import jsonl_writer
    from ..formats.parquet import parquet_writer

    format = detect_format(path)
    if format == "jsonl":
        with jsonl_writer(path, vocab, overwrite) as write:
            yield write
    elif format == "parquet":
        with parquet_writer(path, vocab, overwrite) as write:
            yield lambda vectors, texts: write(vectors)  # Parquet vectors carry no text
    else:
        raise ParameterError(f"{os.fspath(path)}: encoded vectors are written as .jsonl, .jsonl.gz or .parquet")
