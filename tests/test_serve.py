"""sparseir serve: the HTTP API against Index.search and Index.explain, bad requests, writes, batching.

The fast set runs the application in-process (fastapi's TestClient, httpx's ASGI transport)
over small random collections; the slow set takes the shared scifact vectors, the embedded
model, a real server process (SIGTERM, kill -9) and a headless Chromium.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

pytest.importorskip("fastapi", reason="sparseir serve needs the serve extra")
httpx = pytest.importorskip("httpx", reason="the serve tests' client is httpx")
from fastapi.testclient import TestClient  # noqa: E402

import sparseir  # noqa: E402
from sparseir.cli import cli  # noqa: E402
from sparseir.segments import create_segmented  # noqa: E402
from sparseir.serve.app import create_app  # noqa: E402
from sparseir.serve.config import ServeConfig  # noqa: E402
from sparseir.serve.passages import Passages  # noqa: E402
from sparseir.serve.service import Service  # noqa: E402

from conftest import random_vectors  # noqa: E402

KEY = "k" * 16 + "-serve-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def docs():
    return random_vectors(np.random.default_rng(11), 400, 120, 10)


@pytest.fixture(scope="module")
def queries():
    return random_vectors(np.random.default_rng(12), 24, 120, 5, prefix="q")


@pytest.fixture(scope="module")
def exact(docs):
    return sparseir.build_index(docs, kind="exact")


@pytest.fixture(scope="module")
def sindi(docs):
    return sparseir.build_index(docs, kind="sindi", doc_prune_ratio=0.3)


def as_dict(vectors, row: int) -> dict:
    return vectors[row].as_dict(vectors.vocab)


def served(index, **options):
    """A TestClient over a fresh service (its lifespan runs: closing drains the batcher)."""
    config = options.pop("config", ServeConfig())
    return TestClient(create_app(Service(index, config, **options)))


def expected(index, query_dicts, k, filter=None, **knobs):
    scores, rows = index.search(query_dicts, k=k, filter=filter, **knobs)
    return [[(str(index.doc_ids[row]), float(score)) for score, row in zip(scores[q], rows[q]) if row >= 0]
            for q in range(len(query_dicts))]


def answered(response) -> list:
    assert response.status_code == 200, response.text
    return [[(hit["id"], hit["score"]) for hit in result["hits"]] for result in response.json()["results"]]


def assert_one_line_error(response, status: int | tuple):
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], body


# --- search and explain equal the Python API ------------------------------------------------

@settings(max_examples=20)
@given(rows=st.lists(st.integers(0, 23), min_size=1, max_size=5), k=st.integers(1, 30),
       n_candidate=st.sampled_from([None, 5, 40]), prune=st.sampled_from([None, 0.0, 0.4]),
       filtered=st.booleans())
def test_search_equals_index_search(exact, sindi, docs, queries, rows, k, n_candidate, prune, filtered):
    query_dicts = [as_dict(queries, row) for row in rows]
    allowed = [str(docs.ids[row]) for row in range(0, len(docs), 3)] if filtered else None
    for index, knobs in ((exact, {}), (sindi, {name: value for name, value in (("n_candidate", n_candidate),
                                                                                ("query_prune_ratio", prune))
                                               if value is not None})):
        with served(index) as client:
            body = {"queries": [{"id": f"q{n}", "vector": vector} for n, vector in enumerate(query_dicts)], "k": k,
                    "params": knobs}
            if filtered:
                body["filter"] = {"ids": allowed}
            response = client.post("/search", json=body)
            assert answered(response) == expected(index, query_dicts, k, allowed, **knobs)
            results = response.json()["results"]
            assert [result["id"] for result in results] == [f"q{n}" for n in range(len(rows))]
            assert all([hit["rank"] for hit in result["hits"]] == list(range(1, len(result["hits"]) + 1))
                       for result in results)


def test_server_side_defaults_apply_to_requests_without_settings(sindi, queries):
    query = as_dict(queries, 0)
    with served(sindi, defaults={"n_candidate": 3, "query_prune_ratio": 0.5}) as client:
        assert answered(client.post("/search", json={"queries": [{"vector": query}], "k": 10})) == \
            expected(sindi, [query], 10, n_candidate=3, query_prune_ratio=0.5)
        assert client.get("/info").json()["settings"]["search"] == {"n_candidate": 3, "query_prune_ratio": 0.5}


def test_concurrent_single_queries_share_batch_calls_and_equal_index_search(exact, queries):
    """16 requests at once, a generous wait: they are coalesced (fewer calls than requests), and
    each still gets exactly its own Index.search result."""
    service = Service(exact, ServeConfig(max_batch=8, max_wait_us=200_000))
    app = create_app(service)
    calls = []
    service.metrics.batch = calls.append  # what the batcher reports per batch call
    service.batcher.on_batch = service.metrics.batch

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
            return await asyncio.gather(*(client.post("/search", json={"queries": [{"vector": as_dict(queries, q)}],
                                                                         "k": 5}) for q in range(16)))

    try:
        responses = asyncio.run(run())
    finally:
        service.close()
    for q, response in enumerate(responses):
        assert answered(response) == expected(exact, [as_dict(queries, q)], 5)
    assert sum(calls) == 16 and len(calls) < 16 and max(calls) <= 8


def test_explain_adds_up_to_the_exact_score(exact, sindi, docs, queries):
    for index in (exact, sindi):
        with served(index) as client:
            for q in range(6):
                query = as_dict(queries, q)
                for doc_id, score in expected(index, [query], 3)[0]:
                    response = client.post("/explain", json={"query": {"vector": query}, "id": doc_id})
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert body == index.explain(query, doc_id).as_dict()
                    total = sum(term["contribution"] for term in body["terms"])
                    assert abs(total - body["exact_score"]) <= 1e-5 * max(1.0, abs(total))
                    assert body["score"] == score  # the kind's own score, as its search gave it
                    truth = float(np.dot(*[np.array([vector.get(t, 0.0) for t in query], dtype=np.float64)
                                           for vector in (query, as_dict(docs, int(doc_id[1:])))]))
                    assert body["exact_score"] == pytest.approx(truth, rel=2e-3)  # sindi keeps float16 weights


def test_sharded_and_empty_segmented_indexes_are_served(tmp_path, docs, queries):
    from sparseir.sharded import build_sharded

    sharded = build_sharded(docs, tmp_path / "sharded", shards=3, kind="sindi")
    query = as_dict(queries, 2)
    with served(sharded) as client:
        assert client.get("/info").json()["shape"] == "sharded"
        assert answered(client.post("/search", json={"queries": [{"vector": query}], "k": 7})) == \
            expected(sharded, [query], 7)
        doc_id = expected(sharded, [query], 1)[0][0][0]
        assert client.post("/explain", json={"query": {"vector": query}, "id": doc_id}).json() == \
            sharded.explain(query, doc_id).as_dict()
    empty = create_segmented(tmp_path / "empty", kind="sindi")
    with served(empty, api_key=KEY) as client:
        info = client.get("/info").json()
        assert info["documents"] == 0 and info["vocabulary"] is None
        assert answered(client.post("/search", json={"queries": [{"vector": query}]})) == [[]]
        # The first documents set the vocabulary (here an open one: their terms are not BERT's).
        added = client.post("/documents", json={"documents": [{"id": str(docs.ids[row]), "vector": as_dict(docs, row)}
                                                               for row in range(50)]}, headers=AUTH)
        assert added.status_code == 200 and added.json()["documents"] == 50, added.text
        assert client.get("/info").json()["vocabulary"]["open"] is True
        assert answered(client.post("/search", json={"queries": [{"vector": query}], "k": 5})) == \
            expected(sparseir.load_index(tmp_path / "empty"), [query], 5)


# --- bad requests ----------------------------------------------------------------------------

def bad_requests(docs):
    vector = as_dict(docs, 0)
    good = {"queries": [{"vector": vector}]}
    return [
        ("malformed JSON", "POST", "/search", '{"queries": [', 400),
        ("not JSON at all", "POST", "/search", "queries=1", 400),
        ("no body", "POST", "/search", "", 422),
        ("a JSON array", "POST", "/search", [1, 2], 422),
        ("a wrong type", "POST", "/search", {"queries": [{"vector": {"t1": "heavy"}}]}, 422),
        ("k as a string", "POST", "/search", {**good, "k": "10"}, 422),
        ("queries not a list", "POST", "/search", {"queries": {"vector": vector}}, 422),
        ("an unknown field", "POST", "/search", {**good, "limit": 5}, 422),
        ("an unknown query field", "POST", "/search", {"queries": [{"vector": vector, "boost": 2}]}, 422),
        ("vector and text", "POST", "/search", {"queries": [{"vector": vector, "text": "x"}]}, 422),
        ("no queries", "POST", "/search", {"queries": []}, 422),
        ("an unknown term, closed vocabulary", "POST", "/search", {"queries": [{"vector": {"zebra": 1.0}}]}, 400),
        ("a negative weight", "POST", "/search", {"queries": [{"vector": {"t1": -1.0}}]}, 422),
        ("a NaN weight", "POST", "/search", '{"queries": [{"vector": {"t1": NaN}}]}', 422),
        ("a huge body", "POST", "/search", {"queries": [{"text": "x" * (9 << 20)}]}, 413),
        ("k = 10^9", "POST", "/search", {**good, "k": 10**9}, 422),
        ("k = 0", "POST", "/search", {**good, "k": 0}, 422),
        ("10^5 terms", "POST", "/search", {"queries": [{"vector": {f"t{i}": 1.0 for i in range(10**5)}}]}, 422),
        ("too many queries", "POST", "/search", {"queries": [{"vector": vector}] * 1001}, 422),
        ("a 10 kB filter", "POST", "/search", {**good, "filter": "year > 1 or " * 1000}, 422),
        ("a filter on attributes the index lacks", "POST", "/search", {**good, "filter": "year > 1"}, 400),
        ("a filter id not in the index", "POST", "/search", {**good, "filter": {"ids": ["nope"]}}, 400),
        ("an unknown setting", "POST", "/search", {**good, "params": {"nprobe": 3}}, 400),
        ("a setting out of range", "POST", "/search", {**good, "params": {"n_candidate": -1}}, 400),
        ("a setting of a list", "POST", "/search", {**good, "params": {"n_candidate": [1]}}, 422),
        ("text without an encoder", "POST", "/search", {"queries": [{"text": "hello"}]}, 400),
        ("explain an unknown id", "POST", "/explain", {"query": {"vector": vector}, "id": "nope"}, 400),
        ("explain without a query", "POST", "/explain", {"id": "d0"}, 422),
        ("a write without writes", "POST", "/documents", {"documents": [{"id": "x", "vector": vector}]}, 403),
        ("a delete without writes", "POST", "/documents/delete", {"ids": ["d0"]}, 403),
        ("GET on a POST endpoint", "GET", "/search", None, 405),
        ("no such endpoint", "GET", "/nowhere", None, 404),
    ]


def test_a_body_not_sent_as_json_is_a_415(sindi, queries):
    body = json.dumps({"queries": [{"vector": as_dict(queries, 0)}]}).encode()
    with served(sindi) as client:
        for content_type in ("application/x-www-form-urlencoded", "text/plain"):
            assert_one_line_error(client.post("/search", content=body, headers={"content-type": content_type}), 415)
        assert client.post("/search", content=body, headers={"content-type": "application/json"}).status_code == 200


def send(client, method, path, body, headers=None):
    headers = dict(headers or {})
    if body is None:
        return client.request(method, path, headers=headers)
    if not isinstance(body, str):
        body = json.dumps(body)
    headers.setdefault("content-type", "application/json")
    return client.request(method, path, content=body.encode(), headers=headers)


def test_each_bad_request_gets_a_4xx_and_one_line_and_the_server_keeps_serving(sindi, docs, queries):
    query = as_dict(queries, 0)
    with served(sindi) as client:
        for what, method, path, body, status in bad_requests(docs):
            response = send(client, method, path, body)
            assert_one_line_error(response, status)
            assert client.get("/health").json()["status"] == "ok", what
            assert answered(client.post("/search", json={"queries": [{"vector": query}]})) == \
                expected(sindi, [query], 10), what
        errors = client.get("/metrics").text
        assert 'sparseir_errors_total{endpoint="/search",status="422"}' in errors


def test_a_huge_body_is_refused_before_it_is_read(sindi):
    with served(sindi, config=ServeConfig(max_body_bytes=4096)) as client:
        response = client.post("/search", content=b"{" * 5000, headers={"content-type": "application/json"})
        assert_one_line_error(response, 413)
        assert "4,096 bytes" in response.json()["error"]

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b" " * 1000

        assert_one_line_error(client.post("/search", content=chunks(), headers={"content-type": "application/json"}),
                              413)
        assert client.get("/health").status_code == 200


# --- writes ----------------------------------------------------------------------------------

@pytest.fixture()
def live(tmp_path, docs):
    index = create_segmented(tmp_path / "live", kind="sindi", small_segment=50, max_segments=4)
    index.add(docs[:200])
    return index


def test_writes_need_the_key_compared_in_full(live, exact, docs):
    document = {"documents": [{"id": "new", "vector": as_dict(docs, 300)}]}
    with served(live) as client:  # no --api-key-file
        assert_one_line_error(client.post("/documents", json=document, headers=AUTH), 403)
    with served(live, api_key=KEY) as client:
        assert_one_line_error(client.post("/documents", json=document), 401)
        assert client.post("/documents", json=document).headers["www-authenticate"] == "Bearer"
        for wrong in (KEY[:-1], KEY + "x", "x" * len(KEY), f"Basic {KEY}"):
            header = wrong if wrong.startswith("Basic") else f"Bearer {wrong}"
            assert_one_line_error(client.post("/documents", json=document, headers={"Authorization": header}), 401)
        # Refused before the body is read: a malformed body without the key is still a 401.
        assert_one_line_error(client.post("/documents", content=b"{", headers={"content-type": "application/json"}),
                              401)
        assert client.get("/info").json()["documents"] == 200
        response = client.post("/documents", json=document, headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["documents"] == 201
    with served(exact, api_key=KEY) as client:  # built once
        for path, body in (("/documents", document), ("/documents/delete", {"ids": ["d0"]}), ("/compact", None)):
            response = send(client, "POST", path, body, AUTH)
            assert_one_line_error(response, 409)
            assert "segmented" in response.json()["error"]


def test_writes_are_searched_once_acknowledged(live, docs):
    with served(live, api_key=KEY) as client:
        def search(doc, ids):
            return answered(client.post("/search", json={"queries": [{"vector": as_dict(docs, doc)}], "k": 5,
                                                           "filter": {"ids": ids}}))[0]

        add = client.post("/documents", json={"documents": [{"id": str(docs.ids[row]), "vector": as_dict(docs, row)}
                                                           for row in range(200, 260)]}, headers=AUTH)
        assert add.status_code == 200, add.text
        generation = add.json()["generation"]
        assert client.get("/health").json()["generation"] == generation
        assert [doc_id for doc_id, _ in search(230, ["d230"])] == ["d230"]
        assert_one_line_error(client.post("/documents", json={"documents": [{"id": "d230", "vector": {"t1": 1.0}}]},
                                          headers=AUTH), 400)  # a live id, without upsert
        upsert = client.post("/documents", json={"documents": [{"id": "d230", "vector": {"t1": 2.0}}], "upsert": True},
                             headers=AUTH)
        assert upsert.status_code == 200 and upsert.json()["documents"] == 260
        assert search(230, ["d230"]) == [("d230", pytest.approx(2.0 * as_dict(docs, 230).get("t1", 0.0)))] or \
            "t1" not in as_dict(docs, 230)
        deleted = client.post("/documents/delete", json={"ids": ["d230", "d5"]}, headers=AUTH)
        assert deleted.status_code == 200 and deleted.json()["documents"] == 258
        assert search(230, ["d230"]) == [] and search(5, ["d5"]) == []
        assert_one_line_error(client.post("/documents/delete", json={"ids": ["d5"]}, headers=AUTH), 400)
        assert_one_line_error(client.post("/explain", json={"query": {"vector": as_dict(docs, 5)}, "id": "d5"}), 400)
        compacted = client.post("/compact", headers=AUTH)
        assert compacted.status_code == 200 and compacted.json()["segments"] == 1
        query = as_dict(docs, 7)
        fresh = sparseir.load_index(live.path)
        assert answered(client.post("/search", json={"queries": [{"vector": query}], "k": 10})) == \
            expected(fresh, [query], 10)


def test_concurrent_writes_and_searches_see_whole_generations(live, docs):
    """Writers add and delete while searchers query by id: a search sent after an add's
    acknowledgement (and answered before its delete was sent) finds it, and none sent after a
    delete's acknowledgement returns it."""
    service = Service(live, ServeConfig(max_batch=16, max_wait_us=500), api_key=KEY)
    app = create_app(service)
    added, delete_sent, deleted, searches = {}, {}, {}, []

    async def writer(client, rows):
        for row in rows:
            doc_id = str(docs.ids[row])
            document = {"id": doc_id, "vector": as_dict(docs, row)}
            response = await client.post("/documents", json={"documents": [document]}, headers=AUTH)
            assert response.status_code == 200, response.text
            added[doc_id] = time.monotonic()
            if row % 2 == 0:
                delete_sent[doc_id] = time.monotonic()
                response = await client.post("/documents/delete", json={"ids": [doc_id]}, headers=AUTH)
                assert response.status_code == 200, response.text
                deleted[doc_id] = time.monotonic()

    async def searcher(client, seed):
        rng = random.Random(seed)
        for _ in range(15):
            row = rng.randrange(200, 208)
            doc_id = str(docs.ids[row])
            sent = time.monotonic()
            response = await client.post("/search", json={"queries": [{"vector": as_dict(docs, row)}], "k": 3,
                                                            "filter": {"ids": [doc_id]}})
            # 400: an id filter naming an id the generation does not hold (not added yet, or merged away)
            assert response.status_code in (200, 400), response.text
            found = [] if response.status_code == 400 else [hit["id"] for hit in response.json()["results"][0]["hits"]]
            searches.append((doc_id, sent, time.monotonic(), found))
            await asyncio.sleep(0.05)  # spread over the writes

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
            await asyncio.gather(writer(client, range(200, 204)), writer(client, range(204, 208)),
                                 *(searcher(client, seed) for seed in range(3)))

    try:
        asyncio.run(run())
    finally:
        service.close()
    checked = 0
    for doc_id, sent, received, found in searches:
        if doc_id in deleted and sent > deleted[doc_id]:
            assert found == [], (doc_id, "returned after its delete was acknowledged")
            checked += 1
        elif doc_id in added and sent > added[doc_id] and received < delete_sent.get(doc_id, float("inf")):
            assert found == [doc_id], (doc_id, "not found after its add was acknowledged")
            checked += 1
    assert checked > 0
    survivors = [doc_id for doc_id in added if doc_id not in deleted]
    assert sorted(sparseir.load_index(live.path).live_ids()) == sorted(
        [str(doc_id) for doc_id in docs.ids[:200]] + survivors)


