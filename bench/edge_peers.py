"""iotengine's C beside the peers that generate C from tree models for microcontrollers: emlearn and m2cgen, on
the same random forest (and m2cgen on the same LightGBM model, which emlearn does not convert).

:func:`peer_rows` fits the models on the anomaly task of telemetry (its 68 inputs; rows with a missing value
left out, since the peers have no rule for them), generates each peer's C (emlearn: ``method="inline"``,
``dtype="float"``; m2cgen: ``export_to_c``; iotengine: the edge model file in its ``iot`` and ``tl2cgen``
forms, and ``uint8`` for LightGBM), and for each measures:

- the C size: text + data of the model's object, ``-Os``, for x86-64 (gcc) and for the Cortex-M4F
  (arm-none-eabi-gcc, when installed);
- the host latency: median ns per row over blocks of 1,000 rows (bench/c/peer_driver.c, gcc -O2);
- the agreement with the Python model: max |diff| of the class-1 probability from ``predict_proba`` and the
  share of rows whose decision at 0.5 is the same.

emlearn and m2cgen come with the ``bench`` extra (``pip install -e ".[bench]"``); without them their rows say so.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from compile.edge import export_c
from compile.edge_models import model_file, model_source
from compile.edge_resources import model_flash
from compile.edge_spec import EdgeModel, EdgeSpec
from compile.edge_targets import TARGETS
from compile.errors import CompileError
from engine.models.model_files import save_model
from engine.models.tasks import TASKS, inputs_and_targets
from engine.models.zoo import lightgbm_candidate

__all__ = ["PEER_FOREST", "peer_rows", "peers_markdown", "replace_task"]

PEER_FOREST = {"n_estimators": 30, "max_depth": 8}  # a forest of firmware size
BENCH_C = Path(__file__).resolve().parent / "c"
PEER_FLAGS = ("-std=c99", "-Wall", "-ffp-contract=off", "-fno-math-errno")


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return done.stdout


def _object_flash(compiler: str, flags: tuple[str, ...], source: Path, cwd: Path) -> int:
    obj = cwd / f"{source.stem}.size.o"
    _run([compiler, *PEER_FLAGS, "-Os", *flags, "-c", source.name, "-o", obj.name], cwd)
    cross = compiler.removesuffix("gcc")
    out = _run([f"{cross}size" if cross else "size", obj.name], cwd).splitlines()[-1].split()
    obj.unlink()
    return int(out[0]) + int(out[1])


def _flashes(source: Path, m4f: bool) -> dict[str, int]:
    """A peer's model object: text + data for x86-64 and, with arm-none-eabi-gcc, for the Cortex-M4F."""
    sizes = {"x86_flash": _object_flash("gcc", (), source, source.parent)}
    if m4f:
        flags = TARGETS["cortex-m4f"].flags
        sizes["m4f_flash"] = _object_flash(TARGETS["cortex-m4f"].compiler, flags, source, source.parent)
    return sizes


def _measure(folder: Path, adapter: str, model_sources: list[Path], rows: Path, shape, expected) -> dict:
    """Build the driver with one adapter, time it, compare its probabilities with ``expected``."""
    shutil.copyfile(BENCH_C / "peer_driver.c", folder / "peer_driver.c")
    shutil.copyfile(BENCH_C / adapter, folder / adapter)
    sources = [s.name for s in model_sources if s.suffix == ".c" and s.name != "m2cgen_model.c"]
    _run(["gcc", *PEER_FLAGS, "-O2", "-I.", "peer_driver.c", adapter, *sources, "-lm", "-o", "driver"], folder)
    n, cols = shape
    timing = json.loads(_run(["./driver", str(rows), str(n), str(cols)], folder))
    printed = _run(["./driver", str(rows), str(n), str(cols), "--print"], folder)
    got = np.array([float(v) for v in printed.split()])
    return {
        "host_ns_per_row": timing["ns_per_row_median"],
        "max_abs_diff": float(np.max(np.abs(got - expected))),
        "decisions_equal": float(np.mean((got >= 0.5) == (expected >= 0.5))),
    }


def _iotengine_row(folder: Path, model: EdgeModel, form: str, rows, shape, expected, m4f: bool) -> dict:
    from compile.edge_spec import EDGE_TASKS

    placeholder = EdgeModel(EDGE_TASKS[1], "binary", "mean", b'{"family": "mean", "constant": 0.0}')
    spec = EdgeSpec("peers", "peers", "", "", "peers", (model, *(replace_task(placeholder, t) for t in EDGE_TASKS[1:])))
    tree = export_c(spec, folder, trees=form, progress=lambda _: None)
    code = model_source(model, form)
    text = model_file(model, code, 1)
    (folder / "iot_model_anomaly_flag.c").write_text(text)
    row = _measure(folder, "peer_iotengine.c", [folder / "iot_model_anomaly_flag.c"], rows, shape, expected)
    row["x86_flash"] = model_flash(tree.directory, text, name="peer_size")
    if m4f:
        m4 = folder / "m4f"
        export_c(spec, m4, trees=form, real="float", target="cortex-m4f", progress=lambda _: None)
        row["m4f_flash"] = model_flash(m4, text, name="peer_size")
    return row


