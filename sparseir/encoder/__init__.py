"""Text -> sparse vectors: SPLADE, uniCOIL and inference-free (IDF) query encoders.

    encoder = sparseir.encoder.load_encoder("default")   # the embedded splade-tiny model
    docs = encoder.encode_documents(texts, ids=ids)
    queries = encoder.encode_queries(["what is a sparse index"])

A model is a local Hugging Face directory; nothing is ever downloaded. Every encoder
shares one pipeline: tokenize (truncating over-long texts), sort by length, pad each
batch only to its own longest text, weight the terms, restore the input order, prune or
quantise, and return `SparseVectors` over the tokenizer's vocabulary. A side (documents
or queries) is a `TermWeighter`; documents and queries may use different ones.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from ..errors import InputError, ParameterError, require
from ..progress import Progress
from ..vectors import SparseVectors, Vocabulary

KINDS = ("splade", "unicoil", "idf")
DEFAULT_MODEL = "default"
EMBEDDED_MODEL = "splade-tiny"
DTYPES = ("float32", "float16", "bfloat16")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")  # either one is enough
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # either one is enough
# OpenSearch's inference-free document models ship their query weights beside the model.
MODEL_IDF_FILE = "idf.json"
# Texts sorted by length together: large enough that batches are nearly uniform in
# length, small enough to stream any collection in bounded memory.
CHUNK_BATCHES = 64

logger = logging.getLogger("sparseir.encoder")

__all__ = ["DEFAULT_MODEL", "Encoder", "EncoderOptions", "IdfQueryEncoder", "KINDS", "TermWeighter",
           "load_encoder", "model_directory"]


@dataclass(frozen=True)
class EncoderOptions:
    """How texts become vectors; the same for every kind of encoder."""

    doc_max_length: int = field(default=256, metadata={"help": "truncate documents to this many tokens"})
    query_max_length: int = field(default=64, metadata={"help": "truncate queries to this many tokens"})
    top_k: int | None = field(default=None, metadata={"help": "keep only the k largest weights of each vector"})
    threshold: float = field(default=0.0, metadata={"help": "drop weights at or below this value"})
    quantize: float | None = field(default=None, metadata={
        "help": "store integer impacts round(weight * QUANTIZE), e.g. 100; zeros are dropped"})
    binary: bool = field(default=False, metadata={
        "help": "weight 1 for every term kept (binary codes, as UHD; with top_k: the k heaviest)"})
    dtype: str = field(default="float32", metadata={"help": "model precision: float32, float16 or bfloat16"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (default: torch's choice)"})
    batch_tokens: int | None = field(default=None, metadata={
        "help": "cut batches at this many padded tokens instead of batch_size texts (suits GPUs)"})
    device: str = field(default="auto", metadata={
        "help": "auto (a CUDA GPU, else Apple mps, else the CPU), cpu, cuda, cuda:N or mps"})
    idf: str | None = field(default=None, metadata={
        "help": "term<TAB>idf file weighting query tokens (kind idf)"})

    def __post_init__(self):
        for name in ("doc_max_length", "query_max_length"):
            value = getattr(self, name)
            require(_is_int(value) and 4 <= value <= 8192, f"{name} must be an integer in [4, 8192], got {value!r}")
        require(self.top_k is None or (_is_int(self.top_k) and self.top_k >= 1),
                f"top_k must be a positive integer or None, got {self.top_k!r}")
        require(_is_number(self.threshold) and self.threshold >= 0,
                f"threshold must be a non-negative number, got {self.threshold!r}")
        require(self.quantize is None or (_is_number(self.quantize) and self.quantize > 0),
                f"quantize must be a positive scale or None, got {self.quantize!r}")
        require(isinstance(self.binary, bool), f"binary must be True or False, got {self.binary!r}")
        require(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        require(self.threads is None or (_is_int(self.threads) and self.threads >= 1),
                f"threads must be a positive integer or None, got {self.threads!r}")
        require(self.batch_tokens is None or (_is_int(self.batch_tokens) and self.batch_tokens >= 1),
                f"batch_tokens must be a positive integer or None, got {self.batch_tokens!r}")
        require(isinstance(self.device, str) and DEVICE_PATTERN.fullmatch(self.device) is not None,
                f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return _is_int(value) or (isinstance(value, (float, np.floating)) and np.isfinite(value))


# --- models on disk -------------------------------------------------------------------

def model_directory(model: str | os.PathLike) -> Path:
    """The directory of `model`: "default" is the embedded splade-tiny, anything else a path."""
    if os.fspath(model) == DEFAULT_MODEL:
        return Path(str(resources.files("sparseir.data").joinpath("models", EMBEDDED_MODEL)))
    return Path(model)


def check_model_directory(directory: Path, required: Sequence[str | tuple[str, ...]]) -> Path:
    """Fail with one line naming the first missing file; a tuple means any one of them."""
    if not directory.is_dir():
        raise InputError("model directory not found", directory)
    for names in required:
        names = (names,) if isinstance(names, str) else names
        if not any((directory / name).is_file() for name in names):
            raise InputError(f"incomplete model directory: missing {' or '.join(names)}", directory)
    return directory


def load_tokenizer(model: str | os.PathLike):
    """A fast tokenizer from a local model directory (or "default")."""
    from transformers import AutoTokenizer

    directory = check_model_directory(model_directory(model), [TOKENIZER_FILES])
    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load the tokenizer: {_first_line(e)}", directory) from None


def tokenizer_vocabulary(tokenizer, name: str) -> Vocabulary:
    """The tokenizer's terms in id order; BERT uncased gives the shared default vocabulary."""
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    if [term_id for _, term_id in by_id] != list(range(len(by_id))):
        raise InputError("tokenizer ids are not contiguous from 0", name)
    terms = [term for term, _ in by_id]
    default = Vocabulary.default()
    return default if terms == default.terms else Vocabulary(terms, name=name)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# --- one side: token ids -> one weight per vocabulary term ------------------------------

