"""`sparseir tune`: find and store the fastest query setting for a target recall."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..formats import BadLines, read_vectors
from ..loading import load_index
from .common import echo, read_input_vectors


@click.command()
@click.argument("index_dir", type=click.Path(file_okay=False))
@click.argument("queries", type=click.Path(dir_okay=False))
@click.option("--target-recall", type=float, default=0.95, show_default=True, help="Recall@k against exact search to reach.")
@click.option("-k", type=int, default=10, show_default=True)
@click.option("--docs", type=click.Path(), help="The collection's vectors, for exact ground truth.")
@click.option("--exact", "exact_dir", type=click.Path(file_okay=False), help="An exact index of the same collection.")
@click.option("--sample", type=int, default=1000, show_default=True, help="Queries sampled (part held out).")
@click.option("--heldout-fraction", type=float, default=0.3, show_default=True)
@click.option("--budget-seconds", type=float, default=120.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--store/--no-store", default=True, show_default=True, help="Make the setting the index's default.")
@click.option("--model", help="Encoder for raw-text queries.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def tune(index_dir, queries, target_recall, k, docs, exact_dir, sample, heldout_fraction, budget_seconds, seed, store,
         model, as_json):
    """Tune INDEX_DIR's query knobs on QUERIES for --target-recall, on one thread."""
    from ..errors import ParameterError

    if (docs is None) == (exact_dir is None):
        raise ParameterError("give exactly one of --docs VECTORS or --exact INDEX_DIR for the exact ground truth")
    index = load_index(index_dir)
    if store:  # the setting goes into the manifest: a file sparseir wrote, and not one of the inputs
        from ..fileio import check_output
        from ..storage import MANIFEST

        check_output(Path(index_dir) / MANIFEST, inputs=[queries, docs], overwrite=True, kind="file")
    query_vectors = read_input_vectors(queries, index.vocab, BadLines(), model, query=True)
    reference = load_index(exact_dir) if exact_dir else None
    doc_vectors = read_vectors(docs, vocab=index.vocab) if docs else None
    result = index.tune(query_vectors, target_recall=target_recall, k=k, reference=reference, docs=doc_vectors,
                        store=store, sample=sample, heldout_fraction=heldout_fraction, budget_seconds=budget_seconds,
                        seed=seed)
    if as_json:
        click.echo(json.dumps(result.manifest_entry(), indent=2))
        return
    status = "meets" if result.met_target else "MISSES (best reachable shown)"
    click.echo(f"setting        {json.dumps(result.setting)}  {status} recall@{k} >= {target_recall}\n"
               f"recall@{k}      tuned {result.recall_tuned:.4f} on {result.n_queries_tuned} queries; held out "
               f"{result.recall_heldout:.4f} ± {result.recall_heldout_stderr:.4f} on {result.n_queries_heldout}\n"
               f"latency        {result.latency_ms:.3f} ms/query, one thread\n"
               f"search cost    {result.evaluations} settings measured of a {result.grid_size}-setting grid "
               f"in {result.seconds:.1f}s")
    if store:
        echo(f"stored as the default query setting of {index_dir}")
