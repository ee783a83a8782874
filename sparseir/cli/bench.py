"""`sparseir bench`: a TOML sweep over index kinds and peers on one dataset."""

from __future__ import annotations

from pathlib import Path

import click

from ..bench import PLOT_FILE, RESULTS_FILE, bench_dataset, format_table, load_config, write_results
from ..datasets import open_dataset
from ..fileio import check_apart, check_output, output_directory
from .common import echo


@click.command("bench")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--dataset", "dataset_dir", type=click.Path(file_okay=False),
              help="dataset directory: collection.tsv, queries.tsv, qrels.txt [, vectors/*.jsonl.gz]")
@click.option("--docs", type=click.Path(dir_okay=False),
              help="documents (.tsv text, irds:<dataset id>, or vectors); overrides --dataset")
@click.option("--queries", type=click.Path(dir_okay=False),
              help="queries (.tsv text, irds:<dataset id>, or vectors); overrides --dataset")
@click.option("--qrels", type=click.Path(dir_okay=False), help="TREC qrels or irds:<dataset id>; overrides --dataset")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
              help="directory for results.json and recall_latency.png")
@click.option("--max-queries", type=int, help="use only the first N queries (overrides the config)")
@click.option("--overwrite", is_flag=True, help="replace earlier results in the output directory")
def bench(config, dataset_dir, docs, queries, qrels, outdir, max_queries, overwrite):
    """Measure quality, recall vs exact, latency, throughput, build time, size and memory per setting."""
    from dataclasses import replace

    settings = load_config(config)
    if max_queries is not None:
        settings = replace(settings, max_queries=max_queries)
    dataset = open_dataset(dataset_dir, docs=docs, queries=queries, qrels=qrels)
    # The results go into the directory beside whatever else it holds: it may be none of the
    # files read, nor hold or lie inside one, and each of the two replaces only an earlier result file.
    check_apart(outdir, [config, dataset.collection, dataset.queries, dataset.qrels, dataset.doc_vectors,
                         dataset.query_vectors])
    if Path(outdir).is_dir():
        for name in (RESULTS_FILE, PLOT_FILE):
            check_output(Path(outdir) / name, overwrite=overwrite, kind="file")
    with output_directory(outdir):
        results = bench_dataset(settings, dataset, outdir, log=echo)
        results["config"] = str(config)
        json_path, plot_path = write_results(results, outdir, overwrite=overwrite)
    click.echo(format_table(results))
    click.echo(f"\nwrote {json_path} and {plot_path}")
