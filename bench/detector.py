"""The unsupervised detector in the benchmark suite: its five regressors' records summed per runtime and batch."""

from __future__ import annotations

__all__ = ["detector_totals"]


def detector_totals(records: list[dict], names: list[str]) -> list[dict]:
    """The unsupervised detector per runtime and batch on one thread: the sum of its regressors' median ns per row
    and sizes (None where a regressor has no timing)."""
    if not names:
        return []
    cells: dict[tuple[str, int], list[dict]] = {}
    for record in records:
        if record["model"] in names and record["threads"] == 1:
            cells.setdefault((record["runtime"], record["batch"]), []).append(record)
    out = []
    for (runtime, batch), parts in sorted(cells.items()):
        times = [p["median_ns_per_row"] for p in parts]
        complete = len(parts) == len(names) and all(t is not None for t in times)
        out.append(
            {
                "runtime": runtime,
                "batch": batch,
                "regressors": len(parts),
                "median_ns_per_row": round(sum(times), 1) if complete else None,
                "size_bytes": sum(p["size_bytes"] for p in parts) if complete else None,
                "max_abs_diff": max(p["max_abs_diff"] for p in parts),
            }
        )
    return out
