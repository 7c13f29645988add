"""The ``iotengine`` command line.

``iotengine generate``  synthetic telemetry to Parquet or Kaggle-format CSV
``iotengine eda``       summary, statistics and plots of a telemetry file
``iotengine features``  the 67 features of a telemetry file, to Parquet
``iotengine train``     cross-validate the model zoo on five tasks, write a bundle and reports
``iotengine score``     score every row of a telemetry file with a bundle, to Parquet or CSV
``iotengine bench``     model benchmarks: every runtime side by side, tables, charts, results.json
``iotengine compile``   compile a bundle's tree models to native libraries (treelite + tl2cgen + gcc) and
                        export its LightGBM models to ONNX fp32 and int8
``iotengine stream``    replay telemetry through the streaming scorer: alerts as they happen, a status line, a
                        summary; ``--state FILE`` checkpoints so a restart continues where it stopped
``iotengine run``       the main job on the built-in data (or a real Kaggle CSV), writing ``artifacts/``

Errors print one line, ``iotengine: error: ...``, and exit with status 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from compile.errors import CompileError
from engine import __version__
from engine.data.loading import load_telemetry_with_report, save_telemetry, write_kaggle_csv
from engine.errors import InvalidInputError, MissingExtraError, TelemetryError
from engine.pipeline.run import FLEET_INTERVAL_S, RUN_ROWS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except (TelemetryError, ValueError, OSError, CompileError, MissingExtraError) as exc:
        print(f"iotengine: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("iotengine: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iotengine", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"iotengine {__version__}")
    commands = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="generate synthetic telemetry")
    generate.add_argument("--rows", type=_positive_int, default=100_000, help="rows (default 100000)")
    generate.add_argument("--mode", choices=("kaggle", "fleet"), default="kaggle")
    generate.add_argument("--machines", type=_positive_int, default=50)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--start", default="2025-01-01", help="first timestamp, ISO 8601, UTC")
    generate.add_argument("--interval-s", type=_positive_int, default=60, help="seconds between intervals")
    generate.add_argument("--out", required=True, type=Path, help="output file: .parquet, or .csv (Kaggle format)")
    generate.set_defaults(command=_cmd_generate)

    eda = commands.add_parser("eda", help="summary table and plots of a telemetry file")
    eda.add_argument("--data", required=True, type=Path, help="CSV (Kaggle format), Parquet or Arrow IPC")
    eda.add_argument("--out", required=True, type=Path, help="output folder")
    eda.add_argument("--title", default=None)
    eda.set_defaults(command=_cmd_eda)

    features = commands.add_parser("features", help="compute the 67 features of a telemetry file")
    features.add_argument("--data", required=True, type=Path, help="CSV (Kaggle format), Parquet or Arrow IPC")
    features.add_argument("--out", required=True, type=Path, help="output Parquet file")
    features.add_argument("--utc-offset-minutes", type=int, default=0, help="local time offset for hour/day")
    features.set_defaults(command=_cmd_features)

    train = commands.add_parser(
        "train", help="cross-validate the model zoo on the five tasks, write a bundle and reports"
    )
    train.add_argument(
        "--data", required=True, type=Path, help="labelled telemetry: CSV (Kaggle format), Parquet or IPC"
    )
    train.add_argument("--out", required=True, type=Path, help="output folder (the bundle goes to OUT/bundle)")
    train.add_argument("--folds", type=_positive_int, default=3, help="K of the K-fold CV (default 3)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--fleet", type=Path, default=None, help="fleet-mode telemetry for the autoencoder and raw-vs-features"
    )
    train.add_argument(
        "--holdout", type=Path, default=None, help="other labelled data to score the bundle on (e.g. the real sample)"
    )
    train.set_defaults(command=_cmd_train)

    compile_ = commands.add_parser(
        "compile",
        help="compile a bundle's tree models to native libraries, export ONNX fp32/int8, build the C edge library",
    )
    compile_.add_argument("--bundle", required=True, type=Path, help="bundle folder written by iotengine train")
    compile_.set_defaults(command=_cmd_compile)

    export_c = commands.add_parser(
        "export-c", help="write the dependency-free C library of a bundle (features + models, iotengine.h)"
    )
    export_c.add_argument("--bundle", required=True, type=Path, help="bundle folder written by iotengine train")
    export_c.add_argument("--out", required=True, type=Path, help="folder for the C sources, Makefile, CMakeLists")
    export_c.add_argument("--models", default="chosen", help="model set: chosen (default), lightgbm or compact")
    export_c.add_argument(
        "--trees", default="tl2cgen", choices=("tl2cgen", "uint8"), help="C form of tree models (uint8: LightGBM only)"
    )
    export_c.add_argument("--build", action="store_true", help="also run make (library, example, benchmark)")
    export_c.add_argument("--cc", default="gcc", help="C compiler for --build (default gcc)")
    export_c.set_defaults(command=_cmd_export_c)

    score = commands.add_parser(
        "score", help="score every row of a telemetry file: probabilities, decisions, failure type, remaining life"
    )
    score.add_argument("--bundle", required=True, type=Path, help="bundle folder written by iotengine train")
    score.add_argument("--data", required=True, type=Path, help="telemetry: CSV (Kaggle format), Parquet or IPC")
    score.add_argument("--out", required=True, type=Path, help="output file: .parquet (default format) or .csv")
    score.add_argument(
        "--backend",
        choices=("lightgbm", "native", "onnx", "onnx-int8", "c"),
        default="lightgbm",
        help="how the models run (default lightgbm: each model's own library; native/onnx/c need iotengine compile)",
    )
    score.add_argument(
        "--models", choices=("chosen", "lightgbm", "compact"), default="chosen", help="model set (default chosen)"
    )
    score.set_defaults(command=_cmd_score)

    bench = commands.add_parser(
        "bench", help="size, latency and accuracy of every runtime for the bundle's LightGBM models and a large one"
    )
    bench.add_argument("--bundle", required=True, type=Path, help="bundle folder written by iotengine train")
    bench.add_argument("--out", required=True, type=Path, help="folder for BENCH.md, results.json, CSVs and PNGs")
    bench.add_argument("--quick", action="store_true", help="batches 1 and 1k, fewer repeats (minutes, not tens)")
    bench.add_argument(
        "--lleaves-venv", type=Path, default=None, help="lleaves environment (default ~/.cache/iotengine/lleaves-venv)"
    )
    bench.set_defaults(command=_cmd_bench)

    stream = commands.add_parser(
        "stream", help="replay telemetry through the streaming scorer: alerts, live status, summary"
    )
    stream.add_argument("--bundle", required=True, type=Path, help="compiled bundle (iotengine compile)")
    source = stream.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="telemetry to replay in its row order: CSV (Kaggle), Parquet, IPC")
    source.add_argument("--generate", choices=("fleet",), help="replay generated fleet telemetry (with labels)")
    stream.add_argument("--rows", type=_positive_int, default=20_000, help="--generate: samples (default 20000)")
    stream.add_argument("--machines", type=_positive_int, default=50, help="--generate: machines (default 50)")
    stream.add_argument("--seed", type=int, default=0, help="--generate: seed (default 0)")
    stream.add_argument(
        "--interval-s", type=_positive_int, default=FLEET_INTERVAL_S, help="--generate: seconds between samples"
    )
    stream.add_argument(
        "--late-rate", type=float, default=0.001, help="--generate: share of samples delivered late (default 0.001)"
    )
    stream.add_argument(
        "--speed", type=float, default=None, help="replay at X times real time (default: as fast as possible)"
    )
    stream.add_argument("--backend", choices=("c", "python"), default="c", help="C edge library (default) or Python")
    stream.add_argument("--state", type=Path, default=None, help="checkpoint file: resumed from, written periodically")
    stream.add_argument("--checkpoint-every", type=float, default=10.0, help="seconds between checkpoints (default 10)")
    stream.add_argument("--scores", type=Path, default=None, help="CSV of every sample's scores")
    stream.add_argument("--alerts", type=Path, default=None, help="CSV of every alert")
    stream.add_argument("--summary", type=Path, default=None, help="the summary as JSON")
    stream.add_argument(
        "--raise-after", type=_positive_int, default=2, help="consecutive samples past the threshold that alert"
    )
    stream.add_argument(
        "--clear-after", type=_positive_int, default=12, help="consecutive quiet samples that clear an alert"
    )
    stream.add_argument("--warmup", type=int, default=12, help="samples of a machine before it may alert (default 12)")
    stream.add_argument(
        "--rul-hours", type=float, default=24.0, help="alert when predicted remaining life falls to this (hours)"
    )
    stream.add_argument("--limit", type=_positive_int, default=None, help="stop after this many samples")
    stream.add_argument("--quiet", action="store_true", help="do not print alerts (they still go to --alerts)")
    stream.set_defaults(command=_cmd_stream)

    run = commands.add_parser(
        "run",
        help="the main job: data, EDA, features, training, compilation, benchmarks, C library, scoring, streaming",
    )
    run.add_argument("--out", type=Path, default=Path("artifacts"), help="output folder (default artifacts)")
    run.add_argument(
        "--rows", type=_positive_int, default=RUN_ROWS, help=f"rows of generated data (default {RUN_ROWS})"
    )
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
    run.add_argument("--seed", type=int, default=0)
    run.set_defaults(command=_cmd_run)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _write(table, path: Path) -> Path:
    if path.suffix.lower() == ".csv":
        return write_kaggle_csv(table, path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return save_telemetry(table, path)
    raise InvalidInputError(f"{path}: unknown output format; use .parquet or .csv")


def _cmd_generate(args) -> int:
    from engine.data.synthetic import generate

    started = time.perf_counter()
    table = generate(
        args.rows,
        machines=args.machines,
        mode=args.mode,
        seed=args.seed,
        start=args.start,
        interval_s=args.interval_s,
    )
    path = _write(table, args.out)
    print(f"wrote {table.num_rows:,} {args.mode} rows to {path} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_eda(args) -> int:
    from engine.data.eda import run_eda

    table, report = load_telemetry_with_report(args.data)
    print(report)
    result = run_eda(table, args.out, title=args.title or f"Telemetry: {args.data.name}")
    print(f"wrote {', '.join(str(p) for p in result.files)}")
    return 0


def _cmd_train(args) -> int:
    from engine.models.trainer import train

    if args.folds < 2:
        raise InvalidInputError("--folds must be at least 2")
    started = time.perf_counter()
    run = train(args.data, args.out, folds=args.folds, seed=args.seed, fleet=args.fleet, holdout=args.holdout)
    print(
        f"wrote {run.bundle.path} and {len(run.files)} reports to {args.out} in {time.perf_counter() - started:.0f} s"
    )
    return 0


def _cmd_compile(args) -> int:
    from engine.bundle.edge import build_edge
    from engine.bundle.native import compile_bundle
    from engine.bundle.onnx import export_onnx

    started = time.perf_counter()
    compile_bundle(args.bundle)
    export_onnx(args.bundle)
    bundle = build_edge(args.bundle)
    built = sum(len(tasks) for tasks in bundle.manifest["native"].values())
    exported = sum(len(tasks) for tasks in bundle.manifest["onnx"].values())
    print(
        f"compiled {built} native libraries, exported {exported} models to ONNX (fp32 + int8) and built the "
        f"edge library {bundle.manifest['edge']['library']} into {bundle.path} in {time.perf_counter() - started:.0f} s"
    )
    return 0


def _cmd_export_c(args) -> int:
    from compile.edge import export_c, make

    started = time.perf_counter()
    tree = export_c(args.bundle, args.out, models=args.models, trees=args.trees)
    print(
        f"wrote {len(list(tree.directory.iterdir()))} files to {tree.directory} "
        f"(library: {' '.join(tree.library_sources)})"
    )
    if args.build:
        make(tree.directory, "all", "iotengine_bench", compiler=args.cc)
        print(f"built libiotengine.a, libiotengine.so, iotengine_example and iotengine_bench with {args.cc} -O2")
        print(f"try: {tree.directory / 'iotengine_example'} < telemetry.csv")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def _cmd_bench(args) -> int:
    from bench.report import write_report
    from bench.suite import run_suite

    started = time.perf_counter()
    document = run_suite(args.bundle, args.out, quick=args.quick, lleaves_venv=args.lleaves_venv)
    files = write_report(document, args.out)
    report = files[0].read_text()
    print(report[: report.index("## Size on disk")] if "## Size on disk" in report else report)
    print(f"wrote {len(files) + 1} files to {args.out} in {time.perf_counter() - started:.0f} s: " + ", ".join(
        p.name for p in [args.out / "results.json", *files]))  # fmt: skip
    return 0


def _cmd_score(args) -> int:
    from engine.scoring.batch import score_file

    started = time.perf_counter()
    scores = score_file(args.bundle, args.data, args.out, backend=args.backend, models=args.models)
    print(
        f"wrote scores of {scores.num_rows:,} rows ({args.models} models, backend {args.backend}) to {args.out} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _cmd_features(args) -> int:
    from engine.pipeline.run import write_features

    started = time.perf_counter()
    table, report = load_telemetry_with_report(args.data)
    print(report)
    path = write_features(table, args.out, args.utc_offset_minutes)
    print(f"wrote 67 features of {table.num_rows:,} rows to {path} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_stream(args) -> int:
    from engine.stream.replay import Replay, ReplayOptions, fleet_source, source_from_file

    if args.data is not None:
        source = source_from_file(args.data)
    else:
        source = fleet_source(
            args.rows, machines=args.machines, seed=args.seed, interval_s=args.interval_s, late_rate=args.late_rate
        )
    options = ReplayOptions(
        speed=args.speed,
        raise_after=args.raise_after,
        clear_after=args.clear_after,
        warmup=args.warmup,
        rul_hours=args.rul_hours,
        checkpoint_every_s=args.checkpoint_every,
        limit=args.limit,
    )
    status = _StatusLine(source.rows)
    replay = Replay(
        args.bundle,
        source,
        backend=args.backend,
        options=options,
        state_path=args.state,
        scores_path=args.scores,
        alerts_path=args.alerts,
        on_alert=None if args.quiet else status.alert,
        on_progress=status.update,
    )
    if replay.position:
        status.write(f"resuming {source.name} at sample {replay.position:,} from {args.state}")
    status.start(replay.position)
    with _StopOnSignal() as stop:
        try:
            summary = replay.run(should_stop=stop.requested)
        finally:
            status.close()
    status.final(summary.position, summary.rows, summary.machines, sum(summary.alerts.values()))
    if summary.interrupted:
        print(f"stopped by a signal at sample {summary.position:,}", file=sys.stderr)
    print(summary.markdown())
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary.to_json(), indent=1) + "\n")
    if args.state is not None and not summary.finished:
        print(f"checkpoint: {args.state} (run the same command again to continue)", file=sys.stderr)
    return 0


class _StatusLine:
    """The live status line on stderr (redrawn on a terminal, a line every 5 s in a log) and the alert lines."""

    def __init__(self, rows: int):
        self._rows = rows
        self._bar = None
        self._tty = sys.stderr.isatty()
        self._last_line = 0.0
        self._started = time.perf_counter()
        self._start_position = 0

    def start(self, position: int) -> None:
        self._start_position = position
        self._started = time.perf_counter()
        if self._tty:
            self._bar = tqdm(
                total=self._rows, initial=position, unit=" samples", unit_scale=True, file=sys.stderr, leave=False
            )

    def update(self, position: int, rows: int, machines: int, alerts: int) -> None:
        if self._bar is not None:  # the bar shows samples/s itself
            self._bar.n = position
            self._bar.set_postfix_str(f"{machines} machines, {alerts} alerts", refresh=True)
            return
        rate = (position - self._start_position) / max(time.perf_counter() - self._started, 1e-9)
        text = f"{rate:,.0f} samples/s, {machines} machines, {alerts} alerts"
        if time.perf_counter() - self._last_line >= 5.0 or position >= rows:
            self._last_line = time.perf_counter()
            print(f"[stream] {position:,}/{rows:,} samples, {text}", file=sys.stderr, flush=True)

    def final(self, position: int, rows: int, machines: int, alerts: int) -> None:
        """The last status, always printed in a log (a terminal had it live)."""
        if not self._tty:
            self._last_line = float("-inf")
            self.update(position, rows, machines, alerts)

    def alert(self, alert) -> None:
        from engine.stream.replay import format_drivers, iso_time

        self.write(
            f"ALERT {iso_time(alert.timestamp)} machine {alert.machine_id} {alert.task} {alert.score:.4g} "
            f"| {alert.failure_type}, {alert.remaining_life:.1f} h left | drivers: {format_drivers(alert.drivers)}"
        )

    def write(self, line: str) -> None:
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _StopOnSignal:
    """Ctrl-C (or SIGTERM) asks the replay to stop after its current batch, so it checkpoints and summarises;
    a second Ctrl-C stops at once."""

    def __enter__(self):
        import signal

        self._stop = False
        self._previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True

    def requested(self) -> bool:
        return self._stop

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _cmd_run(args) -> int:
    from engine.pipeline.run import run_pipeline

    started = time.perf_counter()
    report = run_pipeline(args.out, rows=args.rows, seed=args.seed, data=args.data, holdout=args.holdout)
    print(f"wrote {report} in {time.perf_counter() - started:.0f} s (details in {report.parent / 'run.log'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
