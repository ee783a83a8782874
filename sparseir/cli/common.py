"""Pieces shared by the commands: options generated from each kind's parameters, reading inputs."""

from __future__ import annotations

import time
import types
import typing
from pathlib import Path

import click

import numpy as np

from ..errors import InputError, ParameterError
from ..formats import BadLines, is_irds_source, is_text_file, read_documents, read_queries, read_vectors
from ..kinds import parameter_fields


def echo(message: str) -> None:
    """Progress and summaries go to stderr so stdout stays clean for pipes."""
    click.echo(message, err=True)


def _click_type(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if typing.get_origin(hint) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(hint)])
    return {int: int, float: float, str: str, bool: bool}.get(hint, str)


def kind_options(which: str):
    """Decorator adding one --option per "build" or "search" parameter of any kind; unset options stay None."""
    def decorate(command):
        for name, (field, hint) in sorted(parameter_fields(which).items(), reverse=True):
            ctype = _click_type(hint)
            flag = "--" + name.replace("_", "-")
            help_text = field.metadata.get("help", "")
            if ctype is bool:
                option = click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None, help=help_text)
            else:
                option = click.option(flag, name, type=ctype, default=None, help=help_text)
            command = option(command)
        return command
    return decorate


def given(params: dict, **more) -> dict:
    """Only the options the user set, so each kind's own defaults apply to the rest."""
    return {name: value for name, value in {**params, **more}.items() if value is not None}


def model_input(model: str | None) -> str | None:
    """The path a --model option reads, for `check_output`: none for the embedded model."""
    from ..encoder import DEFAULT_MODEL

    return None if model is None or model == DEFAULT_MODEL else model


def load_text_encoder(path: str, model: str | None, kind: str = "splade", **options):
    """The encoder for raw-text input; without the encode extra, a one-line error that says so."""
    from ..encoder import load_encoder
    from ..extras import missing

    absent = missing("encode")
    if absent:
        raise ParameterError(f"{path}: raw text needs the encoder ({', '.join(absent)} not installed: "
                             "pip install 'sparseir[encode]'), or pass vectors (.jsonl, .bin, .parquet)")
    return load_encoder(model or "default", kind=kind, **options)


def idf_query_encoder(index, idf_path: str | None, model: str | None):
    """Inference-free queries weighted by an IDF table: the file --idf, else the idf.json that an
    OpenSearch-style --model directory ships, else the index's document frequencies."""
    from ..encoder import MODEL_IDF_FILE, model_directory
    from ..encoder.idf import IdfQueryEncoder

    tokenizer = model or "default"
    if idf_path is None and model is not None and (model_directory(model) / MODEL_IDF_FILE).is_file():
        idf_path = model_directory(model) / MODEL_IDF_FILE
    if idf_path is not None:
        return IdfQueryEncoder.load(idf_path, tokenizer)
    return IdfQueryEncoder.from_document_frequency(index.doc_frequency(), index.n_docs, tokenizer)


def read_input_vectors(path: str, vocab, bad_lines: BadLines, model: str | None, query: bool,
                       input_format: str | None = None, encoder=None):
    """Vectors from a vector file, or from raw text (collection.tsv / queries.tsv, or an ``irds:``
    id) via an encoder (`encoder`, else the SPLADE model `model`)."""
    started = time.perf_counter()
    if is_irds_source(path) and input_format is not None:
        raise ParameterError(f"--format applies to vector files, but {path} is text")
    if input_format is None and is_text_file(path):
        records = list(read_queries(path, bad_lines) if query else read_documents(path, bad_lines))
        encoder = encoder or load_text_encoder(path, model)
        texts, ids = [r.text for r in records], [r.id for r in records]
        encode = encoder.encode_queries if query else encoder.encode_documents
        vectors = encode(texts, ids=ids, progress=True)
    else:
        if model is not None or encoder is not None:
            raise ParameterError(f"--model / --query-encoder apply to raw text input, but {path} holds vectors")
        vectors = read_vectors(path, format=input_format, vocab=vocab, bad_lines=bad_lines)
    if query:
        vectors = _drop_empty_queries(vectors, path, bad_lines)
    if bad_lines.count:
        echo(f"skipped {bad_lines.count} bad line(s); first: {bad_lines.first}")
    name = path if is_irds_source(path) else Path(path).name
    echo(f"read {len(vectors):,} vectors ({vectors.nnz:,} non-zeros) from {name} "
         f"in {time.perf_counter() - started:.1f}s")
    return vectors



def _drop_empty_queries(queries, path: str, bad_lines: BadLines):
    """A query with no terms can match nothing: an error, or skipped and counted."""
    empty = np.flatnonzero(np.diff(queries.offsets) == 0)
    for row in empty:
        bad_lines.handle(InputError(f"query {str(queries.ids[row])!r} (record {row + 1}) has no terms", path))
    return queries.take(np.flatnonzero(np.diff(queries.offsets) > 0)) if len(empty) else queries
