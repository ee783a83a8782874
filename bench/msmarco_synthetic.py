"""MS MARCO-shaped synthetic SPLADE vectors, streamed to Parquet parts (no model, no download).

    python bench/msmarco_synthetic.py OUT_DIR                       # 8,841,823 passages, 6,980 queries
    python bench/msmarco_synthetic.py OUT_DIR --n-docs 1000000 --seed 1 --part-size 250000

The command line of ``sparseir.bench.synthetic.generate``, whose module documentation gives
the files written, the published figures followed and what is assumed.
"""

from __future__ import annotations

import argparse

from sparseir.bench.synthetic import DEV_SMALL_QUERIES, MSMARCO_PASSAGES, PART_SIZE, ROW_GROUP, Params, generate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--n-docs", type=int, default=MSMARCO_PASSAGES)
    parser.add_argument("--n-queries", type=int, default=DEV_SMALL_QUERIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part-size", type=int, default=PART_SIZE, help="passages per Parquet part")
    parser.add_argument("--row-group", type=int, default=ROW_GROUP,
                        help="passages per row group (and per generated chunk: sets peak memory)")
    parser.add_argument("--n-topics", type=int, default=Params.n_topics)
    parser.add_argument("--n-groups", type=int, default=Params.n_groups,
                        help="query groups (default: MS MARCO's 1,010,916, ~8.75 passages each at full size; "
                             "a smaller collection is then a sample of MS MARCO, with smaller groups: "
                             "pass about N / 8.75 to keep MS MARCO's group size instead)")
    parser.add_argument("--doc-nnz-mean", type=float, default=Params.doc_nnz_mean)
    parser.add_argument("--query-nnz-mean", type=float, default=Params.query_nnz_mean)
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    try:
        params = Params(n_topics=args.n_topics, n_groups=args.n_groups, doc_nnz_mean=args.doc_nnz_mean,
                        query_nnz_mean=args.query_nnz_mean)
        generate(args.out_dir, args.n_docs, args.n_queries, args.seed, args.part_size, args.row_group, params,
                 args.overwrite, log=lambda message: print(message, flush=True))
    except (FileExistsError, ValueError) as e:
        parser.error(str(e))


if __name__ == "__main__":
    main()
