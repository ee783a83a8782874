"""Distributed search across the nodes of a Ray cluster: placement, replicas, node loss.

The cluster tests run a real multi-node cluster on this machine (`ray.cluster_utils.Cluster`:
a head and two worker nodes of one CPU each, every node its own raylet and object store).
A node is removed in the middle of a batch by construction: the actors on the doomed node
hold their part of the batch until the node goes, so the batch cannot finish before the
removal, and nothing waits on a sleep to line the two up.
"""

import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparseir
from conftest import random_vectors
from sparseir.distributed import (DistributedIndex, PartialResultsWarning, RayConfig, ShardUnavailableError,
                                  ShardWorker, plan_placement, split_batch)
from sparseir.sharded import build_sharded, merge_topk

NODES = 3
HOLD_SECONDS = 120  # bound on a held part of a batch: a node that is never removed fails the test, not hangs it


# --- placement and batch splitting (no Ray) ----------------------------------------------


@given(capacity=st.lists(st.integers(0, 4), min_size=1, max_size=6), n_shards=st.integers(1, 8),
       replicas=st.integers(1, 4))
def test_placement_puts_each_shards_replicas_on_distinct_nodes_whenever_they_fit(capacity, n_shards, replicas):
    nodes = {f"node{i}": room for i, room in enumerate(capacity)}
    # Each node holds at most one copy of a shard, so it serves at most n_shards replicas.
    fits = sum(room > 0 for room in capacity) >= replicas and sum(min(room, n_shards) for room in capacity) >= (
        n_shards * replicas)
    if not fits:
        with pytest.raises(sparseir.ParameterError, match="replicas"):
            plan_placement(n_shards, replicas, nodes)
        return
    plan = plan_placement(n_shards, replicas, nodes)
    assert len(plan) == n_shards
    assert all(len(set(shard)) == replicas for shard in plan)
    held = {node: sum(node in shard for shard in plan) for node in nodes}
    assert all(held[node] <= room for node, room in nodes.items())


@given(n_nodes=st.integers(1, 6), room=st.integers(1, 4), n_shards=st.integers(1, 8), replicas=st.integers(1, 3))
def test_placement_spreads_shards_evenly_over_equal_nodes(n_nodes, room, n_shards, replicas):
    if replicas > n_nodes or n_shards * replicas > n_nodes * min(room, n_shards):
        return
    plan = plan_placement(n_shards, replicas, {f"node{i}": room for i in range(n_nodes)})
    held = [sum(f"node{i}" in shard for shard in plan) for i in range(n_nodes)]
    assert max(held) - min(held) <= 1
    if replicas == 1:  # consecutive shards land on different nodes while there are nodes to go round
        firsts = [shard[0] for shard in plan[:n_nodes]]
        assert len(set(firsts)) == len(firsts)


def test_too_few_nodes_for_the_replicas_is_one_line_naming_them():
    with pytest.raises(sparseir.ParameterError, match=r"replicas=3 needs 3 nodes .* the cluster has 2"):
        plan_placement(4, 3, {"a": 8, "b": 8})
    with pytest.raises(sparseir.ParameterError, match=r"hold 2 shard actors, not 3 shards x 1 replicas"):
        plan_placement(3, 1, {"a": 1, "b": 1})
    with pytest.raises(sparseir.ParameterError, match="replicas must be a positive integer, got 0"):
        RayConfig(replicas=0)
    with pytest.raises(sparseir.ParameterError, match="replicas must be a positive integer, got True"):
        RayConfig(replicas=True)


@given(n_queries=st.integers(1, 50), parts=st.integers(1, 6))
def test_a_batch_is_split_into_contiguous_non_empty_runs(n_queries, parts):
    runs = split_batch(n_queries, parts)
    assert len(runs) == min(parts, n_queries)
    assert runs[0][0] == 0 and runs[-1][1] == n_queries
    assert all(start < stop for start, stop in runs)
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))


