"""``iotengine backfill``: the features (or scores) of a whole telemetry history and its machines' final states, in
one process (``engine="local"``) or as an Apache Spark job (``engine="spark"``), the same bits either way.

Both engines run :class:`engine.backfill.core.BackfillCore` over partitions of whole machines in the total order
of :mod:`engine.backfill.sources`; the single-process engine has one partition. The output folder holds one
Parquet file per partition with ``machine_id``, ``timestamp``, ``source_file``, ``source_row`` (where the sample
came from), then the 67 features with ``machine_status`` and the label columns every input file has, or the
scores of ``iotengine score``; and ``_backfill.json``, the job's manifest. ``states`` receives one FeatureStream
snapshot per partition (:func:`engine.backfill.states.read_states` reads them as one). Everything is checked before
any work starts (inputs, bundle, initial states), and published only when complete (:mod:`engine.backfill.outputs`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from engine.backfill.core import BackfillCore
from engine.backfill.outputs import BACKFILL_FORMAT, PartWriter, Staging
from engine.backfill.sources import ORDER_COLUMNS, check_inputs, find_inputs, read_input
from engine.backfill.spark_tasks import TaskConfig, probe_inputs
from engine.backfill.states import read_states, split_states
from engine.errors import InvalidInputError, TelemetryError
from engine.features.snapshot import read_snapshot

__all__ = ["ENGINES", "BackfillRequest", "BackfillResult", "backfill", "read_backfill"]

ENGINES = ("local", "spark")


@dataclass
class BackfillRequest:
    """One backfill; the fields are ``iotengine backfill``'s options."""

    input: str | os.PathLike
    output: str | os.PathLike
    engine: str = "local"
    master: str = "local[2]"
    bundle: str | os.PathLike | None = None  # score with it (--scores) instead of writing features
    backend: str = "native"
    states: str | os.PathLike | None = None
    initial_states: str | os.PathLike | None = None
    partitions: int = 8
    resume: bool = False
    arrow_batch_rows: int = 10_000
    utc_offset_minutes: int | None = None  # default: the bundle's, the initial states', or 0
    spark_conf: dict[str, str] = field(default_factory=dict)
    progress: bool = False


@dataclass
class BackfillResult:
    output: Path
    states: Path | None
    rows: int
    machines: int
    late: int
    partitions: int
    resumed: int  # partitions a resumed job found committed


def backfill(request: BackfillRequest, *, session=None) -> BackfillResult:
    """Run a backfill (see the module docstring); ``session``: a Spark session to use instead of a new one."""
    if request.engine not in ENGINES:
        raise InvalidInputError(f"engine must be one of {', '.join(ENGINES)}, not {request.engine!r}")
    partitions = 1 if request.engine == "local" else request.partitions
    if partitions < 1 or request.arrow_batch_rows < 1:
        raise InvalidInputError("partitions and arrow batch rows must be at least 1")
    files = find_inputs(request.input)
    labels = check_inputs(files)
    bundle = _checked_bundle(request)
    initial = read_states(request.initial_states) if request.initial_states is not None else None
    offset = _utc_offset(request, bundle, initial)
    staging = Staging(request.output, request.states)
    if request.engine == "spark":  # before anything is written: no pyspark or no Java fails here
        from engine.backfill.spark_job import run_spark_job, spark_session

        if session is None:
            session = spark_session(request.master, partitions=partitions,
                                    arrow_batch_rows=request.arrow_batch_rows, conf=request.spark_conf)  # fmt: skip
        session.conf.set("spark.sql.shuffle.partitions", str(partitions))
        session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(request.arrow_batch_rows))
    job = {
        "format": BACKFILL_FORMAT,
        "engine": request.engine,
        "partitions": partitions,
        "inputs": [_file_identity(path) for path in files],
        "labels": list(labels),
        "utc_offset_minutes": offset,
        "scores": None if bundle is None else {"bundle": bundle.digest, "backend": request.backend},
        "initial_states": None if initial is None else hashlib.sha256(initial).hexdigest(),
        "states": request.states is not None,
    }
    done = staging.start(job, resume=request.resume)
    config = TaskConfig(
        staging=str(staging.root),
        files=tuple(files),
        labels=labels,
        utc_offset_minutes=offset,
        bundle_name=None if bundle is None else bundle.path.name,
        bundle_digest=None if bundle is None else bundle.digest,
        backend=request.backend,
        initial_states=initial,
    )
    if len(done) < partitions:
        if request.engine == "local":
            try:
                _run_local(config, staging, bundle, request.arrow_batch_rows, request.progress)
            except (TelemetryError, InvalidInputError):
                staging.discard()  # bad input: nothing to resume, and no partial output
                raise
        else:
            run_spark_job(session, staging, config, partitions=partitions, done=done,
                          bundle_path=None if bundle is None else bundle.path, progress=request.progress)  # fmt: skip
    return _publish(staging, job, initial, partitions, resumed=len(done))


