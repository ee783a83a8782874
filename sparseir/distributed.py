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

``encode_with_ray`` encodes a large collection with Ray Data: encoder actors (one model
each) write numbered Parquet parts in collection order; a rerun skips finished parts.

Ray is an optional dependency (``pip install sparseir[ray]``), imported only here, lazily.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, ParameterError, SparseirError, require
from .extras import require_extra
from .fileio import atomic_file, check_readable, is_gzip
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


def import_ray():
    require_extra("ray", "serving on Ray")
    import ray

    return ray


class DistributedIndex(SearchableBase):
    """A sharded index served by one Ray actor per shard; searches like ``Index``."""

    def __init__(self, path: str | os.PathLike, config: RayConfig | None = None, **config_values):
        self.config = config if config is not None else RayConfig(**config_values)
        self.path = Path(path).resolve()
        # The driver opens the (memory-mapped) shards only for their metadata: vocabulary,
        # ids and parameter checks; the actors do the searching.
        self.local = load_sharded(self.path)
        self.infos = self.local.infos
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

    def __repr__(self) -> str:
        return f"DistributedIndex(kind={self.kind!r}, n_docs={self.n_docs}, shards={self.n_shards})"

    def search_params(self, **knobs):
        return self.local.search_params(**knobs)

    def doc_frequency(self) -> np.ndarray:
        return self.local.doc_frequency()

    # --- actors ---------------------------------------------------------------------

    def _start(self, number: int):
        return self._start_worker(ShardWorker, number)

    def _start_worker(self, body: type, number: int):
        """An actor running `body` (ShardWorker, or a subclass) over shard `number`."""
        ray = import_ray()
        worker = ray.remote(body).options(num_cpus=self.config.cpus_per_shard, scheduling_strategy="SPREAD")
        return worker.remote(str(self.path), self.infos[number], self.kind, self.config.actor_threads)

    def _restart(self, number: int) -> None:
        ray = import_ray()
        ray.kill(self.actors[number], no_restart=True)  # it may be hung rather than dead
        self.actors[number] = self._start(number)
        self.restarts[number] += 1

    def close(self) -> None:
        """Stop the actors (and the local cluster, if this index started it)."""
        ray = import_ray()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started_cluster:
            ray.shutdown()

    # --- search ---------------------------------------------------------------------

    def search(self, queries, k: int = 10, threads: int | None = None, allow_partial: bool = False, filter=None,
               filters=None, **knobs) -> PartialResults:
        """Top-k over every shard: (scores float32, global rows int64), each (n_queries, k).

        Unpacks like ``Index.search``. With allow_partial=True a shard that stays down is
        left out (with a PartialResultsWarning) and named in ``.missing_shards``.
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
        batch = ray.put((queries.offsets, queries.terms, queries.weights))  # sent once, read by every actor
        call = (batch, k, threads, knobs)
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
            return PartialResults(*empty_results(len(queries), k), missing_shards=sorted(failures))
        ordered = [answers[number] for number in sorted(answers)]
        return PartialResults(*merge_topk([s for s, _ in ordered], [r for _, r in ordered], k),
                              missing_shards=sorted(failures))


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
    """Cut a plain-text collection into parts of `rows_per_part` lines: byte range and first line of each."""
    parts, start, first_line, lines = [], 0, 1, 0
    with open(texts, "rb") as f:
        position = 0
        for number, line in enumerate(f, start=1):
            position += len(line)
            lines += 1
            if lines == rows_per_part:
                parts.append({"start": start, "stop": position, "first_line": first_line})
                start, first_line, lines = position, number + 1, 0
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
    """(ids, texts, bad) of the `id<TAB>text` lines in bytes [start, stop).

    `bad` is (line number, problem) for the first malformed line, else None. It comes back
    as data: Ray would bury a raised InputError in its own wrapping.
    """
    with open(texts, "rb") as f:
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
    if is_gzip(check_readable(texts)):
        raise ParameterError(f"{texts}: encoding on Ray reads byte ranges; decompress the collection first")
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

