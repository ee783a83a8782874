"""Micro-batching: concurrent requests coalesced into one batch call, run in a worker thread.

Requests arrive on the event loop; each is a job with a key (what must be equal for jobs to
share a call: the search settings) and a size (its queries). The worker thread takes the
oldest job, then every queued job of the same key, in arrival order, while the batch holds
at most ``max_batch`` queries. It waits for more only while other requests are arriving
(announced by ``arrival()`` as they come in, before their bodies are read, and not yet
queued), and only until the oldest job has waited ``max_wait_us`` since it was queued: a
lone request never waits, and under load a batch takes what queued while the previous one
ran plus what was on its way. A job larger than ``max_batch`` runs alone. The batch call
runs in the worker, so the event loop keeps accepting and answering requests meanwhile;
the kernels spread a batch over every core.

The queue is bounded: a job arriving at ``queue_size`` queued jobs is refused
(``Overloaded``, answered 503). A job given up by its request (its time limit passed)
is skipped if it has not started.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any, Callable, Hashable


class Overloaded(Exception):
    """The queue is full."""


class Arrival:
    """A request on its way to the queue: the worker may wait for it (``Batcher.arrival``)."""

    __slots__ = ("batcher", "pending")

    def __init__(self, batcher: "Batcher"):
        self.batcher, self.pending = batcher, True

    def done(self) -> None:
        """Queued, or given up: no longer on its way (idempotent)."""
        with self.batcher._ready:
            self.batcher._settle(self)


class Job:
    __slots__ = ("key", "payload", "size", "future", "loop", "arrived", "abandoned")

    def __init__(self, key, payload, size: int, future: asyncio.Future, loop: asyncio.AbstractEventLoop):
        self.key, self.payload, self.size = key, payload, size
        self.future, self.loop = future, loop
        self.arrived = time.monotonic()
        self.abandoned = False


def deliver(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():  # cancelled: its request stopped waiting
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """run(key, payloads) -> one result or exception per payload, called in the worker thread
    with jobs of one key; a job whose key is None carries a callable run alone (explain)."""

    def __init__(self, run: Callable[[Hashable, list], list], max_batch: int, max_wait_us: int, queue_size: int,
                 on_batch: Callable[[int], None] | None = None):
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_us / 1e6
        self.queue_size = queue_size
        self.on_batch = on_batch
        self._queue: deque[Job] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._arriving = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def arrival(self) -> Arrival:
        """Announce a request that will submit a job soon; call its done() when it has or never will."""
        with self._ready:
            self._arriving += 1
        return Arrival(self)

    def _settle(self, arrival: Arrival | None) -> None:  # under self._ready
        if arrival is not None and arrival.pending:
            arrival.pending = False
            self._arriving -= 1
            self._ready.notify()

    async def submit(self, key: Hashable, payload, size: int = 1, arrival: Arrival | None = None) -> Any:
        """The job's result, once the worker has run it (raises what the run raised); `arrival`,
        the request's announcement, is settled as the job is queued."""
        loop = asyncio.get_running_loop()
        job = Job(key, payload, size, loop.create_future(), loop)
        with self._ready:
            self._settle(arrival)
            if self._closing:
                raise Overloaded("the server is shutting down")
            if len(self._queue) >= self.queue_size:
                raise Overloaded(f"{len(self._queue)} requests are queued")
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="sparseir-search", daemon=True)
                self._thread.start()
            self._ready.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            job.abandoned = True  # a time limit passed: the worker skips it if it has not started
            raise

    async def call(self, function: Callable[[], Any], arrival: Arrival | None = None) -> Any:
        """Run `function` alone in the worker thread (a job of key None)."""
        return await self.submit(None, function, 1, arrival)

    def close(self) -> None:
        """Run what is queued, then stop the worker."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join()

    # --- the worker thread --------------------------------------------------------

    def _next_batch(self) -> list[Job] | None:
        with self._ready:
            while True:
                while self._queue and self._queue[0].abandoned:
                    self._queue.popleft()
                if self._queue:
                    break
                if self._closing:
                    return None
                self._ready.wait()
            first = self._queue.popleft()
            batch, size = [first], first.size
            if first.key is None:
                return batch
            deadline = first.arrived + self.max_wait
            while size < self.max_batch:
                kept = deque()
                for job in self._queue:  # same key and room for it, in arrival order; the rest stay queued
                    if not job.abandoned and job.key == first.key and size + job.size <= self.max_batch:
                        batch.append(job)
                        size += job.size
                    elif not job.abandoned:
                        kept.append(job)
                self._queue = kept
                remaining = deadline - time.monotonic()
                if size >= self.max_batch or remaining <= 0 or self._arriving == 0 or self._closing:
                    break
                self._ready.wait(remaining)
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch[0].key is None:
                outcomes = [self._guarded(batch[0].payload)]
            else:
                if self.on_batch is not None:
                    self.on_batch(sum(job.size for job in batch))
                try:
                    outcomes = self.run(batch[0].key, [job.payload for job in batch])
                except BaseException as error:  # noqa: BLE001 - every waiting request gets it
                    outcomes = [error] * len(batch)
            for job, outcome in zip(batch, outcomes):
                error = outcome if isinstance(outcome, BaseException) else None
                try:
                    job.loop.call_soon_threadsafe(deliver, job.future, None if error else outcome, error)
                except RuntimeError:  # its event loop has closed: nobody waits for it
                    pass

    @staticmethod
    def _guarded(function):
        try:
            return function()
        except BaseException as error:  # noqa: BLE001 - handed to the request that asked
            return error
