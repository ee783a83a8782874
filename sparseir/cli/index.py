"""`sparseir index`: build an index of any kind from vectors (or raw text with an encoder)."""

from __future__ import annotations

import click

from ..fileio import refuse_existing
from ..formats import VECTOR_FORMATS, BadLines
from ..index import KINDS, build_index
from .common import echo, given, kind_options, read_input_vectors


@click.command()
@click.argument("vectors", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Index directory to write.")
@click.option("--kind", type=click.Choice(KINDS), default="exact", show_default=True)
@click.option("--format", "input_format", type=click.Choice(VECTOR_FORMATS), help="Input format (default: by extension).")
@click.option("--vocab", type=click.Choice(["bert", "open"]), default="bert", show_default=True,
              help="bert: fixed BERT WordPiece vocabulary (unknown terms are errors); open: any terms.")
@click.option("--model", help="Encoder for raw text input: 'default' (embedded) or a local model directory.")
@click.option("--skip-bad-lines", is_flag=True, help="Skip malformed input lines (counted) instead of failing.")
@click.option("--overwrite", is_flag=True, help="Replace an existing index directory.")
@kind_options("indexer")
def index(vectors, output, kind, input_format, vocab, model, skip_bad_lines, overwrite, **params):
    """Build an index over VECTORS (.jsonl[.gz], .bin, .parquet, or collection.tsv with --model)."""
    refuse_existing(output, overwrite)  # fail before the long work, not after
    docs = read_input_vectors(vectors, vocab, BadLines(skip=skip_bad_lines), model, query=False,
                              input_format=input_format)
    built = build_index(docs, kind=kind, **given(params))
    built.save(output, overwrite=overwrite)
    echo(f"built {kind} index over {built.n_docs:,} documents in {built.info['build_seconds']:.1f}s -> {output}")
