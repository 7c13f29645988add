"""What Spark's executors run: reading input files, and the backfill core over one partition.

Both are plain functions of an iterator of Arrow record batches (``mapInArrow``), given a :class:`TaskConfig` of
plain values; Spark ships them by reference to this module, which every executor imports from its own iotengine
install. The bundle travels with the job (``SparkContext.addFile``) and is loaded on the executor with its
manifest digest and every file's SHA-256 checked, and its native libraries from verified copies; the executor
also checks that it is the same bundle the driver checked (the manifest digest). Loaded bundles and initial
states are kept per executor process, which Spark reuses from task to task.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass

import pyarrow as pa

from engine.backfill.core import BackfillCore
from engine.backfill.outputs import PartWriter
from engine.backfill.sources import read_input, transport_schema
from engine.errors import BundleError, IotEngineError

__all__ = ["BATCH_ROWS_OUT", "TaskConfig", "probe_inputs", "read_files", "run_partition", "summary_schema"]

BATCH_ROWS_OUT = 65_536  # rows of the batches the reader hands back to Spark


@dataclass(frozen=True)
class TaskConfig:
    """What every task of a backfill job needs; plain values only."""

    staging: str
    files: tuple[str, ...]
    labels: tuple[str, ...]
    utc_offset_minutes: int
    bundle_name: str | None = None  # the bundle folder's name among the job's files (SparkFiles)
    bundle_digest: str | None = None
    backend: str = "native"
    initial_states: object = None  # a Broadcast of the initial states' snapshot bytes


def summary_schema() -> pa.Schema:
    """One row per partition the kernel task committed."""
    return pa.schema([("partition", pa.int32()), ("rows", pa.int64()), ("machines", pa.int64()), ("late", pa.int64())])


def read_files(batches, config: TaskConfig):
    """Rows ``(file_index, path)`` in; each file's rows in the transport schema out (the loader's own checks)."""
    for batch in batches:
        for index, path in zip(batch.column("file_index").to_pylist(), batch.column("path").to_pylist(), strict=True):
            table = read_input(path, index, config.labels)
            yield from table.to_batches(max_chunksize=BATCH_ROWS_OUT)


def run_partition(batches, config: TaskConfig):
    """The sorted rows of one partition in; its files committed to the staging folder; one summary row out."""
    from pyspark import TaskContext

    writer = PartWriter(config.staging, TaskContext.get().partitionId())
    if writer.committed:  # a resumed job filters these rows out before the shuffle; never write a part twice
        if any(batch.num_rows for batch in batches):
            raise IotEngineError(
                f"partition {writer.partition} is committed but received rows: Spark placed machines otherwise than "
                "pmod(hash(machine_id), partitions); run again without --resume"
            )
        return
    core = BackfillCore(
        config.files,
        utc_offset_minutes=config.utc_offset_minutes,
        initial_states=None if config.initial_states is None else config.initial_states.value,
        bundle=_bundle(config.bundle_name, config.bundle_digest, config.backend),
        backend=config.backend,
    )
    schema = transport_schema(config.labels)
    for batch in batches:
        writer.write(core.process(batch.select(schema.names)))
    machines = core.machines
    record = writer.commit(core.final_states() if machines.size else None, machines=int(machines.size), late=core.late)
    yield pa.RecordBatch.from_pylist([{k: record[k] for k in summary_schema().names}], schema=summary_schema())


@functools.cache
def _bundle(name: str | None, digest: str | None, backend: str):
    if name is None:
        return None
    from pyspark import SparkFiles

    from engine.bundle.format import Bundle

    host = socket.gethostname()
    try:
        bundle = Bundle.load(SparkFiles.get(name))
        if bundle.digest != digest:
            raise BundleError(f"its manifest digest {bundle.digest[:12]} is not the driver's {str(digest)[:12]}")
        X, history = probe_inputs(bundle)
        bundle.predict_inputs(X, backend=backend, history=history)  # loads (and hash-checks) every library now
    except IotEngineError as exc:
        raise BundleError(f"executor {host}: cannot load the bundle {name}: {exc}") from exc
    except OSError as exc:
        raise BundleError(f"executor {host}: cannot load the bundle {name}'s libraries: {exc}") from exc
    return bundle


def probe_inputs(bundle) -> tuple:
    """One row of missing inputs (and history, with the detector): scoring it loads every model of the bundle."""
    import numpy as np

    from engine.models.tasks import INPUT_COLUMNS
    from kernels.history import N_HISTORY

    history = np.full((1, N_HISTORY), np.nan) if bundle.unsupervised is not None else None
    return np.full((1, len(INPUT_COLUMNS)), np.nan), history
