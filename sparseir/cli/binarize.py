"""`sparseir binarize`: keep each vector's K heaviest terms as weight 1 (UHD-style binary codes)."""

from __future__ import annotations

import click

from ..fileio import check_output
from ..formats import VECTOR_FORMATS, VOCAB_CHOICES, BadLines, read_vectors, write_vectors
from .common import echo


@click.command()
@click.argument("vectors", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Binary vectors to write (.jsonl[.gz], .bin, .parquet).")
@click.option("--top-k", type=click.IntRange(min=1), required=True, help="Terms kept per vector: its heaviest.")
@click.option("--format", "input_format", type=click.Choice(VECTOR_FORMATS), help="Input format (default: by extension).")
@click.option("--vocab", type=click.Choice(VOCAB_CHOICES), default="auto", show_default=True,
              help="Vocabulary of the input, as for `sparseir index`.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def binarize(vectors, output, top_k, input_format, vocab, overwrite):
    """Binarize VECTORS: each vector's TOP_K heaviest terms (ties: the lower term id) with weight 1.
    Every index kind stores such a collection without weights."""
    check_output(output, inputs=[vectors], overwrite=overwrite, kind="file")  # before the work, not after
    source = read_vectors(vectors, format=input_format, vocab=vocab, bad_lines=BadLines())
    binary = source.binarized(top_k)
    write_vectors(binary, output, overwrite=overwrite)
    echo(f"binarized {len(binary):,} vectors: {source.nnz:,} -> {binary.nnz:,} non-zeros -> {output}")
