"""The whole scoring path in C99: features, models, one small ABI (``iotengine.h``), for edge firmware.

:func:`export_c` writes a self-contained source tree from a bundle::

    iotengine.h          the ABI (compile/c/iotengine.h.in) with the bundle's decision thresholds
    iot_features.c       the feature kernel, a port of kernels/step.py, with the calendar tables written as hex
                         floats from kernels/calendar.py (the same bits as the Numba kernel)
    iot_score.c          iot_score: features, machine_status, the five task models, iot_scores
    iot_model_<task>.c   one translation unit per task, defining only ``iot_model_<task>``: tl2cgen's code of a
                         tree model (or the uint8 tables of compile/uint8_trees.py), or a linear / naive Bayes
                         model with its imputer and scaler, following engine/models/model_files.py's formulas
    iot_models.h         their prototypes (internal)
    iot_csv.c, .h        a reader of Kaggle-layout CSV lines (no allocation)
    main.c               example: CSV on stdin, scores (or --features) on stdout
    bench_iot.c          timing of iot_features and iot_score over many samples
    fuzz_iot.c           libFuzzer harness over iot_score, iot_features and the CSV reader
    Makefile, CMakeLists.txt, MANIFEST.json

No malloc, no OpenMP, no mutable globals (every table is ``static const``). The tree builds with
``cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -ffp-contract=off`` and with ``-Os``, with gcc and clang
(tests/test_edge.py builds it all four ways).

Examples
--------
>>> tables = calendar_tables()
>>> tables.splitlines()[0][:45]
'static const double hour_sin[24] = {0x0.0p+0,'
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from compile.errors import CompileError
from compile.native import _PREDICT, _UNIT_CALL, generate_sources, treelite_model
from compile.uint8_trees import uint8_source
from engine.bundle.format import Bundle
from engine.data.schema import FAILURE_TYPES
from engine.models.tasks import INPUT_COLUMNS, STATUS_COLUMN, TASK_BY_NAME, TASKS
from engine.models.zoo import TREE_FAMILIES
from kernels import calendar
from kernels.names import FEATURE_NAMES

__all__ = ["C_DIR", "EDGE_CFLAGS", "EdgeTree", "calendar_tables", "export_c", "make"]

C_DIR = Path(__file__).resolve().parent / "c"
EDGE_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off")
THRESHOLD_MACROS = {
    "anomaly_flag": "IOT_THRESHOLD_ANOMALY",
    "maintenance_required": "IOT_THRESHOLD_MAINTENANCE",
    "downtime_risk": "IOT_THRESHOLD_DOWNTIME",
}
SCORE_FIELDS = {
    "anomaly_flag": "anomaly",
    "maintenance_required": "maintenance",
    "downtime_risk": "downtime",
    "predicted_remaining_life": "remaining_life",
}
STATIC_FILES = ("iot_csv.c", "iot_csv.h", "main.c", "bench_iot.c", "fuzz_iot.c")
TREE_FORMS = ("tl2cgen", "uint8")


@dataclass(frozen=True)
class EdgeTree:
    """An exported source tree: where it is, its files, and what each task's model is."""

    directory: Path
    library_sources: tuple[str, ...]
    models: dict[str, dict]


def _hex(value: float) -> str:
    return float(value).hex()


def calendar_tables() -> str:
    """The kernel's sin/cos tables as C hex-float literals (exact bits)."""
    lines = []
    for name, values in (
        ("hour_sin", calendar.HOUR_SIN),
        ("hour_cos", calendar.HOUR_COS),
        ("dow_sin", calendar.DOW_SIN),
        ("dow_cos", calendar.DOW_COS),
    ):
        lines.append(f"static const double {name}[{len(values)}] = {{{', '.join(_hex(v) for v in values)}}};")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# tl2cgen's code of one model as one translation unit with a single external symbol

_UNIT_DEFINITION = re.compile(r"^void (predict_unit\d+)\(", re.M)
_POSTPROCESS = re.compile(r"^void postprocess\(double\* result\) \{\n(?P<body>.*?)^\}\n", re.S | re.M)
_FUNCTION = re.compile(r"^(static )?void (\w+)\(.*?^\}\n", re.S | re.M)
_STATIC_HELPER = re.compile(r"^static [^\n]*\(.*?^\}\n", re.S | re.M)  # e.g. postprocess_impl (softmax)


