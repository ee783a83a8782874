"""`sparseir serve`: an index behind an HTTP API, with live updates, micro-batching, explain and a
search page (docs/serve.md).

- ``config``: the server's settings and limits (a frozen dataclass, checked on creation);
- ``models``: the request and response schemas, declared once (``/openapi.json`` and
  ``/docs`` come from them);
- ``batcher``: concurrent requests coalesced into one batch call, in a worker thread;
- ``service``: the index (one generation at a time for searches, a writer for updates),
  the query encoder and the passages, behind plain methods;
- ``app``: the FastAPI application over a service (``create_app``), served by uvicorn;
- ``metrics``: counters and histograms in Prometheus' text format;
- ``passages``: passage text read by byte offset from a collection file.

Only ``app`` and the command import FastAPI and uvicorn (the ``serve`` extra).
"""
