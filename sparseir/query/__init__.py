"""Numba query processors, one module per index kind, plus the shared top-k heap.

The kernels Python calls (each kind's ``search_chunk`` and ``search_batch``) release the
GIL: they touch no Python object, and a caller's other threads (a server's event loop,
a reader) go on while a batch runs.
"""