def _without_unused_tmp(function: str) -> str:
    # tl2cgen declares `unsigned int tmp;` in every function but uses it only for categorical splits.
    if function.count("tmp") == 1:
        return function.replace("  unsigned int tmp;\n", "")
    return function


def _tl2cgen_row_code(directory: Path, n_outputs: int, n_features: int) -> str:
    """tl2cgen's generated files (``generate_sources``) as static functions: ``model_predict`` (one row) and
    ``model_block`` (up to IOT_MODEL_BLOCK rows, unit-major: each unit of trees runs over every row while its code
    is in the instruction cache)."""
    header = (directory / "header.h").read_text()
    union_end = header.index("};", header.index("union Entry")) + 2
    macros = header[header.index("#if defined(__clang__)") : union_end]
    units = []
    for path in sorted(directory.glob("tu*.c"), key=lambda p: int(p.stem[2:])):
        text = path.read_text().replace('#include "header.h"\n', "")
        text = _UNIT_DEFINITION.sub(r"static void \1(", text)
        # tl2cgen checks an unsigned category `tmp >= 0`, always true, which -Wextra rejects.
        text = text.replace("(tmp >= 0 && tmp < ", "(tmp < ")
        units.append("\n".join(_without_unused_tmp(f.group(0)) for f in _FUNCTION.finditer(text)))
    main = (directory / "main.c").read_text()
    predict = _PREDICT.search(main)  # the shapes of tl2cgen's main.c that compile/native.py knows
    postprocess = _POSTPROCESS.search(main)
    if predict is None or postprocess is None:
        raise CompileError("tl2cgen's main.c has no predict()/postprocess() of the expected form")
    body = predict.group("body").replace("  unsigned int tmp;\n", "")
    calls = list(_UNIT_CALL.finditer(body))
    if not calls or body[: calls[0].start()].strip():
        raise CompileError("tl2cgen's predict() does not start with its unit calls as expected")
    names = [f"predict_unit{call.group(1)}" for call in calls]
    direct_calls = body[calls[0].start() : calls[-1].end()]
    finish = body[calls[-1].end() :]  # averaging of forests, base scores, the output transform
    prototypes = "".join(
        f"static void {name}(union Entry* restrict data, double* restrict result);\n" for name in names
    )
    return (
        "#include <float.h>\n#include <math.h>\n#include <stdint.h>\n\n"
        f"{macros}\n\n#define N_OUTPUTS {n_outputs}\n#define MODEL_FEATURES {n_features}\n"
        f"#define N_UNITS {len(names)}\n\n"
        f"{prototypes}\n"
        + "\n".join(units)
        + "\n"
        + "".join(helper.group(0) for helper in _STATIC_HELPER.finditer(main))
        + "\nstatic void postprocess(double* result) {\n"
        + postprocess.group("body")
        + "  (void)result;\n}\n\n"
        "static void finish_row(double* result, int pred_margin) {\n"
        f"{finish}\n  (void)pred_margin;\n}}\n\n"
        "/* tl2cgen's predict(): every unit adds its trees' leaves into result, then averaging, base scores and\n"
        " * the output transform. */\n"
        "static void model_predict(union Entry* data, int pred_margin, double* result) {\n"
        "  int k;\n  for (k = 0; k < N_OUTPUTS; ++k) result[k] = 0.0;\n"
        f"{direct_calls}\n  finish_row(result, pred_margin);\n}}\n\n"
        "static void (*const units[N_UNITS])(union Entry*, double*) = {" + ", ".join(names) + "};\n\n"
        "/* The same sums for m rows, unit by unit: the leaves of each row are added in the same order. */\n"
        "static void model_block(union Entry* data, int m, int pred_margin, double* result) {\n"
        "  int u, r, k;\n"
        "  for (k = 0; k < m * N_OUTPUTS; ++k) result[k] = 0.0;\n"
        "  for (u = 0; u < N_UNITS; ++u) {\n"
        "    for (r = 0; r < m; ++r) units[u](data + r * MODEL_FEATURES, result + r * N_OUTPUTS);\n"
        "  }\n"
        "  for (r = 0; r < m; ++r) finish_row(result + r * N_OUTPUTS, pred_margin);\n"
        "}\n"
    )


