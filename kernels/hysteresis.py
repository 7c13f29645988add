"""Alert hysteresis over a stream of scores: one alert per episode of trouble, not one per sample.

A machine's alert for a task is either idle or active. Idle, it counts consecutive samples past the raise
level; at ``raise_after`` of them it becomes active and that sample raises the alert. Active, it counts
consecutive samples back under the clear level; at ``clear_after`` of them it goes idle again. Two levels
and two counts keep a score that hovers around one level, or a single spike, from raising a burst of alerts.
A machine's first ``warmup`` samples raise nothing: its per-machine features (z-scores, expanding
statistics) are still settling.
"""

from __future__ import annotations

import numpy as np

from kernels.config import jit

__all__ = ["empty_state", "hysteresis_step"]


@jit
def hysteresis_step(slots, raise_level, clear_level, skip, active, run, seen, warmup, raise_after, clear_after, raised):
    """Advance every row's machine through the hysteresis of every task, in row order.

    Parameters
    ----------
    slots : int64 (n,)
        Each row's machine, as a row of ``active``, ``run`` and ``seen``.
    raise_level, clear_level : bool (n, tasks)
        The row's score for the task is past its raise level; is back under its clear level.
    skip : bool (n,)
        Rows that were not scored (late samples): they change nothing.
    active : bool (machines, tasks), run : int64 (machines, tasks), seen : int64 (machines,)
        The alert is active; the length of the current run of samples towards a change; samples seen.
        Updated in place.
    warmup, raise_after, clear_after : int
    raised : bool (n, tasks)
        Written: the row raised the task's alert.
    """
    tasks = raise_level.shape[1]
    for i in range(slots.shape[0]):
        for t in range(tasks):
            raised[i, t] = False
        if skip[i]:
            continue
        m = slots[i]
        seen[m] += 1
        if seen[m] <= warmup:
            continue
        for t in range(tasks):
            if active[m, t]:
                run[m, t] = run[m, t] + 1 if clear_level[i, t] else 0
                if run[m, t] >= clear_after:
                    active[m, t] = False
                    run[m, t] = 0
            else:
                run[m, t] = run[m, t] + 1 if raise_level[i, t] else 0
                if run[m, t] >= raise_after:
                    active[m, t] = True
                    run[m, t] = 0
                    raised[i, t] = True


def empty_state(machines: int, tasks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``active``, ``run`` and ``seen`` for ``machines`` machines and ``tasks`` tasks, all idle."""
    return (
        np.zeros((machines, tasks), dtype=np.bool_),
        np.zeros((machines, tasks), dtype=np.int64),
        np.zeros(machines, dtype=np.int64),
    )