# --- the batcher, the queue and the time limit ------------------------------------------------------

def test_a_batch_waits_only_for_requests_on_their_way():
    """A lone job runs at once, whatever the wait bound; jobs announced as arriving are waited for
    (up to the bound) and share the call; other keys never do."""
    from sparseir.serve.batcher import Batcher

    calls = []
    batcher = Batcher(lambda key, payloads: calls.append((key, payloads)) or payloads, 8, 30_000_000, 100)

    async def run():
        lone = await asyncio.wait_for(batcher.submit("a", 1), 10)  # the bound is 30 s: it did not wait for it
        arrivals = [batcher.arrival() for _ in range(3)]
        first = asyncio.ensure_future(batcher.submit("a", 2, arrival=arrivals[0]))
        await asyncio.sleep(0.2)  # the worker holds job 2, waiting for the two still announced
        others = [batcher.submit("a", 3, arrival=arrivals[1]), batcher.submit("b", 4)]
        arrivals[2].done()  # gave up (a bad request, say): not waited for any more
        return lone, await asyncio.wait_for(asyncio.gather(first, *others), 10)

    try:
        lone, results = asyncio.run(run())
    finally:
        batcher.close()
    assert lone == 1 and results == [2, 3, 4]
    assert calls == [("a", [1]), ("a", [2, 3]), ("b", [4])]



