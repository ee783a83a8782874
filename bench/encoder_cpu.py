"""CPU encoding throughput against an earlier revision of sparseir, and what bfloat16 costs in quality.

Throughput: passages/s of `Encoder.encode_documents` on the same debian-pkgs passages, for

  baseline   the encoder of an earlier revision (`--baseline-rev`, extracted with `git archive`)
  float32    this checkout's encoder, default options (lossless)
  bfloat16   this checkout's encoder with dtype="bfloat16" (lossy, opt-in)

on two models: the embedded splade-tiny, and a randomly initialised BERT-base-sized masked
LM (12 layers, hidden 768, the BERT vocabulary; random weights cost the same as trained ones).
Each variant runs in its own process (load, warm up, then `--repeats` timed encodes); the
variants alternate over `--rounds` so that other load on the machine hits all alike; the
median over every timed encode is reported, and ratios are against the baseline.

Quality: nDCG@10 of exact search on all of scifact (documents and test queries encoded by
the embedded model) in float32 and in bfloat16.

    python bench/encoder_cpu.py                          # both parts, results in bench/results/
    python bench/encoder_cpu.py --skip-quality --docs 128
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def worker(model: str, dtype: str | None, texts_path: str, repeats: int) -> None:
    """In a child process: passages/s of each timed encode, printed as JSON."""
    import sparseir
    from sparseir.encoder import load_encoder

    texts = [record.text for record in sparseir.read_texts(texts_path)]
    encoder = load_encoder(model, threads=2, **({"dtype": dtype} if dtype else {}))
    encoder.encode_documents(texts[:64])  # loads the model and warms the kernels
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        encoder.encode_documents(texts)
        rates.append(len(texts) / (time.perf_counter() - started))
    print(json.dumps(rates))


def bert_base_directory(directory: Path) -> Path:
    """A BERT-base-sized masked LM with random weights and the embedded tokenizer."""
    import shutil

    import torch
    import transformers

    from sparseir.encoder import model_directory

    torch.manual_seed(0)
    transformers.BertForMaskedLM(transformers.BertConfig()).eval().save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(model_directory("default") / name, directory / name)
    return directory


def extract_revision(revision: str, directory: Path) -> Path:
    """The `sparseir` package of `revision`, importable from the returned directory."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "sparseir"], check=True,
                             capture_output=True).stdout
    archive_path = directory / "baseline.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(directory / "baseline", filter="data")
    return directory / "baseline"


def throughput(args, scratch: Path) -> dict:
    import sparseir

    baseline = extract_revision(args.baseline_rev, scratch)
    models = {"splade-tiny": ("default", args.docs), "bert-base-random": (str(bert_base_directory(scratch / "bb")),
                                                                        args.docs_bert_base)}
    variants = {"baseline": (str(baseline), None), "float32": (str(ROOT), None), "bfloat16": (str(ROOT), "bfloat16")}
    passages = list(itertools.islice(sparseir.read_texts(DATA / "debian-pkgs" / "collection.tsv"),
                                     max(args.docs, args.docs_bert_base)))
    results = {"baseline_rev": args.baseline_rev, "threads": 2}
    for name, (model, n_docs) in models.items():
        texts_path = scratch / f"{name}.tsv"
        texts_path.write_text("".join(f"{r.id}\t{r.text}\n" for r in passages[:n_docs]), encoding="utf-8")
        rates: dict[str, list[float]] = {variant: [] for variant in variants}
        for _ in range(args.rounds):
            for variant, (source, dtype) in variants.items():
                environment = {**os.environ, "PYTHONPATH": source}
                command = [sys.executable, __file__, "--worker", model, dtype or "", str(texts_path),
                           str(args.repeats)]
                output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment,
                                        cwd=scratch).stdout
                rates[variant] += json.loads(output.strip().splitlines()[-1])
        medians = {variant: statistics.median(values) for variant, values in rates.items()}
        results[name] = {"docs": n_docs,
                         **{f"{variant}_per_s": round(rate, 2) for variant, rate in medians.items()},
                         **{f"{variant}_over_baseline": round(rate / medians["baseline"], 2)
                            for variant, rate in medians.items() if variant != "baseline"},
                         "all_rates": {variant: [round(rate, 2) for rate in values] for variant, values in rates.items()}}
        print(f"{name}: " + ", ".join(f"{variant} {rate:.1f}/s" for variant, rate in medians.items()), flush=True)
    return results


def quality(args) -> dict:
    import ir_measures

    import sparseir
    from sparseir.encoder import load_encoder

    collection = DATA / "scifact"
    qrels = [q for q in sparseir.read_qrels(collection / "qrels.txt")]
    judged = {q.query_id for q in qrels}
    docs = list(sparseir.read_texts(collection / "collection.tsv"))
    queries = [r for r in sparseir.read_texts(collection / "queries.tsv") if r.id in judged]
    measure = ir_measures.nDCG @ 10
    results = {"docs": len(docs), "queries": len(queries)}
    for dtype in ("float32", "bfloat16"):
        encoder = load_encoder("default", threads=2, dtype=dtype)
        doc_vectors = encoder.encode_documents([r.text for r in docs], ids=[r.id for r in docs])
        query_vectors = encoder.encode_queries([r.text for r in queries], ids=[r.id for r in queries])
        index = sparseir.build_index(doc_vectors, kind="exact")
        scores, rows = index.search(query_vectors, k=10)
        run = [ir_measures.ScoredDoc(str(qid), str(index.doc_ids[row]), float(score))
               for qid, row_list, score_list in zip(query_vectors.ids, rows, scores)
               for row, score in zip(row_list, score_list) if row >= 0]
        value = ir_measures.calc_aggregate([measure], [ir_measures.Qrel(q.query_id, q.doc_id, q.relevance)
                                                       for q in qrels], run)[measure]
        results[f"ndcg@10_{dtype}"] = round(value, 4)
        print(f"scifact nDCG@10 {dtype}: {value:.4f}", flush=True)
    results["bfloat16_minus_float32"] = round(results["ndcg@10_bfloat16"] - results["ndcg@10_float32"], 4)
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        model, dtype, texts_path, repeats = sys.argv[2:6]
        worker(model, dtype or None, texts_path, int(repeats))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-rev", default="1da3806",
                        help="git revision to compare with (default: the last one before the tiled output layer)")
    parser.add_argument("--docs", type=int, default=320, help="passages per timed encode, splade-tiny")
    parser.add_argument("--docs-bert-base", type=int, default=48, help="passages per timed encode, BERT-base")
    parser.add_argument("--repeats", type=int, default=2, help="timed encodes per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per variant, alternating")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"shared data not found at {DATA}")
    results = {"args": vars(args)}
    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_throughput:
            results["throughput"] = throughput(args, Path(scratch))
    if not args.skip_quality:
        results["quality"] = quality(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encoder_cpu.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
