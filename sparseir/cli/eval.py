"""`sparseir eval`: ir-measures figures of a run, recall against an exact run, and several runs
compared with significance tests."""

from __future__ import annotations

import json

import click

from ..compare import CompareConfig
from ..errors import ParameterError
from ..evaluate import DEFAULT_MEASURES, evaluate, load_run, recall_vs_exact


def split_measures(values: tuple[str, ...]) -> list[str]:
    """-m RR@10 -m nDCG@10, or -m RR@10,nDCG@10."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()] or list(DEFAULT_MEASURES)


@click.command("eval")
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.argument("qrels")
@click.option("-m", "--measure", "measures", multiple=True, metavar="MEASURE",
              help=f"ir-measures measure, repeatable or comma-separated (default: {', '.join(DEFAULT_MEASURES)})")
@click.option("--exact", "exact_run", type=click.Path(dir_okay=False),
              help="an exact run: also report recall@k of RUN against it")
@click.option("-k", "k", type=int, default=10, show_default=True, help="cutoff of the recall against --exact")
@click.option("--per-query", is_flag=True, help="also print every query's figures")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--compare", is_flag=True, help="several runs: test each against the first, per measure")
@click.option("--test", type=click.Choice(["t", "randomization"]), default="t", show_default=True,
              help="--compare: paired t-test, or Fisher's paired randomization test")
@click.option("--correction", type=click.Choice(["holm", "bonferroni", "none"]), default="holm", show_default=True,
              help="--compare: for the number of runs compared with the first")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="--compare: significance level")
@click.option("--permutations", type=int, default=10_000, show_default=True, help="--test randomization: draws")
@click.option("--seed", type=int, default=0, show_default=True, help="--test randomization: generator seed")
def eval_command(runs, qrels, measures, exact_run, k, per_query, as_json, compare, test, correction, alpha,
                 permutations, seed):
    """Evaluate RUNS (TREC or MS MARCO format) against QRELS (a file, or an ir_datasets id: irds:<dataset id>);
    with --compare, each run against the first with a paired significance test."""
    if compare or len(runs) > 1:
        if not compare:
            raise ParameterError(f"{len(runs)} runs given: pass --compare to test them against the first")
        if exact_run is not None or per_query:
            raise ParameterError("--compare takes neither --exact nor --per-query")
        return _compare(runs, qrels, measures, as_json, CompareConfig(test, correction, alpha, permutations, seed))
    run = runs[0]
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


def _compare(runs, qrels, measures, as_json: bool, config) -> None:
    from ..compare import compare

    comparison = compare(runs, qrels, split_measures(measures), config=config)
    if as_json:
        click.echo(json.dumps(comparison.as_dict(), indent=2))
        return
    header = ["system"]
    for measure in comparison.measures:
        header += [measure, "p"]
    rows = [header]
    for name in comparison.names:
        row = [name]
        for measure in comparison.measures:
            mark = "*" if comparison.significant(name, measure) else ""
            row += [f"{comparison.means[name][measure]:.4f}{mark}",
                    f"{comparison.p_values[name][measure]:.4f}" if name in comparison.p_values else "-"]
        rows.append(row)
    click.echo(format_rows(rows))
    click.echo(f"\np: {'paired t-test' if config.test == 't' else 'paired randomization test'} against "
               f"{comparison.names[0]} over {comparison.n_queries} judged queries, "
               f"{config.correction}-corrected; * p <= {config.alpha}")


def format_rows(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])
