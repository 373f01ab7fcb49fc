"""Compiled loops (numba) behind :mod:`specflow.data.preprocess`: SNIP and despiking one curve
at a time in cache, the same numbers as the numpy expressions they replace (tests).

numba loads with :mod:`specflow.data.preprocess` (about 0.3 s) and compiles each kernel on
its first call (seconds), cached on disk beside this file or in the user's cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np


def _compiled(fn: Callable) -> Callable:
    """``fn`` compiled without the GIL, cached on disk where numba finds a writable place
    (beside this file or in the user's cache); compiled afresh in each process where not."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(fn)


@_compiled
def snip_rows(padded: np.ndarray, w: int, out: np.ndarray) -> None:  # pragma: no cover - jit
    """SNIP of each row of ``padded`` (n, L + 2w), windows 1..w, into ``out`` (n, L): at
    window i every point becomes min(itself, mean of the points i to each side), all points
    from the previous window's values (NaN propagates as in ``np.minimum``). Two copies of
    the row take turns as source and target; the two points a window leaves alone are
    carried over, so each copy is whole when it is read."""
    n, size = padded.shape
    one = np.empty(size)
    two = np.empty(size)
    for r in range(n):
        one[:] = padded[r]
        two[:] = padded[r]
        src, dst = one, two
        for i in range(1, w + 1):
            m = size - 2 * i
            lo, hi, mid, target = src[:m], src[2 * i:], src[i:size - i], dst[i:size - i]
            for k in range(numba.uint64(m)):
                f = (lo[k] + hi[k]) * 0.5
                v = mid[k]
                target[k] = f if f < v or f != f else v
            dst[i - 1] = src[i - 1]
            dst[size - i] = src[size - i]
            src, dst = dst, src
        out[r, :] = src[w:size - w]


@_compiled
def _float_of(key: np.int32) -> np.float32:  # pragma: no cover - jit
    """Inverse of the order-preserving map float32 bits → int32 used by :func:`_kth`."""
    out = np.empty(1, dtype=np.int32)
    out[0] = key ^ ((key >> 31) & 0x7FFFFFFF)
    return out.view(np.float32)[0]


@_compiled
def _kth(values: np.ndarray, k: int, keys: np.ndarray) -> np.float32:  # pragma: no cover
    """The k-th smallest (from 0) of a float32 vector without NaN, exactly: its bits as
    integers ordered like the floats, then bisection on the smallest key with more than k
    keys at or below it: branch-free counting passes that vectorise, where a partition's
    comparisons branch unpredictably on noisy data."""
    n = values.size
    bits = values.view(np.int32)
    for i in range(n):
        keys[i] = bits[i] ^ ((bits[i] >> 31) & 0x7FFFFFFF)
    lo = np.int64(keys[:n].min())
    hi = np.int64(keys[:n].max())
    while lo < hi:
        mid = (lo + hi) >> 1
        at = np.int32(mid)
        count = 0
        for i in range(n):
            count += keys[i] <= at
        if count > k:
            hi = mid
        else:
            lo = mid + 1
    return _float_of(np.int32(lo))


@_compiled
def _median(values: np.ndarray, keys: np.ndarray) -> np.float32:  # pragma: no cover - jit
    """``np.median`` of a float32 vector without NaN, in float32."""
    n = values.size
    upper = _kth(values, n // 2, keys)
    if n % 2:
        return upper
    return np.float32((_kth(values, n // 2 - 1, keys) + upper) / np.float32(2))


@_compiled
def despike_rows(x: np.ndarray, threshold: float) -> None:  # pragma: no cover - jit
    """In place on float32 rows (n, L ≥ 3): a bin more than ``threshold`` robust σ (of the
    row's point-to-point differences) above both neighbours becomes their mean. A row with
    NaN is left as it is (its σ is NaN)."""
    n, length = x.shape
    diff = np.empty(length - 1, dtype=np.float32)
    keys = np.empty(length - 1, dtype=np.int32)
    scale = np.float32(1.4826)
    root2 = np.float32(math.sqrt(2))
    limit = np.float32(threshold)
    tiny = np.float32(1e-12)
    spikes = np.empty(length, dtype=np.int64)
    values = np.empty(length, dtype=np.float32)
    for r in range(n):
        row = x[r]
        nan = False
        for j in range(length - 1):
            diff[j] = row[j + 1] - row[j]
            nan |= diff[j] != diff[j]
        if nan:
            continue
        centre = _median(diff, keys)
        for j in range(length - 1):
            diff[j] = abs(diff[j] - centre)
        sigma = scale * _median(diff, keys) / root2
        cut = limit * max(sigma, tiny)
        found = 0
        for j in range(1, length - 1):
            if row[j] - max(row[j - 1], row[j + 1]) > cut:
                spikes[found] = j
                values[found] = (row[j - 1] + row[j + 1]) / np.float32(2)
                found += 1
        for s in range(found):
            row[spikes[s]] = values[s]
