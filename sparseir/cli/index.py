"""`sparseir index`: build an index of any kind from vectors (or raw text with an encoder)."""

from __future__ import annotations

import time

import click

from ..errors import ParameterError
from ..fileio import check_output
from ..formats import VECTOR_FORMATS, VOCAB_CHOICES, BadLines
from ..index import KINDS, build_index, build_index_from
from ..sharded import build_sharded
from .common import echo, given, kind_options, model_input, read_input_vectors


@click.command()
@click.argument("vectors", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Index directory to write.")
@click.option("--kind", type=click.Choice(KINDS), default="exact", show_default=True)
@click.option("--format", "input_format", type=click.Choice(VECTOR_FORMATS), help="Input format (default: by extension).")
@click.option("--vocab", type=click.Choice(VOCAB_CHOICES), default="auto", show_default=True,
              help="auto: BERT WordPiece if every term is in it, else open; bert: unknown terms are errors; "
                   "open: any terms.")
@click.option("--model", help="Encoder for raw text input: 'default' (embedded) or a local model directory.")
@click.option("--skip-bad-lines", is_flag=True, help="Skip malformed input lines (counted) instead of failing.")
@click.option("--overwrite", is_flag=True, help="Replace an existing index directory.")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split the collection into this many shards, one index each (searchable with --ray).")
@click.option("--partition", type=click.Choice(["contiguous", "hash"]), default="contiguous", show_default=True,
              help="How documents are assigned to shards.")
@click.option("--segmented", is_flag=True, help="A segmented index that `sparseir add/delete/compact` change.")
@click.option("--small-segment", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="(--segmented) segments of fewer documents are exact.")
@click.option("--max-segments", type=click.IntRange(min=1), default=8, show_default=True,
              help="(--segmented) above this many segments, the smallest adjacent pair is merged.")
@click.option("--attributes", help="Extra fields of the vectors file kept for `search --filter`: comma-separated "
                                    "names, or '*' for every one.")
@click.option("--memory-budget", metavar="SIZE",
              help="Build out of core: spool the vectors to disk beside the output and touch at most SIZE (e.g. 1G, "
                   "512M) of them at once, so that memory stays near the index size plus SIZE. Phases show progress.")
@kind_options("build")
def index(vectors, output, kind, input_format, vocab, model, skip_bad_lines, overwrite, shards, partition, segmented,
          small_segment, max_segments, attributes, memory_budget, **params):
    """Build an index over VECTORS (.jsonl[.gz], .bin, .parquet, or collection.tsv / irds:<dataset id> with
    --model)."""
    # Before the long work, not after: never into what it reads, never over what sparseir did not write.
    check_output(output, inputs=[vectors, model_input(model)], overwrite=overwrite, kind="directory")
    if attributes is not None and skip_bad_lines:
        raise ParameterError("--attributes needs every line of the input: drop --skip-bad-lines")
    if memory_budget is not None:
        if segmented or shards > 1 or model is not None:
            raise ParameterError("--memory-budget builds one index from vectors: it takes neither --segmented, "
                                 "--shards nor --model")
        started = time.perf_counter()
        built = build_index_from(vectors, output, kind=kind, memory_budget=memory_budget,
                                 format=input_format, vocab=vocab, bad_lines=BadLines(skip=skip_bad_lines),
                                 attributes=_attribute_table(vectors, attributes, input_format),
                                 overwrite=overwrite, progress=True, **given(params))
        echo(f"built {kind} index over {built.n_docs:,} documents out of core in "
             f"{time.perf_counter() - started:.1f}s -> {output}")
        return
    docs = read_input_vectors(vectors, vocab, BadLines(skip=skip_bad_lines), model, query=False,
                              input_format=input_format)
    table = _attribute_table(vectors, attributes, input_format)
    started = time.perf_counter()
    if segmented:
        if shards > 1 or table is not None or overwrite:
            raise ParameterError("--segmented takes neither --shards, --attributes nor --overwrite")
        from ..segments import create_segmented

        create_segmented(output, kind=kind, small_segment=small_segment, max_segments=max_segments,
                         **given(params)).add(docs)
    elif shards > 1:
        build_sharded(docs, output, shards=shards, kind=kind, partition=partition, overwrite=overwrite,
                      attributes=table, **given(params))
    else:
        build_index(docs, kind=kind, attributes=table, **given(params)).save(output, overwrite=overwrite)
    echo(f"built {kind} index over {len(docs):,} documents ({shards} shard(s)) in "
         f"{time.perf_counter() - started:.1f}s -> {output}")


def _attribute_table(vectors, attributes: str | None, input_format):
    """The --attributes fields of the vectors file, as a table (None: not asked for)."""
    if attributes is None:
        return None
    from ..formats.attributes import read_attributes

    fields = None if attributes.strip() == "*" else [name.strip() for name in attributes.split(",") if name.strip()]
    return read_attributes(vectors, fields, format=input_format)
