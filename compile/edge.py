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
    count_iot.c          iot_score over the first n samples: instructions per call under qemu-arm
    mcu_image.c          a minimal firmware image: flash and RAM on a microcontroller (make mcu_image.elf)
    fuzz_iot.c           libFuzzer harness over iot_score, iot_features and the CSV reader
    Makefile, CMakeLists.txt, MANIFEST.json
    library.json         a PlatformIO library of the same sources and flags
    zephyr/              a Zephyr module: module.yml, CMakeLists.txt, Kconfig (CONFIG_IOTENGINE)

Every file comes from compile/c/: copied as it is, or a template (``.in``) filled in by :mod:`compile.templates`.

No malloc, no OpenMP, no mutable globals (every table is ``static const``). The tree builds with
``cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -ffp-contract=off`` and with ``-Os``, with gcc and clang
(tests/compile/test_edge_build.py builds it all four ways).

Examples
--------
>>> tables = calendar_tables()
>>> tables.splitlines()[0][:45]
'static const iot_real hour_sin[24] = {0x0.0p+'
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from compile.edge_models import TREE_FORMS, model_file, model_source
from compile.edge_spec import EdgeSpec
from compile.edge_targets import REAL_WARNINGS, edge_target
from compile.errors import CompileError
from compile.templates import C_DIR, REALS, c_real, c_reals, fill
from kernels import calendar
from kernels.names import FEATURE_NAMES

__all__ = ["EDGE_CFLAGS", "EdgeTree", "calendar_tables", "export_c", "make"]

EDGE_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off")
THRESHOLD_MACROS = {
    "anomaly_flag": "IOT_THRESHOLD_ANOMALY",
    "maintenance_required": "IOT_THRESHOLD_MAINTENANCE",
    "downtime_risk": "IOT_THRESHOLD_DOWNTIME",
}
STATIC_FILES = (
    "iot_score.c",
    "iot_state_record.c",
    "iot_real.h",
    "iot_csv.c",
    "iot_csv.h",
    "main.c",
    "bench_iot.c",
    "count_iot.c",
    "iot_samples.h",
    "mcu_image.c",
    "fuzz_iot.c",
)


@dataclass(frozen=True)
class EdgeTree:
    """An exported source tree: where it is, its files, and what each task's model is."""

    directory: Path
    library_sources: tuple[str, ...]
    models: dict[str, dict]


def calendar_tables(real: str = "double") -> str:
    """The kernel's sin/cos tables as C hex-float literals (exact bits; the nearest floats for ``real="float"``)."""
    tables = (
        ("hour_sin", calendar.HOUR_SIN),
        ("hour_cos", calendar.HOUR_COS),
        ("dow_sin", calendar.DOW_SIN),
        ("dow_cos", calendar.DOW_COS),
    )
    return "".join(c_reals(name, values, real) for name, values in tables).rstrip("\n")


def _thresholds(spec: EdgeSpec, real: str) -> str:
    """The decision thresholds as literals of ``real``; a float build's is the smallest float not below the
    bundle's, so ``p >= threshold`` decides for a float p as the double comparison does."""
    thresholds = {model.task: model.threshold for model in spec.models}
    lines = []
    for task, macro in THRESHOLD_MACROS.items():
        value = 0.5 if thresholds.get(task) is None else float(thresholds[task])
        lines.append(f"#define {macro} {c_real(value, real, rounding='up')} /* {value!r} */")
    if spec.detector is None:
        lines.append("#define IOT_THRESHOLD_UNSUPERVISED ((IOT_REAL)INFINITY) /* no detector: never an alarm */")
    else:
        value = float(spec.detector.threshold)
        lines.append(f"#define IOT_THRESHOLD_UNSUPERVISED {c_real(value, real, rounding='up')} /* {value!r} */")
    return "\n".join(lines)


def _detector_prototypes(spec: EdgeSpec) -> str:
    if spec.detector is None:
        return ""
    return "".join(
        f"void iot_model_{model.task}(const iot_real *inputs, iot_real *out);\n"
        f"void iot_model_{model.task}_many(const iot_real *inputs, int n, iot_real *out);\n"
        for model in spec.detector.models
    )


def _c_strings(names) -> str:
    return ",\n".join(f'  "{name}"' for name in names)


