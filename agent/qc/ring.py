"""A bounded, append-only window of samples in contiguous numpy columns.

Used by the QC and derived engines to keep per-channel history at 1 Hz without per-sample Python
objects: appends are O(1) amortised, views are contiguous slices, memory is fixed by ``capacity``.
"""

from __future__ import annotations

import math

import numpy as np


class Ring:
    """Rows of float64 columns (the first one is time, ascending), at most ``capacity`` kept."""

    def __init__(self, capacity: int, columns: tuple[str, ...]) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be positive")
        self.capacity = capacity
        self.columns = columns
        self._data = {name: np.empty(2 * capacity) for name in columns}
        self._arrays = tuple(self._data.values())  # in column order
        self._start = 0
        self._end = 0
        self.oldest = math.inf
        """The first column's oldest kept value, a Python float (+inf when empty)."""
        self.newest = -math.inf
        """The first column's newest value (-inf when empty): time checks need no numpy."""

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, **row: float) -> None:
        """Add one row (every column by name)."""
        self.push(*(row[name] for name in self.columns))

    def push(self, *row: float) -> None:
        """Add one row, the values in column order (what :meth:`append` does, without names)."""
        if self._end == 2 * self.capacity:
            self._compact()
        end = self._end
        for arr, x in zip(self._arrays, row, strict=True):
            arr[end] = x
        self._end = end + 1
        if end == self._start:
            self.oldest = float(row[0])
        elif self._end - self._start > self.capacity:
            self._start += 1
            self.oldest = float(self._arrays[0][self._start])
        self.newest = float(row[0])

    def col(self, name: str) -> np.ndarray:
        """The kept rows of one column, oldest first (a view: do not keep it across appends)."""
        return self._data[name][self._start : self._end]

    def last(self, name: str) -> float | None:
        """The newest value of a column, None when empty."""
        return float(self._data[name][self._end - 1]) if self._end > self._start else None

    def drop_before(self, t: float) -> None:
        """Forget rows whose time (first column) is before ``t``."""
        if self.oldest >= t:
            return  # the usual case in a stream: nothing old enough yet (no numpy call)
        times = self.col(self.columns[0])
        self._start += int(np.searchsorted(times, t, side="left"))
        if self._start == self._end:
            self.oldest, self.newest = math.inf, -math.inf
        else:
            self.oldest = float(self._arrays[0][self._start])

    def _compact(self) -> None:
        n = len(self)
        for arr in self._data.values():
            arr[:n] = arr[self._start : self._end]
        self._start, self._end = 0, n
