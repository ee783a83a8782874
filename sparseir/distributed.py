"""Distributed search on Ray: shards placed across nodes, queries broadcast, top-k merged on the driver.

    with DistributedIndex("index/", address="auto", replicas=2) as index:   # or address=None: a local cluster
        scores, rows = index.search(queries, k=10)

Every actor memory-maps its own shard of a sharded index (see ``sparseir.sharded``), so
the directory must be readable at the same path on every node (a shared filesystem or a
copy per node) and sparseir installed there. Each shard runs as ``replicas`` actors, each
pinned to a different node (``plan_placement``: shards spread over the nodes by free
room). A batch is put once in the object store; each shard's queries are split among its
live replicas, each returns its top-k with global rows, and the driver merges them with
the single index's order, so results equal ``load_sharded(path).search``.

A replica that dies (its process or node lost) has its part of the batch sent to another
replica of the shard, and is replaced on a node that holds no copy of the shard yet, up to
``retries`` restarts per shard and batch. A shard left without a live replica fails the
call with ``ShardUnavailableError`` naming it, unless ``allow_partial=True``: then the
other shards' merged results come back as ``PartialResults`` listing the missing shards.

``encode_with_ray`` encodes a large collection with Ray Data: encoder actors (one model
each) write numbered Parquet parts in collection order; a rerun skips finished parts.

Ray is an optional dependency (``pip install sparseir[ray]``), imported only here, lazily.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, ParameterError, SparseirError, require
from .extras import require_extra
from .fileio import atomic_file, check_readable, open_binary
from .formats import write_vectors
from .formats.text import parse_text_line
from .searchable import SearchableBase, check_k, prepare_queries
from .query.topk import empty_results
from .sharded import ShardInfo, load_sharded, merge_topk, open_shard, to_global
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
    replicas: int = field(default=1, metadata={
        "help": "copies of each shard, each on a different node; a search fails over between them"})

    def __post_init__(self):
        require(self.cpus_per_shard > 0, f"cpus_per_shard must be > 0, got {self.cpus_per_shard!r}")
        require(self.local_cpus is None or self.local_cpus >= 1,
                f"local_cpus must be >= 1, got {self.local_cpus!r}")
        require(isinstance(self.retries, int) and self.retries >= 0, f"retries must be >= 0, got {self.retries!r}")
        require(isinstance(self.replicas, int) and not isinstance(self.replicas, bool) and self.replicas >= 1,
                f"replicas must be a positive integer, got {self.replicas!r}")
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

    def search(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray], start: int, stop: int, k: int,
               threads: int | None, knobs: dict) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of queries [start, stop) of the batch, with global rows."""
        offsets, terms, weights = batch
        queries = SparseVectors(offsets, terms, weights, vocab=self.index.vocab, validate=False)[start:stop]
        scores, rows = self.index.search(queries, k=k, threads=threads or self.threads, **knobs)
        return scores, to_global(rows, self.global_rows)

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()


def import_ray():
    require_extra("ray", "serving on Ray")
    import ray

    return ray


def node_capacity(ray, cpus_per_shard: float) -> dict[str, int]:
    """Alive nodes -> how many shard actors their CPUs hold, in Ray's node order (nodes that hold none left out)."""
    capacity = {}
    for node in ray.nodes():
        # A small tolerance: 0.3 CPUs per shard on a 0.9-CPU node holds 3 actors, not 2.
        fits = int(node["Resources"].get("CPU", 0) / cpus_per_shard + 1e-9) if node["Alive"] else 0
        if fits > 0:
            capacity[node["NodeID"]] = fits
    return capacity


