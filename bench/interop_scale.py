"""CIFF at scale: export and import of an MS MARCO-shaped collection, time and peak RSS of each.

    python bench/interop_scale.py OUT                          # 1,000,000 synthetic passages
    python bench/interop_scale.py OUT --n-docs 2000 --budget 64M   # a smoke run

Steps, each a process of its own whose wall time and peak resident memory (``wait4``) are
recorded: the synthetic collection (``sparseir.bench.synthetic``, Parquet parts), an exact
index built out of core, ``sparseir export-ciff`` (8-bit impacts) and ``sparseir index`` of
that CIFF file back into an exact index, both under ``--memory-budget``. The imported index
must hold as many documents and postings as the exported one. Writes OUT/interop_scale.json
and prints a Markdown table for docs/interop.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sparseir
from sparseir.bench.synthetic import generate
from sparseir.bench.timing import measured_process


def log(message: str) -> None:
    print(message, flush=True)


def measured(command: list[str]) -> dict:
    """measured_process, stopping the run at the first step that fails."""
    record = measured_process(command)
    if record["exit"] != 0:
        sys.exit(f"failed: {' '.join(command)}")
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--n-docs", type=int, default=1_000_000)
    parser.add_argument("--budget", default="1G", help="--memory-budget of the build, export and import")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "sparseir"]
    record = {"n_docs": args.n_docs, "budget": args.budget, "bits": args.bits, "sparseir_version": sparseir.__version__}
    if not (out / "collection").is_dir():
        started = time.perf_counter()
        generate(out, args.n_docs, 10, args.seed, log=log)
        log(f"generated in {time.perf_counter() - started:.1f}s")
    record["build"] = measured([*cli, "index", str(out / "collection"), "-o", str(out / "exact"), "--kind", "exact",
                                "--memory-budget", args.budget, "--overwrite"])
    record["export"] = measured([*cli, "export-ciff", str(out / "exact"), str(out / "collection.ciff"), "--bits",
                                 str(args.bits), "--memory-budget", args.budget, "--overwrite"])
    record["ciff_mb"] = round((out / "collection.ciff").stat().st_size / 1e6)
    record["import"] = measured([*cli, "index", str(out / "collection.ciff"), "-o", str(out / "from-ciff"), "--kind",
                                 "exact", "--memory-budget", args.budget, "--overwrite"])
    exported, imported = sparseir.load_index(out / "exact"), sparseir.load_index(out / "from-ciff")
    record["nnz"] = int(exported.info["nnz"])
    if (imported.n_docs, imported.info["nnz"]) != (exported.n_docs, exported.info["nnz"]):
        sys.exit(f"the import holds {imported.n_docs} documents and {imported.info['nnz']} postings, the export "
                 f"{exported.n_docs} and {exported.info['nnz']}")
    (out / "interop_scale.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["| step | wall s | CPU s | peak RSS MB |", "|---|---|---|---|"]
    for step in ("build", "export", "import"):
        figures = record[step]
        lines.append(f"| {step} | {figures['seconds']} | {figures['cpu_seconds']} | {figures['peak_rss_mb']:,} |")
    log("\n".join(lines) + f"\n\n{args.n_docs:,} passages, {record['nnz']:,} postings, CIFF {record['ciff_mb']:,} MB, "
        f"budget {args.budget}")


if __name__ == "__main__":
    main()
