"""`sparseir eval`: ir-measures figures of a run, and recall against an exact run."""

from __future__ import annotations

import json

import click

from ..evaluate import DEFAULT_MEASURES, evaluate, load_run, recall_vs_exact


def split_measures(values: tuple[str, ...]) -> list[str]:
    """-m RR@10 -m nDCG@10, or -m RR@10,nDCG@10."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()] or list(DEFAULT_MEASURES)


@click.command("eval")
@click.argument("run", type=click.Path(dir_okay=False))
@click.argument("qrels")
@click.option("-m", "--measure", "measures", multiple=True, metavar="MEASURE",
              help=f"ir-measures measure, repeatable or comma-separated (default: {', '.join(DEFAULT_MEASURES)})")
@click.option("--exact", "exact_run", type=click.Path(dir_okay=False),
              help="an exact run: also report recall@k of RUN against it")
@click.option("-k", "k", type=int, default=10, show_default=True, help="cutoff of the recall against --exact")
@click.option("--per-query", is_flag=True, help="also print every query's figures")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def eval_command(run, qrels, measures, exact_run, k, per_query, as_json):
    """Evaluate RUN (TREC or MS MARCO format) against QRELS (a file, or an ir_datasets id: irds:<dataset id>)."""
    run_records = load_run(run)
    evaluation = evaluate(run_records, qrels, split_measures(measures))
    aggregate = dict(evaluation.aggregate)
    if exact_run is not None:
        aggregate[f"recall@{k} vs exact"] = recall_vs_exact(run_records, exact_run, k)
    if as_json:
        payload = {"aggregate": aggregate}
        if per_query:
            payload["per_query"] = evaluation.per_query
        click.echo(json.dumps(payload, indent=2))
        return
    if per_query:
        names = list(evaluation.aggregate)
        rows = [[query_id, *(f"{values[name]:.4f}" if name in values else "-" for name in names)]
                for query_id, values in evaluation.per_query.items()]
        click.echo(format_rows([["query", *names], *rows]))
        click.echo()
    click.echo(format_rows([["measure", "value"], *([name, f"{value:.4f}"] for name, value in aggregate.items())]))


def format_rows(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])