class Slow:
    """An index whose searches take `seconds` (the rest delegated)."""

    def __init__(self, index, seconds: float):
        self._index, self.seconds = index, seconds

    def __getattr__(self, name):
        return getattr(self._index, name)

    def search(self, *args, **kwargs):
        time.sleep(self.seconds)
        return self._index.search(*args, **kwargs)


def test_a_full_queue_answers_503_with_retry_after_and_a_slow_search_504(exact, queries):
    body = {"queries": [{"vector": as_dict(queries, 0)}]}
    service = Service(Slow(exact, 0.3), ServeConfig(queue_size=2, max_wait_us=0, timeout=5))
    app = create_app(service)

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
            return await asyncio.gather(*(client.post("/search", json={**body, "k": 1 + n}) for n in range(8)))

    try:
        responses = asyncio.run(run())
    finally:
        service.close()
    statuses = sorted(response.status_code for response in responses)
    assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}, statuses
    for response in responses:
        if response.status_code == 503:
            assert_one_line_error(response, 503)
            assert response.headers["retry-after"] == "1"
    with served(Slow(exact, 1.5), config=ServeConfig(timeout=0.3)) as client:
        assert_one_line_error(client.post("/search", json=body), 504)
        assert_one_line_error(client.post("/explain", json={"query": body["queries"][0], "id": "d0"}), 504)
        metrics = client.get("/metrics").text
        assert 'sparseir_rejected_total{reason="timeout"} 2' in metrics


