"""The C of one task model of the edge library: ``iot_model_<task>.c`` (compile/c/iot_model.c.in) around the
model's own code, which defines ``model_row(x, result)`` and ``MODEL_OUTPUTS``:

- tree ensembles: tl2cgen's code as static functions (:func:`compile.tl2cgen_source.edge_model_code`, with the
  block functions of compile/c/edge_tl2cgen_model.c.in and compile/c/edge_tree_model.c.in), the uint8 tables
  of :mod:`compile.uint8_trees` (LightGBM only), or iotengine's own generated trees
  (:func:`compile.tree_codegen.forest_core` with compile/c/edge_iot_model.c.in);
- linear and naive Bayes models: their imputer, scaler and weights as hex-float tables, then
  compile/c/edge_tabular_model.c (engine/models/model_files.py's formulas);
- the mean regressor: its constant.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from compile.edge_spec import EdgeModel
from compile.errors import CompileError
from compile.native import TREE_FAMILIES, treelite_model
from compile.templates import c_double, c_doubles, c_source, fill
from compile.tl2cgen_source import edge_model_code, generate_sources, num_outputs
from compile.tree_codegen import forest_core
from compile.uint8_trees import uint8_source
from kernels.names import N_FEATURES

__all__ = ["TREE_FORMS", "ModelSource", "model_file", "model_source"]

TREE_FORMS = ("tl2cgen", "uint8", "iot")
_LINK = {"none": 0, "logistic": 1, "softmax": 2}


@dataclass(frozen=True)
class ModelSource:
    """The model's C (defining ``model_row`` and ``MODEL_OUTPUTS``), how many outputs it writes, its MODEL_SHAPE
    (see compile/c/iot_model.c.in), and what the edge manifest records about it (``form``, and ``trees``)."""

    code: str
    n_outputs: int
    shape: int
    described: dict


def model_source(model: EdgeModel, trees: str) -> ModelSource:
    """The C of ``model`` with tree models in the form ``trees`` ("tl2cgen", "uint8" or "iot")."""
    if trees not in TREE_FORMS:
        raise CompileError(f"trees must be one of {TREE_FORMS}, not {trees!r}")
    if model.family in TREE_FAMILIES:
        return _tree_source(model, trees)
    return _tabular_source(model)


def _shape(kind: str, n_outputs: int) -> int:
    """MODEL_SHAPE of iot_model.c.in: 2 copies every output, 1 takes a forest's class-1 probability, 0 the one."""
    if kind == "multiclass":
        return 2
    return 1 if kind == "binary" and n_outputs == 2 else 0


def _tree_source(model: EdgeModel, trees: str) -> ModelSource:
    if trees == "uint8":
        if model.family != "lightgbm":
            raise CompileError(
                f"{model.task}: the uint8 tree form exists for LightGBM models; the chosen model is {model.family} "
                "(export with --models lightgbm)"
            )
        booster = lgb.Booster(model_str=model.data.decode())
        code = uint8_source(booster, row_function="model_row") + "\n#define MODEL_OUTPUTS N_OUTPUTS\n"
        n_outputs = booster.num_model_per_iteration()
        described = {"form": "uint8", "trees": booster.num_trees()}
        return ModelSource(code, n_outputs, _shape(model.kind, n_outputs), described)
    forest = treelite_model(model.data, model.family)
    round_float32 = model.family in ("random_forest", "extra_trees")
    link_in_c = model.family == "hist_gradient_boosting"  # scikit-learn's link on the margin, as model_files.py
    link = "none"
    if link_in_c and model.kind == "binary":
        link = "logistic"
    elif link_in_c and model.kind == "multiclass":
        link = "softmax"
    if trees == "iot":
        # One row per call: the float32 rounding of forests needs a buffer of one row only.
        core, n_outputs = forest_core(forest, round_float32=round_float32)
        code = "#define ROWS_PER_ROUNDING 1\n" + core
        if link == "softmax":
            code += c_source("edge_softmax.c")
        code += fill("edge_iot_model.c.in", MARGIN=int(link_in_c), LINK=_LINK[link])
        described = {"form": "iot", "trees": int(forest.num_tree), "round_float32": round_float32}
        return ModelSource(code, n_outputs, _shape(model.kind, n_outputs), described)
    with tempfile.TemporaryDirectory() as work:
        sources = generate_sources(forest, Path(work) / "src", round_float32=round_float32)
        n_outputs = num_outputs(sources.directory)
        code = edge_model_code(sources.directory, n_outputs, int(forest.num_feature))
    if link == "softmax":
        code += c_source("edge_softmax.c")
    code += fill(
        "edge_tree_model.c.in",
        MARGIN=1 if link_in_c else 0,
        LINK=_LINK[link],
        LOAD="(double)(float)x[j]" if round_float32 else "x[j]",
    )
    described = {"form": "tl2cgen", "trees": int(forest.num_tree), "round_float32": round_float32}
    return ModelSource(code, n_outputs, _shape(model.kind, n_outputs), described)


