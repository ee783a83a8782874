"""Array layouts: what each kind's index arrays are, declared once.

Declarations only: each kind's arrays (names, dtypes, groups as NamedTuples that kernels
read fields of by name), its capabilities, its version, and the arithmetic of its on-disk
format that its writer (``indexer/``) and its readers (``query/``) share, as where a
record's parts start. Nothing here builds or searches. ``forward`` is the forward index
that the Seismic and SINDI kinds share for exact rescoring. Each module's ``CHECKS`` declares
what its arrays must satisfy, which every open verifies (``checks``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

# A weight array of a binary collection (every weight 1): nothing stored. Kernels read
# weights through ``query.bits.weight_at``, which compiles this dtype to the constant 1.
UNIT_WEIGHTS = np.zeros(0, dtype=np.bool_)


@dataclass(frozen=True)
class DiskMode:
    """How a kind with the ``disk_mode`` capability is served by ``load_index(memory="disk")``."""

    reads: tuple[str, ...]  # arrays the kernels read range by range from their files
    only: tuple[str, ...]   # arrays only that mode reads: every other mode leaves them mapped, untouched
    needs: tuple[str, ...]  # arrays an index must hold to be served so
    build: dict = field(default_factory=dict)  # the build parameters that write them
    rebuild: str = ""       # how to rebuild an index that lacks them, in a user's words
    # Of `reads`, those read in long ranges, front to back: their files get the kernel's
    # readahead (and so large page-cache folios, which copy faster) instead of random-access advice.
    runs: tuple[str, ...] = ()


def stored_weights(weights: np.ndarray, binary: bool) -> np.ndarray:
    """The weight array a builder stores: none for a binary collection."""
    return UNIT_WEIGHTS if binary else weights


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only view of an index array. Kernels take every index array read-only, built in
    memory or mapped from a file alike, so that each compiles once per dtype, not once per mix
    of writable and mapped arrays."""
    if not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


def frozen_arrays(arrays):
    """A copy of an index's arrays mapping (of its own type, with what it carries, such as
    ``storage.LoadedArrays``' open disk files) whose arrays are read-only views: made once,
    so that searches do not make them again."""
    view = copy.copy(arrays)
    for name, array in view.items():
        if isinstance(array, np.ndarray):
            view[name] = frozen(array)
    return view


def read(group: type, arrays):
    """The arrays of one group (a layout NamedTuple whose fields are array names), by name, read-only."""
    return group(*(frozen(arrays[name]) for name in group._fields))