# --- metrics, page, passages ---------------------------------------------------------------------

def test_metrics_are_prometheus_text(sindi, queries):
    with served(sindi) as client:
        for q in range(3):
            client.post("/search", json={"queries": [{"vector": as_dict(queries, q)}]})
        client.post("/search", json={"queries": []})
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for line in ('sparseir_requests_total{endpoint="/search",method="POST",status="200"} 3',
                 'sparseir_errors_total{endpoint="/search",status="422"} 1',
                 'sparseir_request_duration_seconds_bucket{endpoint="/search",le="+Inf"} 4',
                 'sparseir_batch_queries_count 3', 'sparseir_queries_total 3', 'sparseir_documents 400',
                 'sparseir_generation 0', '# TYPE sparseir_request_duration_seconds histogram'):
        assert line in text, line
    for line in text.splitlines():  # every sample: a name, optional labels, a number
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1].replace("+Inf", "inf"))


def test_the_page_and_the_api_docs_are_served_from_the_package(sindi):
    with served(sindi) as client:
        page = client.get("/")
        assert page.status_code == 200 and 'id="query"' in page.text and 'id="k"' in page.text
        for name in ("app.js", "style.css"):
            assert client.get(f"/static/{name}").status_code == 200
        spec = client.get("/openapi.json").json()
        assert {"/search", "/explain", "/documents", "/documents/delete", "/compact", "/metrics", "/health",
                "/info"} <= set(spec["paths"])
        assert {"SearchRequest", "SearchResponse", "ExplainResponse", "Error"} <= set(spec["components"]["schemas"])
        assert client.get("/docs").status_code == 200
    static = os.path.join(os.path.dirname(sparseir.__file__), "serve", "static")
    for name in os.listdir(static):  # nothing fetched from anywhere but the server
        text = open(os.path.join(static, name), encoding="utf-8").read()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


