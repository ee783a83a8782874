"""Kernel utilities that building and searching share, below both (``indexer/`` and ``query/``
import them; they import nothing of sparseir's).

Scalar primitives numba lacks on CPU (float16 decoding, float32 bit casts, lowest set bit,
bit count, prefetching): each a plain Python function (what runs under NUMBA_DISABLE_JIT)
with an ``@overload`` that compiles it to one LLVM instruction. Then how work is split
across threads, a query's heaviest terms, and the offsets and counter widths of flat arrays.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

CACHE_LINE = 64  # bytes


def weight_at(weights, p):
    """Weight p as float32: stored as float32 (or uint8 codes), as float16 bits (uint16), or not
    stored at all (``layout.UNIT_WEIGHTS``, a binary collection: every weight is 1)."""
    if weights.dtype == np.bool_:
        return np.float32(1.0)
    if weights.dtype == np.uint16:
        return np.float32(weights[p:p + 1].view(np.float16)[0])
    return np.float32(weights[p])


def stores_weights(weights):
    """False for ``layout.UNIT_WEIGHTS`` (a binary collection's, which weight_at never reads)."""
    return weights.dtype != np.bool_


@overload(stores_weights, inline="always")
def _stores_weights(weights):
    stored = weights.dtype != types.boolean  # a constant per signature
    return lambda weights: stored


def float32_from_bits(bits):
    """The float32 whose bit pattern is the uint32 `bits`."""
    return np.uint32(bits).view(np.float32)


def bits_of_float32(value):
    """The bit pattern of the float32 `value`, as uint32."""
    return np.float32(value).view(np.uint32)


@intrinsic
def bitcast_to_float32(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@intrinsic
def bitcast_to_uint32(typingctx, value):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


@overload(float32_from_bits, inline="always")
def _float32_from_bits(bits):
    return lambda bits: bitcast_to_float32(np.uint32(bits))


@overload(bits_of_float32, inline="always")
def _bits_of_float32(value):
    return lambda value: bitcast_to_uint32(np.float32(value))


@intrinsic
def float32_from_half_bits(typingctx, bits):
    """float16 bits to float32 by LLVM's fpext: one instruction (vcvtph2ps) where the CPU has F16C."""
    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.uint16), codegen


@overload(weight_at, inline="always")
def _weight_at(weights, p):
    if weights.dtype == types.boolean:  # resolved at compile time: one implementation per signature
        return lambda weights, p: np.float32(1.0)
    if weights.dtype == types.uint16:
        return lambda weights, p: float32_from_half_bits(weights[p])
    return lambda weights, p: np.float32(weights[p])


def lowest_bit(mask):
    """The position of the lowest set bit of the non-zero unsigned integer `mask`."""
    mask = int(mask)
    return (mask & -mask).bit_length() - 1


@intrinsic
def count_trailing_zeros(typingctx, mask):
    """llvm.cttz: one instruction (tzcnt / bsf)."""
    def codegen(context, builder, signature, args):
        return builder.zext(builder.cttz(args[0], ir.Constant(ir.IntType(1), 1)), ir.IntType(64))
    return types.int64(mask), codegen


@overload(lowest_bit, inline="always")
def _lowest_bit(mask):
    return lambda mask: count_trailing_zeros(mask)


def count_bits(mask):
    """How many bits of the unsigned integer `mask` are set."""
    return bin(int(mask)).count("1")


@intrinsic
def population_count(typingctx, mask):
    """llvm.ctpop: one instruction (popcnt)."""
    def codegen(context, builder, signature, args):
        return builder.zext(builder.ctpop(args[0]), ir.IntType(64))
    return types.int64(mask), codegen


@overload(count_bits, inline="always")
def _count_bits(mask):
    return lambda mask: population_count(mask)


def prefetch(array, index):
    """Ask the CPU to start loading array[index] into cache; a no-op when run as plain Python."""


@intrinsic
def prefetch_item(typingctx, array, index):
    """llvm.prefetch (read, high locality) of the address of array[index]."""
    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [args[1]], wraparound=False)
        int32, bytes_pointer = ir.IntType(32), ir.IntType(8).as_pointer()
        # One declaration per module whatever the array's dtype: the address goes as a byte pointer.
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [bytes_pointer, int32, int32, int32]), "llvm.prefetch.p0")
        builder.call(function, [builder.bitcast(pointer, bytes_pointer), ir.Constant(int32, 0), ir.Constant(int32, 3),
                                ir.Constant(int32, 1)])
        return context.get_dummy_value()
    return types.void(array, index), codegen


@overload(prefetch, inline="always")
def _prefetch(array, index):
    return lambda array, index: prefetch_item(array, index)


@njit(cache=True)
def prefetch_lines(array, lo, hi):
    """Prefetch every cache line (64 bytes) of array[lo:hi]."""
    for i in range(lo, hi, max(1, CACHE_LINE // array.itemsize)):
        prefetch(array, i)


def thread_chunks(n_queries: int) -> int:
    """How many interleaved chunks of queries to run in parallel (one scratch each)."""
    if n_queries <= 1:  # asking numba for its thread count takes locks: a single query need not
        return 1
    import numba

    return max(1, min(n_queries, numba.get_num_threads()))


@njit(cache=True)
def heaviest_terms(q_terms, q_weights, query_cut, cut_terms):
    """Write the query's min(query_cut, len) heaviest terms into cut_terms, heaviest first; returns the count.

    Insertion into a short sorted prefix: query_cut is small and no array is allocated.
    """
    n = 0
    for j in range(q_terms.shape[0]):
        w = q_weights[j]
        if n == query_cut and w <= q_weights[cut_terms[n - 1]]:
            continue
        i = n if n < query_cut else n - 1
        while i > 0 and q_weights[cut_terms[i - 1]] < w:
            cut_terms[i] = cut_terms[i - 1]
            i -= 1
        cut_terms[i] = j
        if n < query_cut:
            n += 1
    return n


def offsets_of(sizes: np.ndarray) -> np.ndarray:
    """Offsets (int64, one more than sizes) whose consecutive pairs bound each item's slice."""
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def smallest_uint(largest: int):
    """The narrowest unsigned dtype holding 0..largest: index bytes are mostly such counters."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return dtype
    return np.int64