def plan_placement(n_shards: int, replicas: int, capacity: dict[str, int]) -> list[list[str]]:
    """The nodes of each shard's replicas: `replicas` distinct nodes per shard, spread by free room.

    `capacity` maps each node to the actors it can hold, in the order ties go. Each shard
    takes the `replicas` nodes with the most room left (then the fewest actors): consecutive
    shards land on different nodes, and no node fills up while another has room, so any
    placement that fits is found. Too few nodes or too little room is a ParameterError.
    """
    usable = [node for node, room in capacity.items() if room > 0]
    if len(usable) < replicas:
        raise ParameterError(f"replicas={replicas} needs {replicas} nodes with room for a shard's actor; "
                             f"the cluster has {len(usable)} (lower replicas or cpus_per_shard, or add nodes)")
    room = {node: capacity[node] for node in usable}
    held = dict.fromkeys(usable, 0)
    order = {node: position for position, node in enumerate(usable)}
    plan = []
    for number in range(n_shards):
        chosen = sorted((node for node in usable if room[node] > 0),
                        key=lambda node: (-room[node], held[node], order[node]))[:replicas]
        if len(chosen) < replicas:
            raise ParameterError(f"the cluster's nodes hold {sum(capacity[node] for node in usable)} shard actors, "
                                 f"not {n_shards} shards x {replicas} replicas (lower replicas or "
                                 f"cpus_per_shard, or add nodes)")
        for node in chosen:
            room[node] -= 1
            held[node] += 1
        plan.append(chosen)
    return plan


