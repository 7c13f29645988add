"""The backfill as an Apache Spark job (``iotengine backfill --engine spark``).

The plan, in Spark's terms::

    files (one row each) --mapInArrow(read_files)--> rows in the transport schema
        [--filter: rows of partitions a resumed job has already committed]
        --repartition(P, machine_id)--> whole machines per partition (partition = pmod(hash(machine_id), P))
        --sortWithinPartitions(machine_id, timestamp, file_index, source_row)--> Spark's external sort: it
          spills to disk, so one machine's history need not fit in an executor's memory
        --mapInArrow(run_partition)--> the backfill core; each task commits its partition's files itself

Executors get ``OMP_NUM_THREADS=1`` (Spark runs one task per core), a Numba cache folder of their own, and the
bundle as a job file. Spark's log goes to a file, not the console.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
import threading
import warnings
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from engine.backfill.outputs import Staging
from engine.backfill.sources import ORDER_COLUMNS, transport_schema
from engine.backfill.spark_tasks import TaskConfig, read_files, run_partition, summary_schema
from engine.errors import BundleError, InvalidInputError, IotEngineError, StreamStateError, TelemetryError
from engine.optional import optional_import

__all__ = ["SPARK_LOG", "run_spark_job", "spark_session"]

SPARK_LOG = Path(tempfile.gettempdir()) / f"iotengine-spark-{os.getuid()}.log"
SPARK_OUTPUT = SPARK_LOG.with_suffix(".out")  # the JVM's own console output
NUMBA_CACHE = Path(tempfile.gettempdir()) / f"iotengine-numba-{os.getuid()}"
_ERRORS = {cls.__name__: cls for cls in (TelemetryError, InvalidInputError, BundleError, StreamStateError)}
_ERROR_LINE = re.compile(r"(?:engine|compile)\.errors\.(\w+): (.+)")


def spark_session(master: str, *, partitions: int, arrow_batch_rows: int, conf: dict[str, str] | None = None):
    """The Spark session of a backfill (an existing one is reused, with this job's settings)."""
    optional_import("pyspark", "spark", "iotengine backfill --engine spark")
    warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors of local[N] run this interpreter
    log4j = Path(__file__).with_name("log4j2.properties").as_uri()
    settings = {
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={log4j} -Diotengine.spark.log={SPARK_LOG}",
        "spark.executorEnv.OMP_NUM_THREADS": "1",
        "spark.executorEnv.NUMBA_CACHE_DIR": str(NUMBA_CACHE),
        "spark.executorEnv.PYTHONWARNINGS": "ignore::FutureWarning",
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName("iotengine-backfill")
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        with _stderr_to(SPARK_OUTPUT):  # the JVM, and the Python workers it starts, keep this stderr
            session = builder.getOrCreate()
    except Exception as exc:  # pyspark's gateway errors, py4j's, a bad master URL
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise IotEngineError(
            f"cannot start Spark (master {master}): {first[:300]}; Spark needs Java 17+ (JAVA_HOME or java on PATH); "
            f"its console output: {SPARK_OUTPUT}"
        ) from None
    session.conf.set("spark.sql.shuffle.partitions", str(partitions))
    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(arrow_batch_rows))
    return session


def run_spark_job(session, staging: Staging, config: TaskConfig, *, partitions: int, done: set[int], bundle_path=None,
                  progress: bool = False) -> None:  # fmt: skip
    """Run the plan above; every partition not in ``done`` commits into ``staging``.

    Raises
    ------
    TelemetryError, InvalidInputError
        An executor found bad input (the message is its own); the staging folder is removed.
    IotEngineError
        The job failed otherwise (an executor lost, a bundle that does not load there); committed partitions are
        kept for ``--resume``, and the message names Spark's log.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    if bundle_path is not None:
        session.sparkContext.addFile(str(bundle_path), recursive=True)
    if config.initial_states is not None:
        config = replace(config, initial_states=session.sparkContext.broadcast(config.initial_states))
    files = session.createDataFrame(list(enumerate(config.files)), "file_index int, path string")
    rows = files.repartition(len(config.files)).mapInArrow(
        functools.partial(read_files, config=config), from_arrow_schema(transport_schema(config.labels))
    )
    if done:
        rows = rows.filter(~F.pmod(F.hash("machine_id"), F.lit(partitions)).isin(sorted(done)))
    rows = rows.repartition(partitions, "machine_id").sortWithinPartitions(*ORDER_COLUMNS)
    job = rows.mapInArrow(functools.partial(run_partition, config=config), from_arrow_schema(summary_schema()))
    stop = threading.Event()
    watcher = threading.Thread(target=_show_progress, args=(staging, partitions, stop, progress), daemon=True)
    watcher.start()
    try:
        job.collect()
    except Exception as exc:  # py4j's and pyspark's errors carry the executor's exception as text
        raise _job_error(exc, staging) from None
    finally:
        stop.set()
        watcher.join()


def _job_error(exc: Exception, staging: Staging) -> IotEngineError:
    found = _ERROR_LINE.findall(str(exc))
    if found:
        name, message = found[-1]
        cls = _ERRORS.get(name, IotEngineError)
        if cls in (TelemetryError, InvalidInputError):
            staging.discard()  # bad input: nothing to resume, and no partial output
            return cls(message)
        return cls(f"{message} (Spark's log: {SPARK_LOG})")
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    kept = len(staging.committed())
    return IotEngineError(
        f"the Spark job failed: {first[:300]}; {kept} committed partition(s) kept in {staging.root} "
        f"(--resume continues); Spark's log: {SPARK_LOG}"
    )


def _show_progress(staging: Staging, partitions: int, stop: threading.Event, enabled: bool) -> None:
    with tqdm(total=partitions, desc="backfill partitions", unit="part", disable=not enabled) as bar:
        while True:
            finished = stop.wait(0.5)
            bar.update(len(staging.committed()) - bar.n)
            if finished:
                return


@contextlib.contextmanager
def _stderr_to(path: Path):
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as target:
            os.dup2(target.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
