"""The server's counters and histograms, written in Prometheus' text exposition format (0.0.4).

Labels take only values the server chooses (its endpoints, status codes and reasons), never
a request's path or content, so that the number of series stays fixed.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last: above every bucket (+Inf only)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: dict) -> list[str]:
        out, cumulative = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts):
            cumulative += count
            out.append(f"{name}_bucket{render_labels({**labels, 'le': number(bound)})} {cumulative}")
        out.append(f"{name}_sum{render_labels(labels)} {number(self.total)}")
        out.append(f"{name}_count{render_labels(labels)} {self.count}")
        return out


def number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


def render_labels(labels: dict) -> str:
    if not labels:
        return ""
    escaped = (str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for value in labels.values())
    return "{" + ",".join(f'{key}="{value}"' for key, value in zip(labels, escaped)) + "}"


class Metrics:
    """Thread-safe: requests are counted on the event loop, batches in the search thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency: dict[str, Histogram] = {}
        self._errors: dict[tuple[str, int], int] = defaultdict(int)
        self._rejected: dict[str, int] = defaultdict(int)
        self._batches = Histogram(BATCH_BUCKETS)
        self._queries = 0

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[endpoint, method, status] += 1
            histogram = self._latency.get(endpoint)
            if histogram is None:
                histogram = self._latency[endpoint] = Histogram(LATENCY_BUCKETS)
            histogram.observe(seconds)
            if status >= 400:
                self._errors[endpoint, status] += 1

    def batch(self, n_queries: int) -> None:
        with self._lock:
            self._batches.observe(n_queries)
            self._queries += n_queries

    def rejected(self, reason: str) -> None:
        with self._lock:
            self._rejected[reason] += 1

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """The exposition text; `gauges`: name -> (help, value), read at scrape time."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        with self._lock:
            family("sparseir_requests_total", "counter", "HTTP requests answered, by endpoint, method and status.")
            for (endpoint, method, status), count in sorted(self._requests.items()):
                labels = {"endpoint": endpoint, "method": method, "status": status}
                lines.append(f"sparseir_requests_total{render_labels(labels)} {count}")
            family("sparseir_request_duration_seconds", "histogram", "Time from a request's arrival to its answer.")
            for endpoint, histogram in sorted(self._latency.items()):
                lines.extend(histogram.lines("sparseir_request_duration_seconds", {"endpoint": endpoint}))
            family("sparseir_errors_total", "counter", "Requests answered with a 4xx or 5xx status.")
            for (endpoint, status), count in sorted(self._errors.items()):
                lines.append(f"sparseir_errors_total{render_labels({'endpoint': endpoint, 'status': status})} {count}")
            family("sparseir_rejected_total", "counter", "Searches refused: queue full (503) or over time (504).")
            for reason, count in sorted(self._rejected.items()):
                lines.append(f"sparseir_rejected_total{render_labels({'reason': reason})} {count}")
            family("sparseir_batch_queries", "histogram", "Queries per batch call of the search thread.")
            lines.extend(self._batches.lines("sparseir_batch_queries", {}))
            family("sparseir_queries_total", "counter", "Queries searched.")
            lines.append(f"sparseir_queries_total {self._queries}")
        for name, (help_text, value) in gauges.items():
            family(name, "gauge", help_text)
            lines.append(f"{name} {number(value)}")
        return "\n".join(lines) + "\n"
