"""Distributed search on a local Ray instance: equal to local sharded search, through actor failures."""

import shutil
import threading
import warnings

import numpy as np
import pytest

import sparseir
from conftest import random_vectors
from sparseir.sharded import build_sharded

ray = pytest.importorskip("ray")
from sparseir.distributed import (DistributedIndex, PartialResultsWarning, RayConfig,  # noqa: E402
                                  ShardUnavailableError)

# Half a CPU per actor lets two 2-shard indexes share the 2-CPU local instance.
ACTOR_CPUS = 0.5


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(7)
    return random_vectors(rng, 400, 60, 6, integer_weights=True), random_vectors(rng, 64, 60, 3, prefix="q",
                                                                                  integer_weights=True)


@pytest.fixture
def sharded_dir(tmp_path, collection):
    build_sharded(collection[0], tmp_path / "index", shards=2)
    return tmp_path / "index"


def open_distributed(path, **config):
    return DistributedIndex(path, cpus_per_shard=ACTOR_CPUS, **config)


@pytest.mark.parametrize("partition", ["contiguous", "hash"])
def test_ray_search_equals_local_sharded_search(tmp_path, collection, partition):
    docs, queries = collection
    local = build_sharded(docs, tmp_path / "index", shards=2, partition=partition)
    with open_distributed(tmp_path / "index") as index:
        for k in (1, 10, 500):
            scores, rows = index.search(queries, k=k)
            expected_scores, expected_rows = local.search(queries, k=k)
            np.testing.assert_array_equal(rows, expected_rows)
            np.testing.assert_array_equal(scores, expected_scores)
        assert index.search(queries, k=5).missing_shards == ()
        np.testing.assert_array_equal(index.doc_ids, docs.ids)


def test_a_killed_actor_is_restarted_and_its_shard_retried(sharded_dir, collection):
    queries = collection[1]
    expected = sparseir.sharded.load_sharded(sharded_dir).search(queries, k=10)
    with open_distributed(sharded_dir) as index:
        index.warmup()
        ray.kill(index.actors[1])
        scores, rows = index.search(queries, k=10)
        np.testing.assert_array_equal(rows, expected[1])
        np.testing.assert_array_equal(scores, expected[0])
        assert index.restarts == [0, 1]


def test_killing_an_actor_mid_batch_still_returns_correct_results(sharded_dir, collection):
    queries = collection[1]
    many = sparseir.SparseVectors.concatenate([queries] * 200)  # long batches: the kill lands inside one
    expected = sparseir.sharded.load_sharded(sharded_dir).search(many, k=10)
    killed = threading.Event()
    failures, batches = [], []

    def search_until_after_the_kill():
        while True:
            done_before = killed.is_set()
            try:
                batches.append(index.search(many, k=10))
            except Exception as error:  # reported by the assertion below
                failures.append(error)
            if done_before:
                return

    with open_distributed(sharded_dir) as index:
        index.warmup()
        searcher = threading.Thread(target=search_until_after_the_kill)
        searcher.start()
        while not batches and searcher.is_alive():
            threading.Event().wait(0.01)
        ray.kill(index.actors[0])
        killed.set()
        searcher.join(timeout=120)
        assert not failures and not searcher.is_alive()
        assert index.restarts[0] == 1
        for scores, rows in batches:
            np.testing.assert_array_equal(rows, expected[1])
            np.testing.assert_array_equal(scores, expected[0])


def test_a_shard_that_stays_down_fails_naming_it_unless_partial_is_allowed(sharded_dir, collection):
    queries = collection[1]
    local = sparseir.sharded.load_sharded(sharded_dir)
    with open_distributed(sharded_dir, retries=1) as index:
        index.warmup()
        shutil.rmtree(sharded_dir / "shard-0001")  # the replacement actor cannot load it
        ray.kill(index.actors[1])
        with pytest.raises(ShardUnavailableError, match=r"shard 1 .*shard-0001.* missing"):
            index.search(queries, k=10)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = index.search(queries, k=10, allow_partial=True)
        assert results.partial and results.missing_shards == (1,)
        assert any(issubclass(w.category, PartialResultsWarning) for w in caught)
        scores, rows = results
        shard_scores, shard_rows = local.shards[0].search(queries, k=10)
        np.testing.assert_array_equal(rows, np.where(shard_rows >= 0, local.global_rows[0][shard_rows], -1))
        np.testing.assert_array_equal(scores, shard_scores)


def test_bad_arguments_name_themselves(sharded_dir, collection):
    with pytest.raises(sparseir.ParameterError, match="cpus_per_shard"):
        RayConfig(cpus_per_shard=0)
    with pytest.raises(sparseir.ParameterError, match="retries"):
        RayConfig(retries=-1)
    with open_distributed(sharded_dir) as index:
        with pytest.raises(sparseir.ParameterError, match="k must be"):
            index.search(collection[1], k=0)
        with pytest.raises(sparseir.ParameterError, match="unknown exact search parameter"):
            index.search(collection[1], k=3, query_cut=5)
