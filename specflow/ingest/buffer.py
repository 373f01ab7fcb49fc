"""Growable column buffers for spectra arriving one event or one page at a time."""

from __future__ import annotations

import numpy as np


class SpectraBuffer:
    """Preallocated rows of float32 spectra plus per-curve pressure, time and seq_num.

    Capacity doubles when full (amortised O(1) per curve); nothing is concatenated per
    event. Rows below :attr:`size` are final and never rewritten.
    """

    def __init__(self, n_points: int, capacity: int = 256) -> None:
        self.n_points = n_points
        self.size = 0
        self.intensity = np.empty((capacity, n_points), dtype=np.float32)
        self.pressure = np.empty(capacity, dtype=float)
        self.time = np.empty(capacity, dtype=float)
        self.seq_num = np.empty(capacity, dtype=np.int64)

    @property
    def capacity(self) -> int:
        return self.intensity.shape[0]

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows, doubling capacity as needed."""
        need = self.size + extra
        if need <= self.capacity:
            return
        capacity = max(need, 2 * self.capacity)
        for name in ("intensity", "pressure", "time", "seq_num"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)

    def tail(self, k: int) -> np.ndarray:
        """Writable view of the next ``k`` intensity rows (call :meth:`reserve` first)."""
        return self.intensity[self.size : self.size + k]

    def commit(
        self, k: int, pressure: np.ndarray, time: np.ndarray, seq_num: np.ndarray,
        keep: np.ndarray | None = None,
    ) -> int:
        """Accept the ``k`` rows written into :meth:`tail`, keeping only rows where ``keep``.

        Returns the number of rows kept.
        """
        s = self.size
        if keep is not None and not keep.all():
            idx = np.flatnonzero(keep)
            self.intensity[s : s + idx.size] = self.intensity[s : s + k][idx]
            pressure, time, seq_num = pressure[idx], time[idx], seq_num[idx]
            k = idx.size
        self.pressure[s : s + k] = pressure
        self.time[s : s + k] = time
        self.seq_num[s : s + k] = seq_num
        self.size = s + k
        return k
