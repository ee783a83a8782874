"""The HTTP API of ``sparseir serve``: a FastAPI application over a ``Service`` (``create_app``).

Every error is ``{"error": "<one line>"}`` with a 4xx status for what the client can fix
(400 bad content, 401/403 writes without the key, 404/405 no such endpoint, 409 a write to an
index built once, 413 too large, 422 a request outside its schema), 503 with Retry-After when
the search queue is full, 504 past the time limit; an exception of the server's own is a 500
with one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import Depends, FastAPI, HTTPException as FastAPIHTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import IndexFormatError, SparseirError, first_line
from . import models
from .batcher import Overloaded
from .metrics import CONTENT_TYPE
from .service import NotWritable, QueryItem, Service, WritesOff

logger = logging.getLogger("sparseir.serve")

WRITE_PATHS = ("/documents", "/documents/delete", "/compact")
ARRIVING = ("/search", "/explain")  # requests that queue for the search thread
ENDPOINTS = {"/", "/docs", "/openapi.json", "/health", "/info", "/search", "/explain", "/metrics", *WRITE_PATHS}
ERRORS = {status: {"model": models.Error, "description": description} for status, description in (
    (400, "Bad content: an unknown term, id or setting, malformed JSON"),
    (413, "Body over the size limit"), (415, "A body not sent as JSON"), (422, "Outside the schema or a limit"),
    (503, "Search queue full (see Retry-After)"), (504, "Over the time limit"))}
WRITE_ERRORS = {**ERRORS, 401: {"model": models.Error, "description": "No or a wrong API key"},
                403: {"model": models.Error, "description": "Writes are off"},
                409: {"model": models.Error, "description": "The index is built once"}}


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": first_line(Exception(message))}, status_code=status, headers=headers)


class TooLarge(FastAPIHTTPException):  # FastAPI's own: its body reader passes it on as it is
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit:,} bytes")


# --- middleware (plain ASGI: they see every request, before any body is read) ---------------

class Guard:
    """Bodies over the size limit are answered 413 (by Content-Length before reading, else as
    read); writes are checked for the key before their body is read; searches are announced
    to the batcher as they come in (``Batcher.arrival``), so that a batch may wait for them."""

    def __init__(self, app, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.service.config.max_body_bytes
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await error(413, TooLarge(limit).detail)(scope, receive, send)
        if scope["method"] == "POST" and scope["path"] in WRITE_PATHS:
            refused = self.refusal(headers.get(b"authorization", b"").decode("latin-1"))
            if refused is not None:
                return await refused(scope, receive, send)
        received = 0
        arrival = None
        if scope["method"] == "POST" and scope["path"] in ARRIVING:
            arrival = self.service.batcher.arrival()
            scope.setdefault("state", {})["arrival"] = arrival

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge(limit)
            return message

        try:
            await self.app(scope, limited, send)
        finally:
            if arrival is not None:
                arrival.done()

    def refusal(self, authorization: str) -> JSONResponse | None:
        key = self.service.api_key
        if key is None:
            return error(403, "writes are off: start sparseir serve with --api-key-file to take them")
        scheme, _, token = authorization.partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "this write needs the header Authorization: Bearer <key>", challenge)
        # Constant time: how much of a guess matches must not show in the answer's timing.
        if not hmac.compare_digest(token.strip().encode("utf-8"), key.encode("utf-8")):
            return error(401, "wrong API key", challenge)
        return None


class Measure:
    """Counts every answer by endpoint and status, with its latency."""

    def __init__(self, app, service: Service):
        self.app = app
        self.metrics = service.metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "/static" if path.startswith("/static/") else "other"
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.request(endpoint, scope["method"], status, time.perf_counter() - started)


# --- errors -----------------------------------------------------------------------------

def validation_message(exc: RequestValidationError) -> tuple[int, str]:
    problems = exc.errors()
    first = problems[0]
    if first.get("type") == "json_invalid":
        at = [part for part in first.get("loc", ()) if isinstance(part, int)]
        return 400, (f"malformed JSON: {first.get('ctx', {}).get('error', 'cannot be parsed')}"
                     + (f" at character {at[0]}" if at else ""))
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    if first.get("type") == "missing" and not where:
        return 422, "the request needs a JSON body"
    if not where and isinstance(first.get("input"), (bytes, str)):  # a body not sent as JSON
        return 415, "the body must be JSON sent with Content-Type: application/json (curl --json)"
    if not where:
        return 422, "the body must be a JSON object"
    message = "unknown field" if first.get("type") == "extra_forbidden" else first.get("msg", "invalid")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return 422, f"{where or 'body'}: {message}{more}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        status, message = validation_message(exc)
        return error(status, message)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        if exc.status_code in (404, 405) and not isinstance(exc, FastAPIHTTPException):  # the router's own
            what = "no such endpoint" if exc.status_code == 404 else "the endpoint does not take this method"
            return error(exc.status_code, f"{what}: {request.method} {request.url.path} (the API is at /docs)",
                         getattr(exc, "headers", None))
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Overloaded)
    async def overloaded(request, exc):
        request.app.state.service.metrics.rejected("queue_full")
        return error(503, f"the server is busy ({exc}); retry shortly", {"Retry-After": "1"})

    @app.exception_handler(asyncio.TimeoutError)
    async def timed_out(request, exc):
        request.app.state.service.metrics.rejected("timeout")
        return error(504, f"the request took longer than the server's limit of "
                          f"{request.app.state.service.config.timeout:g} s")

    @app.exception_handler(SparseirError)
    async def bad_content(request, exc):
        if isinstance(exc, WritesOff):
            return error(403, str(exc))
        if isinstance(exc, NotWritable):
            return error(409, str(exc))
        if isinstance(exc, IndexFormatError):  # the index on disk, not the request
            logger.error("index: %s", first_line(exc))
            return error(500, str(exc))
        return error(400, str(exc))

    @app.exception_handler(Exception)
    async def internal(request, exc):  # the server logs the traceback; the client gets one line
        return error(500, f"internal error ({type(exc).__name__}: {first_line(exc)})")


# --- the application --------------------------------------------------------------------

def arrival_of(request: Request):
    """The announcement Guard made of this request (none where the app runs without it)."""
    return getattr(request.state, "arrival", None)


def static_text(name: str) -> str:
    return resources.files("sparseir.serve").joinpath("static", name).read_text("utf-8")


def create_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(service.close)  # what is queued still runs: a drained shutdown

    app = FastAPI(title="sparseir", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Learned sparse retrieval over one index: search, explain, live updates.")
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(Guard, service=service)
    app.add_middleware(Measure, service=service)  # outermost: it counts the guard's refusals too
    app.mount("/static", StaticFiles(packages=[("sparseir.serve", "static")]), name="static")
    bearer = HTTPBearer(auto_error=False, description="The key of --api-key-file")
    config = service.config
    page, docs_page = static_text("index.html"), static_text("docs.html")

    async def within_limit(awaitable, started: float):
        return await asyncio.wait_for(awaitable, max(0.0, started + config.timeout - time.monotonic()))

    async def query_items(queries: list[models.Query], started: float) -> list[QueryItem]:
        if len(queries) > config.max_queries:
            raise HTTPException(422, f"queries: {len(queries):,} queries; at most {config.max_queries:,} a request")
        for position, query in enumerate(queries):
            if query.vector is not None and len(query.vector) > config.max_terms:
                raise HTTPException(422, f"queries.{position}.vector: {len(query.vector):,} terms; at most "
                                         f"{config.max_terms:,} a query")
        texts = [query.text for query in queries if query.text is not None]
        encoded = iter(await within_limit(asyncio.to_thread(service.encode_queries, texts), started) if texts else [])
        return [QueryItem(str(position) if query.id is None else query.id,
                          query.vector if query.vector is not None else next(encoded), query.text is not None)
                for position, query in enumerate(queries)]

    @app.get("/", include_in_schema=False)
    async def search_page():
        return HTMLResponse(page)

    @app.get("/docs", include_in_schema=False)
    async def api_docs():
        return HTMLResponse(docs_page)

    @app.get("/health", response_model=models.Health)
    async def health():
        return {"status": "ok", "generation": service.generation}

    @app.get("/info", response_model=models.Info)
    async def info():
        return service.info()

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics():
        """Prometheus text: requests, latency histograms, batch sizes, errors, documents, generation."""
        return Response(service.metrics.render(service.gauges()), media_type=CONTENT_TYPE)

    @app.post("/search", response_model=models.SearchResponse, responses=ERRORS)
    async def search(request: models.SearchRequest, http: Request):
        """Top-k for each query: the same results as ``Index.search`` with the same settings."""
        started = time.monotonic()
        items = await query_items(request.queries, started)
        knobs = service.check_knobs(request.params)
        spec = request.filter.ids if isinstance(request.filter, models.IdsFilter) else request.filter
        results, generation = await within_limit(service.search(items, request.k, knobs, spec, arrival_of(http)),
                                                 started)
        answer = [{"id": query_id, "hits": [{"id": doc_id, "score": score, "rank": rank}
                                            for rank, (doc_id, score) in enumerate(hits, start=1)]}
                  for query_id, hits in results]
        if request.passages and service.passages is not None:
            hits = [hit for result in answer for hit in result["hits"]]
            texts = await within_limit(asyncio.to_thread(service.texts, [hit["id"] for hit in hits]), started)
            for hit, text in zip(hits, texts):
                hit["text"] = text
        return JSONResponse({"results": answer, "generation": generation})

    @app.post("/explain", response_model=models.ExplainResponse, responses=ERRORS)
    async def explain(request: models.ExplainRequest, http: Request):
        """Each term the query shares with the document: query weight, document weight and
        contribution, adding up to exact_score; score is the kind's own."""
        started = time.monotonic()
        [item] = await query_items([request.query], started)
        knobs = service.check_knobs(request.params)
        return JSONResponse(await within_limit(service.explain(item, request.id, knobs, arrival_of(http)), started))

    @app.post("/documents", response_model=models.WriteResponse, responses=WRITE_ERRORS)
    async def add_documents(request: models.AddRequest,
                            _: HTTPAuthorizationCredentials | None = Depends(bearer)):
        """Add documents (upsert: replace those whose id is live); answered once committed."""
        for document in request.documents:
            if document.vector is not None and len(document.vector) > config.max_terms:
                raise HTTPException(422, f"document {str(document.id)!r}: {len(document.vector):,} terms; at most "
                                         f"{config.max_terms:,}")
        texts = [document.text for document in request.documents if document.text is not None]
        encoded = iter(await asyncio.to_thread(service.encode_documents, texts) if texts else [])
        documents = [(document.id, document.vector if document.vector is not None else next(encoded))
                     for document in request.documents]
        return await asyncio.to_thread(service.add, documents, request.upsert)

    @app.post("/documents/delete", response_model=models.WriteResponse, responses=WRITE_ERRORS)
    async def delete_documents(request: models.DeleteRequest,
                               _: HTTPAuthorizationCredentials | None = Depends(bearer)):
        """Delete live documents by id; answered once committed."""
        return await asyncio.to_thread(service.delete, request.ids)

    @app.post("/compact", response_model=models.WriteResponse, responses=WRITE_ERRORS)
    async def compact(_: HTTPAuthorizationCredentials | None = Depends(bearer)):
        """Merge every segment into one, dropping deleted documents."""
        return await asyncio.to_thread(service.compact)

    return app
