"""The ``iotengine`` command line: a compiled feature and inference engine for industrial IoT telemetry.

``iotengine generate``  synthetic telemetry to Parquet or Kaggle-format CSV
``iotengine eda``       summary, statistics and plots of a telemetry file
``iotengine features``  the 67 features of a telemetry file, to Parquet
``iotengine train``     cross-validate the model zoo on five tasks, fit the unsupervised detector (a LightGBM
                        autoencoder: no labels needed to score), write a bundle and reports
``iotengine score``     score every row of a telemetry file with a bundle (five tasks and the detector's score
                        and residuals), to Parquet or CSV
``iotengine bench``     model benchmarks: every runtime side by side (the detector's five regressors too), tables,
                        charts, results.json
``iotengine compile``   compile a bundle's tree models to native libraries (treelite + tl2cgen + gcc, and
                        iotengine's own generator), export its models to ONNX fp32 and int8, build the C edge library
``iotengine export-c``  the dependency-free C library of a bundle for the host or a Cortex-M (M0+, M4F, M7), in
                        double or float, optionally the most accurate models within a flash budget
``iotengine stream``    replay telemetry through the streaming scorer, or score it live from an MQTT broker
                        (``--mqtt HOST[:PORT] --topic 'plant/+/telemetry'``): alerts as they happen (published on
                        the alerts topic with MQTT), a status line, a summary; ``--state FILE`` checkpoints so a
                        restart continues where it stopped, each sample scored once
``iotengine backfill``  the features or scores of a whole history and each machine's final state, in one process
                        or on Apache Spark (``--engine spark --master local[N]|spark://...``), the same bits
``iotengine run``       the main job on the built-in data (or a real Kaggle CSV), writing ``artifacts/``

Errors print one line, ``iotengine: error: ...``, and exit with status 1 (2 for bad arguments). The commands
are in :mod:`engine.cli.commands`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine import __version__
from engine.bundle.choices import BACKENDS, EDGE_TARGETS, EDGE_TREE_FORMS, MODEL_SETS
from engine.cli.backfill_command import add_backfill_parser
from engine.data.synthetic import FLEET_INTERVAL_S
from engine.features.inputs import MAX_UTC_OFFSET_MINUTES
from engine.pipeline.run import RUN_ROWS

__all__ = ["build_parser", "positive_int", "seed_value", "utc_offset"]

TREES_HELP = "C form of the edge library's tree models: iot (our own generator, default), tl2cgen, uint8 (LightGBM)"
BUNDLE_HELP = "bundle folder written by iotengine train (native, onnx and c need iotengine compile)"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; ``args.command`` names the one chosen."""
    parser = argparse.ArgumentParser(prog="iotengine", description=__doc__.splitlines()[0])
    bundle = argparse.ArgumentParser(add_help=False)
    bundle.add_argument("--bundle", required=True, type=Path, help=BUNDLE_HELP)
    model_set = argparse.ArgumentParser(add_help=False)
    model_set.add_argument("--models", choices=MODEL_SETS, default="chosen", help="model set (default chosen)")
    parser.add_argument("--version", action="version", version=f"iotengine {__version__}")
    commands = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="generate synthetic telemetry")
    generate.add_argument("--rows", type=positive_int, default=100_000, help="rows (default 100000)")
    generate.add_argument("--mode", choices=("kaggle", "fleet"), default="kaggle")
    generate.add_argument("--machines", type=positive_int, default=50)
    generate.add_argument("--seed", type=seed_value, default=0)
    generate.add_argument("--start", default="2025-01-01", help="first timestamp, ISO 8601, UTC")
    generate.add_argument("--interval-s", type=positive_int, default=60, help="seconds between intervals")
    generate.add_argument("--out", required=True, type=Path, help="output file: .parquet, or .csv (Kaggle format)")
    generate.set_defaults(command="generate")

    eda = commands.add_parser("eda", help="summary table and plots of a telemetry file")
    eda.add_argument("--data", required=True, type=Path, help="CSV (Kaggle format), Parquet or Arrow IPC")
    eda.add_argument("--out", required=True, type=Path, help="output folder")
    eda.add_argument("--title", default=None)
    eda.set_defaults(command="eda")

    features = commands.add_parser("features", help="compute the 67 features of a telemetry file")
    features.add_argument("--data", required=True, type=Path, help="CSV (Kaggle format), Parquet or Arrow IPC")
    features.add_argument("--out", required=True, type=Path, help="output file: .parquet, or .csv")
    features.add_argument(
        "--utc-offset-minutes", type=utc_offset, default=0, help="local time offset of the hour/day features"
    )
    features.add_argument(
        "--threads", type=positive_int, default=None, help="threads of the feature kernel (default: all cores)"
    )
    features.add_argument(
        "--float32", action="store_true", help="store the features as float32 (computed in float64, rounded once)"
    )
    features.set_defaults(command="features")

    train = commands.add_parser(
        "train",
        help="cross-validate the model zoo on the five tasks, fit the unsupervised detector, write a bundle, reports",
    )
    train.add_argument(
        "--data", required=True, type=Path, help="labelled telemetry: CSV (Kaggle format), Parquet or IPC"
    )
    train.add_argument("--out", required=True, type=Path, help="output folder (the bundle goes to OUT/bundle)")
    train.add_argument("--folds", type=positive_int, default=3, help="K of the K-fold CV (default 3)")
    train.add_argument("--seed", type=seed_value, default=0)
    train.add_argument(
        "--fleet", type=Path, default=None, help="fleet-mode telemetry for the raw-vs-all-features comparison"
    )
    train.add_argument(
        "--holdout", type=Path, default=None, help="other labelled data to score the bundle on (e.g. the real sample)"
    )
    train.add_argument(
        "--utc-offset-minutes",
        type=utc_offset,
        default=0,
        help="local time offset of the hour/day features; the bundle records it and every scoring path uses it",
    )
    train.set_defaults(command="train")

    compile_ = commands.add_parser(
        "compile",
        parents=[bundle],
        help="compile a bundle's tree models to native libraries (tl2cgen and iotengine's own generator), export "
        "ONNX fp32/int8, build the C edge library",
    )
    compile_.add_argument("--trees", default="iot", choices=EDGE_TREE_FORMS, help=TREES_HELP)
    compile_.add_argument(
        "--isa",
        default="portable",
        choices=("portable", "avx2"),
        help="iot libraries: portable C99, or with the AVX2 bitmask path (same bits; slower on this project's "
        "models, see README)",
    )
    compile_.set_defaults(command="compile")

    export_c = commands.add_parser(
        "export-c",
        parents=[bundle, model_set],
        help="write the dependency-free C library of a bundle (features + models, iotengine.h), for the host or a "
        "Cortex-M, in double or float, optionally within a flash budget",
    )
    export_c.add_argument("--out", required=True, type=Path, help="folder for the C sources, Makefile, CMakeLists")
    export_c.add_argument("--trees", default="iot", choices=EDGE_TREE_FORMS, help=TREES_HELP)
    export_c.add_argument(
        "--target",
        default="host",
        choices=EDGE_TARGETS,
        help="the machine the Makefile builds for: host (gcc), or a Cortex-M with Debian's arm-none-eabi-gcc",
    )
    export_c.add_argument(
        "--real", default="double", choices=("double", "float"), help="iot_real: sensors, features, states, scores"
    )
    export_c.add_argument(
        "--flash-budget",
        type=int,
        metavar="BYTES",
        help="pick per task the most accurate model (bundle sets, tree forms, smaller LightGBM refits with --data) "
        "that fits this flash with the rest of the library; writes FLASH_BUDGET.json",
    )
    export_c.add_argument(
        "--data", type=Path, help="training telemetry for --flash-budget's refits and their cross-validated scores"
    )
    export_c.add_argument(
        "--build",
        action="store_true",
        help="also run make (host: library, example, benchmark; Cortex-M: library and a firmware image) and "
        "measure flash, RAM and stack into RESOURCES.json",
    )
    export_c.add_argument("--cc", default=None, help="C compiler for --build (default: the target's)")
    export_c.set_defaults(command="export-c")

    score = commands.add_parser(
        "score",
        parents=[bundle, model_set],
        help="score every row of a telemetry file: probabilities, decisions, failure type, remaining life, the "
        "unsupervised detector's score and residuals",
    )
    score.add_argument("--data", required=True, type=Path, help="telemetry: CSV (Kaggle format), Parquet or IPC")
    score.add_argument("--out", required=True, type=Path, help="output file: .parquet (default format) or .csv")
    score.add_argument(
        "--backend",
        choices=BACKENDS,
        default="lightgbm",
        help="how the models run (default lightgbm: each model's own library; native/onnx/c need iotengine compile)",
    )
    score.set_defaults(command="score")

    bench = commands.add_parser(
        "bench",
        parents=[bundle],
        help="size, latency and accuracy of every runtime for the bundle's LightGBM models and a large one",
    )
    bench.add_argument("--out", required=True, type=Path, help="folder for BENCH.md, results.json, CSVs and PNGs")
    bench.add_argument("--quick", action="store_true", help="batches 1 and 1k, fewer repeats (minutes, not tens)")
    bench.add_argument(
        "--lleaves-venv", type=Path, default=None, help="lleaves environment (default ~/.cache/iotengine/lleaves-venv)"
    )
    bench.set_defaults(command="bench")

    stream = commands.add_parser(
        "stream",
        parents=[bundle],
        help="replay telemetry, or score it live from an MQTT broker (--mqtt): alerts, live status, summary",
    )
    source = stream.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="telemetry to replay in its row order: CSV (Kaggle), Parquet, IPC")
    source.add_argument("--generate", choices=("fleet",), help="replay generated fleet telemetry (with labels)")
    source.add_argument(
        "--mqtt", metavar="HOST[:PORT]", help="score live telemetry from this MQTT broker (QoS 1, persistent session)"
    )
    stream.add_argument("--topic", default="plant/+/telemetry", help="--mqtt: topic filter (default plant/+/telemetry)")
    stream.add_argument("--alerts-topic", default="plant/alerts", help="--mqtt: where alerts go (default plant/alerts)")
    stream.add_argument(
        "--state-topic",
        default="plant/{machine_id}/state",
        help="--mqtt: each machine's state, retained (default plant/{machine_id}/state)",
    )
    stream.add_argument(
        "--client-id", default="iotengine-scorer", help="--mqtt: client id, the key of the persistent session"
    )
    stream.add_argument(
        "--idle-exit", type=float, default=None, help="--mqtt: stop after this many seconds without a message"
    )
    stream.add_argument("--rows", type=positive_int, default=20_000, help="--generate: samples (default 20000)")
    stream.add_argument("--machines", type=positive_int, default=50, help="--generate: machines (default 50)")
    stream.add_argument("--seed", type=seed_value, default=0, help="--generate: seed (default 0)")
    stream.add_argument(
        "--interval-s", type=positive_int, default=FLEET_INTERVAL_S, help="--generate: seconds between samples"
    )
    stream.add_argument(
        "--late-rate", type=float, default=0.001, help="--generate: share of samples delivered late (default 0.001)"
    )
    stream.add_argument(
        "--speed", type=float, default=None, help="replay at X times real time (default: as fast as possible)"
    )
    stream.add_argument("--backend", choices=("c", "python"), default="c", help="C edge library (default) or Python")
    stream.add_argument("--state", type=Path, default=None, help="checkpoint file: resumed from, written periodically")
    stream.add_argument(
        "--initial-state",
        type=Path,
        default=None,
        help="warm start: machine states from a backfill's --states folder or a snapshot (a new replay only)",
    )
    stream.add_argument(
        "--checkpoint-every",
        type=float,
        default=None,
        help="seconds between checkpoints (default 10; 1 with --mqtt, whose acknowledgements wait for them)",
    )
    stream.add_argument("--scores", type=Path, default=None, help="CSV of every sample's scores")
    stream.add_argument("--alerts", type=Path, default=None, help="CSV of every alert")
    stream.add_argument("--summary", type=Path, default=None, help="the summary as JSON")
    stream.add_argument(
        "--raise-after", type=positive_int, default=2, help="consecutive samples past the threshold that alert"
    )
    stream.add_argument(
        "--clear-after", type=positive_int, default=12, help="consecutive quiet samples that clear an alert"
    )
    stream.add_argument("--warmup", type=int, default=12, help="samples of a machine before it may alert (default 12)")
    stream.add_argument(
        "--rul-hours", type=float, default=24.0, help="alert when predicted remaining life falls to this (hours)"
    )
    stream.add_argument("--limit", type=positive_int, default=None, help="stop after this many samples (this run)")
    stream.add_argument("--quiet", action="store_true", help="do not print alerts (they still go to --alerts)")
    stream.set_defaults(command="stream")

    add_backfill_parser(commands, positive_int=positive_int, utc_offset=utc_offset)

    run = commands.add_parser(
        "run",
        help="the main job: data, EDA, features, training, compilation, benchmarks, C library, scoring, streaming, "
        "live MQTT, backfill",
    )
    run.add_argument("--out", type=Path, default=Path("artifacts"), help="output folder (default artifacts)")
    run.add_argument("--rows", type=positive_int, default=RUN_ROWS, help=f"rows of generated data (default {RUN_ROWS})")
    run.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a real telemetry file (e.g. the full Kaggle CSV) used in place of kaggle-mode data",
    )
    run.add_argument(
        "--holdout",
        type=Path,
        default=None,
        help="labelled data the trained bundle is scored on, e.g. ../shared/data/smart_manufacturing_sample.csv",
    )
    run.add_argument("--seed", type=seed_value, default=0)
    run.set_defaults(command="run")
    return parser


def positive_int(text: str) -> int:
    """An argument that is a whole number of at least 1 (``_`` separators allowed)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def seed_value(text: str) -> int:
    """A random seed: a whole number in 0 .. 2**31 - 1 (the stages derive further seeds from it by adding)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"a seed is a whole number in 0..2147483647, not {value}")
    return value


def utc_offset(text: str) -> int:
    """A UTC offset in minutes, within Python's (and the C library's) range of one day."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if abs(value) > MAX_UTC_OFFSET_MINUTES:
        raise argparse.ArgumentTypeError(f"{value} is outside -{MAX_UTC_OFFSET_MINUTES}..{MAX_UTC_OFFSET_MINUTES}")
    return value
