"""The edge library measured: sizes, C timings of ``iot_features`` / ``iot_score``, the Python paths beside them,
and the example program checked against ``bundle.predict``.

:func:`edge_report` exports a bundle's C tree (:func:`compile.edge.export_c`), builds it, and writes
``EDGE.md``, ``edge.json`` and ``edge_latency.png``. It is the C stage of ``iotengine run``;
``scripts/measure_edge.py`` runs the same measurements at full size (1M samples, ``-Os`` sizes, every model set).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from compile.edge import EDGE_CFLAGS
from compile.errors import CompileError
from engine.bundle.format import Bundle
from engine.data.loading import load_telemetry, write_kaggle_csv
from engine.data.schema import SENSORS
from engine.models.autoencoder import SCORE_NAME
from engine.report.figures import pyplot, save_figure

__all__ = [
    "SAMPLE_DTYPE",
    "build_edge_sources",
    "c_bench",
    "edge_report",
    "object_sizes",
    "python_paths",
    "write_samples",
]

# bench_iot.c's record
SAMPLE_DTYPE = np.dtype(
    [("machine", "<i8"), ("timestamp", "<i8"), ("sensors", "<f8", (5,)), ("status", "<i4"), ("pad", "<i4")]
)
assert SAMPLE_DTYPE.itemsize == 64


def write_samples(table: pa.Table, path: Path) -> Path:
    """Telemetry as bench_iot.c's binary records (machines numbered 0..m-1 in id order)."""
    table = load_telemetry(table)
    _, machine = np.unique(table.column("machine_id").to_numpy(), return_inverse=True)
    records = np.zeros(table.num_rows, dtype=SAMPLE_DTYPE)
    records["machine"] = machine
    records["timestamp"] = table.column("timestamp").cast(pa.int64()).to_numpy()
    for s, name in enumerate(SENSORS):
        records["sensors"][:, s] = table.column(name).to_numpy()
    records["status"] = table.column("machine_status").to_numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.array([table.num_rows], dtype="<i8").tofile(f)
        records.tofile(f)
    return path


