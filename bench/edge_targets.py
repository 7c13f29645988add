"""The edge library on microcontrollers and in float: a resource report per target, the float build's drift
against the double build, and the arm-linux build under qemu-arm against x86 (the EDGE.md section "Targets").

:func:`target_report` exports one model set of a bundle for each build of :data:`REPORT_BUILDS` (a target and
its real type), measures it (:func:`compile.edge_resources.measure_target`: flash, RAM, worst stack, no
allocator), counts the instructions of ``iot_score`` under qemu-arm for both real types, checks that the
arm-linux example program prints the same bytes as x86's, and compares the float build's features, scores and
decisions with the double build's on each table given (:func:`float_drift`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from bench.edge import write_samples
from bench.edge_peers import peer_rows, peers_markdown
from compile.edge import make
from compile.edge_resources import CROSS_HOST, cross_host_build, measure_target, qemu_instructions
from compile.edge_targets import TARGETS
from compile.errors import CompileError
from engine.bundle.edge import export_bundle_c
from engine.bundle.format import Bundle
from engine.data.loading import write_kaggle_csv
from engine.report.figures import pyplot, save_figure

__all__ = [
    "DECISIONS",
    "REPORT_BUILDS",
    "add_target_report",
    "example_output",
    "float_drift",
    "state_bytes",
    "target_report",
    "targets_markdown",
]

# Each microcontroller in the type its FPU runs (the M0+ has none: float halves its soft-float work).
REPORT_BUILDS = (("host", "double"), ("cortex-m0plus", "float"), ("cortex-m4f", "float"), ("cortex-m7", "double"))
INSTALL = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi gcc-arm-linux-gnueabihf qemu-user"
# x86-64 glibc without its FMA variants of exp: the results armhf's glibc gives (README: Edge targets)
GLIBC_WITHOUT_FMA = {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4"}
SCORE_COLUMNS = ("anomaly", "maintenance", "downtime", "remaining_life", "unsupervised")
# The decisions of the example program's output: a column, the threshold macro's task (None: the label column)
DECISIONS = {
    "anomaly": "anomaly_flag",
    "maintenance": "maintenance_required",
    "downtime": "downtime_risk",
    "failure_type": None,
    "unsupervised": "unsupervised",
}


def state_bytes(real: str) -> int:
    """sizeof(iot_state) of a build: 5 sensors of 9 reals, 2 reals, 5 counts, 3 int64 (8-byte aligned)."""
    size, count = (8, 8) if real == "double" else (4, 4)
    head = (5 * 9 + 2) * size + 5 * count
    return (head + 7) // 8 * 8 + 3 * 8


def example_output(
    program: Path, csv_path: Path, *, features: bool = False, runner: tuple[str, ...] = (), env: dict | None = None
) -> bytes:
    """The example program's stdout on ``csv_path`` (optionally under ``runner``, e.g. qemu-arm; with ``env``
    added to the environment)."""
    command = [*runner, str(program), *(["--features"] if features else [])]
    with csv_path.open("rb") as stdin:
        done = subprocess.run(command, stdin=stdin, capture_output=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise CompileError(f"{' '.join(command)} failed: {done.stderr.decode()[-1000:]}")
    return done.stdout


def _read(output: bytes) -> pa.Table:
    return pa_csv.read_csv(io.BytesIO(output))


def float_drift(double_dir: Path, float_dir: Path, csv_path: Path, thresholds: dict[str, float]) -> dict:
    """The float build against the double build on one CSV: max |diff| per feature and per score, and the
    decisions changed (probability >= threshold; the failure type; the detector's alarm)."""
    features = [
        _read(example_output(d / "iotengine_example", csv_path, features=True)) for d in (double_dir, float_dir)
    ]
    scores = [_read(example_output(d / "iotengine_example", csv_path)) for d in (double_dir, float_dir)]
    feature_diff = {}
    for name in features[0].column_names[3:]:
        a, b = (t.column(name).to_numpy(zero_copy_only=False).astype(np.float64) for t in features)
        both = np.isfinite(a) & np.isfinite(b)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            raise CompileError(f"{csv_path}: the float build's {name} is missing where the double build's is not")
        feature_diff[name] = float(np.max(np.abs(a[both] - b[both]), initial=0.0))
    score_diff, changed = {}, {}
    rows = scores[0].num_rows
    any_changed = np.zeros(rows, dtype=bool)
    for column in SCORE_COLUMNS:
        a, b = (t.column(column).to_numpy(zero_copy_only=False).astype(np.float64) for t in scores)
        score_diff[column] = float(np.nanmax(np.abs(a - b), initial=0.0))
    for column, task in DECISIONS.items():
        if task is None:
            a, b = (np.asarray(t.column(column).to_pylist()) for t in scores)
            differs = a != b
        else:
            a, b = (t.column(column).to_numpy(zero_copy_only=False).astype(np.float64) for t in scores)
            differs = (a >= thresholds[task]) != (b >= thresholds[task])
        changed[column] = int(differs.sum())
        any_changed |= differs
    worst = sorted(feature_diff.items(), key=lambda kv: -kv[1])[:5]
    return {
        "rows": rows,
        "feature_max_abs_diff": feature_diff,
        "worst_features": dict(worst),
        "score_max_abs_diff": score_diff,
        "decisions_changed": changed,
        "rows_with_equal_decisions": float(1.0 - any_changed.mean()) if rows else 1.0,
    }


def _thresholds(directory: Path) -> dict[str, float]:
    manifest = json.loads((directory / "MANIFEST.json").read_text())
    out = {
        task: (info["threshold"] if info["threshold"] is not None else 0.5) for task, info in manifest["tasks"].items()
    }
    unsupervised = manifest.get("unsupervised")
    out["unsupervised"] = float("inf") if unsupervised is None else float(unsupervised["threshold"])
    return out


def target_report(
    bundle: Bundle,
    folder: Path,
    tables: dict[str, pa.Table],
    *,
    models: str = "lightgbm",
    trees: str = "uint8",
    rows: int | None = 2_000,
    progress: Callable[[str], None] = print,
) -> dict:
    """The "Targets" part of the edge report (see the module's docstring), built in ``folder``; ``tables`` name
    the telemetry the float drift and the qemu check run on (their first ``rows`` rows; None: all)."""
    folder = Path(folder)
    builds, missing = {}, {}
    for target, real in REPORT_BUILDS:
        compiler = TARGETS[target].compiler
        if shutil.which(compiler) is None:
            missing[f"{target}/{real}"] = f"{compiler} is not installed ({INSTALL})"
            continue
        tree = export_bundle_c(bundle, folder / f"{target}-{real}", models=models, trees=trees, real=real,
                               target=target, progress=lambda _: None)  # fmt: skip
        builds[f"{target}/{real}"] = {**measure_target(tree.directory, target, tree.library_sources), "real": real,
                                      "state_bytes": state_bytes(real)}  # fmt: skip
        progress(f"  {target} ({real}): {builds[f'{target}/{real}']['flash_bytes']:,} bytes of flash")
    hosts, arm, instructions = {}, {}, {}
    first = next(iter(tables.values()))
    samples = write_samples(first.slice(0, 200), folder / "samples.bin")
    emulated = all(shutil.which(tool) for tool in (CROSS_HOST, "qemu-arm"))
    if not emulated:
        missing["arm-linux under qemu-arm"] = f"{CROSS_HOST} or qemu-arm is not installed ({INSTALL})"
    for real in ("double", "float"):
        tree = export_bundle_c(bundle, folder / f"x86-{real}", models=models, trees=trees, real=real,
                               progress=lambda _: None)  # fmt: skip
        make(tree.directory, "iotengine_example")
        hosts[real] = tree.directory
        if emulated:
            arm[real] = cross_host_build(tree.directory)
            instructions[real] = qemu_instructions(arm[real], samples)
            progress(f"  qemu-arm ({real}): {instructions[real]:,.0f} instructions per iot_score")
    samples.unlink()
    same_bytes, drift = {}, {}
    for name, table in tables.items():
        csv_path = write_kaggle_csv(table if rows is None else table.slice(0, rows), folder / f"{name}.csv")
        for real in arm:
            # x86's glibc picks an exp that uses FMA; armhf's exp is the one x86 takes without it
            x86 = example_output(hosts[real] / "iotengine_example", csv_path, env=GLIBC_WITHOUT_FMA)
            qemu = example_output(arm[real] / "iotengine_example", csv_path, runner=("qemu-arm",))
            same_bytes[f"{name}/{real}"] = x86 == qemu
        drift[name] = float_drift(hosts["double"], hosts["float"], csv_path, _thresholds(hosts["double"]))
        csv_path.unlink()
    return {
        "models": models,
        "trees": trees,
        "builds": builds,
        "not_measured": missing,
        "qemu_instructions_per_score": instructions,
        "arm_linux_same_bytes_as_x86": same_bytes,
        "float_drift": drift,
        "rows": rows,
    }


def _rows_described(rows: int | None) -> str:
    return "all rows" if rows is None else f"first {rows:,} rows"


def targets_markdown(report: dict) -> list[str]:
    """EDGE.md's "Targets" section."""
    lines = [
        "## Targets: flash, RAM, stack (gcc -Os, `export-c --target T --real R`)",
        "",
        f"The {report['models']} set, trees as {report['trees']}. Flash: text + data of a minimal firmware image "
        "(compile/c/mcu_image.c: iot_score and the state record functions, linked with --gc-sections; host: the "
        "library's objects). RAM: the image's data + bss (newlib's, none of the library's) and one `iot_state` "
        "per machine. Stack: the worst path of GCC's call graph (static frames only; libgcc and libm frames not "
        "counted).",
        "",
        "| target | real | flash | library text | RAM static | iot_state | stack iot_score | stack iot_score_many "
        "| allocator |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for build in report["builds"].values():
        lines.append(
            f"| {build['target']} | {build['real']} | {build['flash_bytes']:,} | {build['library']['text']:,} "
            f"| {build['ram_static_bytes']:,} | {build['state_bytes']} | {build['stack_iot_score']:,} "
            f"| {build['stack_iot_score_many']:,} | {', '.join(build['allocators']) or 'none'} |"
        )
    instructions = report["qemu_instructions_per_score"]
    lines += [f"| {name} | not measured: {why} | | | | | | | |" for name, why in report["not_measured"].items()]
    lines += [
        "",
        "Instructions per `iot_score` under qemu-arm (arm-linux-gnueabihf-gcc -O2, ARMv7-A Thumb-2 with VFPv3-D16, "
        "which has double precision: a lower bound for a Cortex-M4F double build): "
        + (", ".join(f"{real} {n:,.0f}" for real, n in instructions.items()) or "not measured")
        + ".",
        "",
        "The arm-linux example program under qemu-arm prints the same bytes as x86's (x86 with glibc's exp without "
        "FMA, which is armhf's; the features are the same bytes either way): "
        + (
            ", ".join(
                f"{name} {'yes' if same else 'NO'}" for name, same in report["arm_linux_same_bytes_as_x86"].items()
            )
            or "not measured"
        )
        + ".",
        "",
        f"### float against double (example program, {_rows_described(report['rows'])})",
        "",
        "| data | rows with equal decisions | decisions changed | max abs diff of scores | worst features |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, drift in report["float_drift"].items():
        changed = ", ".join(f"{k} {v}" for k, v in drift["decisions_changed"].items())
        scores = ", ".join(f"{k} {v:.1e}" for k, v in drift["score_max_abs_diff"].items())
        worst = ", ".join(f"{k} {v:.1e}" for k, v in drift["worst_features"].items())
        lines.append(f"| {name} | {drift['rows_with_equal_decisions']:.4%} | {changed} | {scores} | {worst} |")
    return lines


def add_target_report(
    bundle: Bundle,
    folder: Path,
    tables: dict[str, pa.Table],
    markdown: Path,
    *,
    progress: Callable[[str], None] = print,
) -> list[Path]:
    """:func:`target_report` into ``folder/targets`` with the peers beside it (:func:`bench.edge_peers.peer_rows`
    on the first table): ``folder/targets.json``, a chart ``edge_targets.png``, and the "Targets" section
    appended to ``markdown`` (EDGE.md)."""
    models = "lightgbm" if "lightgbm" in bundle.model_sets else "chosen"
    report = target_report(bundle, Path(folder) / "targets", tables, models=models,
                           trees="uint8" if models == "lightgbm" else "iot", progress=progress)  # fmt: skip
    report["peers"] = peer_rows(next(iter(tables.values())))
    json_path = Path(folder) / "targets.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    png = _targets_chart(report, Path(folder) / "edge_targets.png")
    text = markdown.read_text().rstrip("\n")
    section = [*targets_markdown(report), "", *peers_markdown(report["peers"]), "", f"![targets]({png.name})", ""]
    markdown.write_text(text + "\n\n" + "\n".join(section))
    return [json_path, png]


def _targets_chart(report: dict, path: Path) -> Path:
    builds = list(report["builds"].values())
    names = [f"{b['target']}\n{b['real']}" for b in builds]
    fig, (flash, stack) = pyplot().subplots(1, 2, figsize=(9, 3.4))
    flash.bar(names, [b["flash_bytes"] / 1024 for b in builds], color="#4c72b0")
    flash.set_ylabel("flash, KiB (-Os)")
    stack.bar(names, [b["stack_iot_score"] for b in builds], color="#dd8452")
    stack.axhline(2048, color="#999999", linestyle="--", linewidth=1)
    stack.set_ylabel("worst stack of iot_score, bytes")
    for ax in (flash, stack):
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"Edge library per target: the {report['models']} set ({report['trees']})")
    save_figure(fig, path)
    return path
