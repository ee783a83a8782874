"""`sparseir demo`: the whole pipeline on the embedded collection, offline, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import click

from ..bench import format_table, load_config, run_bench, write_results
from ..datasets import demo_config, demo_dataset, load_vectors
from ..errors import InputError
from ..fileio import output_directory
from ..formats import read_qrels, write_vectors
from .common import echo

# Written first into the output directory: a later run knows the directory as a demo's and
# replaces its files; any other non-empty directory is the user's, and the demo writes nothing there.
DEMO_MARKER = ".sparseir-demo"


@click.command("demo")
@click.option("-o", "--output", "outdir", default="sparseir-demo", show_default=True, type=click.Path(file_okay=False),
              help="directory for results.json, recall_latency.png and the encoded vectors: a new or empty one, "
                   "or an earlier demo's (its files are replaced)")
def demo(outdir):
    """Encode the embedded collection, index it (exact, Seismic, sindi), search, evaluate, plot."""
    check_demo_directory(Path(outdir))
    dataset = demo_dataset()
    config = load_config(demo_config())
    with output_directory(outdir, marker=DEMO_MARKER):
        echo("encoding the demo passages and queries with the embedded model")
        docs, queries = load_vectors(dataset, progress=True)
        vectors_dir = Path(outdir) / "vectors"
        vectors_dir.mkdir(exist_ok=True)
        # Kept so that later runs (sparseir index / search / bench) can skip the encoding.
        write_vectors(docs, vectors_dir / "collection.jsonl.gz", overwrite=True)
        write_vectors(queries, vectors_dir / "queries.jsonl.gz", overwrite=True)
        results = run_bench(config, docs, queries, list(read_qrels(dataset.qrels)), outdir, echo)
        results["dataset"] = {"name": "sparseir demo (debian-pkgs slice, see sparseir/data/demo/SOURCE.md)",
                              "vectors": str(vectors_dir)}
        json_path, plot_path = write_results(results, outdir, overwrite=True)
    if any(skipped["method"] == "seismic" for skipped in results["skipped"]):
        echo("seismic is not available in this installation: the table shows exact search only")
    click.echo(format_table(results))
    click.echo(f"\nwrote {json_path} and {plot_path}")


def check_demo_directory(outdir: Path) -> None:
    """Refuse, before the work, an output directory that holds files an earlier demo did not write."""
    if not outdir.is_dir() or (outdir / DEMO_MARKER).is_file() or not any(outdir.iterdir()):
        return
    raise InputError(f"is a directory that an earlier `sparseir demo` did not write (no {DEMO_MARKER}); "
                     "sparseir will not write into it: choose another -o", outdir)
