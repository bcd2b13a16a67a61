"""The bounded ring both engines keep their history in."""

from __future__ import annotations

import numpy as np
import pytest

from agent.qc.ring import Ring


def test_keeps_the_newest_rows_in_order_across_compactions() -> None:
    ring = Ring(5, ("t", "v"))
    for i in range(23):  # several wrap-arounds of the doubled buffer
        ring.append(t=float(i), v=float(i * 10))
    assert list(ring.col("t")) == [18.0, 19.0, 20.0, 21.0, 22.0]
    assert list(ring.col("v")) == [180.0, 190.0, 200.0, 210.0, 220.0]
    assert ring.last("v") == 220.0 and len(ring) == 5


def test_drop_before_forgets_old_rows() -> None:
    ring = Ring(10, ("t",))
    for i in range(8):
        ring.append(t=float(i))
    ring.drop_before(5.0)
    assert list(ring.col("t")) == [5.0, 6.0, 7.0]
    ring.drop_before(100.0)
    assert len(ring) == 0 and ring.last("t") is None


def test_memory_is_fixed() -> None:
    ring = Ring(100, ("t",))
    before = ring._data["t"].nbytes
    for i in range(10_000):
        ring.append(t=float(i))
    assert ring._data["t"].nbytes == before
    assert np.array_equal(ring.col("t"), np.arange(9900, 10_000, dtype=float))


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Ring(0, ("t",))
