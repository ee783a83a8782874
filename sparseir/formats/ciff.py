"""CIFF, the Common Index File Format (OSIRRC) that Anserini, PISA, JASS, BMP and PyTerrier
exchange inverted indexes in.

A CIFF file is a Header, then ``num_postings_lists`` PostingsList messages (term, df, cf and
postings of delta-gapped docids with integer term frequencies), then ``num_docs`` DocRecord
messages (docid, the collection's own id, length), each prefixed with its varint size. The
messages are those of the published ``ciff.proto``, as ``ciff-toolkit`` ships them; protobuf
parses and serializes them (the ``interop`` extra).

Learned sparse weights travel as integer impacts in the term-frequency field. Writing
declares its quantization (`Quantization`): a scale (impact = rint(weight x scale)), or bits
with the collection's largest weight (scale = (2^bits - 1) / largest weight); every non-zero
weight stays at least 1, so the vectors keep their support. The rule and its numbers go into
the header's description. Reading takes each impact as the weight.

Both directions stream: the writer inverts the documents with the library's inversion (in a
workspace's files, out of core) and writes one postings list at a time; the reader appends
postings lists as rows of a term-major matrix (spooled to a workspace's files out of core)
and inverts that back into documents. A file that ends early or holds a damaged message is
refused in one line that names the byte offset (of the decompressed stream for .gz).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import InputError, ParameterError, require
from ..extras import require_extra
from ..fileio import atomic_file, open_binary
from ..quantize import check_bits, levels
from ..vectors import SparseVectors, VectorBuilder, Vocabulary
from ..workspace import IN_MEMORY, Workspace
from .vocabs import check_vocab, is_auto, resolve_vocab, unknown_term_hint

CIFF_VERSION = 1
MAX_IMPACT = np.iinfo(np.int32).max  # the tf field is an int32
READ_BYTES = 1 << 20
VARINT_MAX_BYTES = 10


@dataclass(frozen=True)
class Quantization:
    """How weights become CIFF impacts: ``scale`` (impact = rint(weight x scale)), or ``bits``
    (scale = (2^bits - 1) / the collection's largest weight, so that weight gets the top
    impact). Exactly one is given. Every impact is at least 1."""

    scale: float | None = None
    bits: int | None = None

    def __post_init__(self):
        require((self.scale is None) != (self.bits is None), "give the quantization as scale or bits (one of them)")
        if self.bits is not None:
            check_bits(self.bits)
        else:
            require(not isinstance(self.scale, bool) and isinstance(self.scale, (int, float, np.floating))
                    and math.isfinite(self.scale) and self.scale > 0,
                    f"scale must be a finite number > 0, got {self.scale!r}")

    def multiplier(self, max_weight: float) -> float:
        """The factor impacts are rint(weight x factor) of, for a collection whose largest weight is given."""
        if self.scale is not None:
            return float(self.scale)
        return levels(self.bits) / max_weight if max_weight > 0 else 1.0

    def top(self) -> int:
        return MAX_IMPACT if self.bits is None else levels(self.bits)

    def describe(self, max_weight: float) -> str:
        """The rule in words, with its numbers (the header's description, the command line's echo)."""
        factor = self.multiplier(max_weight)
        given = f"scale {self.scale!r}" if self.bits is None else f"bits {self.bits}, global max weight {max_weight!r}"
        return f"impact = clip(rint(weight * {factor!r}), 1, {self.top()}) ({given})"


def impacts(weights: np.ndarray, factor: float, top: int) -> np.ndarray:
    """int32 impacts of positive weights: rint(weight x factor) in float64, clipped to [1, top]."""
    scaled = np.array(weights, dtype=np.float64)  # one temporary, worked in place: a chunk's memory
    scaled *= factor
    np.rint(scaled, out=scaled)
    if top == MAX_IMPACT and len(scaled) and scaled.max() > MAX_IMPACT:
        raise ParameterError(f"scale {factor!r} makes weight {float(np.max(weights))!r} an impact above the "
                             f"int32 range of CIFF; choose a smaller scale or bits")
    np.clip(scaled, 1, top, out=scaled)
    return scaled.astype(np.int32)


def quantize_vectors(docs: SparseVectors, quantization: Quantization,
                     workspace: Workspace = IN_MEMORY) -> tuple[SparseVectors, float]:
    """(the vectors with their CIFF impacts as weights, the collection's largest weight): what a
    CIFF written with `quantization` holds, as vectors."""
    max_weight = largest_weight(docs, workspace)
    factor, top = quantization.multiplier(max_weight), quantization.top()
    weights = workspace.empty(docs.nnz, np.float32)
    for lo, hi in workspace.row_ranges(docs.offsets, "quantizing"):
        start, end = docs.offsets[lo], docs.offsets[hi]
        weights[start:end] = impacts(docs.weights[start:end], factor, top)
    return SparseVectors(docs.offsets, docs.terms, weights, docs.ids, docs.vocab, validate=False), max_weight


def largest_weight(docs: SparseVectors, workspace: Workspace = IN_MEMORY) -> float:
    largest = 0.0
    for lo, hi in workspace.row_ranges(docs.offsets, "largest weight"):
        start, end = docs.offsets[lo], docs.offsets[hi]
        if end > start:
            largest = max(largest, float(np.max(docs.weights[start:end])))
    return largest


def _messages():
    """The ciff.proto message classes, and protobuf's varint coders, or one line saying how to install them."""
    require_extra("interop", "CIFF")
    from ciff_toolkit.ciff_pb2 import DocRecord, Header, PostingsList
    from google.protobuf.internal.decoder import _DecodeVarint32
    from google.protobuf.internal.encoder import _VarintBytes
    from google.protobuf.message import DecodeError

    return Header, PostingsList, DocRecord, _DecodeVarint32, _VarintBytes, DecodeError


# --- writing --------------------------------------------------------------------------------


def write_ciff(docs: SparseVectors, path: str | os.PathLike, quantization: Quantization,
               description: str = "", workspace: Workspace = IN_MEMORY, overwrite: bool = False) -> str:
    """Write `docs` as a CIFF file (.gz compresses), atomically; returns the header's description.

    Postings lists come in term-id order, each with its documents ascending (CIFF docids are
    row numbers); doc records carry the external ids; a document's length, a list's cf and
    the collection's total are sums of impacts. Memory: the inverted postings live in the
    workspace (out of core: its files, touched a budget at a time)."""
    from ..indexer.inversion import invert, term_counts

    Header, PostingsList, DocRecord, _, varint_bytes, _ = _messages()
    require(len(docs) > 0, "cannot write a CIFF file of zero documents")
    max_weight = largest_weight(docs, workspace)
    factor, top = quantization.multiplier(max_weight), quantization.top()
    rule = quantization.describe(max_weight)
    description = f"{description}; {rule}" if description else rule
    lengths = np.zeros(len(docs), dtype=np.int64)
    for lo, hi in workspace.row_ranges(docs.offsets, "document lengths"):
        start, end = docs.offsets[lo], docs.offsets[hi]
        lengths[lo:hi] = np.add.reduceat(impacts(docs.weights[start:end], factor, top),
                                         docs.offsets[lo:hi] - start, dtype=np.int64) if end > start else 0
        lengths[lo:hi][np.diff(docs.offsets[lo:hi + 1]) == 0] = 0  # reduceat repeats a value for empty rows
    require(lengths.max() <= MAX_IMPACT, "a document's length (its impacts' sum) exceeds CIFF's int32; "
                                         "choose a smaller scale or fewer bits")
    counts = term_counts(docs, workspace)
    inverted = invert(docs, workspace, counts=counts)
    term_offsets, posting_docs, posting_weights = (inverted[name] for name in
                                                   ("term_offsets", "posting_docs", "posting_weights"))
    present = np.flatnonzero(counts > 0)
    total = int(lengths.sum())
    header = Header(version=CIFF_VERSION, num_postings_lists=len(present), num_docs=len(docs),
                    total_postings_lists=len(present), total_docs=len(docs), total_terms_in_collection=total,
                    average_doclength=total / len(docs), description=description)
    with atomic_file(path, mode="wb", overwrite=overwrite) as out:
        def write(message) -> None:
            data = message.SerializeToString()
            out.write(varint_bytes(len(data)))
            out.write(data)

        write(header)
        costs = counts[present] * 8  # a posting's docid and weight, what writing a list touches
        for lo, hi in workspace.ranges(costs, "writing postings lists"):
            for term in present[lo:hi].tolist():
                start, end = term_offsets[term], term_offsets[term + 1]
                rows = posting_docs[start:end].astype(np.int64)
                gaps = np.diff(rows, prepend=0).tolist()
                term_impacts = impacts(posting_weights[start:end], factor, top)
                postings = PostingsList(term=docs.vocab.term(term), df=end - start, cf=int(term_impacts.sum()))
                add = postings.postings.add
                for gap, impact in zip(gaps, term_impacts.tolist()):
                    add(docid=gap, tf=impact)
                write(postings)
        for lo, hi in workspace.steps(len(docs), "writing doc records"):
            for row in range(lo, hi):
                write(DocRecord(docid=row, collection_docid=str(docs.ids[row]), doclength=int(lengths[row])))
    return description


# --- reading --------------------------------------------------------------------------------


class _Messages:
    """The varint-delimited messages of a file, in order, each with the byte offset it starts at."""

    def __init__(self, f, path, decode_varint, decode_error):
        self.f, self.path = f, path
        self.decode_varint, self.decode_error = decode_varint, decode_error
        self.buffer = b""
        self.at = 0  # position in buffer
        self.base = 0  # the stream offset of buffer[0]
        self.eof = False

    @property
    def offset(self) -> int:
        return self.base + self.at

    def _fill(self, needed: int) -> None:
        """Read until `needed` bytes follow the position, or the file ends."""
        if len(self.buffer) - self.at >= needed or self.eof:
            return
        parts = [self.buffer[self.at:]]
        have = len(parts[0])
        self.base += self.at
        self.at = 0
        while have < needed and not self.eof:
            try:
                chunk = self.f.read(max(READ_BYTES, needed - have))
            except (OSError, EOFError) as e:  # a damaged or truncated gzip stream
                raise InputError(f"cannot read at byte {self.base + have}: {e}", self.path) from None
            if not chunk:
                self.eof = True
            parts.append(chunk)
            have += len(chunk)
        self.buffer = b"".join(parts)

    def at_end(self) -> bool:
        self._fill(1)
        return self.at >= len(self.buffer)

    def read(self, message_type, what: str):
        """The next message, parsed as `message_type`; `what` names it in errors."""
        start = self.offset
        self._fill(VARINT_MAX_BYTES)
        if self.at >= len(self.buffer):
            raise InputError(f"truncated: the file ends at byte {start}, where {what} should start", self.path)
        try:
            size, after = self.decode_varint(self.buffer, self.at)
        except (IndexError, self.decode_error):
            raise InputError(f"{what} at byte {start}: its size prefix is cut off or damaged", self.path) from None
        self.at = after
        self._fill(size)
        data = self.buffer[self.at:self.at + size]
        if len(data) < size:
            raise InputError(f"truncated: {what} at byte {start} needs {size} bytes, the file ends at byte "
                             f"{self.offset + len(data)}", self.path)
        self.at += size
        try:
            return message_type.FromString(data)
        except (self.decode_error, ValueError) as e:
            raise InputError(f"{what} at byte {start} is damaged: {e}", self.path) from None


def read_ciff(path: str | os.PathLike, vocab: Vocabulary | str | None = "auto",
              workspace: Workspace | None = None) -> SparseVectors:
    """The documents of a CIFF file, with their impacts as weights and the doc records' ids.

    vocab as in ``read_vectors``: "auto" takes BERT's vocabulary when every term of the file is
    in it, else an open one of the file's terms in file order. Postings lists are inverted into
    documents in memory linear in the postings, or in a workspace's files out of core.
    """
    Header, PostingsList, DocRecord, decode_varint, _, decode_error = _messages()
    check_vocab(vocab)
    workspace = workspace if workspace is not None else IN_MEMORY
    with open_binary(path) as f:
        messages = _Messages(f, path, decode_varint, decode_error)
        header = messages.read(Header, "the header")
        n_lists, n_docs = int(header.num_postings_lists), int(header.num_docs)
        if n_lists < 0 or n_docs < 1:
            raise InputError(f"the header counts {n_lists} postings lists and {n_docs} documents "
                             "(not a CIFF file, or an empty index)", path)
        lists = VectorBuilder(Vocabulary([]), workspace=workspace)  # rows: postings lists; columns: docids
        terms: dict[str, int] = {}
        with workspace.progress_bar("reading postings lists", n_lists) as bar:
            for number in range(n_lists):
                start = messages.offset
                postings = messages.read(PostingsList, f"postings list {number + 1} of {n_lists}")
                where = f"postings list {number + 1} of {n_lists} ({postings.term!r}, at byte {start})"
                if not postings.term or postings.term in terms:
                    raise InputError(f"{where}: {'no term' if not postings.term else 'its term repeats an earlier list'}",
                                     path)
                terms[postings.term] = number
                count = len(postings.postings)
                if postings.df != count:
                    raise InputError(f"{where}: df {postings.df} but {count} postings", path)
                docids = np.fromiter((posting.docid for posting in postings.postings), np.int64, count)
                tfs = np.fromiter((posting.tf for posting in postings.postings), np.int64, count)
                problem = _postings_problem(docids, tfs, n_docs)
                if problem:
                    raise InputError(f"{where}: {problem}", path)
                np.cumsum(docids, out=docids)
                keep = tfs > 0  # a zero impact scores nothing: the document does not hold the term
                lists.add_rows([postings.term], np.array([int(keep.sum())], dtype=np.int64),
                               docids[keep].astype(np.int32), tfs[keep].astype(np.float32))
                bar.advance_to(number + 1)
        ids: list[str] = []
        for number in range(n_docs):
            start = messages.offset
            record = messages.read(DocRecord, f"doc record {number + 1} of {n_docs}")
            if record.docid != number:
                raise InputError(f"doc record {number + 1} of {n_docs} (at byte {start}) has docid {record.docid}; "
                                 "doc records must number the documents 0, 1, ... in order", path)
            ids.append(record.collection_docid)
        if not messages.at_end():
            raise InputError(f"the header counts {n_lists} postings lists and {n_docs} doc records, but more data "
                             f"follows at byte {messages.offset}", path)
    if len(set(ids)) != len(ids):
        raise InputError("duplicate collection docids in the doc records", path)
    by_term = lists.build()
    inverted = _invert(by_term, n_docs, workspace)
    try:
        vocab = _vocabulary(list(terms), inverted["term_offsets"], inverted["posting_docs"],
                            inverted["posting_weights"], vocab, workspace)
    except ParameterError as e:
        raise InputError(str(e), path) from None
    return SparseVectors(inverted["term_offsets"], inverted["posting_docs"], inverted["posting_weights"], ids, vocab,
                         validate=False)


def _postings_problem(gaps: np.ndarray, tfs: np.ndarray, n_docs: int) -> str | None:
    """What is wrong with one list's delta-gapped docids and impacts, or None."""
    if not len(gaps):
        return "no postings"
    if gaps[0] < 0 or np.any(gaps[1:] <= 0):
        return "docids do not ascend (each gap after the first must be positive)"
    last = int(gaps.sum())
    if last >= n_docs:
        return f"docid {last} outside the {n_docs} documents the header counts"
    if tfs.min() < 0:
        return f"negative impact {int(tfs.min())}"
    return None


def _invert(by_term: SparseVectors, n_docs: int, workspace: Workspace) -> dict[str, np.ndarray]:
    """Postings lists (rows) -> documents, each with its list numbers ascending."""
    from ..indexer.inversion import invert

    return invert(by_term, workspace, n_terms=n_docs)


def _vocabulary(terms: list[str], offsets: np.ndarray, doc_terms: np.ndarray, doc_weights: np.ndarray, vocab,
                workspace: Workspace) -> Vocabulary:
    """The vocabulary of documents whose terms are list numbers: "open" keeps them (file order);
    BERT's (or a given vocabulary) renumbers them in place, each document sorted again."""
    start = resolve_vocab(vocab)
    known = [start.get(term) for term in terms]
    missing = [term for term, term_id in zip(terms, known) if term_id is None]
    if vocab == "open" or (is_auto(vocab) and missing):
        return Vocabulary(terms, open=True)
    if missing and not start.open:
        label = start.name or "the index"
        raise ParameterError(f"term {missing[0]!r} is not in the {label} vocabulary{unknown_term_hint(vocab)}")
    target = np.array([term_id if term_id is not None else start.add(term) for term, term_id in zip(terms, known)],
                      dtype=np.int32)
    for lo, hi in workspace.row_ranges(offsets, "renumbering terms", bytes_per_value=8):
        renumber_rows(lo, hi, offsets, doc_terms, doc_weights, target)
    return start.frozen()


@njit(cache=True)
def renumber_rows(row_lo, row_hi, offsets, terms, weights, target):
    """Map rows row_lo:row_hi's terms through `target` in place, each row's (term, weight) pairs
    sorted by term again (an insertion sort: rows are short, and stay ascending where `target`
    keeps the order, which costs one pass)."""
    for row in range(row_lo, row_hi):
        lo, hi = offsets[row], offsets[row + 1]
        for p in range(lo, hi):
            terms[p] = target[terms[p]]
        for p in range(lo + 1, hi):
            term, weight = terms[p], weights[p]
            q = p - 1
            while q >= lo and terms[q] > term:
                terms[q + 1], weights[q + 1] = terms[q], weights[q]
                q -= 1
            terms[q + 1], weights[q + 1] = term, weight