class TermWeighter(ABC):
    """Weights the terms of tokenized texts; documents and queries each use one."""

    tokenizer: object
    vocab: Vocabulary
    special_ids: np.ndarray  # never output: [CLS], [SEP], [PAD], ...

    @abstractmethod
    def term_weights(self, token_ids: list[np.ndarray]) -> np.ndarray:
        """(len(token_ids), len(vocab)) float32 non-negative weights, one row per text."""

    def tokenize(self, texts: list[str], max_length: int) -> tuple[list[np.ndarray], int]:
        """Token ids with special tokens, truncated to max_length; also how many were cut."""
        # One token of slack tells "needed truncation" apart from "exactly max_length".
        encoded = self.tokenizer(texts, truncation=True, max_length=max_length + 1)["input_ids"]
        too_long = [row for row, ids in enumerate(encoded) if len(ids) > max_length]
        if too_long:
            again = self.tokenizer([texts[row] for row in too_long], truncation=True, max_length=max_length)
            for row, ids in zip(too_long, again["input_ids"]):
                encoded[row] = ids
        return [np.asarray(ids, dtype=np.int64) for ids in encoded], len(too_long)

    def n_special_tokens(self) -> int:
        """How many tokens an empty text gets ([CLS] [SEP] for BERT)."""
        return len(self.tokenizer("")["input_ids"])


def special_token_ids(tokenizer) -> np.ndarray:
    return np.asarray(sorted(set(tokenizer.all_special_ids)), dtype=np.int64)


