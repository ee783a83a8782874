"""The bench runner: every field for every setting, skips, config errors, the plot, the demo data."""

import dataclasses
import json
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner

from sparseir import InputError, ParameterError, SparseVectors, Vocabulary, read_qrels, read_texts, write_vectors
from sparseir.bench import (PLOT_FILE, RESULTS_FILE, BenchConfig, MethodConfig, SettingResult, config_from_table,
                            load_config, pareto_front, plot_recall_latency, run_bench)
from sparseir.cli.bench import bench
from sparseir.datasets import demo_config, demo_dataset, open_dataset
from sparseir.evaluate import evaluate, results_to_run
from sparseir.index import build_index
from sparseir.bench.peers import Peer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bert_vectors(rng, n: int, prefix: str, mean_nnz: int) -> SparseVectors:
    """Random vectors over a slice of the BERT vocabulary, so they round-trip through JSONL."""
    vocab = Vocabulary.default()
    rows = []
    for _ in range(n):
        terms = rng.choice(np.arange(2000, 2300), size=max(1, rng.poisson(mean_nnz)), replace=False)
        rows.append({int(t): float(w) for t, w in zip(terms, rng.gamma(1.5, 1.0, len(terms)) + 0.01)})
    return SparseVectors.from_dicts(rows, ids=[f"{prefix}{i}" for i in range(n)], vocab=vocab)


@pytest.fixture
def dataset_dir(tmp_path):
    rng = np.random.default_rng(7)
    docs, queries = bert_vectors(rng, 300, "d", 20), bert_vectors(rng, 25, "q", 5)
    (tmp_path / "vectors").mkdir()
    write_vectors(docs, tmp_path / "vectors" / "collection.jsonl.gz")
    write_vectors(queries, tmp_path / "vectors" / "queries.jsonl.gz")
    (tmp_path / "qrels.txt").write_text("".join(f"q{q} 0 d{rng.integers(300)} 1\n" for q in range(25)))
    return tmp_path


class TruncatingPeer(Peer):
    """A stand-in peer: exact search that keeps only the first `keep` results, so recall drops."""

    name = "truncating"
    module = "numpy"
    knobs = {"keep": 10}

    def build(self, docs):
        self.index = build_index(docs, kind="exact")
        self.build_seconds, self.index_bytes = 0.5, 1234

    def prepare_one(self, queries):
        return [queries[q:q + 1] for q in range(len(queries))]

    def search_one(self, one, k, knobs):
        scores, rows = self.index.search(one, k=k, threads=1)
        return scores[0], rows[0], knobs["keep"]

    def collect_one(self, raw, k):
        scores, rows, keep = raw
        scores[keep:], rows[keep:] = -np.inf, -1
        return scores, rows


class MissingPeer(TruncatingPeer):
    @classmethod
    def available(cls):
        return False


@pytest.fixture
def stub_peers(monkeypatch):
    module = types.ModuleType("sparseir.bench.peers")
    module.PEERS = {"truncating": TruncatingPeer, "missing": MissingPeer}
    monkeypatch.setitem(sys.modules, "sparseir.bench.peers", module)


CONFIG = """
k = 10
measures = ["RR@10", "nDCG@10"]

[[methods]]
name = "brute force"
kind = "exact"

[[methods]]
name = "truncated"
peer = "truncating"
sweep = { keep = [2, 5, 10] }

[[methods]]
name = "not installed"
peer = "missing"

[[methods]]
name = "no such peer"
peer = "nonexistent"
"""


