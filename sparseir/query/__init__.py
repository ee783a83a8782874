"""Numba query processors, one module per index kind, plus the shared top-k heap."""
