"""A Numba parser for JSONL vector lines as encoders write them.

    {"id": "D1", "contents": "some text", "vector": {"term": 0.5, "##s": 12, ...}}

`parse_block` reads the whole lines of a block of bytes and accepts a strict subset of
JSON: one object per line, keys without escapes, "id" a string or a non-negative integer,
"vector" an object of string: non-negative number pairs, any other key a string, number,
true, false or null. It flags every other line SLOW -- invalid JSON, other shapes,
negative or non-finite weights, invalid UTF-8, a number it cannot convert exactly -- for
the json module, which owns every error message (jsonl.py): this path changes speed only.

Terms are not decoded here: each distinct spelling (its raw bytes, escapes and all) gets a
slot in `Spellings` once per read, and Python maps a slot to a term id once.

Weights become exactly the float64 that Python's float() gives (correctly rounded):
Clinger's fast path, else Eisel-Lemire as fast_float does it, for up to 19 significant
digits; a number with more, or a subnormal or infinite one, sends its line the slow way.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

FAST, SLOW = 1, 2  # row status
# A slot's term id before lookup, when a fixed vocabulary lacks it, while being looked up.
UNRESOLVED, UNKNOWN, PENDING = -1, -2, -3

_NEWLINE, _QUOTE, _BACKSLASH, _COMMA, _COLON, _MINUS = 10, 34, 92, 44, 58, 45
_OPEN, _CLOSE = 123, 125
_BAD, _FULL = -1, -2  # positions helpers return instead of an index
_ID = np.frombuffer(b"id", dtype=np.uint8)
_VECTOR = np.frombuffer(b"vector", dtype=np.uint8)
_TRUE = np.frombuffer(b"true", dtype=np.uint8)
_FALSE = np.frombuffer(b"false", dtype=np.uint8)
_NULL = np.frombuffer(b"null", dtype=np.uint8)

_FNV_PRIME = np.uint64(1099511628211)
_PLAIN = np.array([0x20 <= c < 0x80 and c not in b'"\\' for c in range(256)])  # string bytes needing no check
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class Rows(NamedTuple):
    """What `parse_block` records per non-blank line ("row"), FAST or SLOW."""

    status: np.ndarray      # int8: FAST or SLOW
    line: np.ndarray        # int64: line index within the block
    start: np.ndarray       # int64: byte span of the line, newline excluded
    end: np.ndarray
    id_start: np.ndarray    # int64: byte span of the id (between its quotes), FAST rows
    id_end: np.ndarray
    id_escaped: np.ndarray  # bool: the id holds escapes (json decodes it)
    nnz_end: np.ndarray     # int64: end of the row's entries in slots/weights (SLOW rows have none)


def new_rows(n: int) -> Rows:
    return Rows(np.empty(n, np.int8), *(np.empty(n, np.int64) for _ in range(5)), np.empty(n, np.bool_),
                np.empty(n, np.int64))


class Spellings(NamedTuple):
    """Distinct term spellings: slots numbered in order of first sight, each a span of
    `pool`, found through an open-addressing table (three quarters full at most) whose
    entries hold a spelling's first 16 bytes, its length and its slot: nearly every term
    is that short, so a lookup reads one entry and nothing else."""

    # uint64, 4 per entry (a power of two of them): bytes 0-7, bytes 8-15, (length + 1) << 32 | slot
    # (0: empty), 0 (to keep entries aligned).
    table: np.ndarray
    starts: np.ndarray   # int64 per slot: where its bytes start in pool
    lengths: np.ndarray  # int32 per slot
    pool: np.ndarray     # uint8
    used: np.ndarray     # int64[2]: slots and pool bytes in use


def new_spellings(slots: int = 3 << 13, pool_bytes: int = 1 << 19) -> Spellings:
    """Room for `slots` spellings and `pool_bytes` of them."""
    entries = 1 << (slots * 4 // 3 - 1).bit_length()
    return Spellings(np.zeros(4 * entries, np.uint64), np.empty(slots, np.int64), np.empty(slots, np.int32),
                     np.empty(pool_bytes, np.uint8), np.zeros(2, np.int64))


def grown(spellings: Spellings) -> Spellings:
    """The same slots (same numbers) in a table of twice the room."""
    n, used = (int(x) for x in spellings.used)
    bigger = new_spellings(2 * len(spellings.starts), 2 * len(spellings.pool))
    bigger.starts[:n] = spellings.starts[:n]
    bigger.lengths[:n] = spellings.lengths[:n]
    bigger.pool[:used] = spellings.pool[:used]
    bigger.used[:] = spellings.used
    _reindex(bigger)
    return bigger


def spelling(spellings: Spellings, slot: int) -> bytes:
    start = int(spellings.starts[slot])
    return spellings.pool[start:start + int(spellings.lengths[slot])].tobytes()


# --- the block ---------------------------------------------------------------------


@njit(cache=True, nogil=True)
def parse_block(buf, pos, line, n_rows, n_nnz, rows, slots, weights, spellings):
    """Parse the lines of `buf` (which ends in a newline) from byte `pos`, a line start.

    Each FAST row's entries go to slots/weights (room for len(buf) // 5 + 2 needed: an
    entry takes 5 bytes at least); blank lines (spaces only) are counted, not recorded.
    Returns (pos, line, n_rows, n_nnz) as reached: pos < len(buf) when `spellings` filled
    up, to call again with a grown table.
    """
    n = len(buf)
    table, starts, lengths, pool, used = spellings  # once: each use of the tuple costs reference counting
    while pos < n:
        i = _skip_space(buf, pos)
        if buf[i] == _NEWLINE:
            pos = i + 1
            line += 1
            continue
        first = n_nnz
        i, n_nnz, status, id_start, id_end, id_escaped = _record(buf, i, slots, weights, n_nnz, table, starts,
                                                                  lengths, pool, used)
        if status == _FULL:
            return pos, line, n_rows, first
        if status == SLOW:
            n_nnz = first
            while buf[i] != _NEWLINE:
                i += 1
            id_start = id_end = 0
            id_escaped = False
        rows.id_start[n_rows] = id_start
        rows.id_end[n_rows] = id_end
        rows.id_escaped[n_rows] = id_escaped
        rows.status[n_rows] = status
        rows.line[n_rows] = line
        rows.start[n_rows] = pos
        rows.end[n_rows] = i
        rows.nnz_end[n_rows] = n_nnz
        n_rows += 1
        line += 1
        pos = i + 1
    return pos, line, n_rows, n_nnz


# The functions a line goes through are inlined into parse_block: calls that pass arrays
# cost reference counting (atomic operations), which would dominate short lines.


@njit(cache=True, inline="always")
def _record(buf, i, slots, weights, n_nnz, table, starts, lengths, pool, used):
    """One line's object from buf[i] == '{': (where it stopped, n_nnz, FAST / SLOW / _FULL,
    the id's span and whether it holds escapes)."""
    id_start = id_end = 0
    id_escaped = False
    if buf[i] != _OPEN:
        return i, n_nnz, SLOW, id_start, id_end, id_escaped
    has_id = has_vector = False
    i = _skip_space(buf, i + 1)
    while True:
        if buf[i] != _QUOTE:
            return i, n_nnz, SLOW, id_start, id_end, id_escaped
        key_end, escaped = _string_end(buf, i + 1)
        if key_end < 0 or escaped:  # an escaped key might spell "id" or "vector"
            return i, n_nnz, SLOW, id_start, id_end, id_escaped
        j = _skip_space(buf, key_end + 1)
        if buf[j] != _COLON:
            return j, n_nnz, SLOW, id_start, id_end, id_escaped
        j = _skip_space(buf, j + 1)
        if _is_word(buf, i + 1, key_end, _ID):
            end = _BAD
            if not has_id:
                end, id_start, id_end, id_escaped = _id_value(buf, j)
            has_id = True
        elif _is_word(buf, i + 1, key_end, _VECTOR):
            end = _BAD
            if not has_vector:
                end, n_nnz = _vector_value(buf, j, slots, weights, n_nnz, table, starts, lengths, pool, used)
                if end == _FULL:
                    return j, n_nnz, _FULL, id_start, id_end, id_escaped
            has_vector = True
        else:
            end = _scalar_end(buf, j)
        if end < 0:
            return j, n_nnz, SLOW, id_start, id_end, id_escaped
        i = _skip_space(buf, end)
        if buf[i] == _COMMA:
            i = _skip_space(buf, i + 1)
            continue
        if buf[i] != _CLOSE or not (has_id and has_vector):
            return i, n_nnz, SLOW, id_start, id_end, id_escaped
        i = _skip_space(buf, i + 1)
        return i, n_nnz, FAST if buf[i] == _NEWLINE else SLOW, id_start, id_end, id_escaped


@njit(cache=True, inline="always")
def _id_value(buf, i):
    """A string id, or an integer one (whose digits are its str()): (end of the value or
    _BAD, span of the id, whether it holds escapes)."""
    if buf[i] == _QUOTE:
        end, escaped = _string_end(buf, i + 1)
        return (end + 1 if end >= 0 else _BAD), i + 1, end, escaped
    end = _digits_end(buf, i)
    if end == i or _number_end(buf, i) != end:  # not digits alone: a sign, a fraction, a leading zero
        return _BAD, i, end, False
    return end, i, end, False


@njit(cache=True, inline="always")
def _vector_value(buf, i, slots, weights, n_nnz, table, starts, lengths, pool, used):
    """The {term: weight} object at buf[i]: (its end or _BAD / _FULL, n_nnz)."""
    if buf[i] != _OPEN:
        return _BAD, n_nnz
    i = _skip_space(buf, i + 1)
    if buf[i] == _CLOSE:
        return i + 1, n_nnz
    while True:
        if buf[i] != _QUOTE:
            return _BAD, n_nnz
        end, slot = _term_slot(buf, i + 1, table, starts, lengths, pool, used)
        if slot < 0:
            return slot, n_nnz
        i = _skip_space(buf, end + 1)
        if buf[i] != _COLON:
            return _BAD, n_nnz
        i = _skip_space(buf, i + 1)
        end, weight, exact = _weight(buf, i)
        if not exact:
            return _BAD, n_nnz
        slots[n_nnz] = slot
        weights[n_nnz] = weight
        n_nnz += 1
        i = _skip_space(buf, end)
        if buf[i] == _CLOSE:
            return i + 1, n_nnz
        if buf[i] != _COMMA:
            return _BAD, n_nnz
        i = _skip_space(buf, i + 1)


@njit(cache=True, inline="always")
def _scalar_end(buf, i):
    """End of the string, number, true, false or null at buf[i], or _BAD."""
    c = buf[i]
    if c == _QUOTE:
        end, _ = _string_end(buf, i + 1)
        return end + 1 if end >= 0 else _BAD
    if c == _MINUS or 48 <= c <= 57:
        return _number_end(buf, i)
    for word in (_TRUE, _FALSE, _NULL):
        if _is_word(buf, i, i + len(word), word):
            return i + len(word)
    return _BAD


# --- tokens: every scan stops at the newline ending the block's last line ------------


@njit(cache=True, inline="always")
def _skip_space(buf, i):
    """Past JSON whitespace within a line (the newline ends it)."""
    while buf[i] == 32 or buf[i] == 9 or buf[i] == 13:
        i += 1
    return i


@njit(cache=True, inline="always")
def _is_word(buf, start, end, word):
    if end - start != len(word):
        return False
    for k in range(len(word)):
        if buf[start + k] != word[k]:  # a mismatch stops before any newline
            return False
    return True


@njit(cache=True)
def _string_end(buf, i):
    """(index of the quote closing the string whose contents start at i, whether it holds
    escapes); index _BAD for what json.loads rejects: a control character, a bad escape,
    invalid UTF-8."""
    escaped = False
    while True:
        while _PLAIN[buf[i]]:  # one lookup a byte through the long runs of text
            i += 1
        c = buf[i]
        if c == _QUOTE:
            return i, escaped
        if c == _BACKSLASH:
            escaped = True
            i = _escape_end(buf, i + 1)
        elif c >= 0x80:
            i = _utf8_end(buf, i)
        else:  # a control character
            return _BAD, escaped
        if i < 0:
            return _BAD, escaped


@njit(cache=True)
def _escape_end(buf, i):
    """End of the escape whose letter is at buf[i], or _BAD."""
    c = buf[i]
    if c == 117:  # \uXXXX
        for k in range(i + 1, i + 5):
            h = buf[k]
            if not (48 <= h <= 57 or 65 <= h <= 70 or 97 <= h <= 102):
                return _BAD
        return i + 5
    if c == _QUOTE or c == _BACKSLASH or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 or c == 116:
        return i + 1
    return _BAD


@njit(cache=True)
def _utf8_end(buf, i):
    """End of the UTF-8 sequence at buf[i] (>= 0x80), or _BAD where Python's strict decoder
    fails (overlong forms, surrogates, beyond U+10FFFF)."""
    c = buf[i]
    if c < 0xC2 or c > 0xF4:
        return _BAD
    if c < 0xE0:
        return i + 2 if buf[i + 1] & 0xC0 == 0x80 else _BAD
    low, high = 0x80, 0xBF
    if c == 0xE0:
        low = 0xA0
    elif c == 0xED:
        high = 0x9F
    elif c == 0xF0:
        low = 0x90
    elif c == 0xF4:
        high = 0x8F
    if not low <= buf[i + 1] <= high or buf[i + 2] & 0xC0 != 0x80:
        return _BAD
    if c < 0xF0:
        return i + 3
    return i + 4 if buf[i + 3] & 0xC0 == 0x80 else _BAD


@njit(cache=True)
def _digits_end(buf, i):
    while 48 <= buf[i] <= 57:
        i += 1
    return i


@njit(cache=True)
def _number_end(buf, i):
    """End of the JSON number at buf[i], or _BAD (the grammar of Python's json: no leading
    zeros, no bare dot)."""
    if buf[i] == _MINUS:
        i += 1
    if buf[i] == 48:
        i += 1
    elif 49 <= buf[i] <= 57:
        i = _digits_end(buf, i)
    else:
        return _BAD
    if buf[i] == 46:
        end = _digits_end(buf, i + 1)
        if end == i + 1:
            return _BAD
        i = end
    if buf[i] == 101 or buf[i] == 69:
        i += 1
        if buf[i] == 43 or buf[i] == _MINUS:
            i += 1
        end = _digits_end(buf, i)
        if end == i:
            return _BAD
        i = end
    return i


# --- numbers: float(text) exactly ----------------------------------------------------

_TEN, _HUNDRED, _ZERO = np.uint64(10), np.uint64(100), np.uint64(48)
_EXACT_INTEGERS = np.uint64(1 << 53)
_POW10_EXACT = np.array([10.0 ** k for k in range(23)])  # every power of ten a float64 holds exactly
_POW10_MIN, _POW10_MAX = -342, 308  # beyond them a 19-digit mantissa gives 0 or infinity


def _pow5_table() -> tuple[np.ndarray, np.ndarray]:
    """5^q for q in [_POW10_MIN, _POW10_MAX] as 128-bit mantissas (top bit set), high and
    low halves: fast_float's table, truncated for q >= 0 and one above the quotient for
    q < 0, which makes 128 bits always enough (Mushtak and Lemire, "Fast number parsing
    without fallback", 2023). Computed exactly with Python ints."""
    high, low = [], []
    for q in range(_POW10_MIN, _POW10_MAX + 1):
        power = 5 ** abs(q)
        if q >= 0:
            bits = power.bit_length()
            value = power << (128 - bits) if bits <= 128 else power >> (bits - 128)
        else:
            bits = (power - 1).bit_length()  # 2^bits >= power
            value = (1 << (bits + 127 if q >= -27 else 2 * bits + 128)) // power + 1
            value >>= max(0, value.bit_length() - 128)
        high.append(value >> 64)
        low.append(value & ((1 << 64) - 1))
    return np.array(high, dtype=np.uint64), np.array(low, dtype=np.uint64)


_POW5_HIGH, _POW5_LOW = _pow5_table()
_LOW9 = np.uint64(0x1FF)
_U0, _U1, _U3 = np.uint64(0), np.uint64(1), np.uint64(3)
_U9, _U29, _U32, _U53, _U63 = np.uint64(9), np.uint64(29), np.uint64(32), np.uint64(53), np.uint64(63)
_LOW32 = np.uint64(0xFFFFFFFF)
_HIGH32 = np.uint64(0xFFFFFFFF00000000)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_TOO_LONG = 1 << 40  # an exponent saying "over 19 significant digits"


@njit(cache=True, inline="always")
def _weight(buf, i):
    """(end, float(text), exact) for the JSON number at buf[i]; exact is False for what the
    json module must judge: a sign (negative weights are errors, and -0 is rare), a
    malformed number, one this cannot convert."""
    start = i
    # Digits run into mantissa unchecked: a count over 19 redoes them.
    mantissa, i = _digits(buf, i, _U0)
    if i == start or (buf[start] == 48 and i > start + 1):
        return i, 0.0, False
    digits = i - start
    exponent = 0
    if buf[i] == 46:
        i += 1
        fraction = i
        mantissa, i = _digits(buf, i, mantissa)
        if i == fraction:
            return i, 0.0, False
        digits += i - fraction
        exponent = fraction - i
    if buf[i] == 101 or buf[i] == 69:
        i += 1
        negative = buf[i] == _MINUS
        if negative or buf[i] == 43:
            i += 1
        powers = i
        power = 0
        while 48 <= buf[i] <= 57:
            power = min(power * 10 + (buf[i] - 48), 100000)  # far beyond any float: saturate
            i += 1
        if i == powers:
            return i, 0.0, False
        exponent += -power if negative else power
    if digits > 19:
        mantissa, exponent = _significant(buf, start, i, exponent)
        if exponent == _TOO_LONG:
            return i, 0.0, False
    if mantissa == _U0:
        return i, 0.0, True
    if mantissa <= _EXACT_INTEGERS and -22 <= exponent <= 22:
        # Clinger: both operands exact, so one correctly rounded operation.
        value = np.float64(mantissa)
        return i, (value * _POW10_EXACT[exponent] if exponent >= 0 else value / _POW10_EXACT[-exponent]), True
    value, exact = _lemire(mantissa, exponent)
    return i, value, exact


@njit(cache=True, inline="always")
def _digits(buf, i, mantissa):
    """(mantissa followed by the digits from buf[i], where they end), two digits a step:
    half as long a chain of dependent multiplications (floats written to 17 digits)."""
    while True:
        first = np.uint64(buf[i]) - _ZERO  # wraps around below '0'
        if first >= _TEN:
            return mantissa, i
        second = np.uint64(buf[i + 1]) - _ZERO
        if second >= _TEN:
            return mantissa * _TEN + first, i + 1
        mantissa = mantissa * _HUNDRED + (first * _TEN + second)
        i += 2


@njit(cache=True)
def _significant(buf, start, end, exponent):
    """(mantissa, exponent) of a number written with over 19 digits, leading zeros not
    counted; exponent _TOO_LONG when over 19 of them are significant."""
    mantissa, digits = _U0, 0
    for i in range(start, end):
        c = buf[i]
        if c == 101 or c == 69:
            break
        if c == 46 or (mantissa == _U0 and c == 48):
            continue
        digits += 1
        if digits > 19:
            return _U0, _TOO_LONG
        mantissa = mantissa * _TEN + np.uint64(c - 48)
    return mantissa, exponent


@njit(cache=True)
def _lemire(mantissa, q):
    """(mantissa * 10^q correctly rounded, True) for a non-zero mantissa, or (0, False) for
    a subnormal or infinite result: fast_float's compute_float for float64."""
    if q < _POW10_MIN or q > _POW10_MAX:
        return 0.0, False
    zeros = _leading_zeros(mantissa)
    mantissa = mantissa << np.uint64(zeros)
    high, low = _multiply(mantissa, _POW5_HIGH[q - _POW10_MIN])
    if high & _LOW9 == _LOW9:  # the low half of 5^q might carry into the bits that count
        high2, _ = _multiply(mantissa, _POW5_LOW[q - _POW10_MIN])
        low += high2
        if high2 > low:
            high += _U1
    top = high >> _U63
    shift = top + _U9
    result = high >> shift
    exponent2 = ((217706 * q) >> 16) + 63 + np.int64(top) - zeros + 1023
    if exponent2 <= 0:
        return 0.0, False
    if low <= _U1 and -4 <= q <= 23 and result & _U3 == _U1 and result << shift == high:
        result &= ~_U1  # exactly half-way: to even, down
    result += result & _U1
    result >>= _U1
    if result >= _U1 << _U53:
        result >>= _U1
        exponent2 += 1
    if exponent2 >= 0x7FF:
        return 0.0, False
    return math.ldexp(np.float64(result), exponent2 - 1075), True


@njit(cache=True)
def _multiply(a, b):
    """The 128-bit product of two uint64: (high, low)."""
    a_low, a_high = a & _LOW32, a >> _U32
    b_low, b_high = b & _LOW32, b >> _U32
    low_low = a_low * b_low
    high_low = a_high * b_low
    low_high = a_low * b_high
    middle = (low_low >> _U32) + (high_low & _LOW32) + (low_high & _LOW32)
    high = a_high * b_high + (high_low >> _U32) + (low_high >> _U32) + (middle >> _U32)
    return high, (middle << _U32) | (low_low & _LOW32)


@njit(cache=True)
def _leading_zeros(x):
    """Leading zero bits of a non-zero uint64."""
    zeros = 0
    for shift in (32, 16, 8, 4, 2, 1):
        if x >> np.uint64(64 - shift) == _U0:
            zeros += shift
            x = x << np.uint64(shift)
    return zeros


# --- spellings ---------------------------------------------------------------------


@njit(cache=True, inline="always")
def _term_slot(buf, i, table, starts, lengths, pool, used):
    """(index of its closing quote, slot) for the term string whose contents start at buf[i],
    the slot added if new (to `Spellings`' arrays); slot _BAD for an invalid string, _FULL
    when the table has no room."""
    start = i
    while True:
        c = buf[i]
        if c == _QUOTE:
            break
        if c == _BACKSLASH or c >= 0x80 or c < 0x20:  # rare: the full scanner validates
            i, _ = _string_end(buf, i)
            if i < 0:
                return start, _BAD
            break
        i += 1
    length = i - start
    key, key2, h = _spelling_hash(buf, start, length)
    mask = len(table) // 4 - 1
    j = np.int64(h & np.uint64(mask))
    wanted = np.uint64(length + 1) << _U32
    while table[4 * j + 2] != _U0:
        entry = table[4 * j + 2]
        if table[4 * j] == key and table[4 * j + 1] == key2 and entry & _HIGH32 == wanted:
            slot = np.int64(entry & _LOW32)
            if length <= 16 or _same_bytes(pool, starts[slot], buf, start, length):
                return i, slot
        j = (j + 1) & mask
    slot, end = used[0], used[1]
    if slot == len(starts) or end + length > len(pool):
        return i, _FULL
    for k in range(length):
        pool[end + k] = buf[start + k]
    starts[slot] = end
    lengths[slot] = length
    used[0] = slot + 1
    used[1] = end + length
    table[4 * j] = key
    table[4 * j + 1] = key2
    table[4 * j + 2] = wanted | np.uint64(slot)
    return i, slot


@njit(cache=True, inline="always")
def _spelling_hash(data, start, length):
    """(bytes 0-7 and 8-15 as integers, hash) of the spelling data[start:start + length]."""
    key, key2 = _packed(data, start, length), _packed(data, start + 8, length - 8)
    h = (key * _GOLDEN) ^ key2 ^ np.uint64(length)
    for k in range(start + 16, start + length):
        h = (h ^ np.uint64(data[k])) * _FNV_PRIME
    h = (h ^ (h >> _U29)) * _GOLDEN  # a product's low bits see only low bits: shift the high ones down
    return key, key2, h ^ (h >> _U32)


@njit(cache=True, inline="always")
def _packed(data, start, length):
    """Up to 8 bytes from data[start] (`length` of them, if fewer) as an integer, little end first."""
    if length <= 0:
        return _U0
    key = _U0
    last = start + length - 1
    for k in range(8):  # without branches: bytes past the end repeat the last one, masked off below
        key |= np.uint64(data[min(start + k, last)]) << np.uint64(8 * k)
    return key & (_ALL >> np.uint64(64 - 8 * min(length, 8)))


@njit(cache=True, inline="always")
def _same_bytes(pool, at, buf, start, length):
    for k in range(16, length):  # the first 16 matched in the table entry
        if pool[at + k] != buf[start + k]:
            return False
    return True


@njit(cache=True)
def _reindex(spellings):
    table, starts, lengths, pool, used = spellings
    mask = len(table) // 4 - 1
    for slot in range(used[0]):
        length = lengths[slot]
        key, key2, h = _spelling_hash(pool, starts[slot], length)
        j = np.int64(h & np.uint64(mask))
        while table[4 * j + 2] != _U0:
            j = (j + 1) & mask
        table[4 * j] = key
        table[4 * j + 1] = key2
        table[4 * j + 2] = (np.uint64(length + 1) << _U32) | np.uint64(slot)


# --- rows out ----------------------------------------------------------------------


@njit(cache=True, nogil=True)
def joined_ids(buf, rows, n_rows):
    """The raw ids of rows 0..n_rows-1 each followed by a newline (none can hold one; SLOW
    rows give empty ones): one decode and split make them strings."""
    size = n_rows
    for r in range(n_rows):
        size += rows.id_end[r] - rows.id_start[r]
    out = np.empty(size, np.uint8)
    k = 0
    for r in range(n_rows):
        for i in range(rows.id_start[r], rows.id_end[r]):
            out[k] = buf[i]
            k += 1
        out[k] = _NEWLINE
        k += 1
    return out


@njit(cache=True, nogil=True)
def unresolved(term_ids, slots, start, end):
    """The slots without a term id among entries start..end-1, in order of first use, and
    the entry of each first use; they are marked PENDING (which the caller must replace).
    A slot of a term known to be unknown comes too, and ends the list."""
    found = np.empty(min(end - start, len(term_ids)), np.int64)
    entries = np.empty(len(found), np.int64)
    n = 0
    for k in range(start, end):
        slot = slots[k]
        if term_ids[slot] < 0 and term_ids[slot] != PENDING:
            found[n] = slot
            entries[n] = k
            n += 1
            if term_ids[slot] == UNKNOWN:
                break
            term_ids[slot] = PENDING
    return found[:n], entries[:n]


@njit(cache=True, nogil=True)
def emit_rows(term_ids, slots, weights, nnz_end, first, last, sizes, out_terms, out_weights):
    """Rows first..last-1 as CSR pieces, as VectorBuilder.add_arrays makes them: term ids
    ascending, zero weights dropped (judged in float64), weights as float32.

    Stops before a row holding one term twice (a repeated key, maybe spelled two ways,
    which the json module merges). Returns (rows, entries) written.
    """
    start = nnz_end[first - 1] if first > 0 else 0
    longest = 0
    for r in range(first, last):
        longest = max(longest, nnz_end[r] - (nnz_end[r - 1] if r > 0 else 0))
    keys = np.empty(longest, np.int64)
    written = 0
    for r in range(first, last):
        end = nnz_end[r]
        m = end - start
        ascending = True
        for j in range(m):  # term id above, entry below: one sort orders both
            keys[j] = (np.int64(term_ids[slots[start + j]]) << 32) | j
            ascending = ascending and (j == 0 or keys[j] > keys[j - 1])
        row_keys = keys[:m]
        if not ascending:  # writers that sort by term id (sparseir's own) skip the sort
            row_keys.sort()
        row_start = written
        for j in range(m):
            term = row_keys[j] >> 32
            if j > 0 and term == row_keys[j - 1] >> 32:
                return r - first, row_start
            weight = weights[start + (row_keys[j] & 0xFFFFFFFF)]
            if weight > 0:
                out_terms[written] = term
                out_weights[written] = np.float32(weight)
                written += 1
        sizes[r - first] = written - row_start
        start = end
    return last - first, written