# --- a multi-node cluster on this machine ------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # A removed node is declared dead after a few missed health checks; short ones keep
    # each node-loss test to seconds.
    health = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
              "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "_system_config": health})
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def nodes(cluster):
    """The cluster with NODES alive nodes (a test that removed one gets it back): node id -> Node."""
    import ray

    alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    for node in list(cluster.worker_nodes):
        if node.node_id not in alive:
            cluster.worker_nodes.discard(node)
    while 1 + len(cluster.worker_nodes) < NODES:
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return {node.node_id: node for node in [cluster.head_node, *cluster.worker_nodes]}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    rng = np.random.default_rng(31)
    docs = random_vectors(rng, 600, 80, 6, integer_weights=True)  # integer weights: many ties to order
    queries = random_vectors(rng, 48, 80, 3, prefix="q", integer_weights=True)
    path = tmp_path_factory.mktemp("ray-nodes") / "index"
    build_sharded(docs, path, shards=NODES)
    return docs, queries, path


def actor_nodes(index) -> list[list[str]]:
    """Where each replica's actor reports it runs."""
    import ray

    return [ray.get([actor.node_id.remote() for actor in actors]) for actors in index.actors]


def held_index(victim: str, signals, **config):
    """A DistributedIndex whose first actors on node `victim` hold every part of a batch they get
    (after touching a file in `signals`) until the node is removed: a batch on it cannot finish first."""

    class HeldWorker(ShardWorker):  # defined here, so that Ray ships it by value
        def search(self, batch, start, stop, *rest):
            (signals / f"entered-{self.global_rows[0]}-{start}").touch()
            deadline = time.monotonic() + HOLD_SECONDS
            while time.monotonic() < deadline:
                time.sleep(0.05)
            return super().search(batch, start, stop, *rest)

    class HeldIndex(DistributedIndex):
        def _worker_class(self, number, node):
            if node == victim and not getattr(self, "actors", None):  # the first placement only
                return HeldWorker
            return super()._worker_class(number, node)

    return HeldIndex(**config)


def search_while_removing(index, queries, cluster, node, signals, **search_options):
    """Search in a thread; once a held part of the batch has arrived on `node`, remove the node.

    Returns (results or None, exception or None)."""
    found, errors = [], []

    def search():
        try:
            found.append(index.search(queries, **search_options))
        except Exception as error:  # returned to the test, which checks it
            errors.append(error)

    searcher = threading.Thread(target=search)
    searcher.start()
    deadline = time.monotonic() + HOLD_SECONDS
    while not any(signals.glob("entered-*")) and searcher.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(signals.glob("entered-*")), f"no part of the batch reached the node to remove ({errors})"
    cluster.remove_node(node, allow_graceful=False)
    searcher.join(timeout=HOLD_SECONDS)
    assert not searcher.is_alive(), "the batch did not finish after the node was removed"
    return (found[0] if found else None), (errors[0] if errors else None)


@pytest.mark.slow
def test_search_on_three_nodes_equals_the_single_index_with_shards_on_distinct_nodes(cluster, nodes, collection):
    docs, queries, path = collection
    single = sparseir.build_index(docs, kind="exact")
    with DistributedIndex(path, cpus_per_shard=1) as index:  # one CPU per node: one shard per node
        placed = actor_nodes(index)
        assert placed == index.nodes
        assert sorted(shard[0] for shard in placed) == sorted(nodes)
        for k in (1, 10, 600):
            scores, rows = index.search(queries, k=k)
            expected_scores, expected_rows = single.search(queries, k=k)
            np.testing.assert_array_equal(rows, expected_rows)
            np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.slow
def test_replicas_sit_on_distinct_nodes_and_split_the_batch(cluster, nodes, collection):
    docs, queries, path = collection
    single = sparseir.build_index(docs, kind="exact")
    with pytest.raises(sparseir.ParameterError, match=r"replicas=4 needs 4 nodes .* the cluster has 3"):
        DistributedIndex(path, cpus_per_shard=0.25, replicas=4)
    with DistributedIndex(path, cpus_per_shard=0.25, replicas=2) as index:
        placed = actor_nodes(index)
        assert placed == index.nodes
        assert all(len(set(shard)) == 2 for shard in placed)
        assert sorted(sum(node in shard for shard in placed) for node in nodes) == [2, 2, 2]
        scores, rows = index.search(queries, k=10)
        np.testing.assert_array_equal(rows, single.search(queries, k=10)[1])
        np.testing.assert_array_equal(scores, single.search(queries, k=10)[0])