def c_bench(directory: Path, samples: Path, min_samples: int) -> dict:
    """Run the built ``iotengine_bench`` and return its JSON record."""
    done = subprocess.run(
        [str(directory / "iotengine_bench"), str(samples), str(min_samples)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise CompileError(f"iotengine_bench failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout)


_SIZE_LINE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-f]+\s+(\S+)", re.M)


def object_sizes(directory: Path, files: list[str]) -> dict[str, dict[str, int]]:
    """text/data/bss of object files or archives (binutils ``size``), by file name."""
    done = subprocess.run(["size", *files], cwd=directory, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"size failed: {done.stderr}")
    out: dict[str, dict[str, int]] = {}
    for text, data, bss, name in _SIZE_LINE.findall(done.stdout):
        entry = out.setdefault(name, {"text": 0, "data": 0, "bss": 0})
        entry["text"] += int(text)
        entry["data"] += int(data)
        entry["bss"] += int(bss)
    return out


def library_sizes(directory: Path, library_sources: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Per object of the library, and ``total`` (the sum, which is what libiotengine.a links in)."""
    objects = [Path(name).with_suffix(".o").name for name in library_sources]
    sizes = object_sizes(directory, objects)
    sizes["total"] = {key: sum(sizes[o][key] for o in objects) for key in ("text", "data", "bss")}
    return sizes


def detector_sizes_os(directory: Path) -> dict[str, dict[str, int]]:
    """The unsupervised detector's five regressor objects built with gcc -Os (the library's flags otherwise), by
    object, and ``total``; empty when the library has no detector."""
    sources = sorted(p.name for p in Path(directory).glob("iot_model_unsupervised_*.c"))
    if not sources:
        return {}
    flags = [flag if flag != "-O2" else "-Os" for flag in EDGE_CFLAGS]
    with tempfile.TemporaryDirectory() as work:
        objects = []
        for name in sources:
            target = Path(work) / Path(name).with_suffix(".o").name
            done = subprocess.run(["gcc", *flags, "-c", name, "-o", str(target)], cwd=directory, capture_output=True,
                                  text=True)  # fmt: skip
            if done.returncode != 0:
                raise CompileError(f"gcc -Os {name} failed:\n{done.stderr[-2000:]}")
            objects.append(target.name)
        sizes = object_sizes(Path(work), objects)
    sizes["total"] = {key: sum(sizes[o][key] for o in objects) for key in ("text", "data", "bss")}
    return sizes


def python_paths(bundle: Bundle, table: pa.Table, samples: int, budget_s: float = 0.5) -> dict[str, float]:
    """Median ns per sample of the Python ways to score a stream: one call per sample on up to the first
    ``samples`` rows (each of 3 passes stops after ``budget_s`` seconds, and at least 64 samples), micro-batches on
    up to ``20 * samples`` rows."""
    from engine.features.stream import FeatureStream
    from engine.stream.scorer import StreamScorer

    table = load_telemetry(table).slice(0, 20 * samples)
    all_ids = table.column("machine_id").to_numpy()
    all_stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    all_values = np.column_stack([table.column(name).to_numpy() for name in SENSORS])
    all_statuses = table.column("machine_status").to_numpy()
    ids, stamps, values, statuses = (a[:samples] for a in (all_ids, all_stamps, all_values, all_statuses))
    budget_ns = budget_s * 1e9

    def per_sample(make_call) -> float:
        """``make_call()`` gives a function of the sample index; passes of 64 samples until the budget is spent."""
        times = []
        for _ in range(3):
            call = make_call()
            done = 0
            started = time.perf_counter_ns()
            while done < len(ids) and (done == 0 or time.perf_counter_ns() - started < budget_ns):
                for i in range(done, min(done + 64, len(ids))):
                    call(i)
                done = min(done + 64, len(ids))
            times.append((time.perf_counter_ns() - started) / done)
        return float(np.median(times))

    def stream_update():
        stream = FeatureStream()
        return lambda i: stream.update(int(ids[i]), int(stamps[i]), values[i])

    def scorer_score(backend):
        def make_call():
            scorer = StreamScorer(bundle, backend=backend)
            return lambda i: scorer.score(int(ids[i]), int(stamps[i]), values[i], int(statuses[i]))

        return make_call

    def score_batch() -> float:
        times = []
        for _ in range(3):
            scorer = StreamScorer(bundle)
            started = time.perf_counter_ns()
            scorer.score_batch(all_ids, all_stamps, all_values, all_statuses)
            times.append((time.perf_counter_ns() - started) / len(all_ids))
        return float(np.median(times))

    return {
        "FeatureStream.update (Numba, per sample)": per_sample(stream_update),
        "StreamScorer.score, backend c (per sample)": per_sample(scorer_score("c")),
        "StreamScorer.score_batch, backend c (one batch)": score_batch(),
        "StreamScorer.score, backend python (per sample)": per_sample(scorer_score("python")),
    }


def example_check(bundle: Bundle, directory: Path, table: pa.Table, folder: Path) -> tuple[Path, float]:
    """Run the example program on telemetry as Kaggle CSV; its scores' max abs diff from ``bundle.predict``."""
    csv_path = write_kaggle_csv(table, folder / "example_input.csv")
    with csv_path.open() as stdin:
        done = subprocess.run([str(directory / "iotengine_example")], stdin=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"iotengine_example failed: {done.stderr[-1000:]}")
    out_path = folder / "example_scores.csv"
    out_path.write_text(done.stdout)
    scores = pa_csv.read_csv(io.BytesIO(done.stdout.encode()))
    expected = bundle.predict(table)
    diff = 0.0
    for column, task in (
        ("anomaly", "anomaly_flag"),
        ("maintenance", "maintenance_required"),
        ("downtime", "downtime_risk"),
        ("remaining_life", "predicted_remaining_life"),
    ):
        diff = max(diff, float(np.max(np.abs(scores.column(column).to_numpy() - expected[task]))))
    proba = np.column_stack([scores.column(c).to_numpy() for c in scores.column_names if c.startswith("p_")])
    diff = max(diff, float(np.max(np.abs(proba - expected["failure_type_proba"]))))
    if SCORE_NAME in expected:  # the unsupervised detector's score (NaN in a library without it)
        got = scores.column("unsupervised").to_numpy(zero_copy_only=False)
        diff = max(diff, float(np.nanmax(np.abs(got - expected[SCORE_NAME]))))
    return out_path, diff


def build_edge_sources(bundle_path, folder: Path, *, progress: Callable[[str], None] = print) -> Bundle:
    """The first half of :func:`edge_report`: export and build the C library (with the example program and the
    benchmark) into ``folder/src`` and into the bundle; returns the bundle reloaded."""
    from engine.bundle.edge import build_edge

    return build_edge(bundle_path, directory=folder / "src", targets=("all", "iotengine_bench"), progress=progress)


def edge_report(
    bundle_path,
    folder: Path,
    fleet: pa.Table,
    kaggle: pa.Table,
    *,
    min_samples: int = 200_000,
    python_samples: int = 2_000,
    progress: Callable[[str], None] = print,
    built: bool = False,
) -> list[Path]:
    """Export and build the chosen models' C library into ``folder/src`` (and into the bundle, which
    :class:`engine.stream.scorer.StreamScorer` loads it from), check it and time it. With ``built``,
    :func:`build_edge_sources` has already built it there."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "src"
    bundle = Bundle.load(bundle_path) if built else build_edge_sources(bundle_path, folder, progress=progress)
    sizes = library_sizes(source, bundle.edge.library_sources)
    detector_os = detector_sizes_os(source)
    example_path, example_diff = example_check(bundle, source, kaggle.slice(0, 2_000), folder)
    samples = write_samples(fleet, folder / "samples.bin")
    timing = c_bench(source, samples, min_samples)
    samples.unlink()
    python = python_paths(bundle, fleet, python_samples)
    document = {
        "models": bundle.edge.tasks,
        "sizes_O2": sizes,
        "unsupervised_sizes_Os": detector_os,
        "c_bench": timing,
        "python_paths_ns": python,
        "example_max_abs_diff": example_diff,
    }
    json_path = folder / "edge.json"
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    png = _latency_chart(timing, folder / "edge_latency.png")
    md = folder / "EDGE.md"
    md.write_text(_markdown(document, source.relative_to(folder), example_path.name))
    return [md, json_path, png, example_path]


def _markdown(document: dict, source: Path, example_name: str) -> str:
    timing = document["c_bench"]
    lines = [
        "# The C edge library",
        "",
        f"Sources: [{source}/]({source}/) (`iotengine.h` is the ABI; `make` builds `libiotengine.a`, "
        "`libiotengine.so`, `iotengine_example`).",
        "",
        f"- `iot_state`: {timing['state_bytes']} bytes per machine; no allocation, no mutable globals.",
        f"- Example program on 2,000 kaggle rows ([{example_name}]({example_name})): max abs diff from "
        f"`bundle.predict` {document['example_max_abs_diff']:.2e}.",
        "",
        "## Time per sample, C (gcc -O2)",
        "",
        f"`iotengine_bench`, {timing['samples']:,} samples of {timing['machines']} machines (fleet data replayed); "
        "medians over blocks of 1,000 calls.",
        "",
        "| call | median ns | p99 ns |",
        "| --- | --- | --- |",
        f"| iot_features (67 features) | {timing['features_ns_median']:,.0f} | {timing['features_ns_p99']:,.0f} |",
        f"| iot_score (features + 5 tasks + detector) | {timing['score_ns_median']:,.0f} "
        f"| {timing['score_ns_p99']:,.0f} |",
        f"| iot_score, one clock per call | {timing['score_call_ns_median']:,.0f} "
        f"| {timing['score_call_ns_p99']:,.0f} |",
        f"| iot_score_many, micro-batches of 256 | {timing['score_many_ns_median']:,.0f} "
        f"| {timing['score_many_ns_p99']:,.0f} |",
        *(f"| model {task} alone | {ns:,.0f} | |" for task, ns in timing["tasks_ns_median"].items()),
        *(
            [f"| unsupervised detector alone (5 regressors, residuals) | {timing['unsupervised_ns_median']:,.0f} | |"]
            if timing.get("unsupervised_ns_median") is not None
            else []
        ),
        "",
        "## Beside the Python paths",
        "",
        "| path | median ns per sample |",
        "| --- | --- |",
        *(f"| {name} | {ns:,.0f} |" for name, ns in document["python_paths_ns"].items()),
        "",
        "## Size (gcc -O2 objects; `size`)",
        "",
        "| object | model | text | data | bss |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, entry in document["sizes_O2"].items():
        task = name.removeprefix("iot_model_").removesuffix(".o")
        model = document["models"].get(task)
        described = f"{model['family']} ({model['form']})" if model else ""
        lines.append(f"| {name} | {described} | {entry['text']:,} | {entry['data']:,} | {entry['bss']:,} |")
    detector = document.get("unsupervised_sizes_Os") or {}
    if detector:
        total = detector["total"]["text"] + detector["total"]["data"]
        lines += [
            "",
            "## The unsupervised detector's regressors (gcc -Os objects; `size`)",
            "",
            f"Together {total:,} bytes of code and constants (text + data); the goal is at most 65,536.",
            "",
            "| object | text | data | bss |",
            "| --- | --- | --- | --- |",
            *(f"| {name} | {e['text']:,} | {e['data']:,} | {e['bss']:,} |" for name, e in detector.items()),
        ]
    lines += ["", "![latency](edge_latency.png)", ""]
    return "\n".join(lines)


def _latency_chart(timing: dict, path: Path) -> Path:
    detector = [] if timing.get("unsupervised_ns_median") is None else ["unsupervised"]
    names = ["iot_features", *timing["tasks_ns_median"], *detector, "iot_score", "iot_score_many"]
    values = [
        timing["features_ns_median"],
        *timing["tasks_ns_median"].values(),
        *([timing["unsupervised_ns_median"]] if detector else []),
        timing["score_ns_median"],
        timing["score_many_ns_median"],
    ]
    colors = ["#4c72b0"] + ["#999999"] * (len(names) - 3) + ["#dd8452", "#55a868"]
    fig, ax = pyplot().subplots(figsize=(8, 3.6))
    ax.barh(names[::-1], values[::-1], color=colors[::-1])
    ax.set_xlabel("ns per sample (median, C, gcc -O2)")
    ax.set_title("Edge library: time per sample")
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
    save_figure(fig, path)
    return path
