"""The server's settings and the limits it holds every request to."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import require
from ..expressions import MAX_FILTER_LENGTH

# The largest k a search may ask for: beyond it, a results list is a bulk export, not a search.
MAX_K = 10_000
# Longest text query or document text, in characters (the encoder truncates at its own token limit).
MAX_TEXT = 100_000
__all__ = ["MAX_FILTER_LENGTH", "MAX_K", "MAX_TEXT", "ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """How the server batches and what it accepts.

    max_batch: queries per batch call; max_wait_us: how long the first request of a batch
    waits for others to join it (no wait once the batch is full, or when it has waited in
    the queue that long already); queue_size: requests waiting for the search thread, past
    which a request is answered 503; timeout: seconds a search or explain may take from its
    arrival, past which it is answered 504; max_body_bytes: a larger body is answered 413;
    max_queries, max_terms: queries per request and terms per query.
    """

    max_batch: int = 32
    max_wait_us: int = 200
    queue_size: int = 1024
    timeout: float = 30.0
    max_body_bytes: int = 8 << 20
    max_queries: int = 1000
    max_terms: int = 4096

    def __post_init__(self):
        for name, low in (("max_batch", 1), ("max_wait_us", 0), ("queue_size", 1), ("max_body_bytes", 1024),
                          ("max_queries", 1), ("max_terms", 1)):
            value = getattr(self, name)
            require(isinstance(value, int) and not isinstance(value, bool) and value >= low,
                    f"{name} must be an integer >= {low}, got {value!r}")
        require(self.max_wait_us <= 1_000_000, f"max_wait_us must be at most 1,000,000 (1 s), got {self.max_wait_us}")
        require(isinstance(self.timeout, (int, float)) and not isinstance(self.timeout, bool) and self.timeout > 0,
                f"timeout must be a number of seconds > 0, got {self.timeout!r}")

    def limits(self) -> dict:
        return {"max_k": MAX_K, "max_queries": self.max_queries, "max_terms": self.max_terms,
                "max_filter_length": MAX_FILTER_LENGTH, "max_text": MAX_TEXT, "max_body_bytes": self.max_body_bytes,
                "timeout_s": self.timeout}

    def batching(self) -> dict:
        return {"max_batch": self.max_batch, "max_wait_us": self.max_wait_us, "queue_size": self.queue_size}
