"""The ``iotengine`` commands: each parses nothing (:mod:`engine.cli.parser` does), calls the library, and prints
what it wrote. An :class:`engine.errors.IotEngineError` or an OSError is one line on stderr and exit status 1."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from engine.cli.backfill_command import backfill_command
from engine.cli.parser import build_parser
from engine.cli.stream_command import stream_command
from engine.data.loading import load_telemetry_with_report, save_telemetry, write_kaggle_csv
from engine.errors import InvalidInputError, IotEngineError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``iotengine`` with ``argv`` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        _check_inputs(args)
        return COMMANDS[args.command](args)
    except IotEngineError as exc:
        print(f"iotengine: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"iotengine: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("iotengine: interrupted", file=sys.stderr)
        return 130


FOLDER_OUTPUTS = ("eda", "train", "export-c", "bench", "run")


def _check_inputs(args) -> None:
    """What every command needs before it does any work or creates its --out: input files that exist, a bundle
    that loads (hashes and manifest checked), and an --out folder that is not a file."""
    for option in ("data", "holdout", "initial_state", "initial_states"):
        path = getattr(args, option, None)
        if path is not None and not Path(path).exists():
            raise InvalidInputError(f"--{option.replace('_', '-')} {path}: no such file or folder")
    if getattr(args, "bundle", None) is not None:
        from engine.bundle.format import Bundle

        Bundle.load(args.bundle)
    out = getattr(args, "out", None)
    if args.command in FOLDER_OUTPUTS and out is not None and Path(out).exists() and not Path(out).is_dir():
        raise InvalidInputError(f"--out {out} is a file; {args.command} writes a folder there")


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
    run = train(
        args.data,
        args.out,
        folds=args.folds,
        seed=args.seed,
        fleet=args.fleet,
        holdout=args.holdout,
        utc_offset_minutes=args.utc_offset_minutes,
    )
    print(
        f"wrote {run.bundle.path} and {len(run.files)} reports to {args.out} in {time.perf_counter() - started:.0f} s"
    )
    return 0


def _cmd_compile(args) -> int:
    from engine.bundle.edge import build_edge
    from engine.bundle.iot import build_iot
    from engine.bundle.native import compile_bundle
    from engine.bundle.onnx import export_onnx

    started = time.perf_counter()
    compile_bundle(args.bundle)
    build_iot(args.bundle, isa=args.isa)
    export_onnx(args.bundle)
    bundle = build_edge(args.bundle, trees=args.trees)
    built = sum(len(tasks) for tasks in bundle.native_sets.values())
    own = sum(len(tasks) for tasks in bundle.manifest.get("iot", {}).values())
    exported = sum(len(tasks) for tasks in bundle.onnx_sets.values())
    print(
        f"compiled {built} native libraries with tl2cgen and {own} with iotengine's generator, exported {exported} "
        f"models to ONNX (fp32 + int8) and built the edge library {bundle.edge.library} (trees: {args.trees}) into "
        f"{bundle.path} in {time.perf_counter() - started:.0f} s"
    )
    return 0


def _cmd_export_c(args) -> int:
    import json

    from compile.edge import make
    from compile.edge_resources import measure_target
    from compile.edge_targets import edge_target
    from engine.bundle.edge import export_bundle_c
    from engine.bundle.flash_budget import export_for_budget

    started = time.perf_counter()
    target = edge_target(args.target)
    if args.data is not None and args.flash_budget is None:
        raise InvalidInputError("--data is for --flash-budget's refits; give --flash-budget BYTES too")
    if args.flash_budget is not None:
        if args.flash_budget <= 0:
            raise InvalidInputError(f"--flash-budget must be a positive number of bytes, not {args.flash_budget}")
        result = export_for_budget(args.bundle, args.out, budget=args.flash_budget, target=args.target,
                                   real=args.real, data=args.data, progress=print)  # fmt: skip
        for row in result.rows():
            print(
                f"  {row['task']}: {row['model']} ({row['form']}), {row['flash_bytes']:,} bytes, CV {row['score']} "
                f"{row['cv_score']:.4f} (full model {row['full_cv_score']:.4f}, given up {row['given_up']:+.4f})"
            )
        print(f"the image takes {result.resources['flash_bytes']:,} of {args.flash_budget:,} bytes on {args.target}")
        tree_dir, sources = Path(args.out), None
    else:
        tree = export_bundle_c(args.bundle, args.out, models=args.models, trees=args.trees, real=args.real,
                               target=args.target)  # fmt: skip
        tree_dir, sources = tree.directory, tree.library_sources
        print(f"wrote {len(list(tree_dir.iterdir()))} files to {tree_dir} (library: {' '.join(sources)})")
    if args.build:
        if sources is None:
            sources = tuple(json.loads((tree_dir / "MANIFEST.json").read_text())["library_sources"])
        # measured first: measure_target builds the library its own way (-Os, stack usage), then make builds
        # what the user asked for
        resources = measure_target(tree_dir, args.target, sources)
        (tree_dir / "RESOURCES.json").write_text(json.dumps(resources, indent=1) + "\n")
        compiler = args.cc or target.compiler
        programs = ("all", "iotengine_bench") if target.hosted else ("libiotengine.a", "mcu_image.elf")
        make(tree_dir, "clean", compiler=compiler)
        make(tree_dir, *programs, compiler=compiler)
        print(f"built {', '.join(programs)} with {compiler} -O2")
        print(
            f"{args.target} ({args.real}), -Os: {resources['flash_bytes']:,} bytes of flash, "
            f"{resources['ram_static_bytes']:,} bytes of static RAM, stack {resources['stack_iot_score']:,} bytes "
            f"(iot_score), allocator: {', '.join(resources['allocators']) or 'none'} (RESOURCES.json)"
        )
        if target.hosted:
            print(f"try: {tree_dir / 'iotengine_example'} < telemetry.csv")
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
    from engine.features.batch import write_features

    started = time.perf_counter()
    table, report = load_telemetry_with_report(args.data)
    print(report)
    dtype = "float32" if args.float32 else "float64"
    path = write_features(table, args.out, args.utc_offset_minutes, threads=args.threads, dtype=dtype)
    print(f"wrote 67 features of {table.num_rows:,} rows to {path} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_run(args) -> int:
    from engine.pipeline.run import run_pipeline

    started = time.perf_counter()
    report = run_pipeline(args.out, rows=args.rows, seed=args.seed, data=args.data, holdout=args.holdout)
    print(f"wrote {report} in {time.perf_counter() - started:.0f} s (details in {report.parent / 'run.log'})")
    return 0


COMMANDS = {
    "backfill": backfill_command,
    "generate": _cmd_generate,
    "eda": _cmd_eda,
    "features": _cmd_features,
    "train": _cmd_train,
    "compile": _cmd_compile,
    "export-c": _cmd_export_c,
    "score": _cmd_score,
    "bench": _cmd_bench,
    "stream": stream_command,
    "run": _cmd_run,
}
