"""`sparseir search`: top-k for a file of queries, written as a TREC or MS MARCO run."""

from __future__ import annotations

import time

import click
import numpy as np

from ..errors import ParameterError
from ..fileio import check_apart, check_output
from ..formats import RUN_FORMATS, VECTOR_FORMATS, BadLines, write_run
from ..progress import Progress
from .common import echo, given, idf_query_encoder, kind_options, load_text_encoder, model_input, read_input_vectors
from .ray_commands import open_searchable, ray_options

BATCH = 256  # queries per progress step; large enough that prange keeps every core busy


@click.command()
@click.argument("index_dir", type=click.Path(file_okay=False))
@click.argument("queries", type=click.Path(dir_okay=False))
@click.option("-k", type=int, default=10, show_default=True, help="Results per query.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Run file to write (.gz compresses).")
@click.option("--run-format", "run_format", type=click.Choice(RUN_FORMATS), default="trec", show_default=True)
@click.option("--format", "input_format", type=click.Choice(VECTOR_FORMATS), help="Query file format (default: by extension).")
@click.option("--tag", default="sparseir", show_default=True, help="Run tag (TREC format).")
@click.option("--threads", type=int, help="Search threads (default: all cores).")
@click.option("--model", help="Encoder for raw-text queries: 'default' (embedded) or a local model directory.")
@click.option("--query-encoder", type=click.Choice(["splade", "unicoil", "idf"]), default="splade", show_default=True,
              help="How raw-text queries become vectors; idf needs no model at query time.")
@click.option("--idf", "idf_path", type=click.Path(dir_okay=False),
              help="term<TAB>idf or .json table for --query-encoder idf (default: the --model directory's "
                   "idf.json, else the index's document frequencies).")
@click.option("--verify", is_flag=True, help="Check every index file's sha256 before searching.")
@click.option("--memory", type=click.Choice(["mapped", "all", "summaries", "disk"]), default="mapped",
              show_default=True,
              help="What is read into RAM: nothing (memory-mapped), everything, the summaries and directories "
                   "(the bulk stays on disk, read at random), or only the directories (disk: Seismic indexes built "
                   "with --disk-blocks read each query's summaries and blocks from disk, SINDI indexes its "
                   "terms' lists and its candidates' rows).")
@click.option("--skip-bad-lines", is_flag=True, help="Skip malformed query lines (counted) instead of failing.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run file.")
@click.option("--filter", "filter_expression", metavar="EXPR",
              help="Only documents whose attributes (index --attributes) satisfy EXPR, e.g. "
                   "\"lang = 'en' and year >= 2020\".")
@ray_options
@kind_options("search")
def search(index_dir, queries, k, output, run_format, input_format, tag, threads, model, query_encoder, idf_path,
           verify, memory, skip_bad_lines, overwrite, filter_expression, use_ray, ray_address, cpus_per_shard, replicas,
           allow_partial, **knobs):
    """Search INDEX_DIR with QUERIES (vectors, or queries.tsv / irds:<dataset id> with --model) and write a run."""
    check_output(output, inputs=[queries, idf_path, model_input(model)], overwrite=overwrite, kind="file")
    if allow_partial and not (use_ray or ray_address):
        raise ParameterError("--allow-partial applies to searches on Ray (--ray)")
    if memory != "mapped" and (use_ray or ray_address):
        raise ParameterError("--memory applies to an index searched in this process, not on Ray")
    if filter_expression is not None and (use_ray or ray_address):
        raise ParameterError("--filter is not served on Ray yet; search the sharded index without --ray")
    index = open_searchable(index_dir, use_ray, ray_address, cpus_per_shard, verify, memory, replicas)
    # A Ray-served index holds actors to release; a local one holds nothing.
    with index:
        # The index searched is an input too, once it is known to be one: a run written into it
        # would replace or change it.
        check_apart(output, [index_dir])
        # Evaluated once, not per batch of queries.
        allowed = None if filter_expression is None else index.attribute_mask(filter_expression)
        encoder = None
        if query_encoder == "idf":
            encoder = idf_query_encoder(index, idf_path, model)
        elif query_encoder != "splade":
            encoder = load_text_encoder(queries, model, kind=query_encoder)
        _search(index, queries, k, output, run_format, input_format, tag, threads, model, encoder,
                skip_bad_lines, overwrite, allowed, given(knobs, allow_partial=allow_partial or None))


def _search(index, queries, k, output, run_format, input_format, tag, threads, model, encoder,
            skip_bad_lines, overwrite, allowed, knobs):
    if k < 1 or k > index.n_docs:
        raise ParameterError(f"-k must be between 1 and the collection size ({index.n_docs:,}), got {k}")
    query_vectors = read_input_vectors(queries, index.vocab, BadLines(skip=skip_bad_lines), model, query=True,
                                       input_format=input_format, encoder=encoder)
    index.search_params(**{name: value for name, value in knobs.items() if name != "allow_partial"})
    compile_seconds = index.warmup()
    scores = np.empty((len(query_vectors), k), dtype=np.float32)
    rows = np.empty((len(query_vectors), k), dtype=np.int64)
    started = time.perf_counter()
    with Progress("searching", len(query_vectors), unit=" queries") as bar:
        for start in range(0, len(query_vectors), BATCH):
            stop = min(start + BATCH, len(query_vectors))
            scores[start:stop], rows[start:stop] = index.search(query_vectors[start:stop], k=k, threads=threads,
                                                                filter=allowed, **knobs)
            bar.advance_to(stop)
    elapsed = time.perf_counter() - started
    lines = write_run(output, query_vectors.ids, index.doc_ids, rows, scores, format=run_format, tag=tag,
                      overwrite=overwrite)
    echo(f"searched {len(query_vectors):,} queries in {elapsed:.2f}s ({len(query_vectors) / elapsed:,.0f} QPS; "
         f"warm-up {compile_seconds:.1f}s), wrote {lines:,} lines -> {output}")