def split_batch(n_queries: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) ranges cutting n_queries into at most `parts` near-equal, non-empty runs."""
    bounds = np.linspace(0, n_queries, min(parts, n_queries) + 1).round().astype(int)
    return [(int(start), int(stop)) for start, stop in zip(bounds[:-1], bounds[1:])]


class DistributedIndex(SearchableBase):
    """A sharded index served by Ray actors (``replicas`` per shard, on distinct nodes); searches like ``Index``."""

    def __init__(self, path: str | os.PathLike, config: RayConfig | None = None, **config_values):
        self.config = config if config is not None else RayConfig(**config_values)
        self.path = Path(path).resolve()
        # The driver opens the (memory-mapped) shards only for their metadata: vocabulary,
        # ids and parameter checks; the actors do the searching.
        self.local = load_sharded(self.path)
        self.infos = self.local.infos
        self.restarts = [0] * len(self.infos)
        self.actors: list[list] = []
        self.nodes: list[list[str]] = []
        ray = import_ray()
        self._started_cluster = not ray.is_initialized()
        if self._started_cluster:
            if self.config.address is None:
                ray.init(num_cpus=self.config.local_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.config.address, log_to_driver=False)
        try:
            self.nodes = plan_placement(self.n_shards, self.config.replicas,
                                        node_capacity(ray, self.config.cpus_per_shard))
        except ParameterError:
            self.close()
            raise
        self.actors = [[self._start(number, node) for node in nodes] for number, nodes in enumerate(self.nodes)]
        # Replicas whose actor died and found no node to restart on: (shard, replica).
        self.lost: set[tuple[int, int]] = set()

    # --- metadata, as a local index --------------------------------------------------

    kind = property(lambda self: self.local.kind)
    vocab = property(lambda self: self.local.vocab)
    n_docs = property(lambda self: self.local.n_docs)
    n_shards = property(lambda self: len(self.infos))
    doc_ids = property(lambda self: self.local.doc_ids)

    def __repr__(self) -> str:
        return (f"DistributedIndex(kind={self.kind!r}, n_docs={self.n_docs}, shards={self.n_shards}, "
                f"replicas={self.config.replicas})")

    def search_params(self, **knobs):
        return self.local.search_params(**knobs)

    def doc_frequency(self) -> np.ndarray:
        return self.local.doc_frequency()

    # --- actors ---------------------------------------------------------------------

    def _worker_class(self, number: int, node: str) -> type:
        """The actor body for shard `number` on `node`: ShardWorker (tests substitute their own)."""
        return ShardWorker

    def _start(self, number: int, node: str):
        """An actor serving shard `number`, pinned to `node` so that replicas stay on distinct nodes."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = import_ray()
        # Hard affinity: an actor that cannot start on its node fails (and is replaced
        # elsewhere) rather than moving silently next to another copy of its shard.
        worker = ray.remote(self._worker_class(number, node)).options(
            num_cpus=self.config.cpus_per_shard, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        return worker.remote(str(self.path), self.infos[number], self.kind, self.config.actor_threads)

    def _live(self, number: int) -> list[int]:
        return [replica for replica in range(len(self.actors[number])) if (number, replica) not in self.lost]

    def _restart(self, number: int, replica: int) -> bool:
        """Replace a dead replica on an alive node with room that holds no other copy of its shard.

        False (the replica stays lost) when no node qualifies: a second copy on the node of the
        first would not survive that node.
        """
        ray = import_ray()
        ray.kill(self.actors[number][replica], no_restart=True)  # it may be hung rather than dead
        self.lost.add((number, replica))
        capacity = node_capacity(ray, self.config.cpus_per_shard)
        held = Counter(self.nodes[shard][other] for shard in range(self.n_shards) for other in self._live(shard))
        copies = {self.nodes[number][other] for other in self._live(number)}
        candidates = [node for node, room in capacity.items() if room > held[node] and node not in copies]
        if not candidates:
            return False
        # Another node before the one the replica died on: that node may be the one lost,
        # not yet declared dead.
        node = min(candidates, key=lambda node: (node == self.nodes[number][replica], held[node] - capacity[node]))
        self.actors[number][replica] = self._start(number, node)
        self.nodes[number][replica] = node
        self.lost.discard((number, replica))
        self.restarts[number] += 1
        return True

    def close(self) -> None:
        """Stop the actors (and the local cluster, if this index started it)."""
        ray = import_ray()
        for actors in self.actors:
            for actor in actors:
                ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started_cluster:
            ray.shutdown()

    # --- search ---------------------------------------------------------------------

    def search(self, queries, k: int = 10, threads: int | None = None, allow_partial: bool = False, filter=None,
               filters=None, **knobs) -> PartialResults:
        """Top-k over every shard: (scores float32, global rows int64), each (n_queries, k).

        Unpacks like ``Index.search``. With allow_partial=True a shard left without a live
        replica is left out (with a PartialResultsWarning) and named in ``.missing_shards``.
        """
        ray = import_ray()
        k = check_k(k)
        if filter is not None or filters is not None:
            raise ParameterError("filtered search is not served on Ray yet; search the sharded index locally "
                                 "(sparseir.load_index)")
        self.search_params(**knobs)
        queries = prepare_queries(queries, self.vocab)
        if len(queries) == 0:
            return PartialResults(*empty_results(0, k))
        restarted = Counter()  # restarts spent on each shard in this batch
        causes: dict[int, str] = {}
        for number, replica in sorted(self.lost):  # a node may have joined or freed room since
            if restarted[number] < self.config.retries:
                restarted[number] += 1
                self._restart(number, replica)
        batch = ray.put((queries.offsets, queries.terms, queries.weights))  # sent once, read by every actor
        pending, load = {}, Counter()
        parts: list[dict[int, tuple]] = [{} for _ in range(self.n_shards)]

        def submit(number: int, replica: int, start: int, stop: int) -> None:
            actor = self.actors[number][replica]
            pending[actor.search.remote(batch, start, stop, k, threads, knobs)] = (number, replica, actor, start, stop)
            load[number, replica] += 1

        for number in range(self.n_shards):
            live = self._live(number)
            if not live:
                causes[number] = "every replica was lost and none could be restarted"
            for replica, (start, stop) in zip(live, split_batch(len(queries), len(live))):
                submit(number, replica, start, stop)
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            number, replica, actor, start, stop = pending.pop(ready)
            load[number, replica] -= 1
            try:
                parts[number][start] = ray.get(ready)
                continue
            except failure_types(ray) as error:
                causes[number] = describe(error)
            # Only the first failure seen from an actor replaces it; later ones are its other
            # parts of this batch, which just move.
            if self.actors[number][replica] is actor and (number, replica) not in self.lost:
                if restarted[number] < self.config.retries:
                    restarted[number] += 1
                    self._restart(number, replica)
                else:
                    ray.kill(actor, no_restart=True)
                    self.lost.add((number, replica))
            live = self._live(number)
            if live:  # the least busy replica, an already running one before a fresh replacement
                submit(number, min(live, key=lambda other: (other == replica, load[number, other])), start, stop)
        missing = sorted(number for number in range(self.n_shards) if not self._complete(parts[number], len(queries)))
        if missing and not allow_partial:
            number = missing[0]
            raise ShardUnavailableError(f"shard {number} ({self.path / self.infos[number].dir}) unavailable: "
                                        f"no replica answered after {restarted[number]} restart(s): {causes[number]}")
        if missing:
            warnings.warn(f"partial results: shard(s) {missing} of {self.n_shards} did not answer",
                          PartialResultsWarning, stacklevel=2)
        answered = [number for number in range(self.n_shards) if number not in missing]
        if not answered:
            return PartialResults(*empty_results(len(queries), k), missing_shards=missing)
        shard_results = [[parts[number][start] for start in sorted(parts[number])] for number in answered]
        return PartialResults(*merge_topk([np.concatenate([s for s, _ in runs]) for runs in shard_results],
                                          [np.concatenate([r for _, r in runs]) for runs in shard_results], k),
                              missing_shards=missing)

    @staticmethod
    def _complete(parts: dict[int, tuple], n_queries: int) -> bool:
        return sum(len(scores) for scores, _ in parts.values()) == n_queries


def failure_types(ray) -> tuple[type, ...]:
    """What a lost replica raises: its actor died or never started, or its node took the answer with it."""
    exceptions = ray.exceptions
    return exceptions.RayActorError, exceptions.ActorUnschedulableError, exceptions.ObjectLostError


def describe(error: Exception) -> str:
    """One line for a Ray actor error: the exception its constructor raised, else Ray's summary."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    # A failed constructor's message ends with the original "module.Error: message" line.
    return lines[-1] if getattr(error, "actor_init_failed", False) else lines[0]


# --- distributed encoding ----------------------------------------------------------------

PLAN_FILE = "parts.json"


def plan_parts(texts: Path, rows_per_part: int) -> list[dict]:
    """Cut a collection into parts of `rows_per_part` lines: byte range and first line of each.
    A gzip file's ranges are in its decompressed text."""
    parts, start, first_line, lines = [], 0, 1, 0
    with open_binary(texts) as f:
        position = 0
        try:
            for number, line in enumerate(f, start=1):
                position += len(line)
                lines += 1
                if lines == rows_per_part:
                    parts.append({"start": start, "stop": position, "first_line": first_line})
                    start, first_line, lines = position, number + 1, 0
        except (OSError, EOFError) as e:  # a damaged or truncated gzip stream
            raise InputError(f"cannot read: {e}", texts) from None
        if lines:
            parts.append({"start": start, "stop": position, "first_line": first_line})
    return parts


def part_path(out_dir: Path, number: int) -> Path:
    return out_dir / f"part-{number:05d}.parquet"


class EncodePart:
    """The Ray Data worker: one encoder per worker, one Parquet part per call."""

    def __init__(self, texts: str, out_dir: str, load_encoder, batch_size: int):
        self.texts, self.out_dir = Path(texts), Path(out_dir)
        self.encoder = load_encoder()
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        bad_lines, problems = [], []
        for number, start, stop, first_line in zip(batch["part"], batch["start"], batch["stop"], batch["first_line"]):
            ids, texts, bad = read_text_range(self.texts, int(start), int(stop), int(first_line))
            if bad is None:
                vectors = self.encoder.encode_documents(texts, ids=ids, batch_size=self.batch_size)
                write_vectors(vectors, part_path(self.out_dir, int(number)), overwrite=True)
            bad_lines.append(0 if bad is None else bad[0])
            problems.append("" if bad is None else bad[1])
        return {"part": batch["part"], "bad_line": bad_lines, "problem": problems}


def read_text_range(texts: Path, start: int, stop: int, first_line: int
                    ) -> tuple[list[str], list[str], tuple[int, str] | None]:
    """(ids, texts, bad) of the `id<TAB>text` lines in bytes [start, stop) (of the decompressed
    text, for a gzip file: gzip has no random access, so reaching a part decompresses what
    precedes it, a small cost beside encoding the part).

    `bad` is (line number, problem) for the first malformed line, else None. It comes back
    as data: Ray would bury a raised InputError in its own wrapping.
    """
    with open_binary(texts) as f:
        f.seek(start)
        lines = f.read(stop - start).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    ids, bodies = [], []
    for number, raw in enumerate(lines, start=first_line):
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            return ids, bodies, (number, f"invalid UTF-8 at byte {e.start}")
        if not line.strip():
            continue
        try:
            record = parse_text_line(line)
        except ParameterError as e:
            return ids, bodies, (number, str(e))
        ids.append(record.id)
        bodies.append(record.text)
    return ids, bodies, None


def encode_with_ray(texts: str | os.PathLike, out_dir: str | os.PathLike, model: str = "default",
                    rows_per_part: int = 100_000, workers: int = 1, batch_size: int = 32,
                    cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, address: str | None = None,
                    load_encoder=None, **encoder_options) -> list[Path]:
    """Encode `id<TAB>text` lines into Parquet parts (``part-00000.parquet``, ...) in collection order.

    Ray Data runs `workers` encoder actors (one model each), one part per task. Each part
    is written atomically, so a rerun skips the parts already written and encodes only the
    rest. `gpus_per_worker=1` places one actor per GPU (its encoder's device "auto" then
    finds the GPU Ray gave it). `encoder_options` are `EncoderOptions` fields (device,
    dtype, batch_tokens, ...); `load_encoder` (a picklable zero-argument callable)
    overrides loading `model`. Returns every part's path, in order.
    """
    texts, out_dir = Path(texts), Path(out_dir)
    require(isinstance(rows_per_part, int) and rows_per_part >= 1, f"rows_per_part must be >= 1, got {rows_per_part!r}")
    require(isinstance(workers, int) and workers >= 1, f"workers must be >= 1, got {workers!r}")
    require(isinstance(gpus_per_worker, (int, float)) and gpus_per_worker >= 0,
            f"gpus_per_worker must be >= 0, got {gpus_per_worker!r}")
    if load_encoder is None:
        from .encoder import EncoderOptions
        from .extras import require_extra

        # A missing package or a bad option fails here, not inside every actor.
        require_extra("encode", "encoding text")
        EncoderOptions(**encoder_options)
    check_readable(texts)
    plan = {"source": texts.name, "bytes": texts.stat().st_size, "rows_per_part": rows_per_part}
    out_dir.mkdir(exist_ok=True)
    plan_file = out_dir / PLAN_FILE
    if plan_file.exists():
        recorded = json.loads(plan_file.read_text(encoding="utf-8"))
        if {key: recorded.get(key) for key in plan} != plan:
            raise ParameterError(f"{out_dir}: holds parts of another run ({PLAN_FILE}: {recorded.get('source')}, "
                                 f"rows_per_part={recorded.get('rows_per_part')}); use a fresh directory")
        parts = recorded["parts"]
    else:
        parts = plan_parts(texts, rows_per_part)
        with atomic_file(plan_file, mode="wb") as f:
            f.write((json.dumps({**plan, "parts": parts}, indent=2) + "\n").encode("utf-8"))
    pending = [{"part": number, **part} for number, part in enumerate(parts)
               if not part_path(out_dir, number).exists()]
    if pending:
        ray = import_ray()
        started_cluster = not ray.is_initialized()
        if started_cluster:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        if load_encoder is None:
            from .encoder import load_encoder as load

            load_encoder = functools.partial(load, model, **encoder_options)
        dataset = ray.data.from_items(pending).map_batches(
            EncodePart, batch_size=1, concurrency=workers, num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
            fn_constructor_kwargs={"texts": str(texts.resolve()), "out_dir": str(out_dir.resolve()),
                                   "load_encoder": load_encoder, "batch_size": batch_size})
        try:
            outcomes = dataset.take_all()
        finally:
            if started_cluster:
                ray.shutdown()
        bad = sorted((row["part"], row["bad_line"], row["problem"]) for row in outcomes if row["problem"])
        if bad:
            raise InputError(bad[0][2], texts, int(bad[0][1]))
    return [part_path(out_dir, number) for number in range(len(parts))]

