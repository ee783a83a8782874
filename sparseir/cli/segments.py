"""`sparseir add`, `sparseir delete`, `sparseir compact`: change a segmented index (``index --segmented``);
`sparseir segment`: make a built index one."""

from __future__ import annotations

import click

from ..errors import ParameterError
from ..formats import VECTOR_FORMATS, BadLines
from .common import echo, read_input_vectors


def open_segmented(index_dir: str):
    from ..segments import is_segmented, load_segmented

    if not is_segmented(index_dir):
        raise ParameterError(f"{index_dir}: not a segmented index (build one with sparseir index --segmented, or make "
                             f"a built one so with sparseir segment {index_dir} --vectors VECTORS)")
    return load_segmented(index_dir)


def report(index, action: str) -> None:
    echo(f"{action} -> generation {index.generation}: {index.n_live:,} live documents in "
         f"{len(index.segments)} segment(s)")


@click.command("add")
@click.argument("index_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("vectors", type=click.Path())
@click.option("--format", "input_format", type=click.Choice(VECTOR_FORMATS), help="Input format (default: by extension).")
@click.option("--model", help="Encoder for raw text input: 'default' (embedded) or a local model directory.")
@click.option("--upsert", is_flag=True, help="Replace documents whose id is already in the index.")
def add(index_dir, vectors, input_format, model, upsert):
    """Add the documents of VECTORS to the segmented index INDEX_DIR (a new segment)."""
    index = open_segmented(index_dir)
    vocab = index.vocab if index.has_vocab else "auto"  # an open vocabulary grows with the new terms
    docs = read_input_vectors(vectors, vocab, BadLines(), model, query=False, input_format=input_format)
    index.add(docs, upsert=upsert)
    report(index, f"added {len(docs):,} documents")


@click.command("delete")
@click.argument("index_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("ids", nargs=-1)
@click.option("--ids-file", type=click.Path(dir_okay=False, exists=True), help="A file of ids, one per line.")
def delete(index_dir, ids, ids_file):
    """Delete the documents with these external IDS from the segmented index INDEX_DIR."""
    from ..fileio import iter_lines

    ids = list(ids) + ([line.strip() for _, line in iter_lines(ids_file) if line.strip()] if ids_file else [])
    if not ids:
        raise ParameterError("no ids to delete: give them as arguments or with --ids-file")
    index = open_segmented(index_dir)
    before = index.n_live
    index.delete(ids)
    report(index, f"deleted {before - index.n_live:,} documents")  # an id given twice is deleted once


@click.command("compact")
@click.argument("index_dir", type=click.Path(file_okay=False, exists=True))
def compact(index_dir):
    """Merge every segment of INDEX_DIR into one of its kind, dropping deleted documents."""
    index = open_segmented(index_dir)
    index.compact()
    report(index, "compacted")


@click.command("segment")
@click.argument("index_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--vectors", required=True, type=click.Path(exists=True),
              help="The vectors the index was built from (a segment keeps its documents' exact weights).")
@click.option("--format", "input_format", type=click.Choice(VECTOR_FORMATS), help="Input format (default: by extension).")
@click.option("--small-segment", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Later segments of fewer documents are exact.")
@click.option("--max-segments", type=click.IntRange(min=1), default=8, show_default=True,
              help="Above this many segments, the smallest adjacent pair is merged.")
def segment(index_dir, vectors, input_format, small_segment, max_segments):
    """Make the built index INDEX_DIR a segmented one, whose first segment it becomes, so that
    add, delete and compact work on it."""
    from ..loading import load_index
    from ..segments import make_segmented

    docs = read_input_vectors(vectors, load_index(index_dir).vocab, BadLines(), None, query=False,
                              input_format=input_format)
    report(make_segmented(index_dir, docs, small_segment=small_segment, max_segments=max_segments), "segmented")
