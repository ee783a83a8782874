"""The architecture, checked from the code itself: which layers import which, and generic code
that never names a kind or one of its arrays (it asks kinds for capabilities instead)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sparseir
from sparseir.kinds import get_kind
from sparseir.layout.checks import array_names

PACKAGE = Path(sparseir.__file__).resolve().parent
# The modules that serve every kind alike.
GENERIC = ("index.py", "loading.py", "storage.py", "segments.py", "sharded.py", "searchable.py", "filters.py",
           "distributed.py", "tune.py", "explain.py")
# Layers that may not import another: (importing package, imported package or module).
FORBIDDEN = [
    # layout/ declares: it builds nothing (no workspace, no vectors) and reads through nobody.
    ("layout", "sparseir.query"), ("layout", "sparseir.indexer"), ("layout", "sparseir.workspace"),
    ("layout", "sparseir.vectors"),
    ("indexer", "sparseir.query"),
    ("query", "sparseir.indexer"),
    *[(layer, f"sparseir.{api}") for layer in ("layout", "indexer", "query")
      for api in ("index", "filters", "loading", "segments", "sharded", "distributed", "tune", "attributes", "cli",
                  "bench", "pyterrier")],
]


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every sparseir module a file of the package at `root` imports, relative imports
    resolved, at any depth of the file."""
    module = "sparseir." + ".".join(path.relative_to(root).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[:len(parent) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "sparseir" or name.startswith("sparseir.")}


def layer_violations(layer: str, root: Path = PACKAGE) -> list[str]:
    broken = []
    for path in sorted((root / layer).glob("*.py")):
        for imported in sorted(imports_of(path, root)):
            for importing, target in FORBIDDEN:
                if importing == layer and (imported == target or imported.startswith(target + ".")):
                    broken.append(f"{layer}/{path.name} imports {imported}")
    return broken


def test_shared_kernel_utilities_import_nothing_of_sparseir():
    assert imports_of(PACKAGE / "kernels.py") == set()


@pytest.mark.parametrize("layer", ["layout", "indexer", "query"])
def test_layers_import_only_downwards(layer):
    broken = layer_violations(layer)
    assert not broken, "\n".join(broken)


def kind_specific_names() -> set[str]:
    """The kinds' names and every array a kind's layout declares (not the arrays every index has)."""
    names = set(sparseir.KINDS)
    for kind in sparseir.KINDS:
        spec = get_kind(kind)
        names.update(array_names(spec.checks))
        names.update(spec.on_disk)
        if spec.disk_mode is not None:
            names.update((*spec.disk_mode.reads, *spec.disk_mode.only, *spec.disk_mode.needs))
    return names - {"doc_ids", "doc_frequency"}


@pytest.mark.parametrize("module", GENERIC)
def test_generic_code_names_no_kind_and_no_array_of_one(module):
    specific = kind_specific_names()
    found = sorted({node.value for node in ast.walk(ast.parse((PACKAGE / module).read_text(encoding="utf-8")))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in specific})
    assert not found, f"{module} names {', '.join(found)}"


def test_the_checks_above_can_fail(tmp_path):
    """A module that breaks each rule is caught (the checks are not vacuous)."""
    (tmp_path / "query").mkdir()
    (tmp_path / "query" / "probe.py").write_text("from ..indexer.exact import invert\nfrom ..filters import Allowed\n"
                                                 "import sparseir.index\n", encoding="utf-8")
    assert layer_violations("query", tmp_path) == ["query/probe.py imports sparseir.filters",
                                                   "query/probe.py imports sparseir.filters.Allowed",
                                                   "query/probe.py imports sparseir.index",
                                                   "query/probe.py imports sparseir.indexer.exact",
                                                   "query/probe.py imports sparseir.indexer.exact.invert"]
    assert "block_records" in kind_specific_names() and "seismic" in kind_specific_names()
