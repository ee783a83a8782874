"""The optional parts of sparseir: which packages each extra brings, whether they are here.

``pip install sparseir`` indexes and searches vectors; encoding text, evaluation with
ir-measures, plots and peers, Ray and PyTerrier each come with an extra. A feature whose extra is
missing stops with one line naming the install command, never a traceback from deep
inside an import. Nothing here imports the packages it checks.
"""

from __future__ import annotations

from importlib import metadata
from importlib.util import find_spec

from .errors import ParameterError

# extra -> (import name, distribution name) of each package it brings
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "core": (("numpy", "numpy"), ("numba", "numba"), ("pyarrow", "pyarrow"), ("click", "click"), ("tqdm", "tqdm")),
    "encode": (("torch", "torch"), ("transformers", "transformers"), ("tokenizers", "tokenizers"),
               ("safetensors", "safetensors")),
    "eval": (("ir_measures", "ir-measures"), ("ir_datasets", "ir-datasets")),
    "bench": (("matplotlib", "matplotlib"), ("seismic", "pyseismic-lsr"), ("pyvsag", "pyvsag"), ("bmp", "bmp"),
              ("pyterrier_pisa", "pyterrier-pisa")),
    "ray": (("ray", "ray"),),
    "pyterrier": (("pyterrier", "python-terrier"), ("pandas", "pandas")),
    "interop": (("google.protobuf", "protobuf"), ("ciff_toolkit", "ciff-toolkit"), ("ranx", "ranx")),
    "serve": (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("pydantic", "pydantic")),
}
# Packages a feature cannot do without (the bench peers are optional one by one).
NEEDED = {"encode": ("torch", "transformers", "tokenizers", "safetensors"), "eval": ("ir_measures",),
          "bench": ("matplotlib",), "ray": ("ray",), "pyterrier": ("pyterrier", "pandas"),
          "interop": ("google.protobuf", "ciff_toolkit", "ranx"),
          "serve": ("fastapi", "uvicorn", "pydantic")}


def missing(extra: str) -> list[str]:
    """The packages `extra`'s features need that are not installed."""
    return [module for module in NEEDED[extra] if not _installed(module)]


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is absent
        return False


def require_extra(extra: str, feature: str) -> None:
    """Raise a one-line ParameterError naming the install command when `extra` is incomplete."""
    absent = missing(extra)
    if absent:
        raise ParameterError(f"{feature} needs {', '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} "
                             f"not installed: pip install 'sparseir[{extra}]'")


def installed_versions() -> dict[str, dict[str, str | None]]:
    """extra -> {distribution: version, or None when absent}, read from package metadata."""
    versions: dict[str, dict[str, str | None]] = {}
    for extra, packages in EXTRAS.items():
        versions[extra] = {}
        for _, distribution in packages:
            try:
                versions[extra][distribution] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                versions[extra][distribution] = None
    return versions


def describe_installation(version: str) -> str:
    """Lines for `sparseir --version` / `sparseir info`: each extra with what is present."""
    lines = [f"sparseir {version}"]
    width = max(map(len, EXTRAS))
    for extra, packages in installed_versions().items():
        present = [f"{name} {found}" for name, found in packages.items() if found]
        if extra != "core" and not present:
            lines.append(f"  {extra:{width}} not installed (pip install 'sparseir[{extra}]')")
            continue
        absent = [name for name, found in packages.items() if not found]
        lines.append(f"  {extra:{width}} " + ", ".join(present) + (f"; absent: {', '.join(absent)}" if absent else ""))
    return "\n".join(lines)
