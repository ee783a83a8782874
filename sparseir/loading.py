"""Open any saved index directory as the shape it holds."""

from __future__ import annotations

import os

from .index import Index
from .segments import is_segmented, load_segmented
from .sharded import is_sharded, load_sharded


def load_index(path: str | os.PathLike, verify: bool = False, memory: str = "mapped"):
    """Open a saved index. verify=True also checks sha256 of every file.

    memory: "mapped" (arrays memory-mapped, paged in by the OS as used), "all" (read into
    RAM), "summaries": the small, hot arrays (summaries, bounds, directories, offsets)
    in RAM, the bulk (postings, forward index) left on disk and read at random, or "disk"
    (kinds with the disk_mode capability: Seismic built with disk_blocks=True, SINDI): only
    directories and offsets in RAM, each query reading what it needs from disk into buffers
    (Seismic: its lists' summaries and its blocks' records; SINDI: its terms' lists, window by
    window, and its candidates' forward-index rows).

    A sharded index directory opens as a ``ShardedIndex``, a segmented one (``sparseir.segments``)
    at its latest generation as a ``SegmentedIndex``, with the same search interface.
    """
    if is_sharded(path):
        return load_sharded(path, verify=verify, memory=memory)
    if is_segmented(path):
        return load_segmented(path, verify=verify, memory=memory)
    return Index.load(path, verify=verify, memory=memory)
