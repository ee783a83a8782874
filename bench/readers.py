"""Vector readers: non-zeros per second, end to end (decompression included), per format.

Each collection's SPLADE vectors are written to a temporary directory in every form the
readers take, then each form is read with `sparseir.read_vectors` `--repeats` times:

  shared.jsonl.gz   the shared file as it is (debian-pkgs: Anserini lines with texts and
                    4-decimal weights)
  jsonl.gz, jsonl   written by sparseir (no texts; float32 weights as shortest float64
                    reprs, 17 digits: the numbers Eisel-Lemire converts)
  parquet           written by sparseir (row groups of 65,536 rows)
  parts-jsonl.gz/   4 parts in a directory, as `sparseir encode-ray` lays them out
  parts-parquet/

Collections: debian-pkgs (pre-encoded, in ../shared/data beside the repository) and pypi-summaries, which is
not pre-encoded: pass its vectors (`--pypi-vectors`, e.g. from `sparseir encode`), or the
bench encodes its first `--pypi-docs` passages with the embedded model first (not timed).
The first read of each form also compiles or loads the Numba kernels and is not counted.
Reported per form: the best and median wall time of the timed reads, non-zeros per second
from the best, and the process CPU time of that read (the reading thread and the
decompressing one together: on a machine shared with other work, wall time overstates).

The JSONL forms are also read through general JSON libraries (`--libraries`, msgspec and
orjson where installed) into the same arrays, which must equal sparseir's: each line
decoded to its id and term -> weight object, terms mapped through the vocabulary sparseir's
read chose (given to them, not timed), then validated like any SparseVectors. The whole
file is read into memory first, which favours them.

    python bench/readers.py                                  # both collections, JSON in bench/results/
    python bench/readers.py --collections debian-pkgs --repeats 5
    python bench/readers.py --pypi-vectors pypi/vectors.collection.parquet
    python bench/readers.py --pypi-docs 150000 --libraries msgspec orjson
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench import open_binary

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
PARTS = 4


def pypi_vectors(args) -> sparseir.SparseVectors:
    if args.pypi_vectors:
        return sparseir.read_vectors(args.pypi_vectors)
    from sparseir.encoder import load_encoder

    ids, texts = [], []
    with gzip.open(DATA / "pypi-summaries" / "collection.tsv.gz", "rt", encoding="utf-8") as f:
        for line, _ in zip(f, range(args.pypi_docs)):
            doc_id, text = line.rstrip("\n").split("\t", 1)
            ids.append(doc_id)
            texts.append(text)
    print(f"encoding {len(texts):,} pypi-summaries passages (not timed) ...", flush=True)
    return load_encoder("default").encode_documents(texts, ids=ids)


def write_forms(vectors: sparseir.SparseVectors, directory: Path, shared: Path | None) -> dict[str, Path]:
    """Every form to read, written under `directory`."""
    forms = {"shared.jsonl.gz": shared} if shared is not None else {}
    for name in ("jsonl.gz", "jsonl", "parquet"):
        forms[name] = directory / f"vectors.{name}"
        sparseir.write_vectors(vectors, forms[name])
    bounds = [len(vectors) * part // PARTS for part in range(PARTS + 1)]
    for suffix in ("jsonl.gz", "parquet"):
        forms[f"parts-{suffix}/"] = directory / f"parts-{suffix}"
        forms[f"parts-{suffix}/"].mkdir()
        for part, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            sparseir.write_vectors(vectors[lo:hi], forms[f"parts-{suffix}/"] / f"part-{part:05d}.{suffix}")
    return forms


def time_reads(path: Path, repeats: int) -> dict:
    sparseir.read_vectors(path)  # compiles or loads the kernels, warms the page cache
    walls, cpus = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        vectors = sparseir.read_vectors(path)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    best = min(range(repeats), key=walls.__getitem__)
    return {"vectors": len(vectors), "nnz": vectors.nnz, "bytes": _size(path), "best_s": round(walls[best], 4),
            "median_s": round(statistics.median(walls), 4), "cpu_s": round(cpus[best], 4),
            "nnz_per_s": round(vectors.nnz / walls[best]), "nnz_per_cpu_s": round(vectors.nnz / cpus[best])}


def library_reader(library: str):
    """read(path, term_ids, vocab) -> SparseVectors through a general JSON library."""
    if library == "msgspec":
        import msgspec

        class Record(msgspec.Struct):  # the fields a reader keeps; "contents" is skipped unparsed
            id: str | int
            vector: dict[str, float]

        decoder = msgspec.json.Decoder(Record)

        def records(data: bytes):
            for record in decoder.decode_lines(data):
                yield record.id, record.vector
    else:
        import orjson

        def records(data: bytes):
            for line in data.splitlines():
                if line.strip():
                    record = orjson.loads(line)
                    yield record["id"], record["vector"]

    def read(path: Path, term_ids: dict, vocab) -> sparseir.SparseVectors:
        lookup = term_ids.__getitem__
        with open_binary(path) as f:
            data = f.read()
        ids, lengths, terms, weights = [], [], [], []
        for doc_id, vector in records(data):
            ids.append(str(doc_id))
            lengths.append(len(vector))
            terms.extend(map(lookup, vector))
            weights.extend(vector.values())
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return sparseir.SparseVectors(offsets, np.array(terms, dtype=np.int32), np.array(weights, dtype=np.float32),
                                      ids, vocab)

    return read


def time_library_reads(path: Path, library: str, expected: sparseir.SparseVectors, repeats: int) -> dict:
    read = library_reader(library)
    term_ids = {term: number for number, term in enumerate(expected.vocab.terms)}
    walls, cpus = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        vectors = read(path, term_ids, expected.vocab)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    same = (np.array_equal(vectors.offsets, expected.offsets) and np.array_equal(vectors.terms, expected.terms)
            and np.array_equal(vectors.weights, expected.weights) and list(vectors.ids) == list(expected.ids))
    if not same:
        raise SystemExit(f"{library} read {path} into other vectors than sparseir's")
    best = min(range(repeats), key=walls.__getitem__)
    return {"vectors": len(vectors), "nnz": vectors.nnz, "bytes": _size(path), "best_s": round(walls[best], 4),
            "median_s": round(statistics.median(walls), 4), "cpu_s": round(cpus[best], 4),
            "nnz_per_s": round(vectors.nnz / walls[best]), "nnz_per_cpu_s": round(vectors.nnz / cpus[best])}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=["debian-pkgs", "pypi-summaries"],
                        choices=["debian-pkgs", "pypi-summaries"])
    parser.add_argument("--pypi-vectors", help="pypi-summaries' vectors, already encoded (any vector format)")
    parser.add_argument("--pypi-docs", type=int, default=20_000,
                        help="passages of pypi-summaries to encode when --pypi-vectors is not given")
    parser.add_argument("--repeats", type=int, default=3, help="timed reads of each form")
    parser.add_argument("--libraries", nargs="*", default=["msgspec", "orjson"], choices=["msgspec", "orjson"],
                        help="general JSON libraries to read the JSONL forms with too (skipped where not installed)")
    parser.add_argument("--out", type=Path, default=RESULTS / "readers.json")
    args = parser.parse_args()

    libraries = [library for library in args.libraries if importlib.util.find_spec(library) is not None]
    results = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "cpus": os.cpu_count(), "collections": {}}
    with tempfile.TemporaryDirectory(prefix="sparseir-readers-") as tmp:
        for name in args.collections:
            directory = Path(tmp) / name
            directory.mkdir()
            shared = DATA / name / "vectors" / "collection.jsonl.gz"
            vectors = sparseir.read_vectors(shared) if shared.exists() else pypi_vectors(args)
            forms = write_forms(vectors, directory, shared if shared.exists() else None)
            print(f"\n{name}: {len(vectors):,} vectors, {vectors.nnz:,} non-zeros "
                  f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)")
            print(f"{'form':<26} {'MB':>7} {'best s':>8} {'median s':>9} {'M nnz/s':>8} {'cpu s':>7} "
                  f"{'M nnz/cpu-s':>12}")
            results["collections"][name] = {"load_average": round(os.getloadavg()[0], 1)}
            for form, path in forms.items():
                rows = {form: time_reads(path, args.repeats)}
                if form.endswith(("jsonl", "jsonl.gz")) and not form.startswith("parts"):
                    expected = sparseir.read_vectors(path)
                    for library in libraries:
                        rows[f"{form} [{library}]"] = time_library_reads(path, library, expected, args.repeats)
                for label, row in rows.items():
                    results["collections"][name][label] = row
                    print(f"{label:<26} {row['bytes'] / 1e6:>7.1f} {row['best_s']:>8.3f} {row['median_s']:>9.3f} "
                          f"{row['nnz_per_s'] / 1e6:>8.2f} {row['cpu_s']:>7.3f} {row['nnz_per_cpu_s'] / 1e6:>12.2f}",
                          flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