@pytest.mark.slow
def test_a_node_removed_mid_batch_with_two_replicas_loses_nothing(cluster, nodes, collection, tmp_path):
    docs, queries, path = collection
    expected_scores, expected_rows = sparseir.build_index(docs, kind="exact").search(queries, k=10)
    victim = next(node for node in nodes if node != cluster.head_node.node_id)
    with held_index(victim, tmp_path, path=path, cpus_per_shard=0.25, replicas=2) as index:
        on_victim = [number for number, shard in enumerate(index.nodes) if victim in shard]
        assert on_victim  # 3 shards x 2 replicas over 3 nodes: two shards have a copy there
        results, error = search_while_removing(index, queries, cluster, nodes[victim], tmp_path, k=10)
        assert error is None, error
        np.testing.assert_array_equal(results[1], expected_rows)
        np.testing.assert_array_equal(results[0], expected_scores)
        assert results.missing_shards == ()
        # The lost copies were replaced on the surviving nodes, each still on two distinct nodes.
        assert [index.restarts[number] > 0 for number in on_victim] == [True] * len(on_victim)
        placed = actor_nodes(index)
        assert all(victim not in shard and len(set(shard)) == 2 for shard in placed)
        np.testing.assert_array_equal(index.search(queries, k=10)[1], expected_rows)


@pytest.mark.slow
def test_a_node_lost_with_one_replica_names_the_shard_or_gives_the_rest(cluster, nodes, collection, tmp_path):
    docs, queries, path = collection
    local = sparseir.sharded.load_sharded(path)
    victim = next(node for node in nodes if node != cluster.head_node.node_id)
    # No restarts: the lost shard stays lost (with restarts it would come back on another node).
    with held_index(victim, tmp_path, path=path, cpus_per_shard=1, retries=0) as index:
        (lost,) = [number for number, shard in enumerate(index.nodes) if victim in shard]
        results, error = search_while_removing(index, queries, cluster, nodes[victim], tmp_path, k=10)
        assert results is None and isinstance(error, ShardUnavailableError)
        assert str(error).startswith(f"shard {lost} (") and f"shard-{lost:04d}" in str(error)
        assert "\n" not in str(error)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores, rows = partial = index.search(queries, k=10, allow_partial=True)
        assert partial.missing_shards == (lost,)
        assert any(issubclass(w.category, PartialResultsWarning) for w in caught)
        rest = [local.shards[number].search(queries, k=10) for number in range(NODES) if number != lost]
        global_rows = [local.global_rows[number] for number in range(NODES) if number != lost]
        expected_scores, expected_rows = merge_topk(
            [s for s, _ in rest], [np.where(r >= 0, g[np.maximum(r, 0)], -1) for (_, r), g in zip(rest, global_rows)],
            10)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.slow
def test_a_node_lost_with_one_replica_comes_back_on_another_node(cluster, nodes, collection, tmp_path):
    docs, queries, path = collection
    expected_scores, expected_rows = sparseir.build_index(docs, kind="exact").search(queries, k=10)
    victim = next(node for node in nodes if node != cluster.head_node.node_id)
    with held_index(victim, tmp_path, path=path, cpus_per_shard=0.5) as index:
        (lost,) = [number for number, shard in enumerate(index.nodes) if victim in shard]
        results, error = search_while_removing(index, queries, cluster, nodes[victim], tmp_path, k=10)
        assert error is None, error
        np.testing.assert_array_equal(results[1], expected_rows)
        np.testing.assert_array_equal(results[0], expected_scores)
        assert index.restarts[lost] >= 1 and victim not in actor_nodes(index)[lost]
