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
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from compile.errors import CompileError
from engine import __version__
from engine.data import TelemetryError, load_telemetry_with_report, save_telemetry, write_kaggle_csv

__all__ = ["main"]

FLEET_INTERVAL_S = 300
RUN_ROWS = 20_000  # the whole run in about six minutes on 2 cores; --rows 100000 takes about fourteen


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except (TelemetryError, ValueError, OSError, CompileError) as exc:
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
        "run", help="the main job: data, EDA, features, training, compilation, benchmarks, C library, streaming"
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
    raise ValueError(f"{path}: unknown output format; use .parquet or .csv")


def _cmd_generate(args) -> int:
    from engine.synth import generate

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
    from engine.eda import run_eda

    table, report = load_telemetry_with_report(args.data)
    print(report)
    result = run_eda(table, args.out, title=args.title or f"Telemetry: {args.data.name}")
    print(f"wrote {', '.join(str(p) for p in result.files)}")
    return 0


def _write_features(table, path: Path, utc_offset_minutes: int = 0) -> Path:
    import pyarrow.parquet as pq

    from engine.features import features_table

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(features_table(table, utc_offset_minutes=utc_offset_minutes), path, compression="zstd")
    return path


def _cmd_train(args) -> int:
    from engine.train_report import train

    if args.folds < 2:
        raise ValueError("--folds must be at least 2")
    started = time.perf_counter()
    run = train(args.data, args.out, folds=args.folds, seed=args.seed, fleet=args.fleet, holdout=args.holdout)
    print(
        f"wrote {run.bundle.path} and {len(run.files)} reports to {args.out} in {time.perf_counter() - started:.0f} s"
    )
    return 0


