"""Distributed search on Ray: one actor per shard, queries broadcast, top-k merged on the driver.

    with DistributedIndex("index/", address="auto") as index:   # or address=None: a local cluster
        scores, rows = index.search(queries, k=10)

Every actor memory-maps its own shard of a sharded index (see ``sparseir.sharded``), so
the directory must be readable at the same path on every node (a shared filesystem or a
copy per node) and sparseir installed there. A batch is put once in the object store and
sent to all actors; each returns its top-k with global rows; the driver merges them with
the single index's order, so results equal ``load_sharded(path).search``.

An actor that dies (its process or node lost) is replaced and its shard retried, up to
``retries`` times per batch. A shard still unavailable fails the call with
``ShardUnavailableError`` naming it, unless ``allow_partial=True``: then the other
shards' merged results come back as ``PartialResults`` listing the missing shards.

Ray is an optional dependency (``pip install sparseir[ray]``), imported only here, lazily.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ParameterError, SparseirError, require
from .index import as_queries
from .query.topk import empty_results
from .sharded import ShardInfo, load_sharded, merge_topk, open_shard, read_sharded_manifest, to_global
from .vectors import SparseVectors


class ShardUnavailableError(SparseirError):
    """A shard whose actor could not be (re)started or kept failing."""


class PartialResultsWarning(UserWarning):
    """Results merged from fewer shards than the index holds (allow_partial=True)."""


class PartialResults(tuple):
    """(scores, rows) like any search, plus the shards that did not answer.

    Unpacks as a pair; ``missing_shards`` is empty when every shard answered.
    """

    def __new__(cls, scores: np.ndarray, rows: np.ndarray, missing_shards: tuple[int, ...] = ()):
        results = super().__new__(cls, (scores, rows))
        results.missing_shards = tuple(missing_shards)
        return results

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards)


@dataclass(frozen=True)
class RayConfig:
    """How to reach Ray and how much of it each shard takes."""

    address: str | None = field(default=None, metadata={
        "help": "Ray cluster to join ('auto' or host:port); none starts a local one"})
    cpus_per_shard: float = field(default=1.0, metadata={"help": "CPUs reserved by each shard's actor"})
    local_cpus: int | None = field(default=None, metadata={
        "help": "CPUs of the local cluster started when no address is given (default: all)"})
    retries: int = field(default=2, metadata={"help": "actor restarts per shard and batch before giving up"})

    def __post_init__(self):
        require(self.cpus_per_shard > 0, f"cpus_per_shard must be > 0, got {self.cpus_per_shard!r}")
        require(self.local_cpus is None or self.local_cpus >= 1,
                f"local_cpus must be >= 1, got {self.local_cpus!r}")
        require(isinstance(self.retries, int) and self.retries >= 0, f"retries must be >= 0, got {self.retries!r}")
        require(self.address is None or self.local_cpus is None, "local_cpus applies only without an address")

    @property
    def actor_threads(self) -> int:
        return max(1, int(self.cpus_per_shard))


class ShardWorker:
    """The actor body: one shard, memory-mapped, warmed up once."""

    def __init__(self, root: str, info: ShardInfo, kind: str, threads: int):
        self.index, self.global_rows = open_shard(Path(root), info, kind)
        self.threads = threads
        self.index.warmup()

    def search(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray], k: int, threads: int | None,
               knobs: dict) -> tuple[np.ndarray, np.ndarray]:
        offsets, terms, weights = batch
        queries = SparseVectors(offsets, terms, weights, vocab=self.index.vocab, validate=False)
        scores, rows = self.index.search(queries, k=k, threads=threads or self.threads, **knobs)
        return scores, to_global(rows, self.global_rows)

    def pid(self) -> int:
        return os.getpid()


def import_ray():
    try:
        import ray
    except ImportError:
        raise ParameterError("distributed search needs Ray: pip install 'sparseir[ray]'") from None
    return ray


class DistributedIndex:
    """A sharded index served by one Ray actor per shard; searches like ``Index``."""

    def __init__(self, path: str | os.PathLike, config: RayConfig | None = None, **config_values):
        self.config = config if config is not None else RayConfig(**config_values)
        self.path = Path(path).resolve()
        # The driver opens the (memory-mapped) shards only for their metadata: vocabulary,
        # ids and parameter checks; the actors do the searching.
        self.local = load_sharded(self.path)
        _, self.infos = read_sharded_manifest(self.path)
        self.restarts = [0] * len(self.infos)
        ray = import_ray()
        self._started_cluster = not ray.is_initialized()
        if self._started_cluster:
            if self.config.address is None:
                ray.init(num_cpus=self.config.local_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.config.address, log_to_driver=False)
        self.actors = [self._start(number) for number in range(len(self.infos))]

    # --- metadata, as a local index --------------------------------------------------

    kind = property(lambda self: self.local.kind)
    vocab = property(lambda self: self.local.vocab)
    n_docs = property(lambda self: self.local.n_docs)
    n_shards = property(lambda self: len(self.infos))
    doc_ids = property(lambda self: self.local.doc_ids)

    def __len__(self) -> int:
        return self.n_docs

    def __repr__(self) -> str:
        return f"DistributedIndex(kind={self.kind!r}, n_docs={self.n_docs}, shards={self.n_shards})"

    def search_params(self, **knobs):
        return self.local.search_params(**knobs)

    # --- actors ---------------------------------------------------------------------

    def _start(self, number: int):
        ray = import_ray()
        worker = ray.remote(ShardWorker).options(num_cpus=self.config.cpus_per_shard, scheduling_strategy="SPREAD")
        return worker.remote(str(self.path), self.infos[number], self.kind, self.config.actor_threads)

    def _restart(self, number: int) -> None:
        ray = import_ray()
        ray.kill(self.actors[number], no_restart=True)  # it may be hung rather than dead
        self.actors[number] = self._start(number)
        self.restarts[number] += 1

    def warmup(self) -> float:
        """Wait until every actor has loaded its shard (raises like search if one cannot); returns seconds."""
        started = time.perf_counter()
        probe = SparseVectors([0, 1], [0], [1.0], ["warmup"], self.vocab, validate=False)
        self.search(probe, k=1)
        return time.perf_counter() - started

    def close(self) -> None:
        """Stop the actors (and the local cluster, if this index started it)."""
        ray = import_ray()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started_cluster:
            ray.shutdown()

    def __enter__(self) -> "DistributedIndex":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    # --- search ---------------------------------------------------------------------

    def search(self, queries, k: int = 10, threads: int | None = None, allow_partial: bool = False,
               **knobs) -> PartialResults:
        """Top-k over every shard: (scores float32, global rows int64), each (n_queries, k).

        Unpacks like ``Index.search``. With allow_partial=True a shard that stays down is
        left out (with a PartialResultsWarning) and named in ``.missing_shards``.
        """
        ray = import_ray()
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError(f"k must be a positive integer, got {k!r}")
        self.search_params(**knobs)
        queries = self.local.shards[0]._check_queries(as_queries(queries, self.vocab))
        if len(queries) == 0:
            return PartialResults(*empty_results(0, int(k)))
        batch = ray.put((queries.offsets, queries.terms, queries.weights))  # sent once, read by every actor
        call = (batch, int(k), threads, knobs)
        pending = {self.actors[number].search.remote(*call): number for number in range(self.n_shards)}
        answers, failures, attempts = {}, {}, [0] * self.n_shards
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            number = pending.pop(ready)
            try:
                answers[number] = ray.get(ready)
            except ray.exceptions.RayActorError as error:
                attempts[number] += 1
                if attempts[number] > self.config.retries:
                    failures[number] = error
                    continue
                self._restart(number)
                pending[self.actors[number].search.remote(*call)] = number
        if failures and not allow_partial:
            number, error = min(failures.items())
            raise ShardUnavailableError(f"shard {number} ({self.path / self.infos[number].dir}) unavailable after "
                                        f"{self.config.retries} restart(s): {describe(error)}")
        if failures:
            warnings.warn(f"partial results: shard(s) {sorted(failures)} of {self.n_shards} did not answer",
                          PartialResultsWarning, stacklevel=2)
        if not answers:
            return PartialResults(*empty_results(len(queries), int(k)), missing_shards=sorted(failures))
        ordered = [answers[number] for number in sorted(answers)]
        return PartialResults(*merge_topk([s for s, _ in ordered], [r for _, r in ordered], int(k)),
                              missing_shards=sorted(failures))


def describe(error: Exception) -> str:
    """One line for a Ray actor error: the exception its constructor raised, else Ray's summary."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    # A failed constructor's message ends with the original "module.Error: message" line.
    return lines[-1] if getattr(error, "actor_init_failed", False) else lines[0]
