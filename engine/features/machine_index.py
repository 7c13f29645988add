"""Machine ids to dense slots: the rows of per-machine state arrays, in order of first appearance."""

from __future__ import annotations

import numpy as np

__all__ = ["MachineIndex"]


class MachineIndex:
    """Gives every machine id the next free slot the first time it is seen.

    Examples
    --------
    >>> index = MachineIndex()
    >>> index.slots(np.array([42, 7, 42])).tolist(), index.ids
    ([0, 1, 0], [42, 7])
    """

    def __init__(self):
        self.ids: list[int] = []
        self._slot_of: dict[int, int] = {}
        self._sorted_ids = np.empty(0, dtype=np.int64)  # self.ids sorted, and their slots: batch lookups
        self._sorted_slots = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, machine_id: int) -> int | None:
        return self._slot_of.get(machine_id)

    def slots(self, ids: np.ndarray) -> np.ndarray:
        """Slots of ``ids`` (int64), adding unseen machines in order of first appearance."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if ids.shape[0] <= 64:  # a tick of a few machines: dict lookups beat np.unique
            try:
                return np.array([self._slot_of[m] for m in ids.tolist()], dtype=np.int64)
            except KeyError:
                pass
        elif self._sorted_ids.shape[0]:  # a batch of machines seen before: a binary search each, no sort
            at = np.minimum(np.searchsorted(self._sorted_ids, ids), self._sorted_ids.shape[0] - 1)
            if np.array_equal(self._sorted_ids[at], ids):
                return self._sorted_slots[at]
        unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        unique_slots = np.empty(unique.shape[0], dtype=np.int64)
        for k in np.argsort(first, kind="stable"):
            machine = int(unique[k])
            slot = self._slot_of.get(machine)
            if slot is None:
                slot = len(self.ids)
                self.ids.append(machine)
                self._slot_of[machine] = slot
            unique_slots[k] = slot
        known = np.asarray(self.ids, dtype=np.int64)
        self._sorted_slots = np.argsort(known, kind="stable").astype(np.int64)
        self._sorted_ids = known[self._sorted_slots]
        return unique_slots[inverse.reshape(-1)]
