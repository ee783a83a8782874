"""Where a build keeps its large arrays: in memory, or out of core under a memory budget.

An out-of-core workspace is a scratch directory. Its arrays are files mapped into memory,
and a build works through them in chunks. After each chunk the workspace drops every
mapped page from the process (``madvise(MADV_DONTNEED)``: the pages stay in the page cache
or go back to their files, but no longer count as the build's resident memory). `budget`
bytes bound what one chunk may touch, so resident memory stays at the arrays the build
keeps in RAM plus the budget, whatever the collection size.

The in-memory workspace (``IN_MEMORY``) allocates with ``np.empty`` and runs every phase
as one chunk. Both give the same arrays: chunks change when work is done, never what.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import ParameterError
from .progress import Progress

PAGE = mmap.PAGESIZE
NONZERO_BYTES = 8  # a collection's non-zero: its term id and weight, what reading a row touches per entry
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str | int) -> int:
    """'2G', '512M', '1.5g' or a plain number of bytes -> bytes."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        value = int(text)
    else:
        raw = str(text).strip().lower().removesuffix("ib").removesuffix("b")
        unit = raw[-1:] if raw[-1:] in UNITS else ""
        try:
            value = int(float(raw[:len(raw) - len(unit)]) * UNITS[unit])
        except ValueError:
            raise ParameterError(f"memory budget must be bytes or a size like 2G or 512M, got {text!r}") from None
    if value < PAGE:
        raise ParameterError(f"memory budget must be at least one page ({PAGE} bytes), got {text!r}")
    return value


class Workspace:
    """Large build arrays in RAM (no directory) or in files of `directory`, touched at most
    `budget` bytes per chunk; `progress` shows each chunked phase with an ETA on stderr."""

    def __init__(self, directory: str | os.PathLike | None = None, budget: int | str | None = None,
                 progress: bool = False):
        if directory is not None and budget is None:
            raise ParameterError("an out-of-core workspace needs a memory budget")
        self.directory = None if directory is None else Path(directory)
        self.budget = None if budget is None else parse_bytes(budget)
        self.progress = progress
        self._mapped: list[np.memmap] = []
        self._followed: list[np.memmap] = []
        self._files = 0

    @classmethod
    def beside(cls, target: str | os.PathLike, budget: int | str, progress: bool = False) -> "Workspace":
        """A scratch directory next to `target`, named as its writer's temporaries are, so that
        one a killed build leaves is removed by the next write of `target`."""
        from .fileio import temp_prefix

        target = Path(target)
        budget = parse_bytes(budget)  # a bad one is refused before any directory exists
        return cls(tempfile.mkdtemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent), budget, progress)

    @property
    def out_of_core(self) -> bool:
        return self.directory is not None

    def empty(self, shape, dtype, whole_file: bool = False) -> np.ndarray:
        """A new array: a mapped file out of core, else RAM. whole_file: for an array of the
        index itself, a .npy file that saving the index links (``storage.write_index_dir``)
        rather than copies, so that the largest arrays are written once."""
        if not self.out_of_core or int(np.prod(shape)) == 0:
            return np.empty(shape, dtype=dtype)
        self._files += 1
        if whole_file:
            path = self.directory / f"array-{self._files:04d}.npy"
            shape = tuple(int(n) for n in np.atleast_1d(shape))  # a .npy header takes Python ints
            array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            array.whole_npy = path  # views do not inherit it: only the whole array is linked
        else:
            array = np.memmap(self.directory / f"array-{self._files:04d}.bin", dtype=dtype, mode="w+", shape=shape)
        self._mapped.append(array)
        return array

    def adopt(self, path: str | os.PathLike, dtype, shape) -> np.ndarray:
        """Map a file written into the directory (a spooled input), for release() to manage."""
        array = np.memmap(path, dtype=dtype, mode="r+", shape=shape) if int(np.prod(shape)) else np.empty(shape, dtype)
        if isinstance(array, np.memmap):
            self._mapped.append(array)
        return array

    def follow(self, arrays) -> None:
        """Release the mapped pages of arrays the workspace did not make (an open index's files,
        read from) after each run too, so that reading them costs no more resident memory than
        the run does; they stay open, and their pages stay in the page cache."""
        if self.out_of_core:
            self._followed.extend(array for array in arrays if getattr(array, "_mmap", None) is not None)

    def new_file(self, name: str) -> Path:
        return self.directory / name

    def release(self) -> None:
        """Drop every mapped page from the process; written pages go back to their files."""
        for array in (*self._mapped, *self._followed):
            mapping = getattr(array, "_mmap", None)
            if mapping is not None and not mapping.closed:
                mapping.madvise(mmap.MADV_DONTNEED)

    def ranges(self, costs: np.ndarray, phase: str) -> Iterator[tuple[int, int]]:
        """Consecutive [lo, hi) runs of items whose summed cost (bytes touched) stays within
        the budget (an item above it alone); one run in memory, none for no items. Mapped
        pages are released after each run, and progress shown."""
        n = len(costs)
        if n == 0:
            bounds = [0]
        elif not self.out_of_core:
            bounds = [0, n]
        else:
            cumulative = np.cumsum(costs, dtype=np.int64)
            bounds = [0]
            while bounds[-1] < n:
                base = cumulative[bounds[-1] - 1] if bounds[-1] else 0
                hi = int(np.searchsorted(cumulative, base + self.budget, side="right"))
                bounds.append(max(hi, bounds[-1] + 1))
        with self.progress_bar(phase, n) as bar:
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                yield lo, hi
                self.release()
                bar.advance_to(hi)

    def progress_bar(self, phase: str, total: int) -> Progress:
        return Progress(phase, total, enabled=self.progress)

    def steps(self, n: int, phase: str, count: int = 100) -> Iterator[tuple[int, int]]:
        """`count` even runs of n items, for a phase that touches nothing mapped: they only
        pace its progress bar (one run in memory)."""
        per_item = max(1, (self.budget or 1) * count // max(1, n))  # about n / count items fill the budget
        return self.ranges(np.full(n, per_item, dtype=np.int64), phase)

    def row_ranges(self, offsets: np.ndarray, phase: str, bytes_per_value: int = NONZERO_BYTES
                   ) -> Iterator[tuple[int, int]]:
        """`ranges` over the rows of a CSR array whose values take bytes_per_value bytes."""
        return self.ranges(np.diff(offsets) * bytes_per_value, phase)

    def close(self) -> None:
        for array in self._mapped:
            mapping = getattr(array, "_mmap", None)
            if mapping is not None:
                try:
                    mapping.close()
                except BufferError:  # a view still exports it; the file goes with the directory
                    pass
        self._mapped.clear()
        self._followed.clear()
        if self.out_of_core:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


IN_MEMORY = Workspace()
