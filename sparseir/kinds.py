"""The one registry of index kinds: name -> builder, query processor, tuning grid, layout.

A kind is three modules: ``sparseir.indexer.<kind>`` (``BuildParams``, deriving from
``sparseir.params.OrderedBuild``, and ``build``),
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
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from .errors import ParameterError
from .params import make_params

KINDS = ("exact", "seismic", "saat", "sindi", "blockmax")

__all__ = ["KINDS", "Kind", "get_kind", "make_params", "parameter_fields"]


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


def parameter_fields(which: str) -> dict[str, tuple[dataclasses.Field, object]]:
    """The union over kinds of the build (`which="build"`) or search parameters: name -> (field, type hint)."""
    fields: dict[str, tuple[dataclasses.Field, object]] = {}
    for name in KINDS:
        params_class = get_kind(name).BuildParams if which == "build" else get_kind(name).SearchParams
        hints = typing.get_type_hints(params_class)
        for declared in dataclasses.fields(params_class):
            fields.setdefault(declared.name, (declared, hints[declared.name]))
    return fields