def read_backfill(output: str | os.PathLike) -> pa.Table:
    """A backfill's output as one table, in the total order of the samples (machine, timestamp, file, row)."""
    import pyarrow.parquet as pq

    parts = sorted(Path(output).glob("part-*.parquet"))
    if not parts:
        raise InvalidInputError(f"{output}: no backfill output (part-*.parquet) there")
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive")
    for name, kind in (("source_file", pa.string()), ("timestamp", pa.timestamp("s", tz="UTC"))):
        # Parquet stores whole seconds as milliseconds; file names as a dictionary per part
        table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(kind))
    return table.sort_by([(c, "ascending") for c in ("machine_id", "timestamp", "source_file", "source_row")])


def _run_local(config: TaskConfig, staging: Staging, bundle, batch_rows: int, progress: bool) -> None:
    tables = [read_input(path, i, config.labels) for i, path in enumerate(tqdm(config.files, desc="reading",
                                                                                  disable=not progress))]  # fmt: skip
    table = pa.concat_tables(tables).sort_by([(c, "ascending") for c in ORDER_COLUMNS])
    core = BackfillCore(config.files, utc_offset_minutes=config.utc_offset_minutes,
                        initial_states=config.initial_states, bundle=bundle, backend=config.backend)  # fmt: skip
    writer = PartWriter(staging.root, 0)
    with tqdm(total=table.num_rows, desc="backfill", unit="row", unit_scale=True, disable=not progress) as bar:
        for batch in table.to_batches(max_chunksize=batch_rows):
            writer.write(core.process(batch))
            bar.update(batch.num_rows)
    machines = core.machines
    writer.commit(core.final_states() if machines.size else None, machines=int(machines.size), late=core.late)


def _publish(staging: Staging, job: dict, initial: bytes | None, partitions: int, resumed: int) -> BackfillResult:
    records = staging.records()
    missing = sorted(set(range(partitions)) - {r["partition"] for r in records})
    if missing:
        raise InvalidInputError(f"partitions {missing} did not commit; run again with --resume")
    if initial is not None and staging.states is not None:
        seen = np.concatenate([read_snapshot(p.read_bytes())[0] for p in sorted((staging.root / "states").glob(
            "part-*.snapshot"))] or [np.empty(0, np.int64)])  # fmt: skip
        staging.write_states("initial-only", split_states(initial, seen.tolist()))
    manifest = {**job, "partition_records": records}
    staging.publish(manifest)
    return BackfillResult(
        output=staging.output,
        states=staging.states,
        rows=sum(r["rows"] for r in records),
        machines=sum(r["machines"] for r in records),
        late=sum(r["late"] for r in records),
        partitions=partitions,
        resumed=resumed,
    )


def _checked_bundle(request: BackfillRequest):
    if request.bundle is None:
        return None
    from engine.bundle.format import Bundle

    bundle = Bundle.load(request.bundle)
    X, history = probe_inputs(bundle)
    bundle.predict_inputs(X, backend=request.backend, history=history)  # every model library loads here
    return bundle


def _utc_offset(request: BackfillRequest, bundle, initial: bytes | None) -> int:
    known = {}
    if bundle is not None:
        known["the bundle"] = bundle.utc_offset_minutes
    if initial is not None:
        known["the initial states"] = int(read_snapshot(initial)[3]["utc_offset_minutes"])
    if request.utc_offset_minutes is not None:
        known["--utc-offset-minutes"] = request.utc_offset_minutes
    if len(set(known.values())) > 1:
        raise InvalidInputError(f"UTC offsets differ: {', '.join(f'{k} {v} min' for k, v in known.items())}")
    return next(iter(known.values()), 0)


def _file_identity(path: str) -> dict:
    stat = os.stat(path)
    return {"path": path, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
