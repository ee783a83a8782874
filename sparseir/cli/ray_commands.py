"""Ray pieces of the command line: options to search on a Ray cluster, and `sparseir encode-ray`.

`ray_options` adds --ray / --ray-address / --cpus-per-shard / --replicas / --allow-partial to a search
command, and `open_searchable` opens the index those options ask for: a single or sharded
index in this process, or a sharded index served by Ray actors.
"""

from __future__ import annotations

import click

from ..encoder import EncoderOptions
from ..errors import ParameterError
from .encode import option_flags, with_options


def ray_options(command):
    """Decorator: the options that send a search to Ray."""
    options = [
        click.option("--ray", "use_ray", is_flag=True, help="Search a sharded index with one Ray actor per shard."),
        click.option("--ray-address", help="Ray cluster to join ('auto' or host:port; implies --ray). "
                                           "Without it --ray starts a local one."),
        click.option("--cpus-per-shard", type=float, default=1.0, show_default=True,
                     help="CPUs each shard's actor reserves (--ray)."),
        click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Copies of each shard, each on a node of its own; a search fails over between them (--ray)."),
        click.option("--allow-partial", is_flag=True,
                     help="Return results from the shards that answered when one stays down (--ray)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_searchable(index_dir: str, use_ray: bool, ray_address: str | None, cpus_per_shard: float,
                    verify: bool = False, memory: str = "mapped", replicas: int = 1):
    """The index to search: in this process, or on Ray when --ray or --ray-address is given."""
    from ..loading import load_index
    from ..sharded import is_sharded

    if not (use_ray or ray_address):
        if replicas != 1:
            raise ParameterError("--replicas applies to searches on Ray (--ray)")
        return load_index(index_dir, verify=verify, memory=memory)
    if not is_sharded(index_dir):
        raise ParameterError(f"--ray needs a sharded index (sparseir index --shards N); {index_dir} is not one")
    from ..distributed import DistributedIndex

    return DistributedIndex(index_dir, address=ray_address, cpus_per_shard=cpus_per_shard, replicas=replicas)


@click.command("encode-ray")
@click.argument("collection", type=click.Path(dir_okay=False, exists=True))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--model", default="default", show_default=True, help="'default' (embedded) or a local model directory.")
@click.option("--rows-per-part", type=int, default=100_000, show_default=True, help="Passages per Parquet part.")
@click.option("--workers", type=int, default=1, show_default=True, help="Encoder actors (one model each).")
@click.option("--cpus-per-worker", type=float, default=1.0, show_default=True, help="CPUs each encoder reserves.")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="GPUs each encoder reserves; 1 places one encoder per GPU.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Passages per encoder forward pass.")
@click.option("--ray-address", help="Ray cluster to join ('auto' or host:port); default: a local one.")
@with_options(option_flags(EncoderOptions))
def encode_ray(collection, out_dir, model, rows_per_part, workers, cpus_per_worker, gpus_per_worker, batch_size,
               ray_address, **options):
    """Encode COLLECTION (id<TAB>text, .gz allowed) on Ray into OUT_DIR/part-NNNNN.parquet.

    Parts follow the collection's order; rerunning skips the parts already written.
    """
    from ..distributed import encode_with_ray
    from ..fileio import check_apart
    from .common import model_input

    check_apart(out_dir, [collection, model_input(model)])  # parts are added to out_dir, never into an input
    parts = encode_with_ray(collection, out_dir, model=model, rows_per_part=rows_per_part, workers=workers,
                            batch_size=batch_size, cpus_per_worker=cpus_per_worker,
                            gpus_per_worker=gpus_per_worker, address=ray_address, **options)
    click.echo(f"{len(parts):,} parts in {out_dir}", err=True)
