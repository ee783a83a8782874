"""Distributed search on a local Ray instance: equal to local sharded search, through actor failures."""

import shutil
import threading
import time
import warnings

import numpy as np
import pytest

import sparseir
from conftest import random_vectors
from sparseir.sharded import build_sharded

ray = pytest.importorskip("ray")
from sparseir.distributed import (DistributedIndex, PartialResultsWarning, RayConfig,  # noqa: E402
                                  ShardUnavailableError)

# Slow: run with -m slow (CI runs both sets).
pytestmark = pytest.mark.slow

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
        ray.kill(index.actors[1][0])
        scores, rows = index.search(queries, k=10)
        np.testing.assert_array_equal(rows, expected[1])
        np.testing.assert_array_equal(scores, expected[0])
        assert index.restarts == [0, 1]


def test_killing_an_actor_mid_batch_still_returns_correct_results(sharded_dir, collection, tmp_path):
    """Shard 0's first actor holds the batch until it is killed, so the kill lands inside the
    batch by construction; the batch is answered by its replacement."""
    from sparseir.distributed import ShardWorker

    queries = collection[1]
    expected = sparseir.sharded.load_sharded(sharded_dir).search(queries, k=10)
    entered = tmp_path / "shard-0-entered"

    class HeldWorker(ShardWorker):  # defined here, so that Ray ships it by value
        def search(self, *args):
            entered.touch()
            deadline = time.monotonic() + 120  # bounded: unkilled, it answers and the test fails below
            while time.monotonic() < deadline:
                time.sleep(0.05)
            return super().search(*args)

    class HeldIndex(DistributedIndex):
        held = False

        def _worker_class(self, number, node):
            if number == 0 and not self.held:
                self.held = True
                return HeldWorker
            return super()._worker_class(number, node)

    with HeldIndex(sharded_dir, cpus_per_shard=ACTOR_CPUS) as index:
        found, failures = [], []

        def search():
            try:
                found.append(index.search(queries, k=10))
            except Exception as error:  # reported by the assertion below
                failures.append(error)

        searcher = threading.Thread(target=search)
        searcher.start()
        deadline = time.monotonic() + 120
        while not entered.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert entered.exists(), "shard 0 never received the batch"
        ray.kill(index.actors[0][0])
        searcher.join(timeout=120)
        assert not failures and not searcher.is_alive()
        assert index.restarts == [1, 0]
        np.testing.assert_array_equal(found[0][1], expected[1])
        np.testing.assert_array_equal(found[0][0], expected[0])


def test_a_shard_that_stays_down_fails_naming_it_unless_partial_is_allowed(sharded_dir, collection):
    queries = collection[1]
    local = sparseir.sharded.load_sharded(sharded_dir)
    with open_distributed(sharded_dir, retries=1) as index:
        index.warmup()
        shutil.rmtree(sharded_dir / "shard-0001")  # the replacement actor cannot load it
        ray.kill(index.actors[1][0])
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


@pytest.fixture
def hashing_encoder():
    """A stand-in encoder (no model): each word weighs 1 on its hashed term, deterministic.

    Defined inside the fixture so that Ray ships it by value to its workers.
    """
    def load():
        import zlib

        class Hashing:
            def encode_documents(self, texts, ids=None, batch_size=32):
                vectors = [{zlib.crc32(word.encode()) % 64: 1.0 for word in text.split()} for text in texts]
                return sparseir.SparseVectors.from_dicts(vectors, ids=ids,
                                                         vocab=sparseir.Vocabulary([f"h{i}" for i in range(64)]))

        return Hashing()

    return load


def test_encoding_on_ray_writes_ordered_parts_and_resumes(tmp_path, hashing_encoder):
    from sparseir.distributed import encode_with_ray

    lines = [f"doc{i}\tword{i % 7} shared text {i}" for i in range(25)]
    texts = tmp_path / "collection.tsv"
    texts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "encoded"
    parts = encode_with_ray(texts, out, rows_per_part=10, load_encoder=hashing_encoder, cpus_per_worker=0.5)
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    vocab = sparseir.Vocabulary([f"h{i}" for i in range(64)])
    encoded = sparseir.SparseVectors.concatenate([sparseir.read_vectors(p, vocab=vocab) for p in parts])
    expected = hashing_encoder().encode_documents([line.split("\t")[1] for line in lines],
                                                  ids=[f"doc{i}" for i in range(25)])
    assert encoded.equals(expected)

    kept = parts[0].stat().st_mtime_ns, parts[2].stat().st_mtime_ns
    parts[1].unlink()  # as if the run had stopped before writing it
    assert encode_with_ray(texts, out, rows_per_part=10, load_encoder=hashing_encoder,
                           cpus_per_worker=0.5) == parts
    assert (parts[0].stat().st_mtime_ns, parts[2].stat().st_mtime_ns) == kept
    assert sparseir.read_vectors(parts[1], vocab=vocab).equals(expected[10:20])
    with pytest.raises(sparseir.ParameterError, match="another run"):
        encode_with_ray(texts, out, rows_per_part=5, load_encoder=hashing_encoder)


