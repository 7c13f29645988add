"""Rows/s of the backfill: Spark ``local[1]`` and ``local[2]`` against the single-process paths, on the same rows,
with Spark's overheads measured one by one.

The input is kaggle-mode telemetry of 1,000 machines written as 8 Parquet files (in no machine order: each file
holds a slice of time, as a plant's daily exports do). Each run writes the 67 features to Parquet and the final
states; every output is checked bit for bit against the single-process ``compute_features`` of the same rows.

Rows of the table, each run with its output folder removed before the next:

- ``compute_features + Parquet``: ``iotengine features`` of the whole table in one process (all cores);
- ``backfill --engine local``: the backfill core in one process (one thread);
- ``backfill --engine spark --master local[N]``: the Spark job, timed from a new session (JVM start included),
  and the job alone; then its stages: reading the files into Spark (to a count), reading + shuffling + sorting
  (to a count of the sorted rows in Python), the full job without writing Parquet features (scores of nothing:
  the kernel only), so the rest is the Parquet write.

    python scripts/bench_backfill.py --rows 10_000_000 --out /tmp/backfill_bench
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from engine.backfill.job import BackfillRequest, backfill
from engine.backfill.sources import find_inputs, transport_schema
from engine.backfill.spark_job import spark_session
from engine.backfill.spark_tasks import TaskConfig, read_files
from engine.data.loading import save_telemetry
from engine.data.synthetic import generate
from engine.features.batch import compute_features, write_features
from engine.report.markdown import markdown_table
from kernels.names import FEATURE_NAMES

FILES = 8
PARTITIONS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/backfill_bench"))
    args = parser.parse_args()
    inputs = args.out / "input"
    shutil.rmtree(args.out, ignore_errors=True)
    table = generate(args.rows, machines=1_000, seed=0)
    for k in tqdm(range(FILES), desc="writing input"):
        part = table.slice(k * args.rows // FILES, (k + 1) * args.rows // FILES - k * args.rows // FILES)
        save_telemetry(part, inputs / f"day={k:02d}" / "part-0.parquet")
    del table
    files = find_inputs(inputs)
    rows = []

    started = time.perf_counter()
    write_features(_concat(files), args.out / "features.parquet")
    rows.append(["compute_features + Parquet (all cores)", time.perf_counter() - started, None, None])
    (args.out / "features.parquet").unlink()
    expected = compute_features(_concat(files))  # rows in input order: files one after another

    started = time.perf_counter()
    backfill(BackfillRequest(input=inputs, output=args.out / "local", states=args.out / "local_states"))
    seconds = time.perf_counter() - started
    rows.append(["backfill --engine local (one thread)", seconds, None, _same(args.out / "local", expected, files)])
    shutil.rmtree(args.out / "local")

    stages = {}
    for cores in (1, 2):
        master = f"local[{cores}]"
        started = time.perf_counter()
        session = spark_session(master, partitions=PARTITIONS, arrow_batch_rows=10_000,
                                conf={"spark.driver.memory": "4g"})  # fmt: skip
        start_s = time.perf_counter() - started
        job_started = time.perf_counter()
        request = BackfillRequest(input=inputs, output=args.out / "spark", states=args.out / "spark_states",
                                  engine="spark", master=master, partitions=PARTITIONS)  # fmt: skip
        backfill(request, session=session)
        job_s = time.perf_counter() - job_started
        rows.append([f"backfill --engine spark --master {master}", start_s + job_s, job_s,
                     _same(args.out / "spark", expected, files)])  # fmt: skip
        shutil.rmtree(args.out / "spark")
        stages[master] = {"session start": start_s, **_stage_times(session, files), "whole job": job_s}
        session.stop()

    n = args.rows
    verdicts = {None: "reference", True: "yes", False: "NO"}
    table_rows = [
        [name, f"{s:.1f}", f"{n / s:,.0f}", "" if job is None else f"{n / job:,.0f}", verdicts[same]]
        for name, s, job, same in rows
    ]
    lines = [f"# Backfill benchmark: {n:,} rows, {FILES} Parquet files, {PARTITIONS} Spark partitions", ""]
    lines += markdown_table(["path", "seconds", "rows/s", "rows/s without JVM start", "features identical"],
                            table_rows)  # fmt: skip
    lines += ["", "Spark's stages, each a job of its own (seconds):", ""]
    names = list(next(iter(stages.values())))
    lines += markdown_table(["stage", *stages], [[k, *(f"{v[k]:.1f}" for v in stages.values())] for k in names])
    text = "\n".join(lines) + "\n"
    print(text)
    (args.out / "BACKFILL_BENCH.md").write_text(text)
    (args.out / "backfill_bench.json").write_text(json.dumps({"rows": rows, "stages": stages}, indent=1))
    _chart(rows, n, args.out / "backfill_bench.png")


def _stage_times(session, files) -> dict:
    from pyspark.sql.pandas.types import from_arrow_schema

    config = TaskConfig(staging="", files=tuple(files), labels=(), utc_offset_minutes=0)
    frame = session.createDataFrame(list(enumerate(files)), "file_index int, path string").repartition(len(files))
    read = frame.mapInArrow(functools.partial(read_files, config=config), from_arrow_schema(transport_schema(())))
    times = {}
    started = time.perf_counter()
    read.count()
    times["read files into Spark"] = time.perf_counter() - started
    started = time.perf_counter()
    shuffled = read.repartition(PARTITIONS, "machine_id").sortWithinPartitions("machine_id", "timestamp")
    shuffled.mapInArrow(_count_rows, "rows long").collect()
    times["read + shuffle + sort, to Python"] = time.perf_counter() - started
    return times


def _count_rows(batches):
    yield pa.RecordBatch.from_pydict({"rows": [sum(b.num_rows for b in batches)]})


def _concat(files) -> pa.Table:
    from engine.data.loading import load_telemetry

    return pa.concat_tables([load_telemetry(f) for f in files])


def _same(folder: Path, expected: np.ndarray, files: list[str]) -> bool:
    """Every output row's features against the input row it names (source_file, source_row), part by part and a
    million rows at a time (the whole output as one table would not fit beside the reference in memory)."""
    offsets = dict(zip(files, np.cumsum([0, *(pq.ParquetFile(f).metadata.num_rows for f in files)]), strict=False))
    seen = np.zeros(expected.shape[0], dtype=bool)
    for part in sorted(folder.glob("part-*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=1_000_000):
            source = batch.column("source_file")
            names = np.asarray(source.dictionary.to_pylist(), dtype=object)[source.indices.to_numpy()]
            rows = np.array([offsets[n] for n in names.tolist()]) + batch.column("source_row").to_numpy()
            got = np.column_stack([batch.column(name).to_numpy() for name in FEATURE_NAMES])
            if seen[rows].any() or not np.array_equal(got.view(np.uint64), expected[rows].view(np.uint64)):
                return False
            seen[rows] = True
    return bool(seen.all())


def _chart(rows, n, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.barh([r[0] for r in rows], [n / r[1] for r in rows], color="tab:blue")
    ax.set_xlabel("rows/s (higher is better)")
    ax.set_title(f"Backfill of {n:,} rows: features to Parquet")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