def _tree_model_source(bundle: Bundle, task: str, entry: dict, trees: str) -> tuple[str, dict]:
    """C of a tree model's ``model_predict``-based wrapper body, and what the manifest records about it."""
    data = bundle.verified_bytes(entry["file"])
    kind = TASK_BY_NAME[task].kind
    family = entry["family"]
    if trees == "uint8":
        if family != "lightgbm":
            raise CompileError(
                f"{task}: the uint8 tree form exists for LightGBM models; the chosen model is {family} "
                "(export with --models lightgbm)"
            )
        booster = lgb.Booster(model_str=data.decode())
        source = uint8_source(booster, row_function="model_row")
        n_outputs = booster.num_model_per_iteration()
        code = source + "\n#define MODEL_OUTPUTS N_OUTPUTS\n"
        call = "model_row(x, result);"
        described = {"form": "uint8", "trees": booster.num_trees()}
    else:
        model = treelite_model(data, family)
        round_float32 = family in ("random_forest", "extra_trees")
        link_in_c = family == "hist_gradient_boosting"
        with tempfile.TemporaryDirectory() as work:
            sources = generate_sources(model, Path(work) / "src", round_float32=round_float32)
            n_outputs = _tl2cgen_outputs(sources.directory)
            code = _tl2cgen_row_code(sources.directory, n_outputs, int(model.num_feature))
        # scikit-learn's forests compare float32(x) with their thresholds (engine/models/model_files.py)
        load = "(double)(float)x[j]" if round_float32 else "x[j]"
        link = ""
        if link_in_c:  # scikit-learn's link applied to the margin, as engine/models/model_files.py does
            if kind == "binary":
                link = "  result[0] = 1.0 / (1.0 + exp(-result[0]));\n"
            elif kind == "multiclass":
                link = "  softmax(result, MODEL_OUTPUTS);\n"
                code += _SOFTMAX
        code += (
            f"\n#define MODEL_OUTPUTS N_OUTPUTS\n#define MODEL_BLOCK 1\n#define MODEL_MARGIN {1 if link_in_c else 0}\n"
            "static void load_row(const double *x, union Entry *data) {\n"
            f"  int j;\n  for (j = 0; j < MODEL_FEATURES; ++j) data[j].fvalue = {load};\n}}\n"
            f"static void link_row(double *result) {{\n{link}  (void)result;\n}}\n"
        )
        call = (
            "{\n    union Entry data[MODEL_FEATURES];\n    load_row(x, data);\n"
            "    model_predict(data, MODEL_MARGIN, result);\n    link_row(result);\n  }"
        )
        described = {"form": "tl2cgen", "trees": int(model.num_tree), "round_float32": round_float32}
    shape = _shape_outputs(kind, n_outputs)
    return code, {"call": call, "shape": shape, "n_outputs": n_outputs, **described}


def _tl2cgen_outputs(directory: Path) -> int:
    main = (directory / "main.c").read_text()
    found = re.search(r"static const int32_t num_class\[\] = \{\s*(\d+),", main)
    if found is None:
        raise CompileError("tl2cgen's main.c does not state its number of classes")
    return int(found.group(1))


_SOFTMAX = r"""
/* scipy.special.softmax: exp(x - max(x)) / sum, the sum in order. */
static void softmax(double *y, int n) {
  double top = y[0], sum = 0.0;
  int k;
  for (k = 1; k < n; ++k) if (y[k] > top) top = y[k];
  for (k = 0; k < n; ++k) y[k] = exp(y[k] - top);
  for (k = 0; k < n; ++k) sum += y[k];
  for (k = 0; k < n; ++k) y[k] = y[k] / sum;
}
"""


def _shape_outputs(kind: str, n_outputs: int) -> str:
    """C that copies ``result`` to ``out`` in engine/models/model_files.py's convention."""
    if kind == "multiclass":
        return "  {\n    int k;\n    for (k = 0; k < MODEL_OUTPUTS; ++k) out[k] = result[k];\n  }"
    if kind == "binary" and n_outputs == 2:
        return "  out[0] = result[1];  /* forests give both class probabilities */"
    return "  out[0] = result[0];"


# ------------------------------------------------------------------------------------------------------------
# linear and naive Bayes models: engine/models/model_files.py's TabularPredictor in C

_PAIRWISE_SUM = r"""
/* numpy's sum of one row (np.add.reduce): the first element, plus the pairwise sum of the rest (8 partial
 * sums for up to 128 values), so the bits are numpy's. */
static double numpy_row_sum(const double *a, int n) {
  double r[8], res;
  int i, m = n - 1;
  const double *b = a + 1;
  if (n == 0) return 0.0;
  if (m < 8) {
    res = 0.0;
    for (i = 0; i < m; ++i) res += b[i];
    return a[0] + res;
  }
  for (i = 0; i < 8; ++i) r[i] = b[i];
  for (i = 8; i < m - (m % 8); i += 8) {
    int k;
    for (k = 0; k < 8; ++k) r[k] += b[i + k];
  }
  res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
  for (; i < m; ++i) res += b[i];
  return a[0] + res;
}
"""


