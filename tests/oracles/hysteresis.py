"""The alert hysteresis of kernels/hysteresis.py, written again from its docstring as plain Python: one machine
and one task at a time, with dicts, no arrays."""

from __future__ import annotations

__all__ = ["hysteresis_oracle"]


def hysteresis_oracle(rows, tasks, raise_after, clear_after, warmup):
    """The (row, task) pairs that raise an alert.

    ``rows`` are ``(machine, ups, downs, skip)``: per task, whether the score is past the raise threshold (up)
    or back under the clear threshold (down); a skipped row (late) counts for nothing. A machine's first
    ``warmup`` rows never alert; ``raise_after`` consecutive ups raise, ``clear_after`` consecutive downs clear.
    """
    raised, state, seen = [], {}, {}
    for i, (machine, ups, downs, skip) in enumerate(rows):
        if skip:
            continue
        seen[machine] = seen.get(machine, 0) + 1
        if seen[machine] <= warmup:
            continue
        for t in range(tasks):
            s = state.setdefault((machine, t), {"active": False, "run": 0})
            if s["active"]:
                s["run"] = s["run"] + 1 if downs[t] else 0
                if s["run"] == clear_after:
                    s["active"], s["run"] = False, 0
            else:
                s["run"] = s["run"] + 1 if ups[t] else 0
                if s["run"] == raise_after:
                    s["active"], s["run"] = True, 0
                    raised.append((i, t))
    return raised