def _cmd_compile(args) -> int:
    from compile.bundle_edge import build_edge
    from compile.bundle_native import compile_bundle
    from compile.bundle_onnx import export_onnx

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
    from engine.batch_score import score_file

    started = time.perf_counter()
    scores = score_file(args.bundle, args.data, args.out, backend=args.backend, models=args.models)
    print(
        f"wrote scores of {scores.num_rows:,} rows ({args.models} models, backend {args.backend}) to {args.out} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _cmd_features(args) -> int:
    started = time.perf_counter()
    table, report = load_telemetry_with_report(args.data)
    print(report)
    path = _write_features(table, args.out, args.utc_offset_minutes)
    print(f"wrote 67 features of {table.num_rows:,} rows to {path} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_stream(args) -> int:
    from engine.replay import Replay, ReplayOptions, fleet_source, source_from_file

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
        from engine.replay import format_drivers, iso_time

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


class _Stages:
    """One progress bar over the stages of a job, with a line per finished stage."""

    def __init__(self, total: int):
        # In logs (no terminal) the per-stage lines are the progress; a redrawn bar would only add noise.
        self._bar = tqdm(
            total=total,
            unit="stage",
            leave=False,
            file=sys.stderr,
            bar_format="{desc} [{n_fmt}/{total_fmt}] {elapsed}",
            disable=not sys.stderr.isatty(),
        )
        self.done: list[tuple[str, float]] = []

    def run(self, name: str, work: Callable[[], object]):
        self._bar.set_description_str(name)
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
        self.done.append((name, seconds))
        self._bar.update(1)
        tqdm.write(f"[{len(self.done)}/{self._bar.total}] {name}: {seconds:.1f} s", file=sys.stderr)
        return result

    def close(self) -> None:
        self._bar.close()


def _progress_line(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def _cmd_run(args) -> int:
    from compile.bundle_native import compile_bundle
    from engine.eda import run_eda
    from engine.replay import format_fraction
    from engine.synth import generate
    from engine.tasks import TASK_BY_NAME
    from engine.train_report import train
    from engine.zoo import candidates

    families = len(candidates("binary"))

    out: Path = args.out
    data_dir = out / "data"
    stages = _Stages(total=12)
    try:
        if args.data is not None:
            kaggle, report = stages.run(f"load {args.data}", lambda: load_telemetry_with_report(args.data))
            tqdm.write(str(report), file=sys.stderr)
            kaggle_title = f"Kaggle data: {args.data.name}"
        else:
            kaggle = stages.run(
                f"generate kaggle-mode data ({args.rows:,} rows)",
                lambda: generate(args.rows, mode="kaggle", seed=args.seed),
            )
            kaggle_title = "Kaggle-mode synthetic data"
        fleet = stages.run(
            f"generate fleet-mode data ({args.rows:,} rows)",
            # One sample per machine every 5 minutes: 100k rows span a week, long enough for machines to
            # degrade, fail and be repaired (at one a minute the same rows cover 33 hours and hold no failure).
            lambda: generate(args.rows, mode="fleet", seed=args.seed, interval_s=FLEET_INTERVAL_S),
        )
        kaggle_path = save_telemetry(kaggle, data_dir / "kaggle.parquet")
        fleet_path = save_telemetry(fleet, data_dir / "fleet.parquet")
        kaggle_eda = stages.run(
            "EDA of kaggle data", lambda: run_eda(kaggle, out / "eda" / "kaggle", title=kaggle_title)
        )
        feature_paths = {
            name: stages.run(
                f"67 features of {name} data",
                lambda table=table, name=name: _write_features(table, out / "features" / f"{name}.parquet"),
            )
            for name, table in (("kaggle", kaggle), ("fleet", fleet))
        }
        fleet_eda = stages.run(
            "EDA of fleet data",
            lambda: run_eda(fleet, out / "eda" / "fleet", title="Fleet-mode synthetic data"),
        )
        training = stages.run(
            f"train five tasks, {families} models each, 3-fold CV ({kaggle.num_rows:,} rows)",
            lambda: train(
                kaggle, out / "train", fleet=fleet, holdout=args.holdout, seed=args.seed, progress=_progress_line
            ),
        )
        compiled = stages.run(
            "compile tree models to native libraries (treelite + tl2cgen + gcc)",
            lambda: compile_bundle(training.bundle.path, progress=_progress_line),
        )
        compiled, drift_path = stages.run(
            "export LightGBM models to ONNX fp32 and int8; drift on held-out data",
            lambda: _export_onnx_with_drift(training.bundle.path, out / "onnx", args.rows, args.seed),
        )
        bench_files = stages.run(
            "quick model benchmarks: LightGBM, native, C, uint8, ONNX fp32/int8, lleaves",
            lambda: _quick_bench(training.bundle.path, out / "bench"),
        )
        edge_files = stages.run(
            "C edge library: export, build with gcc, check the example, time iot_features/iot_score",
            lambda: _edge_stage(training.bundle.path, out / "edge", fleet, kaggle),
        )
        stream_files = stages.run(
            "streaming replay: fleet bundle, new fleet telemetry through the C library, alerts, checkpoint",
            lambda: _stream_stage(out / "stream", args.seed),
        )
    finally:
        stages.close()

    report_path = out / "REPORT.md"
    lines = [
        "# iotengine run",
        "",
        "| stage | seconds |",
        "| --- | --- |",
        *(f"| {name} | {seconds:.1f} |" for name, seconds in stages.done),
        "",
        "## Data",
        "",
        *(
            f"- {name}: [{path.relative_to(out)}]({path.relative_to(out)}) ({table.num_rows:,} rows)"
            for name, path, table in (("kaggle", kaggle_path, kaggle), ("fleet", fleet_path, fleet))
        ),
        "",
        "## Exploratory analysis",
        "",
    ]
    for name, eda in (("kaggle", kaggle_eda), ("fleet", fleet_eda)):
        lines.append(f"- {name}: " + ", ".join(f"[{p.name}]({p.relative_to(out)})" for p in eda.files))
    lines += ["", "## Features", "", "The 67 features (spec order), with machine ids, timestamps and labels:", ""]
    lines += [f"- {name}: [{p.relative_to(out)}]({p.relative_to(out)})" for name, p in feature_paths.items()]
    lines += ["", "## Training", ""]
    lines += [
        f"Five tasks, {families} models each, 3-fold CV on the kaggle data; Bayes ceilings, feature reduction, "
        "the LightGBM autoencoder and raw-vs-all-features on fleet data. "
        "Full report: [train/TRAINING.md](train/TRAINING.md); "
        "bundle: [train/bundle/bundle.json](train/bundle/bundle.json).",
        "",
        "| task | chosen model | score | Bayes ceiling | threshold |",
        "| --- | --- | --- | --- | --- |",
    ]
    for task_name, family in training.best.items():
        metric = TASK_BY_NAME[task_name].score
        threshold = training.thresholds.get(task_name)
        lines.append(
            f"| {task_name} | {family} | {metric} {training.results[task_name][family].mean(metric):.4f} "
            f"| {training.ceilings[task_name][metric]:.4f} | {'' if threshold is None else f'{threshold:.4f}'} |"
        )
    lines += ["", *(f"- [{p.relative_to(out)}]({p.relative_to(out)})" for p in training.files)]
    lines += [
        "",
        "## Native libraries",
        "",
        "| set | task | family | trees | library | bytes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for set_name, tasks in compiled.manifest["native"].items():
        for task_name, entry in tasks.items():
            library = compiled.path / entry["library"]
            relative = library.relative_to(out)
            lines.append(
                f"| {set_name} | {task_name} | {entry['family']} | {entry['trees']} | [{relative}]({relative}) "
                f"| {library.stat().st_size:,} |"
            )
    lines += [
        "",
        "## ONNX",
        "",
        "Each task's LightGBM model as ONNX fp32 (onnxmltools) and int8 (GEMM form quantized by onnxruntime), "
        f"scored against LightGBM on {HELD_OUT_NAME}: [{drift_path.relative_to(out)}]({drift_path.relative_to(out)})",
        "",
        drift_path.with_suffix(".md").read_text(),
    ]
    lines += [
        "",
        "## Model benchmarks (quick)",
        "",
        "Every runtime side by side on the bundle's LightGBM models and a standard 500-tree model: "
        + ", ".join(f"[{p.relative_to(out)}]({p.relative_to(out)})" for p in bench_files),
        "",
    ]
    edge = json.loads(edge_files[1].read_text())
    timing = edge["c_bench"]
    lines += [
        "## C edge library",
        "",
        "The chosen models and the 67 features as dependency-free C99 (`iotengine.h`): "
        + ", ".join(f"[{p.relative_to(out)}]({p.relative_to(out)})" for p in edge_files)
        + ", sources in [edge/src/](edge/src/).",
        "",
        f"- `iot_state` {timing['state_bytes']} bytes per machine; library text "
        f"{edge['sizes_O2']['total']['text']:,} bytes (gcc -O2).",
        f"- Per sample in C: `iot_features` {timing['features_ns_median']:,.0f} ns, `iot_score` (five tasks) "
        f"{timing['score_ns_median']:,.0f} ns, `iot_score_many` {timing['score_many_ns_median']:,.0f} ns "
        f"(medians, {timing['samples']:,} samples).",
        f"- The example program's scores differ from `bundle.predict` by at most {edge['example_max_abs_diff']:.1e}.",
        "",
    ]
    summary = json.loads(stream_files[1].read_text())
    lines += [
        "## Streaming",
        "",
        f"{summary['session_samples']:,} samples of new fleet telemetry ({summary['machines']} machines) replayed "
        f"through `StreamScorer` and the C library of a fleet-trained bundle at {summary['samples_per_second']:,.0f} "
        f"samples/s, with alerts and a checkpoint: "
        + ", ".join(f"[{p.relative_to(out)}]({p.relative_to(out)})" for p in stream_files)
        + ".",
        "",
        "| task | alerts | labelled episodes | episodes alerted | precision | recall |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {q['task']} | {q['alerts']} | {q['episodes']} | {q['episodes_alerted']} | "
            f"{format_fraction(q['precision'])} | {format_fraction(q['recall'])} |"
            for q in summary["quality"]
        ),
        "",
        f"Latency per sample p50 {summary['latency_us'].get('p50', float('nan')):,.0f} µs, "
        f"p99 {summary['latency_us'].get('p99', float('nan')):,.0f} µs (a tick of {summary['machines']} samples "
        f"per call); late samples {summary['late']:,}, missing sensor values {sum(summary['missing'].values()):,}.",
        "",
        f"![streaming replay]({stream_files[-1].relative_to(out)})",
        "",
    ]
    report_path.write_text("\n".join(lines) + "\n")
    print(f"wrote {report_path}")
    return 0


def _stream_stage(folder: Path, seed: int) -> list[Path]:
    from engine.stream_report import stream_report

    return stream_report(folder, seed=seed, progress=_progress_line)


def _edge_stage(bundle_path: Path, folder: Path, fleet, kaggle) -> list[Path]:
    from bench.edge import edge_report

    return edge_report(bundle_path, folder, fleet, kaggle, progress=_progress_line)


def _quick_bench(bundle_path: Path, folder: Path) -> list[Path]:
    from bench.report import write_report
    from bench.suite import run_suite

    document = run_suite(bundle_path, folder, quick=True, progress=_progress_line)
    return [*write_report(document, folder), folder / "results.json"]


HELD_OUT_NAME = "kaggle-mode rows generated with seed + 1 (not trained on)"


def _export_onnx_with_drift(bundle_path: Path, folder: Path, rows: int, seed: int):
    """ONNX exports of the bundle, and a CSV + Markdown table of their drift from LightGBM on new rows."""
    import csv

    from compile.bundle_onnx import export_onnx, onnx_drift
    from engine.synth import generate
    from engine.tasks import inputs_and_targets

    bundle = export_onnx(bundle_path, progress=_progress_line)
    X, y = inputs_and_targets(generate(max(rows // 5, 2_000), mode="kaggle", seed=seed + 1))
    drift = onnx_drift(bundle, X, y, "lightgbm")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "onnx_drift.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(drift[0]))
        writer.writeheader()
        writer.writerows(drift)
    section = bundle.manifest["onnx"]["lightgbm"]
    table = [
        "| task | score | LightGBM | ONNX fp32 | ONNX int8 | max abs diff fp32 | max abs diff int8 "
        "| fp32 bytes | int8 bytes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in drift:
        entry = section[row["task"]]
        table.append(
            f"| {row['task']} | {row['score']} | {row['lightgbm']:.4f} | {row['fp32']:.4f} | {row['int8']:.4f} "
            f"| {row['fp32_max_abs_diff']:.2e} | {row['int8_max_abs_diff']:.2e} "
            f"| {entry['fp32_bytes']:,} | {entry['int8_bytes']:,} |"
        )
    path.with_suffix(".md").write_text("\n".join(table) + "\n")
    return bundle, path


if __name__ == "__main__":
    raise SystemExit(main())