def test_encoding_on_ray_reads_a_gzip_collection_like_the_plain_one(tmp_path, hashing_encoder):
    import gzip

    from sparseir.distributed import encode_with_ray

    text = "".join(f"doc{i}\tword{i % 7} shared text {i}\n" for i in range(25))
    plain, packed = tmp_path / "collection.tsv", tmp_path / "collection.tsv.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    vocab = sparseir.Vocabulary([f"h{i}" for i in range(64)])

    def encoded(texts, out):
        parts = encode_with_ray(texts, out, rows_per_part=10, load_encoder=hashing_encoder, cpus_per_worker=0.5)
        return [sparseir.read_vectors(p, vocab=vocab) for p in parts]

    from_plain, from_packed = encoded(plain, tmp_path / "plain"), encoded(packed, tmp_path / "packed")
    assert len(from_packed) == 3 and all(a.equals(b) for a, b in zip(from_plain, from_packed))
    (tmp_path / "packed" / "part-00002.parquet").unlink()  # the last part, reached by decompressing the others
    assert encoded(packed, tmp_path / "packed")[2].equals(from_plain[2])
    bad = tmp_path / "bad.tsv.gz"
    bad.write_bytes(gzip.compress(b"a\tfine\nb has no tab\n"))
    with pytest.raises(sparseir.InputError, match=r"bad.tsv.gz:2: expected 2 tab-separated fields"):
        encode_with_ray(bad, tmp_path / "bad", load_encoder=hashing_encoder, cpus_per_worker=0.5)
    cut = tmp_path / "cut.tsv.gz"
    cut.write_bytes(packed.read_bytes()[:-20])
    with pytest.raises(sparseir.InputError, match=r"cut.tsv.gz: cannot read: "):
        encode_with_ray(cut, tmp_path / "cut", load_encoder=hashing_encoder, cpus_per_worker=0.5)
    assert not (tmp_path / "cut" / "part-00000.parquet").exists()


def test_encoding_on_ray_names_a_bad_line(tmp_path, hashing_encoder):
    from sparseir.distributed import encode_with_ray

    texts = tmp_path / "collection.tsv"
    texts.write_text("a\tfine\nb has no tab\n")
    with pytest.raises(sparseir.InputError, match=r"collection.tsv:2: expected 2 tab-separated fields"):
        encode_with_ray(texts, tmp_path / "encoded", load_encoder=hashing_encoder, cpus_per_worker=0.5)


def test_command_line_opens_the_index_the_options_ask_for(sharded_dir, collection, tmp_path):
    from sparseir.cli.ray_commands import open_searchable
    from sparseir.sharded import ShardedIndex

    assert isinstance(open_searchable(str(sharded_dir), False, None, 1.0), ShardedIndex)
    sparseir.build_index(collection[0]).save(tmp_path / "single")
    assert isinstance(open_searchable(str(tmp_path / "single"), False, None, 1.0), sparseir.Index)
    with pytest.raises(sparseir.ParameterError, match="--ray needs a sharded index"):
        open_searchable(str(tmp_path / "single"), True, None, 1.0)
    with pytest.raises(sparseir.ParameterError, match="--replicas applies to searches on Ray"):
        open_searchable(str(sharded_dir), False, None, 1.0, replicas=2)
    with open_searchable(str(sharded_dir), True, None, ACTOR_CPUS) as index:
        assert isinstance(index, DistributedIndex) and index.n_shards == 2 and index.config.replicas == 1
    # One node here: two copies of a shard need two nodes, and the error says so.
    with pytest.raises(sparseir.ParameterError, match="replicas=2 needs 2 nodes"):
        open_searchable(str(sharded_dir), True, None, ACTOR_CPUS, replicas=2)


def test_a_distributed_index_is_searchable_like_the_others(sharded_dir, collection):
    docs, queries = collection
    with open_distributed(sharded_dir) as index:
        assert isinstance(index, sparseir.Searchable) and len(index) == len(docs)
        np.testing.assert_array_equal(index.doc_frequency(), np.bincount(docs.terms, minlength=len(docs.vocab)))
        with pytest.raises(sparseir.ParameterError, match="k must be a positive integer, got True"):
            index.search(queries, k=True)
        assert index.warmup() >= 0