def _c_doubles(name: str, values) -> str:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return f"static const double {name}[{values.size}] = {{{', '.join(_hex(v) for v in values)}}};\n"


def _tabular_model_source(bundle: Bundle, task: str, entry: dict) -> tuple[str, dict]:
    document = json.loads(bundle.verified_bytes(entry["file"]))
    kind = TASK_BY_NAME[task].kind
    family = document["family"]
    n_inputs = len(INPUT_COLUMNS) if entry.get("columns") is None else len(entry["columns"])
    if family == "mean":
        code = f"#define MODEL_OUTPUTS 1\nstatic const double constant = {_hex(document['constant'])};\n"
        return code, {
            "call": "(void)x;\n  result[0] = constant;",
            "shape": "  out[0] = result[0];",
            "n_outputs": 1,
            "form": "mean",
        }
    status = int(document["status_column"])
    n_z = n_inputs - 1 + 3
    medians = np.asarray(document["impute_medians"])
    if medians.size != n_z:
        raise CompileError(f"{task}: {medians.size} imputer medians for {n_z} inputs")
    code = [
        "#include <math.h>\n\n",
        f"#define N_Z {n_z}\n#define STATUS_AT {status}\n#define N_MODEL_INPUTS {n_inputs}\n",
        _c_doubles("medians", medians),
    ]
    prepare = [
        "  double z[N_Z];",
        "  int j, c, k = 0;",
        "  /* engine.models.zoo.expand_status: the inputs without machine_status, then status == 0, 1, 2 */",
        "  for (j = 0; j < N_MODEL_INPUTS; ++j) if (j != STATUS_AT) z[k++] = x[j];",
        "  for (c = 0; c < 3; ++c) z[k++] = x[STATUS_AT] == (double)c ? 1.0 : 0.0;",
        "  for (j = 0; j < N_Z; ++j) if (isnan(z[j])) z[j] = medians[j];",
    ]
    if "scale_mean" in document:
        code += [_c_doubles("scale_mean", document["scale_mean"]), _c_doubles("scale_scale", document["scale_scale"])]
        prepare.append("  for (j = 0; j < N_Z; ++j) z[j] = (z[j] - scale_mean[j]) / scale_scale[j];")
    if family == "gaussian_nb":
        theta = np.asarray(document["theta"])
        var = np.asarray(document["var"])
        n_classes = theta.shape[0]
        # The per-class constants, computed with the same numpy expressions as TabularPredictor.
        norm = np.array([-0.5 * np.sum(np.log(2.0 * np.pi * var[i, :])) for i in range(n_classes)])
        log_prior = np.log(np.asarray(document["class_prior"]))
        code += [
            f"#define N_CLASSES {n_classes}\n",
            _c_doubles("theta", theta),
            _c_doubles("var", var),
            _c_doubles("norm", norm),
            _c_doubles("log_prior", log_prior),
            _PAIRWISE_SUM,
            _NB_LOGSUMEXP,
        ]
        compute = [
            "  {",
            "    double jll[N_CLASSES], terms[N_Z], lse;",
            "    int i;",
            "    for (i = 0; i < N_CLASSES; ++i) {",
            "      for (j = 0; j < N_Z; ++j) {",
            "        const double d = z[j] - theta[i * N_Z + j];",
            "        terms[j] = (d * d) / var[i * N_Z + j];",
            "      }",
            "      jll[i] = log_prior[i] + (norm[i] - 0.5 * numpy_row_sum(terms, N_Z));",
            "    }",
            "    lse = logsumexp(jll, N_CLASSES);",
            "    for (i = 0; i < N_CLASSES; ++i) result[i] = exp(jll[i] - lse);",
            "  }",
        ]
        n_outputs = n_classes
        if kind == "binary":
            compute.append("  result[0] = result[1];")
    else:
        coef = np.atleast_2d(np.asarray(document["coef"]))
        intercept = np.atleast_1d(np.asarray(document["intercept"]))
        n_rows = coef.shape[0]
        code += [f"#define N_ROWS {n_rows}\n", _c_doubles("coef", coef), _c_doubles("intercept", intercept)]
        compute = [
            "  {",
            "    int i;",
            "    for (i = 0; i < N_ROWS; ++i) {",
            "      double dot = 0.0;",
            "      for (j = 0; j < N_Z; ++j) dot += z[j] * coef[i * N_Z + j];",
            "      result[i] = dot + intercept[i];",
            "    }",
            "  }",
        ]
        n_outputs = n_rows
        if kind == "binary":
            compute.append("  result[0] = 1.0 / (1.0 + exp(-result[0]));")
        elif kind == "multiclass":
            code.append(_SOFTMAX)
            compute.append("  softmax(result, N_ROWS);")
    code.append(f"#define MODEL_OUTPUTS {n_outputs}\n")
    shape = "  out[0] = result[0];" if kind != "multiclass" else _shape_outputs("multiclass", n_outputs)
    return "".join(code), {
        "call": "\n".join([*prepare, *compute]),
        "shape": shape,
        "n_outputs": n_outputs,
        "form": family,
    }


