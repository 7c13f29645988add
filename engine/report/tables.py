"""CSV tables of the reports: one dict per row, the columns in order of first appearance."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["write_csv"]


def write_csv(path: str | Path, rows: list[dict], *, digits: int | None = 6) -> Path:
    """Write ``rows`` to ``path`` as CSV (a header of every key any row has; floats to ``digits`` significant
    digits, or as Python writes them with ``digits=None``)."""
    path = Path(path)
    fields: list[str] = []
    for row in rows:
        fields += [key for key in row if key not in fields]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.{digits}g}" if isinstance(v, float) and digits else v) for k, v in row.items()})
    return path
