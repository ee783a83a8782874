"""The conformance suite (tests/conformance.py) over every kind, the toy kind of
docs/adding-a-kind.md included; and kinds that break the contract are caught."""

from __future__ import annotations

import types

import numpy as np
import pytest

import sparseir
import toykind.indexer
import toykind.layout
import toykind.query
from conformance import KindConformance, collection
from sparseir.kinds import KindContractError, get_kind, register_kind
from sparseir.layout import DiskMode

if "toy" not in sparseir.kinds.kind_names():
    register_kind("toy", "toykind.indexer", "toykind.query", "toykind.layout")

for _name in (*sparseir.KINDS, "toy"):
    globals()[f"Test{_name.capitalize()}Kind"] = type(f"Test{_name.capitalize()}Kind", (KindConformance,),
                                                      {"kind": _name})


def copy_of(module: types.ModuleType, name: str, **changes) -> types.ModuleType:
    """A module with `module`'s names, some changed (None: removed)."""
    copy = types.ModuleType(name)
    copy.__dict__.update({key: value for key, value in vars(module).items() if not key.startswith("__")})
    for key, value in changes.items():
        if value is None:
            delattr(copy, key)
        else:
            setattr(copy, key, value)
    return copy


@pytest.mark.parametrize("module, changes, named", [
    ("layout", {"CAPABILITIES": frozenset()}, "'filters' capability"),
    ("layout", {"CAPABILITIES": frozenset({"filters", "teleport"})}, "unknown capabilities teleport"),
    ("layout", {"CAPABILITIES": frozenset({"filters", "disk_mode"})}, "DISK_MODE go together"),
    ("layout", {"CAPABILITIES": frozenset({"filters", "disk_mode"}),
                "DISK_MODE": DiskMode(reads=("weights",), only=(), needs=(), runs=("terms",))},
     "DISK_MODE.runs names arrays it does not read"),
    ("layout", {"CAPABILITIES": frozenset({"filters", "tuning"})}, "tuning_grid go together"),
    ("layout", {"CAPABILITIES": frozenset({"filters", "forward_index"})}, "forward index's bulk"),
    ("layout", {"CHECKS": None}, "has no CHECKS"),
    ("layout", {"LAYOUT_VERSION": 0}, "LAYOUT_VERSION"),
    ("query", {"exhaustive": None}, "has no exhaustive"),
    ("query", {"search": lambda arrays, n_docs, queries, k, params: None}, "takes no allowed="),
    ("indexer", {"BuildParams": type("BuildParams", (), {})}, "deriving from sparseir.params.OrderedBuild"),
    ("indexer", {"build": None}, "has no build"),
])
def test_a_kind_that_breaks_the_contract_is_refused_naming_what_it_lacks(module, changes, named):
    modules = {"indexer": toykind.indexer, "query": toykind.query, "layout": toykind.layout}
    modules[module] = copy_of(modules[module], f"broken_{module}", **changes)
    with pytest.raises(KindContractError, match=named):
        register_kind("broken", modules["indexer"], modules["query"], modules["layout"])
    assert "broken" not in sparseir.kinds.kind_names()


def test_a_kind_that_claims_filters_but_ignores_them_fails_the_suite():
    """The contract checks what modules declare; the suite checks what they do."""
    def search(arrays, n_docs, queries, k, params, allowed=None):
        return toykind.query.search(arrays, n_docs, queries, k, params, None)

    if "filterless" not in sparseir.kinds.kind_names():
        register_kind("filterless", toykind.indexer, copy_of(toykind.query, "filterless_query", search=search),
                      toykind.layout)
    suite = type("Filterless", (KindConformance,), {"kind": "filterless"})()
    suite.test_exhaustive_settings_equal_exact_search()  # what it does do, it does right
    with pytest.raises(AssertionError):
        suite.test_filters()


def test_the_registry_refuses_unknown_and_built_in_names():
    with pytest.raises(sparseir.ParameterError, match="unknown index kind 'nope'"):
        get_kind("nope")
    with pytest.raises(sparseir.ParameterError, match="built-in kind"):
        register_kind("exact", toykind.indexer, toykind.query, toykind.layout)


def test_a_registered_kind_is_an_index_like_any_other(tmp_path):
    docs, queries = collection()
    index = sparseir.build_index(docs, kind="toy")
    index.save(tmp_path / "toy")
    loaded = sparseir.load_index(tmp_path / "toy")
    assert loaded.kind == "toy"
    expected = sparseir.build_index(docs, kind="exact").search(queries, k=10)
    for got, want in zip(loaded.search(queries, k=10), expected):
        np.testing.assert_array_equal(got, want)
