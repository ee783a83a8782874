"""`sparseir demo`: the whole pipeline on the embedded collection, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import click

from ..bench import format_table, load_config, run_bench, write_results
from ..datasets import demo_config, demo_dataset, load_vectors
from ..formats import read_qrels


@click.command("demo")
@click.option("-o", "--output", "outdir", default="sparseir-demo", show_default=True, type=click.Path(file_okay=False),
              help="directory for results.json and recall_latency.png (replaced on each run)")
def demo(outdir):
    """Encode the embedded collection, index it with Seismic, search, evaluate, plot."""
    def log(message: str) -> None:
        click.echo(message, err=True)

    dataset = demo_dataset()
    config = load_config(demo_config())
    log(f"encoding the demo collection ({dataset.collection.name}, {dataset.queries.name}) with the default model")
    docs, queries = load_vectors(dataset, progress=True)
    Path(outdir).mkdir(parents=True, exist_ok=True)
    results = run_bench(config, docs, queries, list(read_qrels(dataset.qrels)), outdir, log)
    results["dataset"] = dataset.describe()
    json_path, plot_path = write_results(results, outdir, overwrite=True)
    if any(skipped["method"] == "seismic" for skipped in results["skipped"]):
        log("seismic is not available in this installation: the table shows exact search only")
    click.echo(format_table(results))
    click.echo(f"\nwrote {json_path} and {plot_path}")
