"""Recall-targeted tuning: the chosen setting meets its target on queries it never saw."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import sparseir
from sparseir.cli import cli
from sparseir.evaluate import recall_at_k
from conftest import shared_vectors


def test_recall_at_k_on_hand_made_rows():
    exact = np.array([[1, 2, 3], [4, 5, -1], [-1, -1, -1]])
    found = np.array([[3, 9, 1], [5, 4, 7], [-1, -1, -1]])
    np.testing.assert_allclose(recall_at_k(found, exact), [2 / 3, 1.0, np.nan])


@pytest.fixture(scope="module", params=["cranfield", "scifact"])
def collection(request):
    path = shared_vectors(request.param)
    docs = sparseir.read_vectors(path / "collection.jsonl.gz")
    queries = sparseir.read_vectors(path / "queries.jsonl.gz")
    return docs, queries


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["seismic", "saat"])
def test_tuned_setting_meets_target_on_heldout_queries(collection, kind):
    docs, queries = collection
    index = sparseir.build_index(docs, kind=kind)
    result = index.tune(queries, target_recall=0.9, k=10, docs=docs, sample=len(queries), budget_seconds=60)
    assert result.met_target and result.recall_tuned >= 0.9
    # Held-out queries were not used for choosing: allow their sampling error (3 standard errors).
    assert result.recall_heldout >= 0.9 - 3 * result.recall_heldout_stderr, result
    assert result.evaluations < result.grid_size or result.grid_size <= 4


def test_stored_setting_becomes_default_and_explicit_knobs_are_unchanged(tmp_path):
    path = shared_vectors("cranfield")
    docs = sparseir.read_vectors(path / "collection.jsonl.gz")
    queries = sparseir.read_vectors(path / "queries.jsonl.gz")
    sparseir.build_index(docs, kind="seismic").save(tmp_path / "ix")
    sparseir.build_index(docs, kind="exact").save(tmp_path / "exact")
    index = sparseir.load_index(tmp_path / "ix")
    explicit = {"query_cut": 5, "heap_factor": 0.8}
    before = index.search(queries, k=10, **explicit)
    result = CliRunner().invoke(cli, ["tune", str(tmp_path / "ix"), str(path / "queries.jsonl.gz"), "--exact",
                                      str(tmp_path / "exact"), "--target-recall", "0.95", "--json"])
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.output[result.output.index("{"):])
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["search_defaults"] == tuned["setting"] and manifest["tuning"]["target_recall"] == 0.95
    reloaded = sparseir.load_index(tmp_path / "ix", verify=True)
    assert reloaded.search_params() == reloaded.search_params(**tuned["setting"])
    for a, b in zip(before, reloaded.search(queries, k=10, **explicit)):
        np.testing.assert_array_equal(a, b)
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "ix")])
    assert "tuned for       recall@10 >= 0.95" in info.output


def test_exact_index_has_nothing_to_tune():
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}], vocab=sparseir.Vocabulary(["a"]))
    index = sparseir.build_index(docs)
    with pytest.raises(sparseir.ParameterError, match="no query knobs to tune"):
        index.tune([{"a": 1.0}] * 10, reference=index)
