"""Ranges of on-disk arrays copied into scratch buffers, from compiled code.

Under ``load_index(memory="disk")`` a kernel reads what a query needs with pread(2) into
buffers it owns: the process keeps those buffers, and the page cache, which the OS may
reclaim, keeps what is warm. Memory-mapped arrays would instead stay in the process's
resident set once touched.
"""

from __future__ import annotations

import errno
import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..errors import IndexFormatError
from ..layout import frozen

# Why a read failed, kept in failed[0] (the file's descriptor in failed[1]): an exception cannot
# leave a parallel region, so kernels record the failure and the caller raises it once they return.
UNREADABLE = 1  # the file came up short: removed, truncated or unreadable since it was loaded
DAMAGED = 2  # what was read does not fit the offsets that located it


@intrinsic
def pread_into(typingctx, fd, buffer, buffer_byte, nbytes, file_byte):
    """pread(fd, buffer's data + buffer_byte, nbytes, file_byte): bytes read, 0 at end of file, -1 on error."""
    def codegen(context, builder, signature, args):
        fd_value, array, at, count, offset = args
        data = context.make_array(signature.args[1])(context, builder, array).data
        byte_ptr = ir.IntType(8).as_pointer()
        i64 = ir.IntType(64)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [ir.IntType(32), byte_ptr, i64, i64]), "pread")
        target = builder.gep(builder.bitcast(data, byte_ptr), [at])
        return builder.call(function, [builder.trunc(fd_value, ir.IntType(32)), target, count, offset])
    return types.int64(types.int64, buffer, types.int64, types.int64, types.int64), codegen


def read_range(file, lo, hi, buffer, failed):
    """Elements lo:hi of an array on disk copied into the start of buffer (of its dtype),
    returned as a view of it. file: int64 (fd, byte where the array's data starts, elements).

    A read that fails (a file removed or truncated since it was opened) gives zeros and marks
    `failed` (``new_failed``) UNREADABLE, which ``raise_failed`` raises once the kernel returns.
    An empty array (a binary index's unit weights) reads as an empty view whatever the range.
    The caller keeps hi - lo within the buffer: the index's largest_reads, checked at load
    against its offsets, size the buffers.
    """
    fd, start, size = file[0], file[1], file[2]
    if size == 0:
        return buffer[:0]
    itemsize = buffer.itemsize
    data = os.pread(fd, (hi - lo) * itemsize, start + lo * itemsize)
    if len(data) < (hi - lo) * itemsize:
        mark_failed(failed, file, UNREADABLE)
        buffer[:hi - lo] = 0
    else:
        buffer[:hi - lo] = np.frombuffer(data, dtype=buffer.dtype)
    return buffer[:hi - lo]


@overload(read_range)
def _read_range(file, lo, hi, buffer, failed):
    def compiled(file, lo, hi, buffer, failed):
        fd, start, size = file[0], file[1], file[2]
        if size == 0:
            return buffer[:0]
        itemsize = buffer.itemsize
        total = (hi - lo) * itemsize
        done = 0
        while done < total:  # a regular file returns short only at its end (or on a signal)
            got = pread_into(fd, buffer, done, total - done, start + lo * itemsize + done)
            if got <= 0:
                mark_failed(failed, file, UNREADABLE)
                buffer[:hi - lo] = 0
                break
            done += got
        return buffer[:hi - lo]
    return compiled


def disk_reads(group: type, arrays, names: tuple[str, ...]):
    """What a kind's kernels read from disk, as its layout's ``DiskReads`` NamedTuple (`group`),
    or None unless the index was loaded with memory="disk". The group's fields: files (int64,
    one row (fd, byte where the data starts, elements) per name in `names`), failed
    (``new_failed``), an empty array of each named array's dtype (kernels take the dtypes from
    them), then any further fields, arrays in RAM taken from `arrays` by their names."""
    files = getattr(arrays, "disk", None)
    if not files:
        return None
    if group._fields[2:2 + len(names)] != tuple(names):
        raise ValueError(f"{group.__name__} names its reads {group._fields[2:2 + len(names)]}, not {tuple(names)}")
    disk = [files[name] for name in names]
    table = np.array([(file.fd, file.start, file.size) for file in disk], dtype=np.int64).reshape(len(disk), 3)
    return group(table, new_failed(), *(file.empty for file in disk),
                 *(frozen(arrays[name]) for name in group._fields[2 + len(names):]))


def raise_failed_reads(disk, arrays, names: tuple[str, ...]) -> None:
    """raise_failed for what `disk` (from ``disk_reads``) recorded, naming the file among `names`."""
    raise_failed(disk.failed, [arrays.disk[name] for name in names])


def new_failed() -> np.ndarray:
    """Where kernels record a failed read: (why, the file's descriptor), zeros while none failed."""
    return np.zeros(2, dtype=np.int64)


@njit(cache=True)
def mark_failed(failed, file, why):
    """Record that a read of `file` (fd, start, elements) failed for `why` (UNREADABLE, DAMAGED). A short
    read explains whatever else fails after it (zeros read as a record), so it is what stays."""
    if failed[0] != UNREADABLE:
        failed[0] = why
        failed[1] = file[0]


def raise_failed(failed: np.ndarray, files) -> None:
    """Raise what a kernel recorded in `failed`, naming the file (``storage.DiskArray``) it read."""
    if failed[0] == 0:
        return
    path = next((file.path for file in files if file.fd == failed[1]), "an index file")
    if failed[0] == UNREADABLE:
        raise OSError(errno.EIO, "could not be read (removed, truncated or unreadable since the index was loaded)",
                      path)
    raise IndexFormatError(f"{path}: holds a record that does not fit the offsets that locate it "
                           "(damaged index; rebuild it)")
