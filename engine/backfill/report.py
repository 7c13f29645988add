"""The backfill stage of ``iotengine run``: the fleet history backfilled in one process and, where Spark is
installed, on ``local[2]``; both checked bit for bit against ``iotengine features`` of the same file, into
``BACKFILL.md``."""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.backfill.job import BackfillRequest, backfill, read_backfill
from engine.report.markdown import markdown_table
from kernels.names import FEATURE_NAMES

__all__ = ["backfill_report", "spark_available"]


def spark_available() -> str | None:
    """None when pyspark and Java are both here, else why not."""
    if importlib.util.find_spec("pyspark") is None:
        return 'pyspark is not installed (pip install -e ".[spark]")'
    if shutil.which("java") is None:
        return "no Java on PATH (Spark needs Java 17 or newer)"
    return None


def backfill_report(folder: Path, data_path: Path, features_path: Path) -> dict:
    """Backfill ``data_path`` with each engine into ``folder`` and compare with ``features_path`` (the output of
    ``write_features`` for the same file); returns the rows of the table and the Markdown's path."""
    expected = _features_in_sample_order(features_path)
    runs = [("local", {"engine": "local"})]
    missing = spark_available()
    if missing is None:
        runs.append(("spark local[2]", {"engine": "spark", "master": "local[2]", "partitions": 4}))
    rows = []
    for name, options in runs:
        started = time.perf_counter()
        slug = options["engine"]
        result = backfill(BackfillRequest(input=data_path, output=folder / slug, states=folder / f"{slug}_states",
                                          **options))  # fmt: skip
        seconds = time.perf_counter() - started
        out = read_backfill(folder / slug)
        got = np.column_stack([out.column(n).to_numpy() for n in FEATURE_NAMES])
        same = got.shape == expected.shape and np.array_equal(got.view(np.uint64), expected.view(np.uint64))
        rows.append({"engine": name, "rows": result.rows, "machines": result.machines, "partitions": result.partitions,
                     "seconds": seconds, "identical": bool(same)})  # fmt: skip
    _stop_spark()
    lines = [
        "# Backfill",
        "",
        f"`iotengine backfill` of {data_path.name}: features and final machine states; every engine compared bit for "
        "bit with `iotengine features` of the same file.",
        "",
        *markdown_table(
            ["engine", "rows", "machines", "partitions", "seconds", "rows/s", "features identical"],
            [
                [
                    r["engine"],
                    f"{r['rows']:,}",
                    r["machines"],
                    r["partitions"],
                    f"{r['seconds']:.1f}",
                    f"{r['rows'] / r['seconds']:,.0f}",
                    "yes" if r["identical"] else "**no**",
                ]
                for r in rows
            ],
        ),
        "",
        "Times include starting Spark (a JVM and its Python workers) and reading and writing Parquet; at these sizes "
        "they are overheads, not throughput (README, Backfill, for a 10M-row benchmark)."
        + ("" if missing is None else f" Spark was not run: {missing}."),
    ]
    markdown = folder / "BACKFILL.md"
    folder.mkdir(parents=True, exist_ok=True)
    markdown.write_text("\n".join(lines) + "\n")
    return {"markdown": markdown, "rows": rows, "spark_missing": missing}


def _features_in_sample_order(path: Path) -> np.ndarray:
    table = pq.read_table(path)
    ids = table.column("machine_id").to_numpy()
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    order = np.lexsort((np.arange(table.num_rows), stamps, ids))
    return np.column_stack([table.column(n).to_numpy() for n in FEATURE_NAMES])[order]


def _stop_spark() -> None:
    if importlib.util.find_spec("pyspark") is None:
        return
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