_NB_LOGSUMEXP = r"""
/* scipy.special.logsumexp (1.15+): the maxima are taken out of the sum, s = sum(exp(a - max)) / count(max),
 * log1p(s) + log(count) + max. */
static double logsumexp(const double *a, int n) {
  double top = a[0], s = 0.0;
  int k, m = 0;
  for (k = 1; k < n; ++k) if (a[k] > top) top = a[k];
  for (k = 0; k < n; ++k) {
    if (a[k] == top) m += 1; else s += exp(a[k] - top);
  }
  if (s != 0.0) s = s / m;
  return log1p(s) + log((double)m) + top;
}
"""


# ------------------------------------------------------------------------------------------------------------


def _model_file(task: str, code: str, info: dict, columns: list[int] | None, entry: dict, out_count: int) -> str:
    if columns is not None:
        pick = (
            f"  static const int columns[{len(columns)}] = {{{', '.join(map(str, columns))}}};\n"
            f"  int c;\n  for (c = 0; c < {len(columns)}; ++c) scratch[c] = inputs[columns[c]];\n  return scratch;\n"
        )
        scratch = len(columns)
    else:
        pick = "  (void)scratch;\n  return inputs;\n"
        scratch = 1
    return f"""/* Generated by `iotengine export-c`: the {task} model ({entry["family"]}, {info["form"]}).
 * Only iot_model_{task} and iot_model_{task}_many are visible outside this file. */
#include <stddef.h>

#include "iot_models.h"

{code}
#define OUT_COUNT {out_count}
#define MODEL_SCRATCH {scratch}

/* The model's own inputs among the IOT_N_INPUTS. */
static const double *model_inputs(const double *inputs, double *scratch) {{
{pick}}}

static void shape_row(const double *result, double *out) {{
{info["shape"]}
}}

void iot_model_{task}(const double inputs[IOT_N_INPUTS], double *out) {{
  double scratch[MODEL_SCRATCH];
  const double *x = model_inputs(inputs, scratch);
  double result[MODEL_OUTPUTS];
  {info["call"]}
  shape_row(result, out);
}}

void iot_model_{task}_many(const double *inputs, int n, double *out) {{
#if defined(MODEL_BLOCK)
  union Entry data[IOT_MODEL_BLOCK * MODEL_FEATURES];
  double result[IOT_MODEL_BLOCK * MODEL_OUTPUTS];
  double scratch[MODEL_SCRATCH];
  int start, r;
  for (start = 0; start < n; start += IOT_MODEL_BLOCK) {{
    const int m = n - start < IOT_MODEL_BLOCK ? n - start : IOT_MODEL_BLOCK;
    for (r = 0; r < m; ++r) {{
      load_row(model_inputs(inputs + (size_t)(start + r) * IOT_N_INPUTS, scratch), data + r * MODEL_FEATURES);
    }}
    model_block(data, m, MODEL_MARGIN, result);
    for (r = 0; r < m; ++r) {{
      link_row(result + r * MODEL_OUTPUTS);
      shape_row(result + r * MODEL_OUTPUTS, out + (size_t)(start + r) * OUT_COUNT);
    }}
  }}
#else
  int i;
  for (i = 0; i < n; ++i) iot_model_{task}(inputs + (size_t)i * IOT_N_INPUTS, out + (size_t)i * OUT_COUNT);
#endif
}}
"""