def export_c(
    spec: EdgeSpec,
    out,
    *,
    trees: str | dict[str, str] = "iot",
    real: str = "double",
    target: str = "host",
    progress: Callable[[str], None] = print,
) -> EdgeTree:
    """Write the edge C source tree of ``spec``'s models into ``out`` (replacing the files there).

    Parameters
    ----------
    spec : EdgeSpec
    out : path
    trees : {"tl2cgen", "uint8", "iot"} or dict of task -> form
        The C form of tree models: tl2cgen's if-else code, uint8 tables (smallest; LightGBM only), or the code of
        iotengine's own generator (compile/tree_codegen.py; fastest); or one form per task (a task not named,
        and the detector's regressors, take "iot").
    real : {"double", "float"}
        iot_real, the type of sensors, features, states and scores. A float build keeps the models' own
        arithmetic in double (each model widens its float inputs exactly), and its decision thresholds are the
        smallest floats not below the bundle's.
    target : str
        A name of :data:`compile.edge_targets.TARGETS`: the compiler and flags the Makefile uses.
    """
    forms = dict(trees) if isinstance(trees, dict) else {}
    default_form = "iot" if isinstance(trees, dict) else trees
    for form in (default_form, *forms.values()):
        if form not in TREE_FORMS:
            raise CompileError(f"trees must be one of {TREE_FORMS}, not {form!r}")
    if real not in REALS:
        raise CompileError(f"real must be one of {REALS}, not {real!r}")
    machine = edge_target(target)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("iot_model_*.c"):
        old.unlink()
    tasks: dict[str, dict] = {}
    model_files = []
    class_indices: list[int] = []
    detector_models = spec.detector.models if spec.detector is not None else ()
    for model in (*spec.models, *detector_models):
        source = model_source(model, forms.get(model.task, default_form))
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
        MODEL_SUMMARY=f"set {spec.model_set!r}, trees as {default_form if not forms else forms}, iot_real {real}, "
        f"target {target}",
        REAL=real,
        REAL_IS_FLOAT=int(real == "float"),
        COUNT="uint32_t" if real == "float" else "int64_t",
        UTC_OFFSET_MINUTES=int(spec.utc_offset_minutes),
        THRESHOLDS=_thresholds(spec, real),
        HAS_UNSUPERVISED=int(spec.detector is not None),
    )
    (out / "iotengine.h").write_text(header)
    features = fill(
        "iot_features.c.in",
        CALENDAR_TABLES=calendar_tables(real),
        FEATURE_NAMES=_c_strings(FEATURE_NAMES),
        FAILURE_TYPE_NAMES=_c_strings(spec.failure_types),
    )
    (out / "iot_features.c").write_text(features)
    models_header = fill(
        "iot_models.h.in",
        FAILURE_CLASSES=len(class_indices),
        FAILURE_CLASS_INDEX=", ".join(map(str, class_indices)),
        UNSUPERVISED_CENTER=", ".join(c_real(v, real) for v in (spec.detector.center if spec.detector else [0.0] * 5)),
        UNSUPERVISED_SCALE=", ".join(c_real(v, real) for v in (spec.detector.scale if spec.detector else [1.0] * 5)),
        DETECTOR_PROTOTYPES=_detector_prototypes(spec),
    )
    (out / "iot_models.h").write_text(models_header)
    for name in STATIC_FILES:
        shutil.copyfile(C_DIR / name, out / name)
    library_sources = ("iot_features.c", "iot_score.c", "iot_state_record.c", *model_files)
    cross = machine.compiler.removesuffix("gcc")
    makefile = fill(
        "Makefile.in",
        TARGET=machine.name,
        TARGET_DESCRIPTION=machine.description,
        REAL=real,
        CC=machine.compiler,
        AR=f"{cross}ar" if cross else "ar",
        SIZE=f"{cross}size" if cross else "size",
        TARGET_FLAGS=" ".join(machine.flags),
        REAL_WARNINGS=" ".join(REAL_WARNINGS[real]),
        MODEL_BLOCK=machine.model_block,
        PIC="-fPIC" if machine.hosted else "",
        ALL="libiotengine.a libiotengine.so iotengine_example" if machine.hosted else "libiotengine.a",
        LIB_SOURCES=" ".join(library_sources),
    )
    (out / "Makefile").write_text(makefile)
    cmake = fill(
        "CMakeLists.txt.in",
        TARGET=machine.name,
        HOSTED="ON" if machine.hosted else "OFF",
        LIB_SOURCES=" ".join(library_sources),
        REAL_WARNINGS=" ".join(REAL_WARNINGS[real]),
        MODEL_BLOCK=machine.model_block,
    )
    (out / "CMakeLists.txt").write_text(cmake)
    _write_packages(out, spec, real, machine.model_block, library_sources)
    manifest = {
        "format": "iotengine.edge/1",
        "bundle": spec.source,
        "bundle_created": spec.created,
        "models": spec.model_set,
        "trees": trees if isinstance(trees, str) else dict(forms),
        "real": real,
        "target": machine.name,
        "utc_offset_minutes": int(spec.utc_offset_minutes),
        "status_column": spec.status_column,
        "failure_types": list(spec.failure_types),
        "tasks": tasks,
        "library_sources": list(library_sources),
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


def _write_packages(out: Path, spec: EdgeSpec, real: str, model_block: int, library_sources) -> None:
    """What firmware build systems take: a PlatformIO ``library.json`` and a Zephyr module (``zephyr/``), both
    building the library's sources with the flags the Makefile uses."""
    flags = REAL_WARNINGS[real]
    try:
        version = metadata.version("iotengine")
    except metadata.PackageNotFoundError:  # a source checkout that is not installed
        version = "0.0.0"
    name = re.sub(r"[^a-z0-9-]+", "-", spec.name.lower()).strip("-") or "bundle"
    library = fill(
        "library.json.in",
        NAME=name,
        VERSION=version,
        REAL=real,
        SRC_FILTER=", ".join(f'"+<{source}>"' for source in library_sources),
        MODEL_BLOCK=model_block,
        REAL_FLAGS="".join(f', "{flag}"' for flag in flags),
    )
    json.loads(library)  # a template that no longer gives JSON is a bug here, not in the user's build
    (out / "library.json").write_text(library)
    zephyr = out / "zephyr"
    zephyr.mkdir(exist_ok=True)
    for static in ("module.yml", "Kconfig"):
        shutil.copyfile(C_DIR / "zephyr" / static, zephyr / static)
    sources = " ".join(f"${{CMAKE_CURRENT_LIST_DIR}}/../{source}" for source in library_sources)
    cmake = fill("zephyr/CMakeLists.txt.in", ZEPHYR_SOURCES=sources, REAL_FLAGS="".join(f" {f}" for f in flags))
    (zephyr / "CMakeLists.txt").write_text(cmake)


def make(directory, *targets: str, compiler: str = "gcc", opt: str = "-O2", extra: tuple[str, ...] = ()) -> None:
    """Run the exported Makefile (``make CC=compiler CFLAGS_OPT=opt targets``); a failure raises CompileError."""
    command = ["make", "-C", str(directory), "-j2", f"CC={compiler}", f"CFLAGS_OPT={opt}", *extra, *targets]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
