"""Seismic's binary vector format (as read by the Seismic Rust library).

Little-endian throughout: u32 number of vectors; then per vector u32 n, n u32 term
ids (ascending), n f32 weights. The format carries neither ids nor a vocabulary:
ids become row numbers and term ids are taken as ids of the given vocabulary (by default
BERT's when they all fit, else terms named by their ids: see `vocab_for_term_ids`).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError, ParameterError
from ..fileio import atomic_file, open_binary
from ..vectors import SparseVectors, Vocabulary
from .vocabs import vocab_for_term_ids

U32 = np.dtype("<u4")
F32 = np.dtype("<f4")


def read_seismic_bin(path: str | os.PathLike, vocab: Vocabulary | str | None = "auto") -> SparseVectors:
    with open_binary(path) as f:
        data = f.read()
    if len(data) < 4 or len(data) % 4:
        raise InputError(f"size {len(data)} bytes is not a Seismic binary file (not a multiple of 4)", path)
    words = np.frombuffer(data, dtype=U32)
    n_vectors = int(words[0])
    if n_vectors == 0:
        raise InputError("no vectors found (empty file?)", path)
    lengths = np.empty(n_vectors, dtype=np.int64)
    starts = np.empty(n_vectors, dtype=np.int64)
    position = 1
    for row in range(n_vectors):
        if position >= len(words):
            raise InputError(f"truncated: header says {n_vectors} vectors, file ends in vector {row}", path)
        length = int(words[position])
        starts[row] = position + 1
        lengths[row] = length
        position += 1 + 2 * length
    if position != len(words):
        raise InputError(f"size mismatch: vectors end at byte {4 * position}, file has {len(data)}", path)
    offsets = np.zeros(n_vectors + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    terms = words[gather]
    weights = words[gather + np.repeat(lengths, lengths)].view(F32)
    try:
        vocab, terms = vocab_for_term_ids(terms, offsets, vocab)
    except ParameterError as e:
        raise InputError(str(e), path) from None
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        row = int(np.searchsorted(offsets, np.argmax(bad), side="right") - 1)
        raise InputError(f"vector {row}: weight is NaN, infinite or negative", path)
    try:
        return SparseVectors(offsets, terms.astype(np.int32), weights, None, vocab)
    except ValueError as e:
        raise InputError(str(e), path) from None


def write_seismic_bin(vectors: SparseVectors, path: str | os.PathLike, overwrite: bool = False) -> None:
    with atomic_file(path, mode="wb", overwrite=overwrite) as f:
        f.write(np.array([len(vectors)], dtype=U32).tobytes())
        for row in range(len(vectors)):
            lo, hi = vectors.offsets[row], vectors.offsets[row + 1]
            f.write(np.array([hi - lo], dtype=U32).tobytes())
            f.write(vectors.terms[lo:hi].astype(U32).tobytes())
            f.write(vectors.weights[lo:hi].astype(F32).tobytes())
