"""Machine ids to dense slots, and the O(n) check that each machine's samples are already in time order.

The batch path needs both before it runs the feature kernel. Sorting (``np.unique``, ``np.lexsort``) costs
O(n log n) and more than the kernel itself; telemetry as it arrives from a fleet is almost always in time order
per machine, with ids from a small range, and then one pass over the rows does both jobs.
"""

from __future__ import annotations

import numpy as np

from kernels.config import jit

__all__ = ["dense_slots", "in_time_order"]


@jit
def dense_slots(ids, lowest, span, slots):
    """Write into ``slots`` the rank of ``ids[i]`` among the distinct ids; return how many there are.

    Every id must lie in ``lowest .. lowest + span - 1``: the lookup table is ``span`` long, so this is for ids
    from a small range. Ranks follow the id order, as ``np.unique``'s.
    """
    rank = np.zeros(span, dtype=np.int64)
    for i in range(ids.shape[0]):
        rank[ids[i] - lowest] = 1
    machines = 0
    for k in range(span):
        if rank[k]:
            rank[k] = machines
            machines += 1
    for i in range(ids.shape[0]):
        slots[i] = rank[ids[i] - lowest]
    return machines


@jit
def in_time_order(slots, timestamps, machines):
    """True when the timestamps of every machine never decrease down the rows."""
    last = np.empty(machines, dtype=np.int64)
    seen = np.zeros(machines, dtype=np.bool_)
    for i in range(slots.shape[0]):
        slot = slots[i]
        if seen[slot] and timestamps[i] < last[slot]:
            return False
        seen[slot] = True
        last[slot] = timestamps[i]
    return True