def _models_header(tasks: dict[str, dict]) -> str:
    lines = [
        "/* Internal: the task models of the library (iot_score.c calls them). Generated by `iotengine export-c`. */",
        "#ifndef IOT_MODELS_H",
        "#define IOT_MODELS_H",
        '#include "iotengine.h"',
        "",
        "/* Rows per block of the _many functions: their stack use is about 2 * 8 * IOT_N_INPUTS * IOT_MODEL_BLOCK",
        " * bytes (35 kB). */",
        "#define IOT_MODEL_BLOCK 32",
        "",
    ]
    for task, info in tasks.items():
        lines.append(f"/* {task}: writes {info['out_count']} value(s) per row */")
        lines.append(f"void iot_model_{task}(const double inputs[IOT_N_INPUTS], double *out);")
        lines.append(f"void iot_model_{task}_many(const double *inputs, int n, double *out);")
    lines += [
        "",
        "/* The five models by name, for timing them one by one (bench_iot.c). */",
        "typedef struct {",
        "  const char *task;",
        "  void (*predict)(const double inputs[IOT_N_INPUTS], double *out);",
        "} iot_model_entry;",
        f"#define IOT_N_TASKS {len(tasks)}",
        "extern const iot_model_entry iot_model_entries[IOT_N_TASKS];",
        "",
        "#endif",
        "",
    ]
    return "\n".join(lines)


def _score_source(tasks: dict[str, dict]) -> str:
    failure = tasks["failure_type"]
    indices = failure["class_indices"]
    calls, block_calls = [], []
    for task in ("anomaly_flag", "maintenance_required", "downtime_risk", "predicted_remaining_life"):
        calls.append(f"  iot_model_{task}(inputs, &out->{SCORE_FIELDS[task]});")
        block_calls.append(
            f"    iot_model_{task}_many(inputs, m, values);\n"
            f"    for (r = 0; r < m; ++r) out[rows[r]].{SCORE_FIELDS[task]} = values[r];"
        )
    entries = ",\n".join(f'  {{"{task}", iot_model_{task}}}' for task in tasks)
    return f"""/* iot_score: the features of a sample, machine_status, and the five task models. Generated by `iotengine
 * export-c`. */
#include <math.h>

#include "iot_models.h"
#include "iotengine.h"

/* Failure-type model output k is the probability of class class_index[k] (order of iotengine.h). */
static const int class_index[{len(indices)}] = {{{", ".join(map(str, indices))}}};

const iot_model_entry iot_model_entries[IOT_N_TASKS] = {{
{entries}
}};

static void nan_scores(iot_scores *out) {{
  int k;
  out->anomaly = NAN;
  out->maintenance = NAN;
  out->downtime = NAN;
  out->failure_type = -1;
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) out->failure_proba[k] = NAN;
  out->remaining_life = NAN;
}}

static void set_failure(iot_scores *out, const double *proba) {{
  int k;
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) out->failure_proba[k] = 0.0;
  for (k = 0; k < {len(indices)}; ++k) out->failure_proba[class_index[k]] = proba[k];
  out->failure_type = 0;
  for (k = 1; k < IOT_N_FAILURE_TYPES; ++k) {{ /* the first of equal maxima, as numpy's argmax */
    if (out->failure_proba[k] > out->failure_proba[out->failure_type]) out->failure_type = k;
  }}
}}

int iot_score(iot_state *s, int64_t timestamp_s, const double sensors[IOT_N_SENSORS], int32_t machine_status,
              iot_scores *out) {{
  double inputs[IOT_N_INPUTS];
  double proba[{len(indices)}];
  int rc;
  if (s == NULL || sensors == NULL || out == NULL) return IOT_EINVAL;
  if (machine_status < 0 || machine_status > 2) return IOT_EINVAL;
  rc = iot_features(s, timestamp_s, sensors, inputs);
  if (rc != IOT_OK) {{
    if (rc == IOT_LATE) nan_scores(out);
    return rc;
  }}
  inputs[IOT_N_FEATURES] = (double)machine_status;
{chr(10).join(calls)}
  iot_model_failure_type(inputs, proba);
  set_failure(out, proba);
  return IOT_OK;
}}

int iot_score_many(iot_state *states, const int64_t *index, const int64_t *timestamps_s, const double *sensors,
                   const int32_t *machine_status, int64_t n, iot_scores *out, int32_t *codes) {{
  /* Features in arrival order, IOT_MODEL_BLOCK accepted samples at a time; then each model over the block, so
   * its code is fetched once per block instead of once per sample. Same values as iot_score per sample. */
  double inputs[IOT_MODEL_BLOCK * IOT_N_INPUTS];
  double values[IOT_MODEL_BLOCK * {len(indices)}];
  int64_t rows[IOT_MODEL_BLOCK];
  int64_t i = 0;
  if (states == NULL || index == NULL || timestamps_s == NULL || sensors == NULL || machine_status == NULL ||
      out == NULL || codes == NULL || n < 0)
    return IOT_EINVAL;
  while (i < n) {{
    int m = 0, r;
    for (; i < n && m < IOT_MODEL_BLOCK; ++i) {{
      double *row = inputs + m * IOT_N_INPUTS;
      int rc;
      if (index[i] < 0 || machine_status[i] < 0 || machine_status[i] > 2) {{
        codes[i] = IOT_EINVAL;
        continue;
      }}
      rc = iot_features(states + index[i], timestamps_s[i], sensors + IOT_N_SENSORS * i, row);
      codes[i] = rc;
      if (rc == IOT_LATE) nan_scores(out + i);
      if (rc != IOT_OK) continue;
      row[IOT_N_FEATURES] = (double)machine_status[i];
      rows[m++] = i;
    }}
{chr(10).join(block_calls)}
    iot_model_failure_type_many(inputs, m, values);
    for (r = 0; r < m; ++r) set_failure(out + rows[r], values + r * {len(indices)});
  }}
  return IOT_OK;
}}
"""