def _tabular_source(model: EdgeModel) -> ModelSource:
    document = json.loads(model.data)
    family = document["family"]
    if family == "mean":
        code = (
            "#define MODEL_OUTPUTS 1\n"
            f"static const double constant = {c_double(document['constant'])};\n"
            "static void model_row(const double *x, double *result) {\n  (void)x;\n  result[0] = constant;\n}\n"
        )
        return ModelSource(code, 1, 0, {"form": "mean"})
    n_inputs = len(model.columns) if model.columns is not None else N_FEATURES + 1  # the features, then status
    n_z = n_inputs - 1 + 3  # machine_status becomes three indicators (engine.models.zoo.expand_status)
    medians = np.asarray(document["impute_medians"])
    if medians.size != n_z:
        raise CompileError(f"{model.task}: {medians.size} imputer medians for {n_z} inputs")
    scaled = "scale_mean" in document
    code = [
        "#include <math.h>\n\n",
        f"#define N_Z {n_z}\n#define STATUS_AT {int(document['status_column'])}\n#define N_MODEL_INPUTS {n_inputs}\n",
        f"#define MODEL_SCALED {int(scaled)}\n#define MODEL_BINARY {int(model.kind == 'binary')}\n",
        c_doubles("medians", medians),
    ]
    if scaled:
        code += [c_doubles("scale_mean", document["scale_mean"]), c_doubles("scale_scale", document["scale_scale"])]
    if family == "gaussian_nb":
        theta, var = np.asarray(document["theta"]), np.asarray(document["var"])
        n_outputs = theta.shape[0]
        # The per-class constants, computed with the same numpy expressions as TabularPredictor.
        norm = np.array([-0.5 * np.sum(np.log(2.0 * np.pi * var[i, :])) for i in range(n_outputs)])
        log_prior = np.log(np.asarray(document["class_prior"]))
        code += [
            f"#define MODEL_GAUSSIAN_NB 1\n#define MODEL_LINK 0\n#define N_CLASSES {n_outputs}\n",
            c_doubles("theta", theta),
            c_doubles("var", var),
            c_doubles("norm", norm),
            c_doubles("log_prior", log_prior),
            c_source("edge_numpy_sum.c"),
            c_source("edge_logsumexp.c"),
        ]
    else:
        coef = np.atleast_2d(np.asarray(document["coef"]))
        intercept = np.atleast_1d(np.asarray(document["intercept"]))
        n_outputs = coef.shape[0]
        link = {"binary": "logistic", "multiclass": "softmax"}.get(model.kind, "none")
        code += [
            f"#define MODEL_GAUSSIAN_NB 0\n#define MODEL_LINK {_LINK[link]}\n#define N_ROWS {n_outputs}\n",
            c_doubles("coef", coef),
            c_doubles("intercept", intercept),
        ]
        if link == "softmax":
            code.append(c_source("edge_softmax.c"))
    code += [f"#define MODEL_OUTPUTS {n_outputs}\n", c_source("edge_tabular_model.c")]
    return ModelSource("".join(code), n_outputs, 2 if model.kind == "multiclass" else 0, {"form": family})


def model_file(model: EdgeModel, source: ModelSource, out_count: int) -> str:
    """``iot_model_<task>.c``: the model's code inside compile/c/iot_model.c.in."""
    columns = model.columns
    return fill(
        "iot_model.c.in",
        TASK=model.task,
        FAMILY=model.family,
        FORM=source.described["form"],
        MODEL_CODE=source.code,
        OUT_COUNT=out_count,
        SHAPE=source.shape,
        N_COLUMNS=0 if columns is None else len(columns),
        COLUMNS="#define MODEL_COLUMN(c) (c)"
        if columns is None
        else f"static const int columns[MODEL_N_COLUMNS] = {{{', '.join(map(str, columns))}}};\n"
        "#define MODEL_COLUMN(c) columns[c]",
    )
