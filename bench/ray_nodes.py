"""QPS of a sharded index on Ray with one node against two: does search scale with nodes?

    python bench/ray_nodes.py [--docs COLLECTION] [--queries QUERIES] [--shards 4] [--cores-per-node 1]
                              [--batch 256] [--repeats 3] [--nodes 1,2]

A shard-heavy load: an exact index (every query scores every posting of its terms in every
shard) cut into `--shards` shards, searched in batches of `--batch` queries, so that the
shards' work outweighs Ray's round trip. For each node count N, a Ray cluster of N worker
nodes is started on this machine (`ray.cluster_utils.Cluster`), each node with
`--cores-per-node` CPUs and its processes pinned to cores of its own, so that N nodes get N
times the cores of one as separate machines would; the head node holds no shard (0 CPUs)
and runs the driver. Every shard is placed once (replicas=1), spread over the nodes, with
cpus_per_shard = the node's cores / its shards. QPS is the whole query set over the best of
`--repeats` runs, checked equal to the single index's results. Writes
bench/results/ray_nodes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench.timing import best_seconds
from sparseir.sharded import build_sharded

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def start_cluster(n_nodes: int, cores_per_node: int, cores: list[int]):
    """A head node (no CPUs: driver only) and n_nodes worker nodes, each pinned to its own cores.

    A node's raylet inherits the CPU affinity of the process that starts it, and its workers
    inherit the raylet's: setting this process's affinity around each `add_node` pins the node.
    """
    from ray.cluster_utils import Cluster

    everything = os.sched_getaffinity(0)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for node in range(n_nodes):
            os.sched_setaffinity(0, cores[node * cores_per_node:(node + 1) * cores_per_node])
            cluster.add_node(num_cpus=cores_per_node)
    finally:
        os.sched_setaffinity(0, everything)
    cluster.wait_for_nodes()
    return cluster


def pinned_index_class():
    """DistributedIndex whose actors also report the cores they may run on (to check the pinning)."""
    from sparseir.distributed import DistributedIndex, ShardWorker

    class CoresWorker(ShardWorker):
        def cores(self) -> list[int]:
            return sorted(os.sched_getaffinity(0))

    class CoresIndex(DistributedIndex):
        def _worker_class(self, number, node):
            return CoresWorker

    return CoresIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default=str(DATA / "debian-pkgs" / "vectors" / "collection.jsonl.gz"))
    parser.add_argument("--queries", default=str(DATA / "debian-pkgs" / "vectors" / "queries.jsonl.gz"))
    parser.add_argument("--n-queries", type=int, help="use the first N queries (default: all)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--nodes", default="1,2", help="node counts to measure, comma-separated")
    parser.add_argument("--cores-per-node", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "ray_nodes.json"))
    args = parser.parse_args()
    node_counts = [int(n) for n in args.nodes.split(",")]
    cores = sorted(os.sched_getaffinity(0))
    if max(node_counts) * args.cores_per_node > len(cores):
        parser.error(f"{max(node_counts)} nodes x {args.cores_per_node} cores need "
                     f"{max(node_counts) * args.cores_per_node} cores; this process may use {len(cores)}")
    if any(args.shards % n for n in node_counts):
        parser.error(f"--shards {args.shards} must be a multiple of every node count ({args.nodes}): "
                     f"each node then holds the same share")

    import ray

    docs = sparseir.read_vectors(args.docs)
    queries = sparseir.read_vectors(args.queries, vocab=docs.vocab)
    if args.n_queries:
        queries = queries[:args.n_queries]
    report = {"docs": args.docs, "n_docs": len(docs), "nnz": docs.nnz, "n_queries": len(queries),
              "query_nnz_mean": queries.nnz / len(queries), "k": args.k, "shards": args.shards,
              "batch": args.batch, "cores_per_node": args.cores_per_node, "kind": "exact", "runs": [],
              "load_average_before": os.getloadavg()}
    single = sparseir.build_index(docs, kind="exact")
    expected = single.search(queries, k=args.k)[1]
    with tempfile.TemporaryDirectory() as tmp:
        build_sharded(docs, Path(tmp) / "sharded", shards=args.shards)
        for n_nodes in node_counts:
            cluster = start_cluster(n_nodes, args.cores_per_node, cores)
            try:
                ray.init(address=cluster.address, log_to_driver=False)
                cpus_per_shard = args.cores_per_node * n_nodes / args.shards
                with pinned_index_class()(Path(tmp) / "sharded", cpus_per_shard=cpus_per_shard) as index:
                    index.warmup()
                    np.testing.assert_array_equal(index.search(queries, k=args.k)[1], expected)
                    nodes_used = len({shard[0] for shard in index.nodes})
                    shard_cores = ray.get([actors[0].cores.remote() for actors in index.actors])
                    seconds = best_seconds(lambda batch: index.search(batch, k=args.k), queries, args.batch,
                                           args.repeats)
            finally:
                ray.shutdown()
                cluster.shutdown()
            run = {"nodes": n_nodes, "nodes_holding_shards": nodes_used, "cpus_per_shard": cpus_per_shard,
                   "shard_cores": shard_cores, "seconds": seconds, "qps": len(queries) / seconds}
            report["runs"].append(run)
            print(f"{n_nodes} node(s) x {args.cores_per_node} core(s), {args.shards} shards: "
                  f"{run['qps']:,.0f} QPS ({seconds:.3f} s for {len(queries):,} queries in batches of {args.batch}); "
                  f"cores of each shard's actor: {shard_cores}")
    by_nodes = {run["nodes"]: run["qps"] for run in report["runs"]}
    if 1 in by_nodes and 2 in by_nodes:
        report["qps_2_over_1"] = by_nodes[2] / by_nodes[1]
        print(f"2 nodes / 1 node: {report['qps_2_over_1']:.2f}x")
    report["load_average_after"] = os.getloadavg()
    print(f"load average before {report['load_average_before'][0]:.1f}, after {report['load_average_after'][0]:.1f} "
          f"(the machine may be shared: figures are noisier when high)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