def _thresholds(entries: dict[str, dict]) -> str:
    lines = []
    for task, macro in THRESHOLD_MACROS.items():
        threshold = entries[task].get("threshold")
        value = 0.5 if threshold is None else float(threshold)
        lines.append(f"#define {macro} {_hex(value)} /* {value!r} */")
    return "\n".join(lines)


_MAKEFILE = """# Builds the iotengine edge library: libiotengine.a, libiotengine.so and the example program.
#   make                       -O2 (default flags below)
#   make CFLAGS_OPT=-Os size   size of each object (text/data/bss), optimised for size
#   make CC=clang              any C99 compiler
# -ffp-contract=off keeps a*b+c two roundings (the Numba kernel's bits); -fno-math-errno only lets sqrt inline.
CC ?= cc
CFLAGS_OPT ?= -O2
CFLAGS ?= -std=c99 $(CFLAGS_OPT) -Wall -Wextra -Werror -pedantic -ffp-contract=off -fno-math-errno -fPIC
LDLIBS = -lm

LIB_SOURCES = @LIB_SOURCES@
LIB_OBJECTS = $(LIB_SOURCES:.c=.o)

all: libiotengine.a libiotengine.so iotengine_example

libiotengine.a: $(LIB_OBJECTS)
\t$(AR) rcs $@ $(LIB_OBJECTS)

libiotengine.so: $(LIB_OBJECTS)
\t$(CC) -shared -o $@ $(LIB_OBJECTS) $(LDLIBS)

iotengine_example: main.o iot_csv.o libiotengine.a
\t$(CC) -o $@ main.o iot_csv.o libiotengine.a $(LDLIBS)

iotengine_bench: bench_iot.o libiotengine.a
\t$(CC) -o $@ bench_iot.o libiotengine.a $(LDLIBS)

%.o: %.c iotengine.h iot_models.h iot_csv.h
\t$(CC) $(CFLAGS) -c $< -o $@

size: $(LIB_OBJECTS)
\tsize $(LIB_OBJECTS) libiotengine.a

clean:
\trm -f *.o libiotengine.a libiotengine.so iotengine_example iotengine_bench

.PHONY: all size clean
"""

_CMAKE = """cmake_minimum_required(VERSION 3.13)
project(iotengine C)
# Generated by `iotengine export-c`: the edge library (static and shared) and the example program.
set(CMAKE_C_STANDARD 99)
set(CMAKE_C_STANDARD_REQUIRED ON)
set(CMAKE_C_EXTENSIONS OFF)
set(IOT_WARNINGS -Wall -Wextra -Werror -pedantic)
set(IOT_NO_CONTRACT -ffp-contract=off -fno-math-errno)

add_library(iotengine_objects OBJECT @LIB_SOURCES@)
set_target_properties(iotengine_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_compile_options(iotengine_objects PRIVATE ${IOT_WARNINGS} ${IOT_NO_CONTRACT})

add_library(iotengine_static STATIC $<TARGET_OBJECTS:iotengine_objects>)
set_target_properties(iotengine_static PROPERTIES OUTPUT_NAME iotengine)
add_library(iotengine_shared SHARED $<TARGET_OBJECTS:iotengine_objects>)
set_target_properties(iotengine_shared PROPERTIES OUTPUT_NAME iotengine)
target_link_libraries(iotengine_shared m)

add_executable(iotengine_example main.c iot_csv.c)
target_compile_options(iotengine_example PRIVATE ${IOT_WARNINGS})
target_link_libraries(iotengine_example iotengine_static m)
"""


