"""The whole scoring path in C99: features, models, one small ABI (``iotengine.h``), for edge firmware.

:func:`export_c` writes a self-contained source tree from an :class:`compile.edge_spec.EdgeSpec` (a bundle's
models, built by :func:`engine.bundle.edge.edge_spec`)::

    iotengine.h          the ABI (compile/c/iotengine.h.in) with the bundle's UTC offset and decision thresholds
    iot_features.c       the feature kernel, a port of kernels/step.py, with the calendar tables written as hex
                         floats from kernels/calendar.py (the same bits as the Numba kernel)
    iot_score.c          iot_score: features, machine_status, the five task models, the unsupervised detector
                         (history, residuals, score), iot_scores
    iot_model_<task>.c   one translation unit per task and per detector regressor
                         (``iot_model_unsupervised_<sensor>.c``), defining only ``iot_model_<task>``
                         (:mod:`compile.edge_models`)
    iot_models.h         their prototypes and the failure-type classes of the model (internal)
    iot_csv.c, .h        a reader of Kaggle-layout CSV lines (no allocation)
    main.c               example: CSV on stdin, scores (or --features) on stdout
    bench_iot.c          timing of iot_features and iot_score over many samples
    fuzz_iot.c           libFuzzer harness over iot_score, iot_features and the CSV reader
    Makefile, CMakeLists.txt, MANIFEST.json

Every file comes from compile/c/: copied as it is, or a template (``.in``) filled in by :mod:`compile.templates`.

No malloc, no OpenMP, no mutable globals (every table is ``static const``). The tree builds with
``cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -ffp-contract=off`` and with ``-Os``, with gcc and clang
(tests/compile/test_edge_build.py builds it all four ways).

Examples
--------
>>> tables = calendar_tables()
>>> tables.splitlines()[0][:45]
'static const double hour_sin[24] = {0x0.0p+0,'
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compile.edge_models import TREE_FORMS, model_file, model_source
from compile.edge_spec import EdgeSpec
from compile.errors import CompileError
from compile.templates import C_DIR, c_double, c_doubles, fill
from kernels import calendar
from kernels.names import FEATURE_NAMES

__all__ = ["EDGE_CFLAGS", "EdgeTree", "calendar_tables", "export_c", "make"]

EDGE_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off")
THRESHOLD_MACROS = {
    "anomaly_flag": "IOT_THRESHOLD_ANOMALY",
    "maintenance_required": "IOT_THRESHOLD_MAINTENANCE",
    "downtime_risk": "IOT_THRESHOLD_DOWNTIME",
}
STATIC_FILES = ("iot_score.c", "iot_csv.c", "iot_csv.h", "main.c", "bench_iot.c", "fuzz_iot.c")


@dataclass(frozen=True)
class EdgeTree:
    """An exported source tree: where it is, its files, and what each task's model is."""

    directory: Path
    library_sources: tuple[str, ...]
    models: dict[str, dict]


def calendar_tables() -> str:
    """The kernel's sin/cos tables as C hex-float literals (exact bits)."""
    tables = (
        ("hour_sin", calendar.HOUR_SIN),
        ("hour_cos", calendar.HOUR_COS),
        ("dow_sin", calendar.DOW_SIN),
        ("dow_cos", calendar.DOW_COS),
    )
    return "".join(c_doubles(name, values) for name, values in tables).rstrip("\n")


def _thresholds(spec: EdgeSpec) -> str:
    thresholds = {model.task: model.threshold for model in spec.models}
    lines = []
    for task, macro in THRESHOLD_MACROS.items():
        value = 0.5 if thresholds.get(task) is None else float(thresholds[task])
        lines.append(f"#define {macro} {c_double(value)} /* {value!r} */")
    if spec.detector is None:
        lines.append("#define IOT_THRESHOLD_UNSUPERVISED INFINITY /* no detector: never an alarm */")
    else:
        value = float(spec.detector.threshold)
        lines.append(f"#define IOT_THRESHOLD_UNSUPERVISED {c_double(value)} /* {value!r} */")
    return "\n".join(lines)


def _detector_prototypes(spec: EdgeSpec) -> str:
    if spec.detector is None:
        return ""
    return "".join(
        f"void iot_model_{model.task}(const double *inputs, double *out);\n"
        f"void iot_model_{model.task}_many(const double *inputs, int n, double *out);\n"
        for model in spec.detector.models
    )


def _c_strings(names) -> str:
    return ",\n".join(f'  "{name}"' for name in names)


