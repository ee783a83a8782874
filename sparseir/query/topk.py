"""A bounded top-k heap over flat arrays, shared by every query processor, and the pick of a
vector's heaviest entries.

The heap keeps the k best (score, row) pairs with the *worst* at the root, so its root
score is the threshold a candidate must beat. Order is total and deterministic: a
higher score wins, and on equal scores the lower row wins.
"""

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def is_worse(score_a, row_a, score_b, row_b):
    return score_a < score_b or (score_a == score_b and row_a > row_b)


@njit(cache=True)
def heap_push(heap_scores, heap_rows, size, score, row):
    """Offer (score, row); returns the new size. A full heap keeps the k best."""
    k = heap_scores.shape[0]
    if size < k:
        i = size
        heap_scores[i] = score
        heap_rows[i] = row
        while i > 0:
            parent = (i - 1) >> 1
            if is_worse(heap_scores[i], heap_rows[i], heap_scores[parent], heap_rows[parent]):
                heap_scores[i], heap_scores[parent] = heap_scores[parent], heap_scores[i]
                heap_rows[i], heap_rows[parent] = heap_rows[parent], heap_rows[i]
                i = parent
            else:
                break
        return size + 1
    if not is_worse(heap_scores[0], heap_rows[0], score, row):
        return size
    heap_scores[0] = score
    heap_rows[0] = row
    _sift_down(heap_scores, heap_rows, 0, size)
    return size


@njit(cache=True)
def _sift_down(heap_scores, heap_rows, i, size):
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and is_worse(heap_scores[right], heap_rows[right], heap_scores[left], heap_rows[left]):
            child = right
        if is_worse(heap_scores[child], heap_rows[child], heap_scores[i], heap_rows[i]):
            heap_scores[i], heap_scores[child] = heap_scores[child], heap_scores[i]
            heap_rows[i], heap_rows[child] = heap_rows[child], heap_rows[i]
            i = child
        else:
            return


@njit(cache=True)
def heap_threshold(heap_scores, size):
    """The score a candidate must beat to enter: -inf until the heap is full."""
    if size < heap_scores.shape[0]:
        return -np.inf
    return heap_scores[0]


@njit(cache=True)
def heap_drain(heap_scores, heap_rows, size, out_scores, out_rows):
    """Pop everything into out_* best first; the rest of out_* is left as padding."""
    while size > 0:
        size -= 1
        out_scores[size] = heap_scores[0]
        out_rows[size] = heap_rows[0]
        heap_scores[0] = heap_scores[size]
        heap_rows[0] = heap_rows[size]
        _sift_down(heap_scores, heap_rows, 0, size)


def empty_results(n_queries: int, k: int):
    """(scores, rows) filled with the padding values -inf / -1."""
    return np.full((n_queries, k), -np.inf, dtype=np.float32), np.full((n_queries, k), -1, dtype=np.int64)