def export_c(
    bundle: Bundle | str,
    out,
    *,
    models: str = "chosen",
    trees: str = "tl2cgen",
    progress: Callable[[str], None] = print,
) -> EdgeTree:
    """Write the edge C source tree of a bundle's ``models`` set into ``out`` (replacing the files there).

    Parameters
    ----------
    bundle : Bundle or path
    out : path
    models : {"chosen", "lightgbm", "compact"}
        Which model of each task.
    trees : {"tl2cgen", "uint8"}
        The C form of tree models: tl2cgen's if-else code (fastest), or uint8 tables (smallest; LightGBM only).
    """
    if trees not in TREE_FORMS:
        raise CompileError(f"trees must be one of {TREE_FORMS}, not {trees!r}")
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    entries = bundle.set_entries(models)
    missing = [task.name for task in TASKS if task.name not in entries]
    if missing:
        raise CompileError(f"{bundle.path}: the {models} model set has no model for {', '.join(missing)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("iot_model_*.c"):
        old.unlink()
    tasks: dict[str, dict] = {}
    model_files = []
    for task in TASKS:
        entry = entries[task.name]
        family = entry["family"]
        if family in TREE_FAMILIES:
            code, info = _tree_model_source(bundle, task.name, entry, trees)
        else:
            code, info = _tabular_model_source(bundle, task.name, entry)
        columns = entry.get("columns")
        name = f"iot_model_{task.name}.c"
        out_count = info["n_outputs"] if task.kind == "multiclass" else 1
        (out / name).write_text(_model_file(task.name, code, info, columns, entry, out_count))
        model_files.append(name)
        tasks[task.name] = {
            "family": family,
            "form": info["form"],
            "trees": info.get("trees"),
            "out_count": out_count,
            "columns": columns,
            "threshold": entry.get("threshold"),
        }
        if task.kind == "multiclass":
            indices = entry.get("class_indices", list(range(out_count)))
            if len(indices) != out_count:
                raise CompileError(f"{task.name}: the model gives {out_count} classes, the bundle lists {indices}")
            tasks[task.name]["class_indices"] = [int(i) for i in indices]
        progress(f"  edge {task.name}: {family} as {info['form']}")
    summary = ", ".join(f"{t} {i['family']}/{i['form']}" for t, i in tasks.items())
    header = (
        (C_DIR / "iotengine.h.in")
        .read_text()
        .replace("@BUNDLE_NAME@", bundle.path.name)
        .replace("@BUNDLE_CREATED@", str(bundle.manifest.get("created", "")))
        .replace("@FEATURE_SPEC@", bundle.manifest["feature_spec"]["version"])
        .replace("@MODEL_SUMMARY@", f"set {models!r}, trees as {trees}")
        .replace("@THRESHOLDS@", _thresholds(entries))
    )
    (out / "iotengine.h").write_text(header)
    features = (
        (C_DIR / "iot_features.c.in")
        .read_text()
        .replace("@CALENDAR_TABLES@", calendar_tables())
        .replace("@FEATURE_NAMES@", ",\n".join(f'  "{name}"' for name in FEATURE_NAMES))
    )
    (out / "iot_features.c").write_text(features)
    (out / "iot_models.h").write_text(_models_header(tasks))
    (out / "iot_score.c").write_text(_score_source(tasks))
    for name in STATIC_FILES:
        shutil.copyfile(C_DIR / name, out / name)
    library_sources = ("iot_features.c", "iot_score.c", *model_files)
    (out / "Makefile").write_text(_MAKEFILE.replace("@LIB_SOURCES@", " ".join(library_sources)))
    (out / "CMakeLists.txt").write_text(_CMAKE.replace("@LIB_SOURCES@", " ".join(library_sources)))
    manifest = {
        "format": "iotengine.edge/1",
        "bundle": str(bundle.path),
        "bundle_created": bundle.manifest.get("created"),
        "models": models,
        "trees": trees,
        "status_column": STATUS_COLUMN,
        "failure_types": list(FAILURE_TYPES),
        "tasks": tasks,
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