def export_c(
    spec: EdgeSpec,
    out,
    *,
    trees: str = "iot",
    progress: Callable[[str], None] = print,
) -> EdgeTree:
    """Write the edge C source tree of ``spec``'s models into ``out`` (replacing the files there).

    Parameters
    ----------
    spec : EdgeSpec
    out : path
    trees : {"tl2cgen", "uint8", "iot"}
        The C form of tree models: tl2cgen's if-else code, uint8 tables (smallest; LightGBM only), or the code of
        iotengine's own generator (compile/tree_codegen.py; fastest).
    """
    if trees not in TREE_FORMS:
        raise CompileError(f"trees must be one of {TREE_FORMS}, not {trees!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("iot_model_*.c"):
        old.unlink()
    tasks: dict[str, dict] = {}
    model_files = []
    class_indices: list[int] = []
    detector_models = spec.detector.models if spec.detector is not None else ()
    for model in (*spec.models, *detector_models):
        source = model_source(model, trees)
        out_count = source.n_outputs if model.kind == "multiclass" else 1
        name = f"iot_model_{model.task}.c"
        (out / name).write_text(model_file(model, source, out_count))
        model_files.append(name)
        tasks[model.task] = {
            "family": model.family,
            "form": source.described["form"],
            "trees": source.described.get("trees"),
            "out_count": out_count,
            "columns": None if model.columns is None else list(model.columns),
            "threshold": model.threshold,
        }
        if model.kind == "multiclass":
            indices = list(model.class_indices) if model.class_indices is not None else list(range(out_count))
            if len(indices) != out_count:
                raise CompileError(f"{model.task}: the model gives {out_count} classes, the bundle lists {indices}")
            class_indices = [int(i) for i in indices]
            tasks[model.task]["class_indices"] = class_indices
        progress(f"  edge {model.task}: {model.family} as {source.described['form']}")
    summary = ", ".join(f"{t} {i['family']}/{i['form']}" for t, i in tasks.items())
    header = fill(
        "iotengine.h.in",
        BUNDLE_NAME=spec.name,
        BUNDLE_CREATED=spec.created,
        FEATURE_SPEC=spec.feature_spec,
        MODEL_SUMMARY=f"set {spec.model_set!r}, trees as {trees}",
        UTC_OFFSET_MINUTES=int(spec.utc_offset_minutes),
        THRESHOLDS=_thresholds(spec),
        HAS_UNSUPERVISED=int(spec.detector is not None),
    )
    (out / "iotengine.h").write_text(header)
    features = fill(
        "iot_features.c.in",
        CALENDAR_TABLES=calendar_tables(),
        FEATURE_NAMES=_c_strings(FEATURE_NAMES),
        FAILURE_TYPE_NAMES=_c_strings(spec.failure_types),
    )
    (out / "iot_features.c").write_text(features)
    models_header = fill(
        "iot_models.h.in",
        FAILURE_CLASSES=len(class_indices),
        FAILURE_CLASS_INDEX=", ".join(map(str, class_indices)),
        UNSUPERVISED_CENTER=", ".join(c_double(v) for v in (spec.detector.center if spec.detector else [0.0] * 5)),
        UNSUPERVISED_SCALE=", ".join(c_double(v) for v in (spec.detector.scale if spec.detector else [1.0] * 5)),
        DETECTOR_PROTOTYPES=_detector_prototypes(spec),
    )
    (out / "iot_models.h").write_text(models_header)
    for name in STATIC_FILES:
        shutil.copyfile(C_DIR / name, out / name)
    library_sources = ("iot_features.c", "iot_score.c", *model_files)
    (out / "Makefile").write_text(fill("Makefile.in", LIB_SOURCES=" ".join(library_sources)))
    (out / "CMakeLists.txt").write_text(fill("CMakeLists.txt.in", LIB_SOURCES=" ".join(library_sources)))
    manifest = {
        "format": "iotengine.edge/1",
        "bundle": spec.source,
        "bundle_created": spec.created,
        "models": spec.model_set,
        "trees": trees,
        "utc_offset_minutes": int(spec.utc_offset_minutes),
        "status_column": spec.status_column,
        "failure_types": list(spec.failure_types),
        "tasks": tasks,
        "unsupervised": None
        if spec.detector is None
        else {
            "tasks": [model.task for model in spec.detector.models],
            "center": list(spec.detector.center),
            "scale": list(spec.detector.scale),
            "threshold": spec.detector.threshold,
        },
        "summary": summary,
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return EdgeTree(out, library_sources, tasks)


def make(directory, *targets: str, compiler: str = "gcc", opt: str = "-O2", extra: tuple[str, ...] = ()) -> None:
    """Run the exported Makefile (``make CC=compiler CFLAGS_OPT=opt targets``); a failure raises CompileError."""
    command = ["make", "-C", str(directory), "-j2", f"CC={compiler}", f"CFLAGS_OPT={opt}", *extra, *targets]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
