"""The one registry of index kinds: name -> builder, query processor, tuning grid, layout.

A kind is three modules: ``sparseir.indexer.<kind>`` (``BuildParams``, ``build``),
``sparseir.query.<kind>`` (``SearchParams``, ``search``, optionally ``tuning_grid`` and
``complete_build``) and ``sparseir.layout.<kind>``, the arrays they share (their names and
groups, ``LAYOUT_VERSION``). Adding a name to ``KINDS`` is all
it takes for the API, the manifest, tuning, the bench and the CLI to know it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import typing
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping

from .errors import ParameterError, require

KINDS = ("exact", "seismic", "saat", "sindi", "blockmax")
REORDERINGS = ("none", "bp")


@dataclass(frozen=True)
class OrderedBuild:
    """The build option of every kind (each BuildParams derives from it): the documents' order.

    Reordering gives documents that share terms neighbouring rows, which makes block
    structures tighter; it changes rows, never ids or scores.
    """

    reorder: str = field(default="none", metadata={
        "help": "document order before building: none (as given) or bp (recursive graph bisection)"})

    def __post_init__(self):
        require(self.reorder in REORDERINGS, f"reorder must be one of {', '.join(REORDERINGS)}, got {self.reorder!r}")


@dataclass(frozen=True)
class Kind:
    name: str
    BuildParams: type
    SearchParams: type
    build_arrays: Callable  # (docs, BuildParams, Workspace) -> dict of arrays
    search: Callable        # (arrays, n_docs, queries, k, SearchParams) -> (scores, rows)
    grid: Callable | None   # (arrays, n_docs) -> {knob: values from cheap to accurate}, None: nothing to tune
    complete: Callable | None  # (arrays, docs, BuildParams) -> arrays: build steps that search the index
    layout: ModuleType      # sparseir.layout.<kind>: the arrays, declared once
    layout_version: int     # of the kind's arrays; an index saved under another must be rebuilt

    def build(self, docs, params, workspace) -> dict:
        arrays = self.build_arrays(docs, params, workspace)
        return arrays if self.complete is None else self.complete(arrays, docs, params)

    def tuning_grid(self, arrays, n_docs: int) -> dict[str, list]:
        if self.grid is None:
            raise ParameterError(f"the {self.name} index has no query knobs to tune")
        return self.grid(arrays, n_docs)


@functools.cache
def get_kind(name: str) -> Kind:
    if name not in KINDS:
        raise ParameterError(f"unknown index kind {name!r}; choose one of {', '.join(KINDS)}")
    indexer = importlib.import_module(f"sparseir.indexer.{name}")
    query = importlib.import_module(f"sparseir.query.{name}")
    layout = importlib.import_module(f"sparseir.layout.{name}")
    return Kind(name, indexer.BuildParams, query.SearchParams, indexer.build, query.search,
                getattr(query, "tuning_grid", None), getattr(query, "complete_build", None), layout,
                layout.LAYOUT_VERSION)


def make_params(cls: type, values: Mapping[str, Any], what: str):
    """Instantiate a params dataclass, naming any unknown key in the error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise ParameterError(f"unknown {what} parameter(s) {', '.join(unknown)} (known: {known})")
    return cls(**values)


def parameter_fields(which: str) -> dict[str, tuple[dataclasses.Field, object]]:
    """The union over kinds of the build (`which="build"`) or search parameters: name -> (field, type hint)."""
    fields: dict[str, tuple[dataclasses.Field, object]] = {}
    for name in KINDS:
        params_class = get_kind(name).BuildParams if which == "build" else get_kind(name).SearchParams
        hints = typing.get_type_hints(params_class)
        for declared in dataclasses.fields(params_class):
            fields.setdefault(declared.name, (declared, hints[declared.name]))
    return fields
