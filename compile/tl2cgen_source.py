"""Everything that reads or rewrites the C that tl2cgen generates, in one place.

:func:`generate_sources` runs tl2cgen on a treelite model and writes, beside its sources, ``iot_batch.c``
(compile/c/iot_batch.c.in): the blocked batch driver of a native library,

``int iot_predict(const double *X, int64_t n_rows, int64_t row_stride, int pred_margin, double *out)``
    scores ``n_rows`` rows of a row-major float64 matrix in place; NaN is a missing value; writes
    ``iot_num_outputs()`` values per row; returns 0, or 1 for bad arguments.

The generated sources are rewritten so that NaN is the one missing marker and each node is one comparison (see
the comments below). :func:`edge_model_code` turns the same sources into static functions of one edge model file
(compile/c/edge_tl2cgen_model.c.in). Every pattern here describes tl2cgen 1.0.0's output; a source of another
shape raises CompileError rather than compiling something else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import treelite

from compile.errors import CompileError
from compile.quiet import third_party_output
from compile.templates import fill

__all__ = [
    "ROWS_PER_BLOCK",
    "TREES_PER_UNIT",
    "NativeSources",
    "annotate_branches",
    "edge_model_code",
    "generate_sources",
    "num_outputs",
]

# Parallel compilation: one translation unit per this many bytes of treelite checkpoint (which grows linearly
# with the number of nodes), so a deep random forest is split finely and gcc never sees one huge function.
CHECKPOINT_BYTES_PER_UNIT = 250_000

# Rows are scored in blocks, unit by unit: every unit's trees run over the whole block before the next unit's,
# so a few kilobytes of tree code stay in the instruction cache instead of the whole model streaming through it
# for every row. A unit holds about TREES_PER_UNIT trees; within a row trees are still added in model order, so
# the sums are LightGBM's bit for bit.
TREES_PER_UNIT = 8
ROWS_PER_BLOCK = 64

# tl2cgen tests "missing" as ``data[j].missing != -1``, an int that shares its bytes with the double
# ``fvalue``: any value whose low 32 bits are all ones reads as missing. One such value is hour_sin at 1 am,
# sin(pi/6) = 0.49999999999999994 (0x3FDFFFFFFFFFFFFF), which sent those rows down the missing branch and
# off LightGBM's predictions by up to 1.0. The sources are rewritten to test the double itself; the driver
# passes NaN through as the missing marker.
_MISSING_TEST = re.compile(r"data\[(\d+)\]\.missing != -1")
# With NaN as the missing value, tl2cgen's two-part tests fold into one comparison, because every comparison
# with NaN is false: "missing goes left" is !(x > t), "missing goes right" is (x <= t). Same branch for every
# double, NaN included; half the tests per node.
_COMPLEMENT = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}
_DEFAULT_LEFT = re.compile(
    r"!\(data\[(\d+)\]\.missing != -1\) \|\| \(data\[\1\]\.fvalue (<=|<|>=|>) (\(double\)[-+.\deE]+)\)"
)
_DEFAULT_RIGHT = re.compile(
    r" \(data\[(\d+)\]\.missing != -1\) && \(data\[\1\]\.fvalue (<=|<|>=|>) (\(double\)[-+.\deE]+)\)"
)


# The inputs and the sums never overlap; saying so lets the compiler keep each running sum in a register.
_UNIT_SIGNATURE = re.compile(r"void predict_unit(\d+)\(union Entry\* data, double\* result\)")


def _fold_missing_tests(code: str) -> str:
    code = _DEFAULT_LEFT.sub(lambda m: f"!(data[{m[1]}].fvalue {_COMPLEMENT[m[2]]} {m[3]})", code)
    code = _DEFAULT_RIGHT.sub(lambda m: f" (data[{m[1]}].fvalue {m[2]} {m[3]})", code)
    code = _UNIT_SIGNATURE.sub(r"void predict_unit\1(union Entry* restrict data, double* restrict result)", code)
    return _MISSING_TEST.sub(r"!isnan(data[\1].fvalue)", code)


# With quantize=1, tl2cgen first turns each double into its bin index (``qvalue``, an int sharing the union's low
# bytes) and the trees then test ``missing != -1``, which is sound for bin indices. Only the quantization loop
# reads a raw double through ``missing``; it is rewritten to mark NaN as missing and quantize everything else.
_QUANTIZE_LOOP = (
    "if (data[i].missing != -1 && !is_categorical[i]) {\n      data[i].qvalue = quantize(data[i].fvalue, i);\n    }",
    "if (isnan(data[i].fvalue)) {\n      data[i].missing = -1;\n    } else if (!is_categorical[i]) {\n"
    "      data[i].qvalue = quantize(data[i].fvalue, i);\n    }",
)


_PREDICT = re.compile(
    r"void predict\(union Entry\* data, int pred_margin, double\* result\) \{\n(?P<body>.*?)\n\}\n", re.S
)
_UNIT_CALL = re.compile(r"^\s*predict_unit(\d+)\(data, result\);$", re.M)


def _split_predict(main: str) -> tuple[str, list[str]]:
    """main.c with ``iot_prepare`` and ``iot_finish`` added (tl2cgen's predict() before and after its units),
    and the unit functions in model order."""
    found = _PREDICT.search(main)
    if found is None:
        raise CompileError("tl2cgen's main.c has no predict() of the expected form")
    body = found.group("body")
    units = [f"predict_unit{n}" for n in _UNIT_CALL.findall(body)]
    if not units or "// Apply postprocessor" not in body:
        raise CompileError("tl2cgen's predict() does not call translation units as expected")
    prepare = body[: body.index("unsigned int tmp;")] if "unsigned int tmp;" in body else ""
    # Everything after the last unit: averaging of forests' outputs, base scores, the output transform.
    finish = body[list(_UNIT_CALL.finditer(body))[-1].end() :].strip()
    extra = (
        f"\nvoid iot_prepare(union Entry* data) {{\n{prepare}\n  (void)data;\n}}\n"
        f"\nvoid iot_finish(double* result, int pred_margin) {{\n  {finish}\n}}\n"
    )
    return main + extra, units


@dataclass(frozen=True)
class NativeSources:
    """C sources of one model: tl2cgen's files plus the batch driver, and how to compile them."""

    directory: Path
    files: tuple[str, ...]
    defines: tuple[str, ...]


def generate_sources(
    model: treelite.Model,
    directory: str | os.PathLike,
    *,
    round_float32: bool,
    quantize: bool = False,
    annotation: str | os.PathLike | None = None,
) -> NativeSources:
    """Write tl2cgen's C sources for ``model`` and the batch driver into ``directory``."""
    import tl2cgen

    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    params: dict = {"quantize": 1 if quantize else 0}
    by_size = -(-len(model.serialize_bytes()) // CHECKPOINT_BYTES_PER_UNIT)
    params["parallel_comp"] = max(2, min(model.num_tree, max(by_size, -(-model.num_tree // TREES_PER_UNIT))))
    if annotation is not None:
        params["annotate_in"] = str(annotation)
    with third_party_output():
        tl2cgen.generate_c_code(model, dirpath=str(directory), params=params)
    main_c = directory / "main.c"
    main_text, units = _split_predict(main_c.read_text())
    main_c.write_text(main_text)
    driver = fill("iot_batch.c.in", UNITS=", ".join(units), ROWS_PER_BLOCK=ROWS_PER_BLOCK)
    (directory / "iot_batch.c").write_text(driver)
    recipe = json.loads((directory / "recipe.json").read_text())
    files = (*sorted(f"{source['name']}.c" for source in recipe["sources"]), "iot_batch.c")
    if quantize:
        main = directory / "main.c"
        text = main.read_text()
        if _QUANTIZE_LOOP[0] not in text:
            raise CompileError(f"{main}: tl2cgen's quantization loop is not the one this module knows how to fix")
        main.write_text(text.replace(_QUANTIZE_LOOP[0], _QUANTIZE_LOOP[1]))
    else:
        for name in files[:-1]:
            path = directory / name
            path.write_text(_fold_missing_tests(path.read_text()))
    defines = (f"-DIOT_N_FEATURES={model.num_feature}", f"-DIOT_ROUND_FLOAT32={1 if round_float32 else 0}")
    return NativeSources(directory, files, defines)


def annotate_branches(model: treelite.Model, X, path: str | os.PathLike) -> Path:
    """Count how often each branch is taken on ``X`` (tl2cgen.annotate_branch), for ``generate_sources(annotation=)``.

    The counts become LIKELY/UNLIKELY hints in the generated C. ``X`` goes to tl2cgen's DMatrix as C-contiguous
    float64, the one layout its Python side takes without a NumPy-2-incompatible conversion; NaN is missing.
    """
    import numpy as np
    import tl2cgen

    path = Path(path)
    matrix = tl2cgen.DMatrix(np.ascontiguousarray(X, dtype=np.float64))
    with third_party_output():
        tl2cgen.annotate_branch(model, matrix, path=str(path), verbose=False)
    return path


# ------------------------------------------------------------------------------------------------------------
# the edge library: one model's code as static functions

_UNIT_DEFINITION = re.compile(r"^void (predict_unit\d+)\(", re.M)
_POSTPROCESS = re.compile(r"^void postprocess\(double\* result\) \{\n(?P<body>.*?)^\}\n", re.S | re.M)
_FUNCTION = re.compile(r"^(static )?void (\w+)\(.*?^\}\n", re.S | re.M)
_STATIC_HELPER = re.compile(r"^static [^\n]*\(.*?^\}\n", re.S | re.M)  # e.g. postprocess_impl (softmax)


def _without_unused_tmp(function: str) -> str:
    # tl2cgen declares `unsigned int tmp;` in every function but uses it only for categorical splits.
    if function.count("tmp") == 1:
        return function.replace("  unsigned int tmp;\n", "")
    return function


def edge_model_code(directory: Path, n_outputs: int, n_features: int) -> str:
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
    predict = _PREDICT.search(main)
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
    return fill(
        "edge_tl2cgen_model.c.in",
        TL2CGEN_MACROS=macros,
        N_OUTPUTS=n_outputs,
        N_FEATURES=n_features,
        N_UNITS=len(names),
        UNIT_PROTOTYPES=prototypes,
        UNITS="\n".join(units),
        HELPERS="".join(helper.group(0) for helper in _STATIC_HELPER.finditer(main)),
        POSTPROCESS=postprocess.group("body"),
        FINISH=finish,
        UNIT_CALLS=direct_calls,
        UNIT_NAMES=", ".join(names),
    )


def num_outputs(directory: Path) -> int:
    """The number of outputs per row of tl2cgen's code in ``directory`` (its ``num_class``)."""
    main = (directory / "main.c").read_text()
    found = re.search(r"static const int32_t num_class\[\] = \{\s*(\d+),", main)
    if found is None:
        raise CompileError("tl2cgen's main.c does not state its number of classes")
    return int(found.group(1))
