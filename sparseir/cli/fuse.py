"""`sparseir fuse`: runs fused into one (RRF, CombSUM, CombMNZ, weighted sum), weights tuned on qrels."""

from __future__ import annotations

import click

from ..errors import ParameterError
from ..fileio import check_output
from ..formats import RUN_FORMATS
from ..fusion import DEFAULT_DEPTH, METHODS, NORMS
from .common import echo


def parse_weights(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ParameterError(f"--weights must be numbers separated by commas (one per run), got {text!r}") from None


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The fused run to write.")
@click.option("--method", type=click.Choice(METHODS), default="rrf", show_default=True)
@click.option("--norm", type=click.Choice(NORMS), default="minmax", show_default=True,
              help="Each run's scores normalized per query before fusing.")
@click.option("--weights", help="wsum: one weight per run, comma-separated (default: all 1).")
@click.option("--rrf-k", type=int, default=60, show_default=True, help="rrf: 1 / (k + rank).")
@click.option("--depth", type=int, default=DEFAULT_DEPTH, show_default=True, help="Results kept per query.")
@click.option("--optimize", "qrels", metavar="QRELS",
              help="wsum: choose the weights that maximize --measure on these qrels (a file or irds:<dataset id>).")
@click.option("--measure", default="nDCG@10", show_default=True, help="What --optimize maximizes (ir-measures).")
@click.option("--step", type=float, default=0.1, show_default=True, help="--optimize's grid of weights summing to 1.")
@click.option("--run-format", type=click.Choice(RUN_FORMATS), default="trec", show_default=True)
@click.option("--tag", default="sparseir-fuse", show_default=True, help="The TREC run's tag column.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def fuse(runs, output, method, norm, weights, rrf_k, depth, qrels, measure, step, run_format, tag, overwrite):
    """Fuse RUNS (TREC or MS MARCO run files, two or more) into one run at OUTPUT."""
    from ..formats.trec import write_scored
    from ..fusion import fuse as fuse_runs
    from ..fusion import optimize_weights

    check_output(output, inputs=list(runs) + ([] if qrels is None else [qrels]), overwrite=overwrite, kind="file")
    weights = parse_weights(weights)
    if qrels is not None:
        if method != "wsum" or weights is not None:
            raise ParameterError("--optimize tunes the weights of --method wsum: give no --weights with it")
        weights, value, tried = optimize_weights(list(runs), qrels, norm=norm, measure=measure, step=step,
                                                 depth=depth)
        echo(f"optimized over {len(tried)} weightings: weights {','.join(f'{w:g}' for w in weights)} "
             f"give {measure} {value:.4f}")
    fused = fuse_runs(list(runs), method=method, norm=norm, weights=weights, rrf_k=rrf_k, depth=depth)
    written = write_scored(output, fused, format=run_format, tag=tag, overwrite=overwrite)
    echo(f"fused {len(runs)} runs ({method}, norm {norm}) into {written:,} lines -> {output}")
