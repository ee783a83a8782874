"""Indexing streams its input: peak memory tracks the index arrays, not the file size."""

import json
import subprocess
import sys

import numpy as np

BYTES_PER_NONZERO = 32  # CSR docs (8) + inverted index (8) + headroom for ids and temporaries
N_DOCS, TERMS_PER_DOC, TEXT_BYTES = 250_000, 30, 2000

PEAK_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def peak_rss(*command) -> int:
    """Peak resident bytes of `command`, measured in a fresh parent so no other child counts."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], check=True, capture_output=True, text=True)
    return int(out.stdout)


def write_collection(path, n_docs: int):
    """Long passages (like real collections' "contents") with 30-term SPLADE-like vectors."""
    rng = np.random.default_rng(0)
    vocab = [f"term{i}" for i in range(5000)]
    text = json.dumps("lorem ipsum " * (TEXT_BYTES // 12))
    with open(path, "w") as f:
        for doc in range(n_docs):
            terms = rng.choice(len(vocab), TERMS_PER_DOC, replace=False)
            vector = ", ".join(f'"{vocab[t]}": {w:.4f}' for t, w in zip(terms, rng.random(TERMS_PER_DOC) + 0.01))
            f.write(f'{{"id": "doc{doc}", "contents": {text}, "vector": {{{vector}}}}}\n')


def test_index_peak_memory_stays_under_bound(tmp_path):
    def index_command(collection):
        return sys.executable, "-m", "sparseir", "index", str(collection), "-o", str(collection.with_suffix(".ix")), \
            "--vocab", "open"

    # The fixed cost (interpreter, imports, JIT compilation) is what indexing 100 documents takes.
    write_collection(tmp_path / "tiny.jsonl", 100)
    baseline = peak_rss(*index_command(tmp_path / "tiny.jsonl"))
    collection = tmp_path / "big.jsonl"
    write_collection(collection, N_DOCS)
    bound = baseline + BYTES_PER_NONZERO * N_DOCS * TERMS_PER_DOC
    assert collection.stat().st_size > bound  # the input does not fit in the bound
    peak = peak_rss(*index_command(collection))
    print(f"input {collection.stat().st_size / 2**20:.0f} MiB, bound {bound / 2**20:.0f} MiB, "
          f"peak RSS {peak / 2**20:.0f} MiB (baseline {baseline / 2**20:.0f} MiB)")
    assert peak < bound
