"""Reading streams its input: what a read allocates tracks the vectors, not the file.

Allocations are counted with tracemalloc, which sees every Python object and numpy array
the reader makes (the file's bytes, its decompressed blocks, the arrays it fills): a
count of the reader's own allocations, the same on every run, where the process's resident
set would also count the allocator's and the page cache's choices.
"""

import gzip
import json
import shutil
import tracemalloc

import numpy as np
import pytest

import sparseir
from sparseir.formats.lines import BLOCK_BYTES

# Slow: run with -m slow (CI runs both sets).
pytestmark = pytest.mark.slow

N_DOCS, TERMS_PER_DOC = 20_000, 30
# The arrays a read returns take 8 bytes a non-zero (term id, weight); growing them by
# doubling, the ids and the offsets stay within this many.
BYTES_PER_NONZERO = 64
# Blocks read ahead and decompressed on the side.
BLOCKS_IN_FLIGHT = 4


def write_collection(path, text_bytes: int) -> None:
    """SPLADE-like 30-term vectors (the same for every text_bytes) beside `text_bytes` of text each."""
    rng = np.random.default_rng(0)
    vocab = [f"term{i}" for i in range(5000)]
    text = json.dumps("lorem ipsum " * (text_bytes // 12))
    with open(path, "w") as f:
        for doc in range(N_DOCS):
            terms = rng.choice(len(vocab), TERMS_PER_DOC, replace=False)
            vector = ", ".join(f'"{vocab[t]}": {w:.4f}' for t, w in zip(terms, rng.random(TERMS_PER_DOC) + 0.01))
            f.write(f'{{"id": "doc{doc}", "contents": {text}, "vector": {{{vector}}}}}\n')


def allocated_peak(path) -> tuple[int, sparseir.SparseVectors]:
    sparseir.read_vectors(path, vocab="open")  # compiles or loads the kernels outside the count
    tracemalloc.start()
    try:
        vectors = sparseir.read_vectors(path, vocab="open")
        return tracemalloc.get_traced_memory()[1], vectors
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("compressed", [False, True])
def test_reading_allocates_for_the_vectors_not_the_text(tmp_path, compressed):
    paths = {}
    for name, text_bytes in (("short", 200), ("long", 4000)):
        paths[name] = tmp_path / f"{name}.jsonl"
        write_collection(paths[name], text_bytes)
    text_size = paths["long"].stat().st_size
    if compressed:
        for name, path in list(paths.items()):
            with open(path, "rb") as raw, gzip.open(path.with_suffix(".jsonl.gz"), "wb", compresslevel=1) as packed:
                shutil.copyfileobj(raw, packed)
            paths[name] = path.with_suffix(".jsonl.gz")
    short_peak, short_vectors = allocated_peak(paths["short"])
    long_peak, long_vectors = allocated_peak(paths["long"])
    assert long_vectors.nnz == short_vectors.nnz == N_DOCS * TERMS_PER_DOC
    bound = BYTES_PER_NONZERO * long_vectors.nnz + BLOCKS_IN_FLIGHT * BLOCK_BYTES
    print(f"compressed={compressed}: {text_size / 1e6:.0f} MB of JSON, peaks {short_peak / 1e6:.1f} (short texts) "
          f"and {long_peak / 1e6:.1f} MB (long), bound {bound / 1e6:.1f} MB")
    assert text_size > bound  # holding the JSON, or the texts in it, would break the bound
    assert long_peak < bound
    # Twenty times the text costs at most the blocks in flight more.
    assert long_peak < short_peak + BLOCKS_IN_FLIGHT * BLOCK_BYTES
