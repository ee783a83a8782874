"""The one registry of index kinds, and the contract every kind fulfils.

A kind is three modules, each with its part of the contract (the Protocols below):

- ``sparseir.layout.<kind>`` declares the arrays: ``LAYOUT_VERSION``, ``CAPABILITIES`` (which
  of ``CAPABILITIES`` it has), ``ON_DISK`` (the bulk that ``memory="summaries"`` leaves on
  disk), ``CHECKS`` (what every open verifies, ``sparseir.layout.checks``) and, with the
  ``disk_mode`` capability, ``DISK_MODE`` (``sparseir.layout.DiskMode``);
- ``sparseir.indexer.<kind>`` builds them: ``BuildParams`` (a frozen dataclass deriving
  from ``sparseir.params.OrderedBuild``) and ``build(docs, params, workspace) -> arrays``,
  and optionally ``stored_vectors(arrays, n_docs, workspace) -> (offsets, terms, weights)``,
  the documents read back from the arrays (a kind with a forward index needs none: its
  forward index holds them);
- ``sparseir.query.<kind>`` searches them: ``SearchParams``, ``search(arrays, n_docs,
  queries, k, params, allowed=None) -> (scores, rows)``, ``exhaustive(n_docs) -> (build
  params, search knobs)`` under which it returns exact search's results, and optionally
  ``tuning_grid`` (with the ``tuning`` capability), ``complete_build`` (build steps that
  search the index) and ``scored_vectors`` (for a kind that scores other weights than
  the documents', as quantized ones: the vectors its exhaustive search is exact over).

``get_kind`` checks the contract when it first loads a kind, naming everything missing.
Generic code (the index shapes, storage, loading) asks a kind for capabilities and never
names one; ``register_kind`` adds a kind from modules of one's own (docs/adding-a-kind.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Protocol, runtime_checkable

from .errors import ParameterError, SparseirError
from .params import OrderedBuild, make_params

KINDS = ("exact", "seismic", "saat", "sindi", "blockmax")
# What a kind may declare it can do; generic code asks for these, never for a kind's name.
CAPABILITIES = {
    "filters": "search(..., allowed) skips what a filter disallows inside the kernel (every kind: the "
               "Searchable interface promises filters)",
    "forward_index": "the index holds layout.forward's arrays, from which selective filters are scored directly",
    "disk_mode": "load_index(memory='disk') serves it: DISK_MODE says what is read range by range",
    "tuning": "query.tuning_grid gives the knobs that sparseir tune searches",
}
REQUIRED_CAPABILITIES = frozenset({"filters"})
# The registry's choices of a kind for a role, so that generic code names none:
DEFAULT_KIND = "exact"          # what build_index and the command line build unless told
SMALL_SEGMENT_KIND = "exact"    # small segments of a segmented index: exhaustive, nothing to build but postings
# Ground truth for tuning and the bench: returns exact search's top-k (scores bit for bit,
# ties by row) several times faster, built in the documents' order.
GROUND_TRUTH_KIND, GROUND_TRUTH_BUILD = "blockmax", {"reorder": "none"}

__all__ = ["CAPABILITIES", "KINDS", "Kind", "KindContractError", "get_kind", "kind_names", "make_params",
           "parameter_fields", "register_kind"]


class KindContractError(SparseirError):
    """A kind whose modules do not fulfil the contract (what is missing is named)."""


@runtime_checkable
class LayoutModule(Protocol):
    LAYOUT_VERSION: int
    CAPABILITIES: frozenset
    ON_DISK: tuple
    CHECKS: tuple


@runtime_checkable
class IndexerModule(Protocol):
    BuildParams: type

    def build(self, docs, params, workspace) -> dict: ...


@runtime_checkable
class QueryModule(Protocol):
    SearchParams: type

    def search(self, arrays, n_docs: int, queries, k: int, params, allowed=None) -> tuple: ...

    def exhaustive(self, n_docs: int) -> tuple[dict, dict]: ...


@dataclass(frozen=True)
class Kind:
    name: str
    BuildParams: type
    SearchParams: type
    build_arrays: Callable  # (docs, BuildParams, Workspace) -> dict of arrays
    search: Callable        # (arrays, n_docs, queries, k, SearchParams, allowed=None) -> (scores, rows)
    grid: Callable | None   # (arrays, n_docs) -> {knob: values from cheap to accurate}, None: nothing to tune
    complete: Callable | None  # (arrays, docs, BuildParams) -> arrays: build steps that search the index
    exhaustive: Callable    # n_docs -> (build params, search knobs) under which search is exact
    scored_vectors: Callable | None  # (arrays, docs, queries) -> (docs, queries) its exhaustive search is exact over
    layout: ModuleType      # sparseir.layout.<kind>: the arrays, declared once
    layout_version: int     # of the kind's arrays; an index saved under another must be rebuilt
    capabilities: frozenset
    stored_vectors: Callable | None = None  # (arrays, n_docs, workspace) -> CSR of the documents the arrays hold

    def supports(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}")
        return capability in self.capabilities

    @property
    def on_disk(self) -> tuple[str, ...]:
        return tuple(self.layout.ON_DISK)

    @property
    def disk_mode(self):
        """The layout's DiskMode, None without the disk_mode capability."""
        return getattr(self.layout, "DISK_MODE", None) if self.supports("disk_mode") else None

    @property
    def checks(self) -> tuple:
        return tuple(self.layout.CHECKS)

    def build(self, docs, params, workspace) -> dict:
        arrays = self.build_arrays(docs, params, workspace)
        return arrays if self.complete is None else self.complete(arrays, docs, params)

    def tuning_grid(self, arrays, n_docs: int) -> dict[str, list]:
        if self.grid is None:
            raise ParameterError(f"the {self.name} index has no query knobs to tune")
        return self.grid(arrays, n_docs)


