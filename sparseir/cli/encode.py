"""`sparseir encode`: text (id<TAB>text, .tsv or .tsv.gz, or irds:<dataset id>) -> sparse vectors
(.jsonl[.gz] or .parquet)."""

from __future__ import annotations

import dataclasses
import sys
import types
import typing

import click

from ..encoder import DEFAULT_MODEL, KINDS, EncoderOptions


def option_flags(cls: type) -> list:
    """One click option per field of a params dataclass, typed and documented from the field."""
    hints = typing.get_type_hints(cls)
    flags = []
    for spec in dataclasses.fields(cls):
        kind = hints[spec.name]
        if isinstance(kind, types.UnionType):  # X | None
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        flags.append(click.option(f"--{spec.name.replace('_', '-')}", spec.name, type=kind, default=spec.default,
                                  show_default=spec.default is not None, help=spec.metadata.get("help")))
    return flags


def with_options(flags: list):
    def decorate(command):
        for flag in reversed(flags):
            command = flag(command)
        return command
    return decorate


@click.command("encode")
@click.argument("collection", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="vectors file: .jsonl, .jsonl.gz or .parquet (written atomically)")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="'default' (the embedded splade-tiny) or a local Hugging Face model directory")
@click.option("--kind", type=click.Choice(KINDS), default="splade", show_default=True, help="encoder kind")
@click.option("--query-model", default=None, help="a different model directory for queries")
@click.option("--query", is_flag=True, help="the texts are queries (query model and query_max_length)")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="texts per forward pass")
@click.option("--progress/--no-progress", default=None, help="progress bar on stderr (default: when a terminal)")
@click.option("--overwrite", is_flag=True, help="replace an existing output file")
@with_options(option_flags(EncoderOptions))
def encode(collection, output, model, kind, query_model, query, batch_size, progress, overwrite, **options):
    """Encode COLLECTION (id<TAB>text lines, or irds:<dataset id>: its documents, or queries with --query)
    into sparse vectors."""
    from ..encoder import load_encoder
    from ..fileio import check_output
    from .common import model_input

    # Before the model loads and every text is encoded, not after.
    check_output(output, inputs=[collection, model_input(model), query_model], overwrite=overwrite, kind="file")
    encoder = load_encoder(model, kind=kind, query_model=query_model, **options)
    if progress is None:
        progress = sys.stderr.isatty()
    count = encoder.encode_file(collection, output, query=query, batch_size=batch_size, progress=progress,
                                overwrite=overwrite)
    click.echo(f"encoded {count} {'queries' if query else 'documents'} -> {output}", err=True)