class TransformerWeighter(TermWeighter):
    """A torch model in a local directory; the weights load on first use.

    Checking the files and reading the tokenizer happen at once (bad input fails early);
    the model itself loads only when something is encoded, so a query-only use of an
    encoder never pays for its document model.
    """

    required_files: tuple = ("config.json", WEIGHT_FILES, TOKENIZER_FILES)

    def __init__(self, model: str | os.PathLike, options: EncoderOptions):
        self.directory = check_model_directory(model_directory(model), self.required_files)
        self.options = options
        self.tokenizer = load_tokenizer(self.directory)
        self.vocab = tokenizer_vocabulary(self.tokenizer, self.directory.name)
        self.special_ids = special_token_ids(self.tokenizer)
        self.device = resolve_device(options.device)
        self._modules = None

    @property
    def modules(self):
        if self._modules is None:
            import torch

            if self.options.threads is not None:
                torch.set_num_threads(self.options.threads)
            self._modules = self.load_modules(getattr(torch, self.options.dtype))
        return self._modules

    @abstractmethod
    def load_modules(self, dtype):
        """Load the torch modules (in eval mode, `dtype`) this weighter runs."""

    def load_pretrained(self, auto_class, dtype):
        """auto_class.from_pretrained on the directory, local files only, one-line errors."""
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its loading bar would garble our progress output
        try:
            model = auto_class.from_pretrained(self.directory, local_files_only=True, dtype=dtype)
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"cannot load the model: {_first_line(e)}", self.directory) from None
        positions = getattr(model.config, "max_position_embeddings", None)
        longest = max(self.options.doc_max_length, self.options.query_max_length)
        if positions is not None and longest > positions:
            raise ParameterError(f"max length {longest} exceeds the model's {positions} positions "
                                 "(lower doc_max_length / query_max_length)")
        if getattr(model.config, "vocab_size", len(self.vocab)) < len(self.vocab):
            raise InputError(f"tokenizer/model mismatch: the tokenizer has {len(self.vocab)} terms but the model "
                             f"only {model.config.vocab_size}", self.directory)
        return model.to(self.device).eval()

    def padded(self, token_ids: list[np.ndarray]):
        """(input_ids, attention_mask) tensors on the device, padded to the longest text of this batch."""
        import torch

        width = max(len(ids) for ids in token_ids)
        input_ids = np.full((len(token_ids), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(token_ids), width), dtype=bool)
        for row, ids in enumerate(token_ids):
            input_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = True
        return torch.from_numpy(input_ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def drop_special(self, weights):
        """Zero the special-token columns of a (batch, V) tensor and return it as float32 numpy."""
        weights[:, self.special_ids] = 0
        return weights.float().cpu().numpy()


def resolve_device(name: str):
    """The torch device `name` stands for ("auto": a CUDA GPU, else mps, else the CPU);
    a one-line error when this machine has no such device."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ParameterError(f"device {name!r} is not available: torch {torch.__version__} sees "
                                 f"{count} CUDA GPU(s) here (use --device cpu or auto)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ParameterError(f"device {name!r} is not available on this machine (use --device cpu or auto)")
    return device


# --- the pipeline ---------------------------------------------------------------------

class Encoder:
    """Encodes documents and queries into `SparseVectors` over one vocabulary."""

    def __init__(self, documents: TermWeighter | None, queries: TermWeighter | None = None,
                 options: EncoderOptions | None = None):
        queries = queries if queries is not None else documents
        require(queries is not None, "an encoder needs a document or a query model")
        if documents is not None and documents.vocab != queries.vocab:
            raise ParameterError(f"the document model uses {documents.vocab!r} but the query model "
                                 f"{queries.vocab!r}; both must share one tokenizer vocabulary")
        self.documents = documents
        self.queries = queries
        self.options = options if options is not None else EncoderOptions()

    @property
    def vocab(self) -> Vocabulary:
        return self.queries.vocab

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vocab!r}, {self.options})"

    def encode_documents(self, texts: Sequence[str] | Iterable[str], ids: Sequence[str] | None = None,
                         batch_size: int = 32, progress: bool = False) -> SparseVectors:
        """One vector per text, in input order, ids carried along (default "0", "1", ...)."""
        return self._encode_all(self._document_weighter(), texts, ids, batch_size, progress,
                                self.options.doc_max_length)

    def encode_queries(self, texts: Sequence[str] | Iterable[str], ids: Sequence[str] | None = None,
                       batch_size: int = 32, progress: bool = False) -> SparseVectors:
        return self._encode_all(self.queries, texts, ids, batch_size, progress, self.options.query_max_length)

    def encode_file(self, path: str | os.PathLike, output_path: str | os.PathLike, query: bool = False,
                    batch_size: int = 32, progress: bool = False, overwrite: bool = False) -> int:
        """Stream an `id<TAB>text` file (.gz allowed), or an ``irds:<dataset id>``'s documents
        (queries with `query`), into a .jsonl(.gz) or .parquet file.

        The output appears only once every text is encoded. Returns the number written.
        """
        from ..formats import read_documents, read_queries

        weighter = self.queries if query else self._document_weighter()
        max_length = self.options.query_max_length if query else self.options.doc_max_length
        read = read_queries if query else read_documents
        records = ((record.id, record.text) for record in read(path))
        count = 0
        with vector_writer(output_path, self.vocab, overwrite) as write:
            for vectors, texts in self._encode_chunks(weighter, records, batch_size, progress, max_length, path):
                write(vectors, texts)
                count += len(vectors)
        return count

    # --- internals ------------------------------------------------------------------

    def _document_weighter(self) -> TermWeighter:
        if self.documents is None:
            raise ParameterError("this encoder only encodes queries (inference-free); load a document model with "
                                 "load_encoder(model, kind='idf', idf=...)")
        return self.documents

    def _encode_all(self, weighter, texts, ids, batch_size, progress, max_length) -> SparseVectors:
        if isinstance(texts, str):
            raise ParameterError("texts must be a sequence of strings, not one string")
        if ids is None:
            records = ((str(row), text) for row, text in enumerate(texts))
        else:
            texts = texts if hasattr(texts, "__len__") else list(texts)
            if len(ids) != len(texts):
                raise ParameterError(f"{len(ids)} ids for {len(texts)} texts")
            records = zip((str(i) for i in ids), texts)
        parts = [vectors for vectors, _ in self._encode_chunks(weighter, records, batch_size, progress, max_length)]
        if not parts:
            return SparseVectors(np.zeros(1, np.int64), [], [], np.empty(0, str), self.vocab, validate=False)
        return SparseVectors.concatenate(parts)

    def _encode_chunks(self, weighter, records: Iterable[tuple[str, str]], batch_size: int, progress: bool,
                       max_length: int, source=None) -> Iterator[tuple[SparseVectors, list[str]]]:
        require(_is_int(batch_size) and batch_size >= 1, f"batch_size must be a positive integer, got {batch_size!r}")
        total = truncated = 0

        def tokenize(chunk: tuple[list[str], list[str]]) -> TokenizedChunk:
            return tokenize_chunk(weighter, *chunk, max_length, source)

        with progress_bar(progress) as advance:
            # The next chunk is tokenized on a background thread while this one runs the model.
            for chunk in computed_ahead(tokenize, _chunks(records, batch_size * CHUNK_BATCHES)):
                vectors = self._weigh_chunk(weighter, chunk, batch_size)
                total += len(chunk.texts)
                truncated += chunk.truncated
                advance(len(chunk.texts))
                yield vectors, chunk.texts
        if truncated:
            logger.warning("truncated %d of %d texts to %d tokens", truncated, total, max_length)

    def _weigh_chunk(self, weighter, chunk: "TokenizedChunk", batch_size: int) -> SparseVectors:
        lengths = np.fromiter(map(len, chunk.token_ids), dtype=np.int64, count=len(chunk.token_ids))
        # Longest first: similar lengths share a batch (little padding) and a batch that
        # does not fit in memory fails at once.
        order = np.argsort(-lengths, kind="stable")
        sizes, terms, weights = [], [], []
        for rows in batch_rows(order, lengths, batch_size, self.options.batch_tokens):
            dense = weighter.term_weights([chunk.token_ids[row] for row in rows])
            batch_sizes, batch_terms, batch_weights = sparsify(dense, self.options)
            sizes.append(batch_sizes)
            terms.append(batch_terms)
            weights.append(batch_weights)
        offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(sizes), out=offsets[1:])
        by_length = SparseVectors(offsets, np.concatenate(terms), np.concatenate(weights),
                                  np.asarray(chunk.ids)[order], self.vocab, validate=False)
        return by_length.take(np.argsort(order))


class TokenizedChunk(NamedTuple):
    ids: list[str]
    texts: list[str]
    token_ids: list[np.ndarray]
    truncated: int  # how many texts were cut to max_length


def tokenize_chunk(weighter: TermWeighter, ids: list[str], texts: list[str], max_length: int,
                   source) -> TokenizedChunk:
    """Check and tokenize one chunk; an empty text is an error naming its id (and file)."""
    for vector_id, text in zip(ids, texts):
        if not isinstance(text, str):
            raise ParameterError(f"text {vector_id!r} is {type(text).__name__}, not a string")
    token_ids, truncated = weighter.tokenize(texts, max_length)
    n_special = weighter.n_special_tokens()
    for vector_id, ids_of_text in zip(ids, token_ids):
        if len(ids_of_text) <= n_special:
            message = f"empty text (id {vector_id!r})"
            raise InputError(message, source) if source is not None else ParameterError(message)
    return TokenizedChunk(ids, texts, token_ids, truncated)


def batch_rows(order: np.ndarray, lengths: np.ndarray, batch_size: int,
               batch_tokens: int | None) -> Iterator[np.ndarray]:
    """Consecutive runs of `order` (longest text first): batch_size texts each, or, with a
    token budget, as many texts as fit in batch_tokens padded tokens (at least one)."""
    if batch_tokens is None:
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size]
        return
    start = 0
    while start < len(order):
        # Sorted longest first, so a batch is padded to its first text's length.
        stop = start + max(1, batch_tokens // int(lengths[order[start]]))
        yield order[start:stop]
        start = stop


def computed_ahead(function: Callable, items: Iterable) -> Iterator:
    """function(item) for each item, in order; the next item's result is computed on a
    background thread while the caller works on the current one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparseir-tokenize") as worker:
        pending = None
        for item in items:
            submitted = worker.submit(function, item)
            if pending is not None:
                yield pending.result()
            pending = submitted
        if pending is not None:
            yield pending.result()


def sparsify(dense: np.ndarray, options: EncoderOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense (n, V) weights -> CSR row sizes, term ids and weights after pruning/quantising."""
    keep = dense > options.threshold
    n_terms = dense.shape[1]
    if options.top_k is not None and options.top_k < n_terms:
        largest = np.argpartition(dense, n_terms - options.top_k, axis=1)[:, n_terms - options.top_k:]
        in_top = np.zeros_like(keep)
        np.put_along_axis(in_top, largest, True, axis=1)
        keep &= in_top
    if options.quantize is not None:
        dense = np.rint(dense * np.float32(options.quantize))
        keep &= dense > 0
    rows, terms = np.nonzero(keep)  # row-major: terms come out ascending within each row
    sizes = np.bincount(rows, minlength=len(dense))
    weights = np.ones(len(terms), dtype=np.float32) if options.binary else dense[rows, terms].astype(np.float32)
    return sizes, terms.astype(np.int32), weights


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last one shorter), streaming."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _chunks(records: Iterable[tuple[str, str]], size: int) -> Iterator[tuple[list[str], list[str]]]:
    for batch in batched(records, size):
        yield [vector_id for vector_id, _ in batch], [text for _, text in batch]


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield a function that advances a texts-per-second bar on stderr (or does nothing)."""
    with Progress("encoding", unit=" texts", enabled=enabled) as bar:
        yield bar.advance


@contextmanager
def vector_writer(path: str | os.PathLike, vocab: Vocabulary, overwrite: bool) -> Iterator[Callable]:
    """Yield write(vectors, texts) appending to a .jsonl(.gz) or .parquet file written atomically."""
    from ..formats import detect_format
    from ..formats.jsonl import jsonl_writer
    from ..formats.parquet import parquet_writer

    format = detect_format(path)
    if format == "jsonl":
        with jsonl_writer(path, vocab, overwrite) as write:
            yield write
    elif format == "parquet":
        with parquet_writer(path, vocab, overwrite) as write:
            yield lambda vectors, texts: write(vectors)  # Parquet vectors carry no text
    else:
        raise ParameterError(f"{os.fspath(path)}: encoded vectors are written as .jsonl, .jsonl.gz or .parquet")


# --- loading --------------------------------------------------------------------------

def load_encoder(model: str | os.PathLike = DEFAULT_MODEL, kind: str = "splade",
                 query_model: str | os.PathLike | None = None, **options) -> Encoder:
    """Load an encoder from local files only.

    model: "default" (the embedded splade-tiny) or a Hugging Face model directory.
    kind: "splade" (masked-LM), "unicoil" (encoder + linear head, see docs/encoders.md) or
    "idf" (documents with the SPLADE `model`, queries weighted by the IDF table `idf=`, by
    default the model directory's own idf.json as OpenSearch's inference-free models ship).
    query_model: a different model directory for queries (splade, unicoil).
    options: the fields of `EncoderOptions`.
    """
    from ..extras import require_extra

    require_extra("encode", "encoding text")
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(EncoderOptions)})
    if unknown:
        raise ParameterError(f"unknown encoder option(s) {', '.join(unknown)}")
    settings = EncoderOptions(**options)
    if kind == "idf":
        from .idf import IdfQueryEncoder
        from .splade import SpladeWeighter

        require(query_model is None, "query_model does not apply to kind 'idf' (queries are weighted by idf=)")
        documents = SpladeWeighter(model, settings)
        idf = settings.idf
        if idf is None and (documents.directory / MODEL_IDF_FILE).is_file():
            idf = documents.directory / MODEL_IDF_FILE
        require(idf is not None, f"kind 'idf' needs idf=PATH (a term<TAB>idf or .json file), or a model "
                                 f"directory with {MODEL_IDF_FILE}; {documents.directory} has none")
        return IdfQueryEncoder.load(idf, documents.tokenizer, documents, settings)
    if kind == "splade":
        from .splade import SpladeWeighter as weighter
    elif kind == "unicoil":
        from .unicoil import UnicoilWeighter as weighter
    else:
        raise ParameterError(f"unknown encoder kind {kind!r}; choose one of {', '.join(KINDS)}")
    documents = weighter(model, settings)
    queries = weighter(query_model, settings) if query_model is not None else None
    return Encoder(documents, queries, settings)


def __getattr__(name: str):
    # IdfQueryEncoder lives in its own module; importing it here eagerly would be circular.
    if name == "IdfQueryEncoder":
        from .idf import IdfQueryEncoder

        return IdfQueryEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