def test_bench_reports_every_field_for_every_setting(dataset_dir, tmp_path, stub_peers):
    (tmp_path / "bench.toml").write_text(CONFIG)
    out = tmp_path / "out"
    result = CliRunner().invoke(bench, [str(tmp_path / "bench.toml"), "--dataset", str(dataset_dir), "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    results = json.loads((out / RESULTS_FILE).read_text())
    assert (out / PLOT_FILE).read_bytes()[:8] == PNG_MAGIC
    assert results["n_docs"] == 300 and results["n_queries"] == 25 and results["k"] == 10
    assert [s["method"] for s in results["skipped"]] == ["not installed", "no such peer"]
    settings = results["settings"]
    assert [(s["method"], s["search"]) for s in settings] == [
        ("brute force", {}), ("truncated", {"keep": 2}), ("truncated", {"keep": 5}), ("truncated", {"keep": 10})]
    fields = {f.name for f in dataclasses.fields(SettingResult)}
    for setting in settings:
        assert set(setting) == fields
        assert set(setting["quality"]) == {"RR@10", "nDCG@10"}
        assert all(0.0 <= value <= 1.0 for value in setting["quality"].values())
        assert set(setting["latency_ms"]) == {"mean", "p50", "p99"}
        assert 0 < setting["latency_ms"]["p50"] <= setting["latency_ms"]["p99"]
        assert setting["qps"] > 0 and setting["qps_threads"] >= 1 and setting["build_seconds"] >= 0
        # The one-core figures: wall and CPU time, and the adapter's cost apart from the engine's.
        for timing in (setting["single"], setting["batch_one_core"]):
            assert timing["wall_us_per_query"] > 0 and timing["cpu_us_per_query"] >= 0
            assert timing["adapter_us_per_query"] >= 0 and timing["qps"] > 0
        assert setting["single"]["p50_us"] == pytest.approx(1000 * setting["latency_ms"]["p50"])
        if sys.platform == "linux":
            assert setting["memory_bytes"] >= 0
    exact, *truncated = settings
    assert exact["recall_vs_exact"] == 1.0 and exact["index_bytes"] > 0 and exact["compile_seconds"] >= 0
    assert [s["recall_vs_exact"] for s in truncated] == pytest.approx([0.2, 0.5, 1.0])
    assert all(s["compile_seconds"] is None and s["index_bytes"] == 1234 for s in truncated)
    assert "brute force" in result.output and "R@10 vs exact" in result.output


def test_bench_quality_is_evaluate_over_the_searched_queries(dataset_dir, tmp_path):
    dataset = open_dataset(dataset_dir)
    from sparseir.datasets import load_vectors

    docs, queries = load_vectors(dataset, progress=False)
    qrels = list(read_qrels(dataset.qrels))
    config = BenchConfig(methods=(MethodConfig("exact", kind="exact"),), k=5, measures=("RR@10", "R@5"),
                         max_queries=20)
    results = run_bench(config, docs, queries, qrels, tmp_path, log=lambda message: None)
    scores, rows = build_index(docs).search(queries[:20], k=5)
    searched = [q for q in qrels if q.query_id in set(queries.ids[:20])]
    expected = evaluate(results_to_run(scores, rows, queries.ids[:20], docs.ids), searched, ["RR@10", "R@5"])
    assert results["n_queries"] == 20
    assert results["settings"][0]["quality"] == pytest.approx(expected.aggregate)


def test_bench_without_qrels_reports_no_quality(dataset_dir, tmp_path):
    (dataset_dir / "qrels.txt").unlink()
    (tmp_path / "bench.toml").write_text('[[methods]]\nname = "exact"\nkind = "exact"\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(bench, [str(tmp_path / "bench.toml"), "--dataset", str(dataset_dir), "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    setting = json.loads((out / RESULTS_FILE).read_text())["settings"][0]
    assert setting["quality"] == {"RR@10": None, "nDCG@10": None} and setting["recall_vs_exact"] == 1.0


def test_bench_refuses_to_replace_results(dataset_dir, tmp_path):
    (tmp_path / "bench.toml").write_text('[[methods]]\nname = "exact"\nkind = "exact"\n')
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / RESULTS_FILE).write_text("{}")
    with pytest.raises(InputError, match="already exists"):
        CliRunner().invoke(bench, [str(tmp_path / "bench.toml"), "--dataset", str(dataset_dir), "-o",
                                   str(tmp_path / "out")], catch_exceptions=False)
    assert (tmp_path / "out" / RESULTS_FILE).read_text() == "{}"


@pytest.mark.parametrize("table, message", [
    ({"methods": []}, "lists no"),
    ({"methods": [{"name": "a", "kind": "exact", "peer": "bmp"}]}, "exactly one of"),
    ({"methods": [{"name": "a", "kind": "exact"}, {"name": "a", "kind": "exact"}]}, "unique"),
    ({"methods": [{"name": "a", "kind": "exact", "sweep": {"rho": []}}]}, "sweep.rho"),
    ({"methods": [{"name": "a", "kind": "exact", "buld": {}}]}, "buld"),
    ({"methods": [{"name": "a", "kind": "exact"}], "kk": 10}, "kk"),
    ({"methods": [{"name": "a", "kind": "exact"}], "k": 0}, "k must be"),
    ({"methods": [{"name": "a", "kind": "exact"}], "measures": ["RR@10", "MRR@x"]}, "MRR@x"),
])
def test_config_errors_name_the_problem(table, message):
    with pytest.raises(ParameterError, match=message):
        config_from_table(table)


def test_misspelt_parameter_fails_before_any_build(dataset_dir, tmp_path):
    from sparseir.datasets import load_vectors

    docs, queries = load_vectors(open_dataset(dataset_dir), progress=False)
    config = BenchConfig(methods=(MethodConfig("exact", kind="exact"),
                                  MethodConfig("typo", kind="exact", sweep={"heap_factr": [0.9]})))
    messages = []
    with pytest.raises(ParameterError, match="heap_factr"):
        run_bench(config, docs, queries, None, tmp_path, log=messages.append)
    assert messages == []


def test_config_file_errors_name_the_file(tmp_path):
    (tmp_path / "bad.toml").write_text("k = [")
    with pytest.raises(InputError, match="bad.toml.*not valid TOML"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "empty.toml").write_text("k = 10\n")
    with pytest.raises(InputError, match="empty.toml.*lists no"):
        load_config(tmp_path / "empty.toml")


def test_sweep_is_the_cartesian_product():
    method = MethodConfig("s", kind="seismic", sweep={"query_cut": [3, 5], "heap_factor": [0.8, 0.9, 1.0], "n_knn": 0})
    settings = method.settings()
    assert len(settings) == 6 and settings[0] == {"query_cut": 3, "heap_factor": 0.8, "n_knn": 0}
    assert MethodConfig("e", kind="exact").settings() == [{}]


def test_pareto_front_keeps_the_settings_nothing_beats():
    points = [(1.0, 0.5), (2.0, 0.4), (0.5, 0.6), (3.0, 0.9), (0.5, 0.2), (2.5, 0.9)]
    assert pareto_front(points) == [(0.5, 0.6), (2.5, 0.9)]


def test_plot_is_a_png_with_one_curve_per_method(tmp_path):
    settings = [{"method": m, "latency_ms": {"mean": lat}, "recall_vs_exact": r}
                for m, lat, r in [("a", 0.1, 0.8), ("a", 0.3, 0.95), ("b", 1.0, 1.0)]]
    plot_recall_latency({"k": 10, "n_docs": 3, "n_queries": 2, "settings": settings}, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_dataset_directory_needs_queries(tmp_path):
    (tmp_path / "collection.tsv").write_text("d1\thello\n")
    with pytest.raises(InputError, match="no queries"):
        open_dataset(tmp_path)
    with pytest.raises(InputError, match="not a dataset directory"):
        open_dataset(tmp_path / "collection.tsv")


def test_embedded_demo_data_is_consistent():
    dataset = demo_dataset()
    passages = {record.id for record in read_texts(dataset.collection)}
    queries = {record.id for record in read_texts(dataset.queries)}
    qrels = list(read_qrels(dataset.qrels))
    assert len(passages) == 2200 and len(queries) == 200 and len(qrels) == 200
    assert {q.query_id for q in qrels} == queries and {q.doc_id for q in qrels} <= passages
    assert all(int(query_id) % 10 == 0 for query_id in queries)
    assert (dataset.collection.parent / "SOURCE.md").is_file()
    assert {m.name for m in load_config(demo_config()).methods} == {"exact", "seismic", "sindi"}


class BagOfWordsEncoder:
    """Stands in for the embedded model: counts of the words the BERT vocabulary knows."""

    def encode(self, texts, ids):
        import re

        vocab = Vocabulary.default()
        rows = []
        for text in texts:
            words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w in vocab]
            rows.append({w: float(words.count(w)) for w in set(words)})
        return SparseVectors.from_dicts(rows, ids=ids, vocab=vocab)

    def encode_documents(self, texts, ids=None, batch_size=32, progress=False):
        return self.encode(texts, ids)

    def encode_queries(self, texts, ids=None, batch_size=32, progress=False):
        return self.encode(texts, ids)


def test_demo_runs_end_to_end_on_the_embedded_data(tmp_path, monkeypatch):
    import sparseir.cli.demo as demo_module
    import sparseir.datasets

    monkeypatch.setattr(sparseir.datasets, "default_encoder", BagOfWordsEncoder)
    (tmp_path / "demo.toml").write_text('[[methods]]\nname = "exact"\nkind = "exact"\n'
                                        '[[methods]]\nname = "seismic"\nkind = "not-a-kind"\n')
    monkeypatch.setattr(demo_module, "demo_config", lambda: tmp_path / "demo.toml")
    out = tmp_path / "demo"
    result = CliRunner().invoke(demo_module.demo, ["-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "seismic is not available" in result.output
    results = json.loads((out / RESULTS_FILE).read_text())
    assert results["n_docs"] == 2200 and results["n_queries"] == 200
    assert 0 < results["settings"][0]["quality"]["RR@10"] <= 1
    assert (out / PLOT_FILE).read_bytes()[:8] == PNG_MAGIC
    assert (out / "vectors" / "collection.jsonl.gz").is_file()