_REGISTRY: dict[str, Kind] = {}
_MODULES: dict[str, tuple[str, str, str]] = {name: (f"sparseir.indexer.{name}", f"sparseir.query.{name}",
                                                    f"sparseir.layout.{name}") for name in KINDS}


def kind_names() -> tuple[str, ...]:
    """Every kind: the built-in ones, then those registered."""
    return tuple(_MODULES)


def get_kind(name: str) -> Kind:
    kind = _REGISTRY.get(name)
    if kind is not None:
        return kind
    if name not in _MODULES:
        raise ParameterError(f"unknown index kind {name!r}; choose one of {', '.join(kind_names())}")
    kind = _REGISTRY[name] = make_kind(name, *(importlib.import_module(module) for module in _MODULES[name]))
    return kind


def register_kind(name: str, indexer: ModuleType | str, query: ModuleType | str, layout: ModuleType | str) -> Kind:
    """Add a kind from its three modules (or their import names), checking the contract now;
    indexes of it save, load and search like the built-in kinds'."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ParameterError(f"a kind's name must be an identifier, got {name!r}")
    if name in KINDS:
        raise ParameterError(f"{name!r} is a built-in kind")
    modules = [importlib.import_module(module) if isinstance(module, str) else module
               for module in (indexer, query, layout)]
    kind = make_kind(name, *modules)
    _MODULES[name] = tuple(module.__name__ for module in modules)
    _REGISTRY[name] = kind
    return kind


def make_kind(name: str, indexer: ModuleType, query: ModuleType, layout: ModuleType) -> Kind:
    problems = contract_problems(indexer, query, layout)
    if problems:
        raise KindContractError(f"kind {name!r} breaks the kind contract: {'; '.join(problems)}")
    return Kind(name, indexer.BuildParams, query.SearchParams, indexer.build, query.search,
                getattr(query, "tuning_grid", None), getattr(query, "complete_build", None), query.exhaustive,
                getattr(query, "scored_vectors", None), layout, layout.LAYOUT_VERSION,
                frozenset(layout.CAPABILITIES), getattr(indexer, "stored_vectors", None))


def contract_problems(indexer: ModuleType, query: ModuleType, layout: ModuleType) -> list[str]:
    """What the three modules lack of the contract (the module docstring), each in a few words."""
    problems = []
    for module, protocol in ((layout, LayoutModule), (indexer, IndexerModule), (query, QueryModule)):
        for member in _members(protocol):
            if not hasattr(module, member):
                problems.append(f"{module.__name__} has no {member}")
    if problems:
        return problems
    if not (isinstance(layout.LAYOUT_VERSION, int) and layout.LAYOUT_VERSION >= 1):
        problems.append(f"{layout.__name__}.LAYOUT_VERSION must be an integer >= 1")
    for constant in ("ON_DISK", "CHECKS"):
        if not isinstance(getattr(layout, constant), tuple):
            problems.append(f"{layout.__name__}.{constant} must be a tuple")
    capabilities = layout.CAPABILITIES
    if not isinstance(capabilities, frozenset):
        return problems + [f"{layout.__name__}.CAPABILITIES must be a frozenset"]
    unknown = sorted(capabilities - set(CAPABILITIES))
    if unknown:
        problems.append(f"unknown capabilities {', '.join(unknown)} (known: {', '.join(CAPABILITIES)})")
    for capability in sorted(REQUIRED_CAPABILITIES - capabilities):
        problems.append(f"every kind must have the {capability!r} capability ({CAPABILITIES[capability]})")
    if "filters" in capabilities and "allowed" not in inspect.signature(query.search).parameters:
        problems.append(f"{query.__name__}.search takes no allowed= (the 'filters' capability)")
    if ("tuning" in capabilities) != hasattr(query, "tuning_grid"):
        problems.append(f"the 'tuning' capability and {query.__name__}.tuning_grid go together")
    disk_mode = getattr(layout, "DISK_MODE", None)
    if ("disk_mode" in capabilities) != (disk_mode is not None):
        problems.append(f"the 'disk_mode' capability and {layout.__name__}.DISK_MODE go together")
    if disk_mode is not None and not set(disk_mode.runs) <= set(disk_mode.reads):
        problems.append(f"{layout.__name__}.DISK_MODE.runs names arrays it does not read")
    if "forward_index" in capabilities:
        from .layout.forward import ON_DISK as FORWARD_ON_DISK

        if not set(FORWARD_ON_DISK) <= set(layout.ON_DISK):
            problems.append(f"the 'forward_index' capability needs the forward index's bulk in "
                            f"{layout.__name__}.ON_DISK")
    if not (isinstance(indexer.BuildParams, type) and issubclass(indexer.BuildParams, OrderedBuild)
            and dataclasses.is_dataclass(indexer.BuildParams)):
        problems.append(f"{indexer.__name__}.BuildParams must be a dataclass deriving from sparseir.params.OrderedBuild")
    if not (isinstance(query.SearchParams, type) and dataclasses.is_dataclass(query.SearchParams)):
        problems.append(f"{query.__name__}.SearchParams must be a dataclass")
    return problems


def _members(protocol: type) -> list[str]:
    """A Protocol's declared attributes and methods."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}
    return sorted(names)


def parameter_fields(which: str) -> dict[str, tuple[dataclasses.Field, object]]:
    """The union over kinds of the build (`which="build"`) or search parameters: name -> (field, type hint)."""
    fields: dict[str, tuple[dataclasses.Field, object]] = {}
    for name in KINDS:
        params_class = get_kind(name).BuildParams if which == "build" else get_kind(name).SearchParams
        hints = typing.get_type_hints(params_class)
        for declared in dataclasses.fields(params_class):
            fields.setdefault(declared.name, (declared, hints[declared.name]))
    return fields