def replace_task(model: EdgeModel, task: str) -> EdgeModel:
    """``model`` as the model of another task (the placeholders of the tasks a peer row does not have)."""
    kinds = {t.name: t.kind for t in TASKS}
    classes = (0,) if kinds[task] == "multiclass" else None  # the constant's one class
    return EdgeModel(task, kinds[task], model.family, model.data, class_indices=classes)


def peer_rows(table, *, rows: int = 4_000, seed: int = 0) -> list[dict]:
    """The peer table's rows (see the module's docstring) on ``table``'s anomaly task."""
    X, y = inputs_and_targets(table)
    y = y["anomaly_flag"]
    complete = ~np.isnan(X).any(axis=1)
    X, y = X[complete], y[complete]
    half = len(y) // 2
    train, test = slice(0, half), slice(half, min(len(y), half + rows))
    forest = RandomForestClassifier(**PEER_FOREST, random_state=seed, n_jobs=1).fit(X[train], y[train])
    booster = lightgbm_candidate("binary", n_jobs=1).estimator.set_params(n_estimators=30, num_leaves=15)
    booster.fit(X[train], y[train])
    test_rows = np.ascontiguousarray(X[test], dtype=np.float64)
    m4f = shutil.which("arm-none-eabi-gcc") is not None
    out = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        inputs = work / "rows.bin"
        test_rows.tofile(inputs)
        shape = test_rows.shape
        for name, estimator, family in (("random forest", forest, "random_forest"), ("LightGBM", booster, "lightgbm")):
            expected = estimator.predict_proba(test_rows)[:, 1]
            model = EdgeModel("anomaly_flag", "binary", family, save_model(estimator, family, "binary").data)
            for form in ("iot", "tl2cgen", "uint8") if family == "lightgbm" else ("iot", "tl2cgen"):
                folder = work / f"iot-{family}-{form}"
                row = _iotengine_row(folder, model, form, inputs, shape, expected, m4f)
                out.append({"model": name, "generator": f"iotengine ({form})", **row})
            if _available("m2cgen"):
                import m2cgen

                folder = work / f"m2cgen-{family}"
                folder.mkdir()
                (folder / "m2cgen_model.c").write_text(m2cgen.export_to_c(estimator))
                row = _measure(folder, "peer_m2cgen.c", [folder / "m2cgen_model.c"], inputs, shape, expected)
                row.update(_flashes(folder / "m2cgen_model.c", m4f))
                out.append({"model": name, "generator": "m2cgen", **row})
            else:
                out.append({"model": name, "generator": "m2cgen", "missing": 'pip install -e ".[bench]"'})
            if family != "random_forest":
                out.append({"model": name, "generator": "emlearn", "missing": "emlearn does not convert LightGBM"})
            elif _available("emlearn"):
                with np.errstate():  # emlearn.bayes calls numpy.seterr(all="raise") on import: keep ours
                    import emlearn

                folder = work / "emlearn"
                folder.mkdir()
                converted = emlearn.convert(estimator, method="inline", dtype="float")
                converted.save(file=str(folder / "eml_model.h"), name="eml_model")
                row = _measure(folder, "peer_emlearn.c", [], inputs, shape, expected)
                shutil.copyfile(folder / "eml_model.h", folder / "eml_size.c")
                row.update(_flashes(folder / "eml_size.c", m4f))
                out.append({"model": name, "generator": "emlearn", **row})
            else:
                out.append({"model": name, "generator": "emlearn", "missing": 'pip install -e ".[bench]"'})
    return out


def peers_markdown(rows: list[dict]) -> list[str]:
    """The peers' table of EDGE.md's "Targets" section."""
    lines = [
        "### Beside emlearn and m2cgen: the same models",
        "",
        f"A random forest ({PEER_FOREST['n_estimators']} trees, depth {PEER_FOREST['max_depth']}) and a LightGBM "
        "model (30 trees, 15 leaves) on the anomaly task's 68 inputs; C size is the model object's text + data "
        "(-Os); host time is the median per row over blocks of 1,000 rows (gcc -O2); the difference is from the "
        "Python model's predict_proba on the same rows.",
        "",
        "| model | generator | x86-64 bytes | Cortex-M4F bytes | host ns/row | max abs diff | decisions equal |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if "missing" in row:
            lines.append(f"| {row['model']} | {row['generator']} | not measured: {row['missing']} | | | | |")
            continue
        m4f = f"{row['m4f_flash']:,}" if "m4f_flash" in row else "no arm-none-eabi-gcc"
        lines.append(
            f"| {row['model']} | {row['generator']} | {row['x86_flash']:,} | {m4f} | {row['host_ns_per_row']:,.0f} "
            f"| {row['max_abs_diff']:.1e} | {row['decisions_equal']:.2%} |"
        )
    return lines
