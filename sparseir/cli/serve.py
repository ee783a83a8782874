"""`sparseir serve`: an index behind an HTTP API and a search page (docs/serve.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket

import click

from ..errors import InputError, ParameterError
from ..serve.config import ServeConfig
from .common import echo, given, idf_query_encoder, kind_options, load_text_encoder


def default(name: str):
    """A ServeConfig field's default, the one place it is set."""
    return ServeConfig.__dataclass_fields__[name].default


def read_api_key(path: str) -> str:
    """The key: the file's content without surrounding whitespace, one line of at least 16 characters."""
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the API key: {getattr(e, 'strerror', None) or e}", path) from None
    if len(key) < 16 or any(char.isspace() for char in key):
        raise InputError("the API key must be one word of at least 16 characters (e.g. the output of "
                         "`openssl rand -hex 32`)", path)
    return key


def text_encoder(index, query_encoder_kind: str, model: str | None, idf_path: str | None):
    """The encoder of text queries. Asked for by name (--model, --query-encoder), it must load and
    share the index's vocabulary; the default (the embedded SPLADE model) is left out, with a
    line on stderr, where its extra is missing or the index uses another vocabulary: vector
    queries work either way."""
    from ..extras import missing
    from ..vectors import Vocabulary

    if idf_path is not None and query_encoder_kind != "idf":
        raise ParameterError("--idf applies to --query-encoder idf")
    if query_encoder_kind == "none":
        if model is not None:
            raise ParameterError("--model gives text queries an encoder, which --query-encoder none turns off")
        return None
    has_vocab = getattr(index, "has_vocab", True)  # an empty segmented index takes its first documents' one
    if model is None and query_encoder_kind == "splade":
        if missing("encode"):
            echo("text queries are off: the embedded model needs the encode extra (pip install 'sparseir[encode]')")
            return None
        if has_vocab and index.vocab != Vocabulary.default():
            echo(f"text queries are off: the index's {index.vocab!r} is not the embedded model's; "
                 "pass --model for the model its vectors came from")
            return None
    if query_encoder_kind == "idf":
        encoder = idf_query_encoder(index, idf_path, model)
    else:
        encoder = load_text_encoder("--model", model, kind=query_encoder_kind)
    if has_vocab and encoder.vocab != index.vocab:
        raise ParameterError(f"the query encoder uses {encoder.vocab!r} but the index {index.vocab!r}: pass the "
                             "--model the index's vectors came from")
    return encoder


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), so that the address served is known before serving."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ParameterError(f"--host {host}: {e.strerror}") from None
    family, kind, protocol, _, address = infos[0]
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise ParameterError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_app(app, sock: socket.socket, drain_seconds: float) -> None:
    """Serve until SIGINT or SIGTERM, then stop taking connections, let the requests in flight
    finish (up to drain_seconds), and return: the process exits 0."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn re-raises the signal after its graceful shutdown, which ends the process by
            # that signal; a drained server has nothing left to do, so it returns instead.
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=drain_seconds, lifespan="on",
                            server_header=False)
    DrainingServer(config).run(sockets=[sock])


@click.command()
@click.argument("index_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free one, printed at start).")
@click.option("--model", help="Encoder for text queries: 'default' (embedded) or a local model directory.")
@click.option("--query-encoder", type=click.Choice(["splade", "unicoil", "idf", "none"]), default="splade",
              show_default=True, help="How text queries become vectors; idf needs no model at query time; none: "
                                      "vector queries only.")
@click.option("--idf", "idf_path", type=click.Path(dir_okay=False, exists=True),
              help="term<TAB>idf or .json table for --query-encoder idf (default: the --model directory's idf.json, "
                   "else the index's document frequencies).")
@click.option("--api-key-file", type=click.Path(dir_okay=False, exists=True),
              help="A file holding the key that writes need (Authorization: Bearer KEY); without it, writes are off.")
@click.option("--collection", type=click.Path(dir_okay=False, exists=True),
              help="id<TAB>text file (.tsv or .tsv.gz) whose passages the answers and the page show, read by offset.")
@click.option("--max-batch", type=int, default=default("max_batch"), show_default=True,
              help="Queries per batch call.")
@click.option("--max-wait-us", type=int, default=default("max_wait_us"), show_default=True,
              help="How long a search waits for others to share its batch call, in microseconds.")
@click.option("--queue-size", type=int, default=default("queue_size"), show_default=True,
              help="Requests waiting for the search thread, past which the server answers 503.")
@click.option("--timeout", type=float, default=default("timeout"), show_default=True,
              help="Seconds a search or explain may take, past which the server answers 504.")
@click.option("--max-body-bytes", type=int, default=default("max_body_bytes"), show_default=True,
              help="Larger bodies get 413.")
@click.option("--max-queries", type=int, default=default("max_queries"), show_default=True, help="Queries per request.")
@click.option("--max-terms", type=int, default=default("max_terms"), show_default=True,
              help="Terms per query or document.")
@click.option("--memory", type=click.Choice(["mapped", "all", "summaries", "disk"]), default="mapped",
              show_default=True, help="What is read into RAM (as for sparseir search).")
@click.option("--verify", is_flag=True, help="Check every index file's sha256 before serving.")
@kind_options("search")
def serve(index_dir, host, port, model, query_encoder, idf_path, api_key_file, collection, max_batch, max_wait_us,
          queue_size, timeout, max_body_bytes, max_queries, max_terms, memory, verify, **knobs):
    """Serve INDEX_DIR over HTTP: POST /search, /explain, /documents (segmented indexes), a search page
    at /, the API at /docs. Ctrl-C or SIGTERM finishes the requests in flight, then exits."""
    from ..extras import require_extra

    require_extra("serve", "sparseir serve")
    # The kernels' OpenMP threads sleep between batches rather than spin: a spinning one holds a
    # core that the event loop needs to answer requests. Read when the first parallel region
    # starts, so set here, before any; a value in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..loading import load_index

    config = ServeConfig(max_batch=max_batch, max_wait_us=max_wait_us, queue_size=queue_size, timeout=timeout,
                         max_body_bytes=max_body_bytes, max_queries=max_queries, max_terms=max_terms)
    api_key = read_api_key(api_key_file) if api_key_file is not None else None
    index = load_index(index_dir, verify=verify, memory=memory)
    knobs = given(knobs)
    index.search_params(**knobs)  # a bad setting stops here, before a model loads
    from ..serve.app import create_app
    from ..serve.passages import Passages
    from ..serve.service import Service

    passages = Passages(collection) if collection is not None else None
    encoder = text_encoder(index, query_encoder, model, idf_path)
    service = Service(index, config, encoder, passages, api_key, knobs)
    if getattr(index, "has_vocab", True):
        index.warmup()
    if encoder is not None:
        encoder.encode_queries(["warm up"])  # the first call pays the model's own set-up
    if passages is not None:
        passages.scan()
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    echo(f"serving {index_dir} ({service.shape}, {index.kind}, {service.n_live:,} documents; writes "
         f"{'on' if api_key and service.writer is not None else 'off'}) on http://{shown}:{bound_port}")
    serve_app(create_app(service), sock, drain_seconds=timeout + 5)
    echo("stopped")
