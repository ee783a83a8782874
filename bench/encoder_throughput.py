"""Encoder throughput on CPU and the quality the learned weights buy.

Throughput (texts/s, same texts, same threads, same run), for documents and queries:
  pipeline   sparseir's encoder: tokenize, sort by length, dynamic padding, MLM head on
             real tokens only, pooling, CSR vectors
  loop       a plain unbatched loop: one text at a time, full MLM logits, max pooling
  pipeline_bf16  the same with the model in bfloat16 (off by default)
  forward    the bare model forward alone (`model(**batch).logits`) on the same
             length-sorted, dynamically padded batches, texts already tokenized: the
             cost of the network itself, nothing before or after it
  body       the transformer body alone (no MLM head), for scale

Quality (nDCG@10, exact search, ir_measures), on the same documents and queries:
  splade          learned weights (documents and queries)
  splade-uniform  the same terms (expansion included), every weight 1
  tokens-uniform  the texts' own word pieces, weight 1 (no model at all)
  idf-queries     SPLADE documents, inference-free queries weighted by the collection's IDF

    python bench/encoder_throughput.py                      # debian-pkgs texts; scifact + debian-pkgs quality
    python bench/encoder_throughput.py --threads 2 --docs 256 --queries 256
    python bench/encoder_throughput.py --model DIR --device cuda --dtype float16 --docs 4096 --quality
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

import sparseir
from sparseir.encoder import EncoderOptions, IdfQueryEncoder, load_encoder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


# --- throughput --------------------------------------------------------------------------

def plain_loop(model, tokenizer, texts: list[str], max_length: int) -> list[dict]:
    """What one writes first: one text at a time, full logits, pooled, special tokens dropped."""
    import torch

    special = sorted(set(tokenizer.all_special_ids))
    vectors = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt").to(model.device)
            logits = model(**encoded).logits[0]
            weights = torch.log1p(torch.relu(logits)).amax(dim=0)
            weights[special] = 0
            terms = torch.nonzero(weights).squeeze(1)
            vectors.append(dict(zip(terms.tolist(), weights[terms].tolist())))
    return vectors


def sorted_batches(weighter, texts: list[str], max_length: int, batch_size: int) -> list:
    """The pipeline's own batches (longest first, padded to each batch's longest text)."""
    token_ids, _ = weighter.tokenize(texts, max_length)
    order = np.argsort([-len(ids) for ids in token_ids], kind="stable")
    return [weighter.padded([token_ids[row] for row in order[start:start + batch_size]])
            for start in range(0, len(order), batch_size)]


def bare_forward(module, batches: list, logits: bool) -> None:
    import torch

    with torch.inference_mode():
        for input_ids, mask in batches:
            output = module(input_ids=input_ids, attention_mask=mask)
            _ = output.logits if logits else output.last_hidden_state


def interleaved(methods: dict, repeats: int) -> dict[str, list[float]]:
    """texts/s of each method per round; methods alternate within a round so that load from
    other processes on a shared machine hits all of them alike."""
    rates: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, (function, n_texts) in methods.items():
            started = time.perf_counter()
            function()
            rates[name].append(n_texts / (time.perf_counter() - started))
    return rates


def throughput(args) -> dict:
    import torch
    from transformers import AutoModelForMaskedLM

    encoder = load_encoder(args.model, threads=args.threads, device=args.device, dtype=args.dtype)
    bf16 = load_encoder(args.model, threads=args.threads, device=args.device, dtype="bfloat16")
    weighter = encoder.documents
    model = AutoModelForMaskedLM.from_pretrained(weighter.directory, local_files_only=True,
                                                 dtype=getattr(torch, args.dtype)).to(weighter.device).eval()
    collection = DATA / args.throughput_collection
    sides = {
        "documents": ([r.text for r in itertools.islice(sparseir.read_texts(collection / "collection.tsv"), args.docs)],
                      encoder.encode_documents, bf16.encode_documents, encoder.options.doc_max_length),
        "queries": ([r.text for r in itertools.islice(sparseir.read_texts(collection / "queries.tsv"), args.queries)],
                    encoder.encode_queries, bf16.encode_queries, encoder.options.query_max_length),
    }
    results = {"threads": torch.get_num_threads(), "batch_size": args.batch_size, "device": str(weighter.device),
               "dtype": args.dtype}
    encoder.encode_queries(["warm up"])
    bf16.encode_queries(["warm up"])
    for side, (texts, encode, encode_bf16, max_length) in sides.items():
        batches = sorted_batches(weighter, texts, max_length, args.batch_size)
        loop_texts = texts[:args.loop_texts]
        tokens = sum(int(mask.sum()) for _, mask in batches) / len(texts)
        rates = interleaved({
            "pipeline": (lambda: encode(texts, batch_size=args.batch_size), len(texts)),
            "pipeline_bf16": (lambda: encode_bf16(texts, batch_size=args.batch_size), len(texts)),
            "forward": (lambda: bare_forward(model, batches, logits=True), len(texts)),
            "body": (lambda: bare_forward(model.base_model, batches, logits=False), len(texts)),
            "loop": (lambda: plain_loop(model, weighter.tokenizer, loop_texts, max_length), len(loop_texts)),
        }, args.repeats)
        # Ratios within a round (same load), then the median over rounds.
        over_forward = statistics.median(p / f for p, f in zip(rates["pipeline"], rates["forward"]))
        over_loop = statistics.median(p / f for p, f in zip(rates["pipeline"], rates["loop"]))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        results[side] = {"texts": len(texts), "mean_tokens": round(tokens, 1),
                         **{name: round(rate, 2) for name, rate in medians.items()},
                         "pipeline_tokens_per_s": round(medians["pipeline"] * tokens),
                         "pipeline_over_forward": round(over_forward, 3), "pipeline_over_loop": round(over_loop, 3),
                         "rounds": {name: [round(rate, 2) for rate in values] for name, values in rates.items()}}
        print(f"{side:9s} ({len(texts)} texts, {tokens:.0f} tokens avg, median of {args.repeats} rounds): " +
              ", ".join(f"{name} {rate:.1f}/s" for name, rate in medians.items()) +
              f"; pipeline/forward {over_forward:.2f}x, pipeline/loop {over_loop:.2f}x", flush=True)
    return results


# --- quality -------------------------------------------------------------------------------

def subset(collection: Path, n_queries: int, n_distractors: int, seed: int):
    """Up to n_queries judged queries, their relevant passages and random distractors."""
    qrels = [q for q in sparseir.read_qrels(collection / "qrels.txt") if q.relevance > 0]
    queries = {r.id: r.text for r in sparseir.read_texts(collection / "queries.tsv")}
    judged = sorted({q.query_id for q in qrels} & set(queries), key=lambda qid: (len(qid), qid))
    chosen = set(random.Random(seed).sample(judged, min(n_queries, len(judged))))
    relevant = {q.doc_id for q in qrels if q.query_id in chosen}
    docs = list(sparseir.read_texts(collection / "collection.tsv"))
    others = [r for r in docs if r.id not in relevant]
    keep = relevant | {r.id for r in random.Random(seed + 1).sample(others, min(n_distractors, len(others)))}
    docs = [r for r in docs if r.id in keep]
    return docs, [(qid, queries[qid]) for qid in sorted(chosen)], [q for q in qrels if q.query_id in chosen]


def uniform(vectors: sparseir.SparseVectors) -> sparseir.SparseVectors:
    return sparseir.SparseVectors(vectors.offsets, vectors.terms, np.ones_like(vectors.weights), vectors.ids,
                                  vectors.vocab)


def ndcg10(docs: sparseir.SparseVectors, queries: sparseir.SparseVectors, qrels) -> float:
    import ir_measures

    index = sparseir.build_index(docs, kind="exact")
    scores, rows = index.search(queries, k=10)
    run = [ir_measures.ScoredDoc(str(qid), str(index.doc_ids[row]), float(score))
           for qid, row_list, score_list in zip(queries.ids, rows, scores)
           for row, score in zip(row_list, score_list) if row >= 0]
    qrels = [ir_measures.Qrel(q.query_id, q.doc_id, q.relevance) for q in qrels]
    return round(ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, run)[ir_measures.nDCG @ 10], 4)


def quality(args, name: str) -> dict:
    collection = DATA / name
    encoder = load_encoder(args.model, threads=args.threads)
    docs, queries, qrels = subset(collection, args.quality_queries, args.quality_distractors, args.seed)
    started = time.perf_counter()
    doc_vectors = encoder.encode_documents([r.text for r in docs], ids=[r.id for r in docs],
                                           batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    query_vectors = encoder.encode_queries([text for _, text in queries], ids=[qid for qid, _ in queries])
    # No model: each distinct word piece weighs 1 (documents cut at the same 256 tokens).
    tokens = IdfQueryEncoder(np.ones(len(encoder.vocab), np.float32), encoder.documents.tokenizer,
                             options=EncoderOptions(query_max_length=encoder.options.doc_max_length))
    token_docs = tokens.encode_queries([r.text for r in docs], ids=[r.id for r in docs])
    idf_queries = IdfQueryEncoder.from_collection(doc_vectors, encoder.documents.tokenizer).encode_queries(
        [text for _, text in queries], ids=[qid for qid, _ in queries])
    result = {"docs": len(docs), "queries": len(queries), "encode_docs_per_s": round(len(docs) / seconds, 1),
              "splade": ndcg10(doc_vectors, query_vectors, qrels),
              "splade-uniform": ndcg10(uniform(doc_vectors), uniform(query_vectors), qrels),
              "tokens-uniform": ndcg10(token_docs, tokens.encode_queries([text for _, text in queries],
                                                                         ids=[qid for qid, _ in queries]), qrels),
              "idf-queries": ndcg10(doc_vectors, idf_queries, qrels)}
    print(f"{name}: {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="float32", help="precision of the pipeline and the bare forward "
                                                          "(float16 or bfloat16 on a GPU)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--throughput-collection", default="debian-pkgs")
    parser.add_argument("--docs", type=int, default=160, help="documents timed per method")
    parser.add_argument("--queries", type=int, default=160, help="queries timed per method")
    parser.add_argument("--loop-texts", type=int, default=32, help="texts timed for the (slow) plain loop")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--quality", nargs="*", default=["scifact", "debian-pkgs"], help="collections to evaluate")
    parser.add_argument("--quality-queries", type=int, default=150)
    parser.add_argument("--quality-distractors", type=int, default=400,
                        help="random non-relevant passages added to the judged ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    if not DATA.exists():
        raise SystemExit(f"shared data not found at {DATA}")
    results = {"args": vars(args)}
    if not args.skip_throughput:
        results["throughput"] = throughput(args)
    results["quality"] = {name: quality(args, name) for name in args.quality}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encoder_throughput.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