@settings(max_examples=10)
@given(texts=st.lists(st.text(st.characters(blacklist_characters="\t\n\r", blacklist_categories=("Cs",)),
                              max_size=60), min_size=1, max_size=40), members=st.integers(1, 3))
def test_passages_are_read_by_offset_from_plain_and_gzip_files(tmp_path_factory, texts, members):
    directory = tmp_path_factory.mktemp("passages")
    lines = [f"id{n}\t{text}\n" for n, text in enumerate(texts)] + ["a line without a tab\n", "id0\trepeated\n"]
    data = "".join(lines).encode("utf-8")
    plain, packed = directory / "c.tsv", directory / "c.tsv.gz"
    plain.write_bytes(data)
    cut = [len(data) * part // members for part in range(members + 1)]
    packed.write_bytes(b"".join(gzip.compress(data[lo:hi]) for lo, hi in zip(cut, cut[1:])))  # members in a row
    for path in (plain, packed):
        passages = Passages(path)
        for n, text in enumerate(texts):
            assert passages.text(f"id{n}") == text
        assert passages.text("a line without a tab") is None and passages.text("nope") is None


def test_search_answers_carry_passages_from_the_collection(tmp_path, sindi, docs, queries):
    collection = tmp_path / "collection.tsv.gz"
    with gzip.open(collection, "wt", encoding="utf-8") as f:
        for doc_id in docs.ids:
            f.write(f"{doc_id}\tthe passage of {doc_id}\n")
    with served(sindi, passages=Passages(collection)) as client:
        response = client.post("/search", json={"queries": [{"vector": as_dict(queries, 1)}], "passages": True})
        hits = response.json()["results"][0]["hits"]
        assert hits and all(hit["text"] == f"the passage of {hit['id']}" for hit in hits)
        assert client.get("/info").json()["passages"] is True


# --- the command ---------------------------------------------------------------------------------

def test_the_command_refuses_bad_settings_in_one_line(tmp_path, exact):
    exact.save(tmp_path / "index")
    short = tmp_path / "short.key"
    short.write_text("secret\n")
    for args, message in (([str(tmp_path / "index"), "--api-key-file", str(short)], "at least 16 characters"),
                          ([str(tmp_path / "index"), "--max-batch", "0"], "max_batch must be an integer >= 1"),
                          ([str(tmp_path / "index"), "--timeout", "0"], "timeout must be a number of seconds > 0"),
                          ([str(tmp_path / "index"), "--n-candidate", "5"], "unknown exact search parameter"),
                          ([str(tmp_path / "index"), "--idf", str(short)], "--idf applies to --query-encoder idf"),
                          ([str(tmp_path)], "not a sparseir index")):
        result = CliRunner().invoke(cli, ["serve", *args])
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and result.output.count("\n") == 1, result.output


# --- the slow set: shared vectors, the embedded model, a server process, a browser ---------------

@pytest.fixture(scope="module")
def scifact():
    from conftest import shared_vectors

    path = shared_vectors("scifact")
    docs = sparseir.read_vectors(path / "collection.jsonl.gz")
    return docs, sparseir.read_vectors(path / "queries.jsonl.gz", vocab=docs.vocab)


@pytest.mark.slow
def test_search_equals_index_search_on_scifact_vectors_knobs_and_filters(scifact):
    import pyarrow as pa

    docs, queries = scifact
    rng = np.random.default_rng(3)
    attributes = pa.table({"year": rng.integers(2000, 2024, len(docs)), "lang": rng.choice(["en", "fr"], len(docs))})
    exact = sparseir.build_index(docs, kind="exact")
    sindi = sparseir.build_index(docs, kind="sindi", doc_prune_ratio=0.3, attributes=attributes)
    query_dicts = [as_dict(queries, row) for row in range(len(queries))]
    allowed = [str(doc_id) for doc_id in rng.choice(docs.ids, 300, replace=False)]
    cases = [(exact, {}, None), (sindi, {}, None), (sindi, {"n_candidate": 20, "query_prune_ratio": 0.3}, None),
             (sindi, {"n_candidate": 50}, "year >= 2015 and lang = 'en'"), (sindi, {}, {"ids": allowed}),
             (exact, {}, {"ids": allowed})]
    for index, knobs, spec in cases:
        with served(index) as client:
            for start in range(0, len(query_dicts), 100):
                batch = query_dicts[start:start + 100]
                response = client.post("/search", json={"queries": [{"vector": vector} for vector in batch], "k": 20,
                                                        "params": knobs, "filter": spec})
                filter_arg = spec["ids"] if isinstance(spec, dict) else spec
                assert answered(response) == expected(index, batch, 20, filter_arg, **knobs), (index.kind, knobs, spec)
    # Single queries at once, coalesced into shared calls, each equal to its own search.
    service = Service(sindi, ServeConfig(max_wait_us=2000))
    app = create_app(service)

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as client:
            return await asyncio.gather(*(client.post("/search", json={"queries": [{"vector": vector}], "k": 10})
                                          for vector in query_dicts[:64]))

    try:
        responses = asyncio.run(run())
    finally:
        service.close()
    assert [answered(response)[0] for response in responses] == expected(sindi, query_dicts[:64], 10)


@pytest.mark.slow
def test_text_queries_equal_index_search_over_the_encoded_text(scifact):
    from conftest import SHARED_DATA
    from sparseir.encoder import load_encoder

    docs, _ = scifact
    texts = [line.split("\t", 1)[1].rstrip("\n")
             for line in (SHARED_DATA / "scifact" / "queries.tsv").read_text("utf-8").splitlines()[:24]]
    encoder = load_encoder("default")
    index = sparseir.build_index(docs, kind="sindi")
    with served(index, encoder=encoder) as client:
        response = client.post("/search", json={"queries": [{"text": text} for text in texts], "k": 10})
        assert answered(response) == expected(index, encoder.encode_queries(texts), 10)
        for text in texts[:5]:
            one = client.post("/search", json={"queries": [{"text": text}], "k": 10})
            assert answered(one) == expected(index, encoder.encode_queries([text]), 10)
            doc_id = one.json()["results"][0]["hits"][0]["id"]
            explained = client.post("/explain", json={"query": {"text": text}, "id": doc_id}).json()
            assert explained == index.explain(encoder.encode_queries([text]), doc_id).as_dict()
            assert abs(sum(t["contribution"] for t in explained["terms"]) - explained["exact_score"]) <= 1e-5


@pytest.mark.slow
def test_documents_given_as_text_are_encoded_and_found(tmp_path, scifact):
    from sparseir.encoder import load_encoder

    docs, _ = scifact
    live = create_segmented(tmp_path / "live", kind="sindi")
    live.add(docs[:500])
    encoder = load_encoder("default")
    text = "sparse retrieval with learned term weights"
    with served(live, encoder=encoder, api_key=KEY) as client:
        added = client.post("/documents", json={"documents": [{"id": "mine", "text": text}]}, headers=AUTH)
        assert added.status_code == 200 and added.json()["documents"] == 501, added.text
        hits = answered(client.post("/search", json={"queries": [{"text": text}], "k": 1}))[0]
        assert hits[0][0] == "mine"
        stored = sparseir.load_index(tmp_path / "live")
        assert hits == expected(stored, encoder.encode_queries([text]), 1)[0]


def start_server(index_dir, *options, timeout: float = 120):
    """A `sparseir serve` process on a free port, and its base URL, once it serves."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "sparseir", "serve", str(index_dir), "--port", "0", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("serving "):
            url = line.rsplit(" on ", 1)[1].strip()
            return process, url
    process.kill()
    raise AssertionError(f"the server did not start: {''.join(lines)}")


def wait_ready(url: str) -> None:
    for _ in range(100):
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the server does not answer /health")


@pytest.mark.slow
def test_sigterm_and_ctrl_c_drain_requests_in_flight_then_exit_0(tmp_path, exact, queries):
    import signal

    exact.save(tmp_path / "index")
    for sig in (signal.SIGTERM, signal.SIGINT):
        # A one-second batching wait holds each lone request in flight when the signal comes.
        process, url = start_server(tmp_path / "index", "--max-wait-us", "1000000")
        wait_ready(url)
        responses = {}

        def ask(q):
            responses[q] = httpx.post(f"{url}/search", json={"queries": [{"vector": as_dict(queries, q)}], "k": 5},
                                      timeout=30)

        askers = [threading.Thread(target=ask, args=(q,)) for q in range(3)]
        for asker in askers:
            asker.start()
        time.sleep(0.4)
        process.send_signal(sig)
        for asker in askers:
            asker.join()
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        for q in range(3):
            assert answered(responses[q]) == expected(exact, [as_dict(queries, q)], 5)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=2)


@pytest.mark.slow
def test_acknowledged_writes_survive_kill_9_during_writes(tmp_path, docs):
    import signal

    path = tmp_path / "live"
    create_segmented(path, kind="sindi", small_segment=20, max_segments=4).add(docs[:100])
    key_file = tmp_path / "api.key"
    key_file.write_text(KEY + "\n")
    process, url = start_server(path, "--api-key-file", str(key_file))
    wait_ready(url)
    added, delete_sent, deleted, stop = [], [], [], threading.Event()

    def write(rows):
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
            for row in rows:
                if stop.is_set():
                    return
                doc_id = str(docs.ids[row])
                try:
                    response = client.post("/documents", json={"documents": [{"id": doc_id,
                                                                               "vector": as_dict(docs, row)}]})
                    if response.status_code == 200:
                        added.append(doc_id)
                    if row % 3 == 0 and response.status_code == 200:
                        delete_sent.append(doc_id)  # killed before its answer: deleted or not, both are right
                        response = client.post("/documents/delete", json={"ids": [doc_id]})
                        if response.status_code == 200:
                            deleted.append(doc_id)
                except httpx.TransportError:
                    return  # killed

    writers = [threading.Thread(target=write, args=(range(lo, lo + 100, 2),)) for lo in (100, 101)]
    for writer in writers:
        writer.start()
    time.sleep(3)
    process.send_signal(signal.SIGKILL)
    stop.set()
    for writer in writers:
        writer.join()
    process.communicate()
    assert len(added) >= 4, "too few writes were acknowledged before the kill to check anything"
    process, url = start_server(path, "--api-key-file", str(key_file))
    try:
        wait_ready(url)
        live = set(sparseir.load_index(path).live_ids())
        with httpx.Client(base_url=url, timeout=30) as client:
            for doc_id in added:
                if doc_id in delete_sent and doc_id not in deleted:
                    continue
                row = int(doc_id[1:])
                response = client.post("/search", json={"queries": [{"vector": as_dict(docs, row)}], "k": 1,
                                                         "filter": {"ids": [doc_id]}})
                found = [hit["id"] for hit in response.json()["results"][0]["hits"]] if response.status_code == 200 \
                    else []
                assert found == ([] if doc_id in deleted else [doc_id]), doc_id
                assert (doc_id in live) == (doc_id not in deleted)
    finally:
        process.terminate()
        process.communicate(timeout=60)


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--window-size=1100,1300")


@pytest.mark.slow
def test_the_search_page_in_headless_chromium(tmp_path):
    """Type a query, see hits with their passages, open a hit's "why" view (its bars are the
    explain terms). SPARSEIR_SCREENSHOT=PATH keeps a screenshot of the page there."""
    import shutil

    from conftest import shared_vectors

    browser = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(name)), None)
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("no Chromium with chromedriver here (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium drives the browser")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    vectors = shared_vectors("debian-pkgs")
    docs = sparseir.read_vectors(vectors / "collection.jsonl.gz")
    sparseir.build_index(docs, kind="sindi", doc_prune_ratio=0.3).save(tmp_path / "index")
    process, url = start_server(tmp_path / "index", "--collection", str(vectors.parent / "collection.tsv"))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        wait_ready(url)
        driver.get(f"{url}/")
        WebDriverWait(driver, 30).until(lambda d: "documents" in d.find_element(By.ID, "about").text)
        box = driver.find_element(By.ID, "query")
        box.send_keys("lightweight web server")
        k = driver.find_element(By.ID, "k")
        k.clear()
        k.send_keys("5")
        driver.find_element(By.ID, "search").click()
        hits = WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results li.hit"))
        api = httpx.post(f"{url}/search", json={"queries": [{"text": "lightweight web server"}], "k": 5}).json()
        expected_ids = [hit["id"] for hit in api["results"][0]["hits"]]
        assert [hit.find_element(By.CSS_SELECTOR, ".id").text for hit in hits] == expected_ids
        assert all(hit.find_element(By.CSS_SELECTOR, ".text").text for hit in hits)  # passages from the collection
        hits[0].find_element(By.CSS_SELECTOR, "button.why").click()
        bars = WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".why-view .bar"))
        explained = httpx.post(f"{url}/explain", json={"query": {"text": "lightweight web server"},
                                                       "id": expected_ids[0]}).json()
        assert len(bars) == len(explained["terms"]) > 0
        assert [row.text for row in driver.find_elements(By.CSS_SELECTOR, ".why-view .term")] == \
            [term["term"] for term in explained["terms"]]
        assert not driver.find_element(By.ID, "status").get_attribute("class")  # no error shown
        driver.save_screenshot(str(tmp_path / "serve.png"))
        if os.environ.get("SPARSEIR_SCREENSHOT"):
            shutil.copyfile(tmp_path / "serve.png", os.environ["SPARSEIR_SCREENSHOT"])
    finally:
        driver.quit()
        process.terminate()
        process.communicate(timeout=60)
