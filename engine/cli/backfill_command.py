"""``iotengine backfill``: its options and the command (:mod:`engine.backfill.job` does the work)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["add_backfill_parser", "backfill_command", "spark_setting"]


def add_backfill_parser(commands, *, positive_int, utc_offset) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="features or scores of a whole history and the machines' final states, in one process or on Apache "
        "Spark (the same bits)",
    )
    backfill.add_argument("--engine", choices=("local", "spark"), default="local", help="default local: one process")
    backfill.add_argument(
        "--master",
        default="local[2]",
        help="Spark master: local[N], spark://HOST:PORT, yarn, k8s://... (default local[2])",
    )
    backfill.add_argument(
        "--input", required=True, help="telemetry: a folder (searched recursively), a glob or a file; Parquet or CSV"
    )
    backfill.add_argument("--output", required=True, type=Path, help="output folder: part-*.parquet, _backfill.json")
    backfill.add_argument("--scores", action="store_true", help="write the bundle's scores instead of the features")
    backfill.add_argument(
        "--bundle", type=Path, default=None, help="bundle of --scores (compiled for --backend native)"
    )
    backfill.add_argument(
        "--backend", choices=("native", "iot", "lightgbm", "onnx"), default="native", help="models of --scores"
    )
    backfill.add_argument("--states", type=Path, default=None, help="folder for the final machine states")
    backfill.add_argument("--initial-states", type=Path, default=None, help="states to continue from (folder or file)")
    backfill.add_argument("--partitions", type=positive_int, default=8, help="Spark partitions of machines (default 8)")
    backfill.add_argument("--resume", action="store_true", help="continue a job that stopped: committed parts stay")
    backfill.add_argument(
        "--arrow-batch-rows", type=positive_int, default=10_000, help="rows per Arrow batch (default 10000)"
    )
    backfill.add_argument(
        "--utc-offset-minutes",
        type=utc_offset,
        default=None,
        help="of the hour/day features (default: the bundle's or 0)",
    )
    backfill.add_argument(
        "--spark-conf",
        action="append",
        type=spark_setting,
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting, e.g. spark.executor.memory=8g (repeatable)",
    )
    backfill.set_defaults(command="backfill")


def spark_setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("spark."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Spark setting KEY=VALUE (spark.*)")
    return key, value


def backfill_command(args) -> int:
    from engine.backfill.job import BackfillRequest, backfill
    from engine.errors import InvalidInputError

    if args.scores != (args.bundle is not None):
        raise InvalidInputError("--scores and --bundle go together")
    started = time.perf_counter()
    result = backfill(
        BackfillRequest(
            input=args.input,
            output=args.output,
            engine=args.engine,
            master=args.master,
            bundle=args.bundle,
            backend=args.backend,
            states=args.states,
            initial_states=args.initial_states,
            partitions=args.partitions,
            resume=args.resume,
            arrow_batch_rows=args.arrow_batch_rows,
            utc_offset_minutes=args.utc_offset_minutes,
            spark_conf=dict(args.spark_conf),
            progress=True,
        )
    )
    seconds = time.perf_counter() - started
    what = "scores" if args.scores else "features"
    engine = args.engine if args.engine == "local" else f"{args.engine} {args.master}"
    print(
        f"backfill ({engine}): {what} of {result.rows:,} rows "
        f"of {result.machines:,} machines in {result.partitions} partition(s) to {result.output} in {seconds:.1f} s "
        f"({result.rows / max(seconds, 1e-9):,.0f} rows/s)"
        + (f"; states to {result.states}" if result.states else "")
        + (f"; {result.late:,} late rows not applied" if result.late else "")
        + (f"; resumed with {result.resumed} partition(s) already committed" if result.resumed else "")
    )
    return 0
