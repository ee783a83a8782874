"""`sparseir export-ciff`: an index's stored vectors as a CIFF file, under a declared quantization."""

from __future__ import annotations

import time

import click

from ..errors import ParameterError
from ..fileio import check_output
from .common import echo


@click.command("export-ciff")
@click.argument("index_dir", type=click.Path(file_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--scale", type=float, help="impact = rint(weight x SCALE) (e.g. 100, as Anserini quantizes SPLADE).")
@click.option("--bits", type=int, help="impacts in [1, 2^BITS - 1]: the largest weight of the collection gets the top one.")
@click.option("--description", help="What the header's description starts with (the quantization rule follows).")
@click.option("--memory-budget", metavar="SIZE",
              help="Invert out of core beside OUTPUT, touching at most SIZE (e.g. 1G) at once.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT file.")
def export_ciff(index_dir, output, scale, bits, description, memory_budget, overwrite):
    """Write the vectors INDEX_DIR stores as a CIFF file OUTPUT (.ciff, or .ciff.gz compressed) that PISA,
    Anserini, JASS or BMP read, weights quantized by --scale or --bits."""
    from ..formats.ciff import Quantization
    from ..index import Index
    from ..loading import load_index

    Quantization(scale, bits)  # a bad or missing rule is refused before any work
    check_output(output, inputs=[index_dir], overwrite=overwrite, kind="file")
    index = load_index(index_dir)
    if not isinstance(index, Index):
        raise ParameterError(f"{index_dir}: export-ciff reads a single index, not a sharded or segmented one")
    started = time.perf_counter()
    described = index.to_ciff(output, scale=scale, bits=bits, description=description, memory_budget=memory_budget,
                              overwrite=overwrite, progress=memory_budget is not None)
    echo(f"quantization: {described.rsplit('; ', 1)[-1]}")
    echo(f"wrote {index.n_docs:,} documents of the {index.kind} index in {time.perf_counter() - started:.1f}s -> {output}")
