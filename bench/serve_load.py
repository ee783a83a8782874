"""Load on `sparseir serve` over loopback: throughput and latency, and live updates under load.

Throughput (the default): for each kind, the index is built over the collection and served
(`sparseir serve --query-encoder none`, vector queries), and a separate client process
drives it with C concurrent keep-alive connections (C from --clients), each sending one
query per request and waiting for its answer before the next. Each setting is bounded by
--requests and --duration, whichever comes first, after --warmup requests. Reported per
kind and C: requests, errors (any status but 200), QPS, p50 and p99 latency; and the HTTP
overhead: the server's p50 at one client minus the p50 of `Index.search` on one query in
this process, for the same queries and settings.

Live (--live): a segmented sindi index holding half the collection is served with writes on;
for --duration seconds, --searchers connections search (random queries, and checks by exact
id filter) while --writers connections add documents of the other half, upsert added ones
and delete some, a few per request. Checked: every add acknowledged is found by an id filter
by every search sent after its acknowledgement (until a delete of it is sent), and no search
sent after a delete's acknowledgement returns it; then all of them once more at the end. The
server's resident memory is sampled every second. Last, writers write again and the server
is killed (SIGKILL) mid-write, restarted, and every acknowledged write is checked there.

The client is a minimal HTTP/1.1 client over asyncio streams, in a process of its own, so
that its costs stay out of the server's: requests are serialised before the clock starts.

    python bench/serve_load.py                          # debian-pkgs: sindi, then exact; 1, 8, 64 clients
    python bench/serve_load.py --kinds exact --clients 1,8 --requests 2000
    python bench/serve_load.py --live --duration 60     # live updates under load
    python bench/serve_load.py --smoke                  # tiny synthetic run: shows it works, measures nothing
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import sparseir

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
KEY = "serve-load-bench-key-0123456789"
# Query settings of each kind: the README's recall@10 >= 0.95 setting on debian-pkgs for sindi.
BUILD = {"sindi": {"doc_prune_ratio": 0.3}, "exact": {}}
KNOBS = {"sindi": {"query_prune_ratio": 0.3, "n_candidate": 50}, "exact": {}}


# --- a minimal HTTP/1.1 client ----------------------------------------------------------------

class Connection:
    """One keep-alive connection; request() sends a POST (or GET) and reads the whole answer."""

    def __init__(self, host: str, port: int, headers: dict | None = None):
        self.host, self.port = host, port
        self.extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()).encode()
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def request(self, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if body is None:
            head = b"GET %s HTTP/1.1\r\nHost: bench\r\n%s\r\n" % (path.encode(), self.extra)
        else:
            head = (b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                    % (path.encode(), len(body), self.extra))
        self.writer.write(head + (body or b""))
        answer = await self.reader.readuntil(b"\r\n\r\n")
        status = int(answer[9:12])
        length = 0
        for line in answer.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self):
        if self.writer is not None:
            self.writer.close()


def split_url(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --- the client processes -------------------------------------------------------------------------

async def drive(url: str, bodies: list[bytes], clients: int, requests: int, duration: float, warmup: int) -> dict:
    """`clients` connections sending bodies in turn until `requests` are answered or `duration` passes."""
    host, port = split_url(url)
    connections = [await Connection(host, port).open() for _ in range(clients)]
    for n in range(warmup):  # not counted: first requests page the index in
        await connections[n % clients].request("/search", bodies[n % len(bodies)])
    latencies, statuses, taken = [], {}, iter(range(10**12))
    deadline = time.perf_counter() + duration

    async def client(connection):
        while time.perf_counter() < deadline:
            n = next(taken)
            if n >= requests:
                return
            body = bodies[n % len(bodies)]
            started = time.perf_counter()
            status, answer = await connection.request("/search", body)
            latencies.append(time.perf_counter() - started)
            if status == 200 and not answer.startswith(b'{"results"'):
                status = -1  # a 200 that is not a search answer
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(client(connection) for connection in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    done = len(latencies)
    return {"clients": clients, "requests": done, "errors": done - statuses.get(200, 0),
            "statuses": {str(code): count for code, count in statuses.items()}, "seconds": round(elapsed, 3),
            "qps": round(done / elapsed, 1), "p50_ms": round(1e3 * percentile(latencies, 50), 3),
            "p99_ms": round(1e3 * percentile(latencies, 99), 3)}


async def live_client(url: str, docs: list[tuple[str, dict]], queries: list[bytes], searchers: int, writers: int,
                      duration: float, per_write: int, seed: int) -> dict:
    """Searches, id checks and writes for `duration` s; every operation logged with its times."""
    host, port = split_url(url)
    rng = random.Random(seed)
    pending = list(docs)  # not added yet
    rng.shuffle(pending)
    live: list[str] = []  # acknowledged adds with no delete sent
    vectors = dict(docs)
    log = {"adds": {}, "upserts": 0, "delete_sent": {}, "deletes": {}, "checks": [], "searches": 0, "errors": [],
           "write_latency": [], "search_latency": []}
    deadline = time.perf_counter() + duration

    async def writer(connection):
        while time.perf_counter() < deadline and pending:
            choice = rng.random()
            if choice < 0.6 or len(live) < 2 * per_write:
                batch = [pending.pop() for _ in range(min(per_write, len(pending)))]
                body, upsert = {"documents": [{"id": i, "vector": v} for i, v in batch]}, False
            elif choice < 0.8:
                ids = rng.sample(live, per_write)
                body, upsert = {"documents": [{"id": i, "vector": vectors[i]} for i in ids], "upsert": True}, True
            else:
                ids = rng.sample(live, per_write)
                for doc_id in ids:
                    live.remove(doc_id)
                    log["delete_sent"][doc_id] = time.perf_counter()
                body, upsert = {"ids": ids}, None
            started = time.perf_counter()
            path = "/documents/delete" if upsert is None else "/documents"
            status, answer = await connection.request(path, json.dumps(body).encode())
            acked = time.perf_counter()
            log["write_latency"].append(acked - started)
            if status != 200:
                log["errors"].append(f"{path}: {status} {answer[:200]!r}")
                continue
            if upsert is None:
                log["deletes"].update({doc_id: acked for doc_id in body["ids"]})
            elif upsert:
                log["upserts"] += len(body["documents"])
            else:
                for document in body["documents"]:
                    log["adds"][document["id"]] = acked
                    live.append(document["id"])

    async def searcher(connection):
        while time.perf_counter() < deadline:
            if rng.random() < 0.7 or not log["adds"]:
                started = time.perf_counter()
                status, answer = await connection.request("/search", rng.choice(queries))
                log["search_latency"].append(time.perf_counter() - started)
                log["searches"] += 1
                if status != 200:
                    log["errors"].append(f"/search: {status} {answer[:200]!r}")
                continue
            doc_id = rng.choice(list(log["deletes"]) if log["deletes"] and rng.random() < 0.3 else list(log["adds"]))
            log["checks"].append(await check(connection, doc_id, vectors[doc_id]))

    connections = [await Connection(host, port, {"Authorization": f"Bearer {KEY}"}).open()
                   for _ in range(searchers + writers)]
    await asyncio.gather(*(writer(c) for c in connections[:writers]), *(searcher(c) for c in connections[writers:]))
    for doc_id in list(log["adds"]) + list(log["deletes"]):  # every acknowledged write once more, at the end
        log["checks"].append(await check(connections[0], doc_id, vectors[doc_id]))
    for connection in connections:
        connection.close()
    return log


async def check(connection, doc_id: str, vector: dict) -> tuple:
    """(id, sent, answered, found): a search for the document by its own vector and an exact id filter
    (an id the generation does not hold is a 400: not found)."""
    body = json.dumps({"queries": [{"vector": vector}], "k": 1, "filter": {"ids": [doc_id]}}).encode()
    sent = time.perf_counter()
    status, answer = await connection.request("/search", body)
    found = status == 200 and bool(json.loads(answer)["results"][0]["hits"])
    return doc_id, sent, time.perf_counter(), found, status


def violations(log: dict) -> list[str]:
    """Checks that contradict an acknowledgement (the rules in the module docstring)."""
    out = []
    for doc_id, sent, answered, found, status in log["checks"]:
        if status not in (200, 400):
            out.append(f"{doc_id}: status {status}")
        elif doc_id in log["deletes"] and sent > log["deletes"][doc_id] and found:
            out.append(f"{doc_id}: returned after its delete was acknowledged")
        elif (doc_id in log["adds"] and sent > log["adds"][doc_id]
              and answered < log["delete_sent"].get(doc_id, float("inf")) and not found):
            out.append(f"{doc_id}: not found after its add was acknowledged")
    return out


async def write_until_killed(url: str, docs: list[tuple[str, dict]], log_path: str, per_write: int) -> None:
    """Add, then delete every other batch, logging each acknowledged write, until the server goes."""
    host, port = split_url(url)
    connection = await Connection(host, port, {"Authorization": f"Bearer {KEY}"}).open()
    with open(log_path, "a") as log:  # appended as acknowledged, flushed: what a kill leaves is all there
        for start in range(0, len(docs), per_write):
            ids = [doc_id for doc_id, _ in docs[start:start + per_write]]
            body = json.dumps({"documents": [{"id": i, "vector": v} for i, v in docs[start:start + per_write]]})
            try:
                if (await connection.request("/documents", body.encode()))[0] == 200:
                    log.write(json.dumps({"op": "add", "ids": ids}) + "\n")
                    log.flush()
                if start // per_write % 2:
                    log.write(json.dumps({"op": "delete_sent", "ids": ids}) + "\n")
                    log.flush()
                    if (await connection.request("/documents/delete", json.dumps({"ids": ids}).encode()))[0] == 200:
                        log.write(json.dumps({"op": "delete", "ids": ids}) + "\n")
                        log.flush()
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                return


def client_main(argv: list[str]) -> None:
    """The client process: `serve_load.py client JOB.json` prints its result as JSON."""
    job = json.loads(Path(argv[0]).read_text())
    if job["mode"] == "drive":
        bodies = [line.encode() for line in Path(job["bodies"]).read_text().splitlines()]
        result = asyncio.run(drive(job["url"], bodies, job["clients"], job["requests"], job["duration"],
                                   job["warmup"]))
    elif job["mode"] == "live":
        docs = [tuple(pair) for pair in json.loads(Path(job["docs"]).read_text())]
        queries = [line.encode() for line in Path(job["bodies"]).read_text().splitlines()]
        result = asyncio.run(live_client(job["url"], docs, queries, job["searchers"], job["writers"],
                                         job["duration"], job["per_write"], job["seed"]))
    else:
        docs = [tuple(pair) for pair in json.loads(Path(job["docs"]).read_text())]
        asyncio.run(write_until_killed(job["url"], docs, job["log"], job["per_write"]))
        result = {}
    print(json.dumps(result))


def run_client(job: dict, scratch: Path, timeout: float) -> dict:
    path = scratch / f"job-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(job))
    done = subprocess.run([sys.executable, __file__, "client", str(path)], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"the client failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


# --- the server --------------------------------------------------------------------------------------

def start_server(index_dir: Path, *options: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "sparseir", "serve", str(index_dir), "--host", "127.0.0.1",
                                "--port", "0", "--query-encoder", "none", *options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if line.startswith("serving "):
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep its pipe drained
            return process, line.rsplit(" on ", 1)[1].strip()
    raise SystemExit(f"the server did not start (exit status {process.wait()})")


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=120)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def knob_options(knobs: dict) -> list[str]:
    return [part for name, value in knobs.items() for part in ("--" + name.replace("_", "-"), str(value))]


# --- the two modes ------------------------------------------------------------------------------------

def throughput(args, docs, queries, scratch: Path) -> list[dict]:
    bodies_path = scratch / "bodies.jsonl"
    bodies_path.write_text("\n".join(json.dumps({"queries": [{"vector": queries[q].as_dict(queries.vocab)}],
                                                 "k": args.k}) for q in range(len(queries))))
    rows = []
    for kind in args.kinds:
        index_dir = scratch / f"index-{kind}"
        sparseir.build_index(docs, kind=kind, **BUILD.get(kind, {})).save(index_dir, overwrite=True)
        index = sparseir.load_index(index_dir)
        index.warmup()
        knobs = KNOBS.get(kind, {})
        times = []
        for q in range(min(len(queries), args.requests)):
            started = time.perf_counter()
            index.search(queries[q:q + 1], k=args.k, **knobs)
            times.append(time.perf_counter() - started)
        in_process_p50 = 1e3 * statistics.median(times)
        del index
        process, url = start_server(index_dir, "--max-batch", str(args.max_batch), "--max-wait-us",
                                    str(args.max_wait_us), *knob_options(knobs))
        try:
            for clients in args.clients:
                result = run_client({"mode": "drive", "url": url, "bodies": str(bodies_path), "clients": clients,
                                     "requests": args.requests, "duration": args.duration, "warmup": args.warmup},
                                    scratch, timeout=args.duration + 600)
                row = {"kind": kind, "settings": knobs, **result, "in_process_p50_ms": round(in_process_p50, 3)}
                if clients == 1:
                    row["http_overhead_p50_ms"] = round(result["p50_ms"] - in_process_p50, 3)
                rows.append(row)
                print(f"{kind:6} clients={clients:3}  {result['requests']:7,} requests  errors {result['errors']}  "
                      f"QPS {result['qps']:9,.1f}  p50 {result['p50_ms']:8.3f} ms  p99 {result['p99_ms']:8.3f} ms"
                      + (f"  (in-process p50 {in_process_p50:.3f} ms; HTTP overhead "
                         f"{row['http_overhead_p50_ms']:.3f} ms)" if clients == 1 else ""), flush=True)
        finally:
            rows.append({"kind": kind, "server_exit_status": stop_server(process)})
    return rows


def live(args, docs, queries, scratch: Path) -> dict:
    from sparseir.segments import create_segmented

    half = len(docs) // 2
    index_dir = scratch / "live"
    create_segmented(index_dir, kind="sindi", **BUILD["sindi"]).add(docs[:half])
    key_file = scratch / "api.key"
    key_file.write_text(KEY)
    rest = [(str(docs.ids[row]), docs[row].as_dict(docs.vocab)) for row in range(half, len(docs))]
    bodies_path = scratch / "bodies.jsonl"
    bodies_path.write_text("\n".join(json.dumps({"queries": [{"vector": queries[q].as_dict(queries.vocab)}],
                                                 "k": args.k}) for q in range(len(queries))))
    cut = len(rest) * 3 // 4
    (scratch / "docs.json").write_text(json.dumps(rest[:cut]))
    (scratch / "kill-docs.json").write_text(json.dumps(rest[cut:]))
    options = ["--api-key-file", str(key_file), *knob_options(KNOBS["sindi"])]
    process, url = start_server(index_dir, *options)
    samples, sampling = [], threading.Event()

    def sample():
        started = time.monotonic()
        while not sampling.wait(1.0):
            value = rss_mb(process.pid)
            if value is not None:
                samples.append((round(time.monotonic() - started, 1), round(value, 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log = run_client({"mode": "live", "url": url, "docs": str(scratch / "docs.json"), "bodies": str(bodies_path),
                      "searchers": args.searchers, "writers": args.writers, "duration": args.duration,
                      "per_write": args.per_write, "seed": 0}, scratch, timeout=args.duration + 1200)
    sampling.set()
    sampler.join()
    bad = violations(log)
    middle = [mb for t, mb in samples if t >= args.duration / 2]
    result = {"duration_s": args.duration, "searchers": args.searchers, "writers": args.writers,
              "searches": log["searches"], "adds": len(log["adds"]), "upserts": log["upserts"],
              "deletes": len(log["deletes"]), "checks": len(log["checks"]), "violations": bad[:20],
              "n_violations": len(bad), "errors": log["errors"][:20], "n_errors": len(log["errors"]),
              "search_p50_ms": round(1e3 * percentile(log["search_latency"], 50), 3),
              "search_p99_ms": round(1e3 * percentile(log["search_latency"], 99), 3),
              "write_p50_ms": round(1e3 * percentile(log["write_latency"], 50), 3),
              "rss_mb": {"samples": samples, "max": max((mb for _, mb in samples), default=None),
                         "second_half_growth": round(middle[-1] - middle[0], 1) if len(middle) > 1 else None}}
    print(f"live: {result['searches']:,} searches, {result['adds']:,} adds, {result['upserts']:,} upserts, "
          f"{result['deletes']:,} deletes, {result['checks']:,} id checks: {result['n_violations']} violations, "
          f"{result['n_errors']} errors; search p50 {result['search_p50_ms']} ms p99 {result['search_p99_ms']} ms; "
          f"RSS max {result['rss_mb']['max']} MB, second half {result['rss_mb']['second_half_growth']} MB", flush=True)
    result["kill_9"] = kill_during_writes(args, process, url, index_dir, options, scratch)
    return result


def kill_during_writes(args, process, url, index_dir: Path, options: list[str], scratch: Path) -> dict:
    """Write, SIGKILL the server mid-write, restart it, check every acknowledged write."""
    log_path = scratch / "kill-log.jsonl"
    job = scratch / "kill-job.json"
    job.write_text(json.dumps({"mode": "kill", "url": url, "docs": str(scratch / "kill-docs.json"),
                               "log": str(log_path), "per_write": args.per_write}))
    writer = subprocess.Popen([sys.executable, __file__, "client", str(job)], stdout=subprocess.DEVNULL)
    waited = time.monotonic()
    while not (log_path.exists() and log_path.stat().st_size) and writer.poll() is None \
            and time.monotonic() - waited < 120:  # the writer's first acknowledged write, then the clock
        time.sleep(0.05)
    time.sleep(args.kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    writer.wait(timeout=120)
    ops = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    added = {doc_id for op in ops if op["op"] == "add" for doc_id in op["ids"]}
    delete_sent = {doc_id for op in ops if op["op"] == "delete_sent" for doc_id in op["ids"]}
    deleted = {doc_id for op in ops if op["op"] == "delete" for doc_id in op["ids"]}
    process, url = start_server(index_dir, *options)
    vectors = dict(tuple(pair) for pair in json.loads((scratch / "kill-docs.json").read_text()))

    async def verify():
        host, port = split_url(url)
        connection = await Connection(host, port).open()
        wrong = []
        for doc_id in sorted(added):
            _, _, _, found, status = await check(connection, doc_id, vectors[doc_id])
            if doc_id in deleted and found:
                wrong.append(f"{doc_id}: deleted (acknowledged) but present after the restart")
            elif doc_id not in delete_sent and not found:
                wrong.append(f"{doc_id}: added (acknowledged) but missing after the restart")
        connection.close()
        return wrong

    wrong = asyncio.run(verify())
    status = stop_server(process)
    print(f"kill -9 during writes: {len(added)} acknowledged adds, {len(deleted)} acknowledged deletes; "
          f"{len(wrong)} missing or wrong after the restart", flush=True)
    return {"acknowledged_adds": len(added), "acknowledged_deletes": len(deleted), "wrong": wrong[:20],
            "n_wrong": len(wrong), "restarted_server_exit_status": status}


def load_collection(args, scratch: Path):
    if args.smoke:
        from sparseir.bench.synthetic import generate

        generate(scratch / "synthetic", n_docs=3000, n_queries=200, log=lambda *a, **k: None)
        docs = sparseir.read_vectors(scratch / "synthetic" / "collection")
        return docs, sparseir.read_vectors(scratch / "synthetic" / "queries.parquet", vocab=docs.vocab)
    vectors = Path(args.dataset) / "vectors"
    docs = sparseir.read_vectors(vectors / "collection.jsonl.gz")
    return docs, sparseir.read_vectors(vectors / "queries.jsonl.gz", vocab=docs.vocab)


def main() -> None:
    if sys.argv[1:2] == ["client"]:
        return client_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=str(DATA / "debian-pkgs"), help="directory with vectors/ (collection and "
                        "queries .jsonl.gz)")
    parser.add_argument("--kinds", default="sindi,exact", type=lambda text: text.split(","))
    parser.add_argument("--clients", default="1,8,64", type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--requests", type=int, default=4000, help="most requests per setting")
    parser.add_argument("--duration", type=float, default=30.0, help="most seconds per setting (live: the run)")
    parser.add_argument("--warmup", type=int, default=200, help="requests before each setting, not counted")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-us", type=int, default=200)
    parser.add_argument("--live", action="store_true", help="live updates under load instead of throughput")
    parser.add_argument("--searchers", type=int, default=8)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--per-write", type=int, default=5, help="documents per write request")
    parser.add_argument("--kill-after", type=float, default=3.0, help="seconds of writes before the kill -9")
    parser.add_argument("--smoke", action="store_true", help="a tiny synthetic run (3,000 documents, seconds)")
    parser.add_argument("-o", "--output", help="JSON results (default: bench/results/serve_load[_live].json)")
    args = parser.parse_args()
    if args.smoke:
        args.kinds, args.clients, args.requests, args.warmup = ["exact"], [1, 4], 200, 20
        args.duration, args.searchers, args.writers, args.kill_after = min(args.duration, 3.0), 2, 1, 1.0
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        scratch = Path(tmp)
        docs, queries = load_collection(args, scratch)
        print(f"{len(docs):,} documents, {len(queries):,} queries; {os.cpu_count()} CPUs", flush=True)
        result = {"documents": len(docs), "queries": len(queries), "cpus": os.cpu_count(),
                  "smoke": args.smoke, "max_batch": args.max_batch, "max_wait_us": args.max_wait_us}
        if args.live:
            result["live"] = live(args, docs, queries, scratch)
        else:
            result["throughput"] = throughput(args, docs, queries, scratch)
    output = Path(args.output) if args.output else RESULTS / f"serve_load{'_live' if args.live else ''}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {output}")


if __name__ == "__main__":
    main()
