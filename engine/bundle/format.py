"""Model bundles: the chosen model of every task, saved without pickle, checked by hash when loaded.

A bundle is a folder::

    bundle.json                 what is in the bundle (below) and the sha256 of every other file
    models/<task>.<family>.txt  LightGBM model text        (or .tl: a treelite checkpoint of a scikit-learn
                                                            forest; or .json: linear/naive Bayes parameters,
                                                            with the imputer and scaler parameters)
    lightgbm/<task>.txt         the LightGBM model of every task (the primary model, kept when another
                                family was chosen: the compilers and benchmarks start from it)
    compact/<task>.txt          the compact LightGBM model of each task (fewest features within tolerance)
    native/<set>/<task>.so      added by ``iotengine compile`` (engine/bundle/native.py), with C sources
    iot/<set>/<task>.so         added by ``iotengine compile`` (engine/bundle/iot.py), with its C source
    onnx/<set>/<task>.*.onnx    added by ``iotengine compile`` (engine/bundle/onnx.py): fp32 and int8

``bundle.json`` records the feature spec (version and the 67 names), the input columns, the UTC offset of the
time features, for each task its kind, model family, file, classes, decision threshold and CV metrics, the
library versions that wrote it, and ``files``: relative path -> sha256. :meth:`Bundle.load` hashes every
listed file and refuses the bundle if any file is missing or differs, before parsing any model; each model is
parsed from exactly the bytes that were hashed.

Examples
--------
>>> from engine.data.synthetic import generate
>>> from engine.models.tasks import TASK_BY_NAME, inputs_and_targets
>>> from engine.models.cross_validation import fit_model
>>> from engine.models.zoo import candidates
>>> import tempfile
>>> X, y = inputs_and_targets(generate(2_000, seed=5))
>>> task = TASK_BY_NAME["anomaly_flag"]
>>> model = fit_model(candidates("binary")["lightgbm"], X, y[task.name])
>>> folder = tempfile.mkdtemp()
>>> bundle = Bundle.write(folder, {task.name: TaskModel(task.name, "lightgbm", model, threshold=0.5)})
>>> loaded = Bundle.load(folder)
>>> loaded.thresholds
{'anomaly_flag': 0.5}
>>> scores = loaded.predict(generate(10, seed=6))
>>> scores["anomaly_flag"].shape
(10,)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.bundle.files import (
    DIGEST_FIELD,
    MANIFEST,
    MANIFEST_LOCK,
    manifest_digest,
    sha256_of,
    write_file,
    write_manifest,
)
from engine.bundle.manifest import check_manifest
from engine.bundle.writer import BUNDLE_FORMAT, FEATURE_SPEC_VERSION, UNSUPERVISED_SET, TaskModel, write_bundle
from engine.data.loading import load_telemetry
from engine.data.schema import FAILURE_TYPES
from engine.errors import BundleError, InvalidInputError
from engine.features.batch import features_of_valid_table
from engine.features.batch_driver import run_history
from engine.models.autoencoder import (
    RESIDUAL_NAMES,
    SCORE_NAME,
    anomaly_score,
    detector_matrix,
    standardized_residuals,
)
from engine.models.model_files import load_model
from engine.models.tasks import INPUT_COLUMNS, TASK_BY_NAME, design_matrix
from kernels.names import FEATURE_NAMES, RAW

__all__ = ["BUNDLE_FORMAT", "FEATURE_SPEC_VERSION", "Bundle", "EdgeBuild", "TaskModel"]


@dataclass(frozen=True)
class EdgeBuild:
    """The bundle's edge library (``iotengine compile``): its file, sha256, model set, tree form, state size."""

    library: str
    sha256: str
    models: str
    trees: str
    state_bytes: int
    tasks: dict
    library_sources: tuple[str, ...]


class Bundle:
    """A loaded, verified bundle. Build one with :meth:`write`, open one with :meth:`load`.

    Attributes
    ----------
    path : Path
    manifest : dict
        The parsed ``bundle.json``; read it through the properties below.
    """

    def __init__(self, path: Path, manifest: dict, contents: dict[str, bytes], digest: str = ""):
        self.path = path
        self.manifest = manifest
        self._digest = digest
        self._models = {}
        for name, entry in manifest["tasks"].items():
            try:
                self._models[name] = load_model(contents[entry["file"]], entry["family"], TASK_BY_NAME[name].kind)
            except Exception as exc:  # each library's own parse error, as one clear error
                raise BundleError(
                    f"{path / MANIFEST}: task {name!r}: {entry['file']} is not a {entry['family']} model ({exc})"
                ) from None
        self._backend_cache: dict[str, dict] = {}

    @property
    def tasks(self) -> list[str]:
        """The tasks of the chosen models, in manifest order."""
        return list(self.manifest["tasks"])

    @property
    def digest(self) -> str:
        """sha256 of ``bundle.json`` as loaded: it names the models and every file's hash, so two bundles with
        the same digest score identically (checkpoints record it)."""
        return self._digest

    @property
    def created(self) -> str:
        """When the bundle was written (ISO 8601, UTC)."""
        return str(self.manifest.get("created", ""))

    @property
    def utc_offset_minutes(self) -> int:
        """The UTC offset of the calendar features the models were trained with; every path scores with it."""
        return int(self.manifest.get("utc_offset_minutes", 0))

    @property
    def thresholds(self) -> dict[str, float]:
        """Decision threshold of each binary task (predict positive when probability >= threshold)."""
        return {
            name: float(entry["threshold"])
            for name, entry in self.manifest["tasks"].items()
            if entry.get("threshold") is not None
        }

    @property
    def model_sets(self) -> tuple[str, ...]:
        """The task model sets to choose from: ``"chosen"``, then the extra sets (``"lightgbm"``, ``"compact"``)."""
        return ("chosen", *(name for name in self.manifest.get("model_sets", {}) if name != UNSUPERVISED_SET))

    @property
    def unsupervised(self) -> dict | None:
        """The unsupervised detector (its five regressors are the ``"unsupervised"`` model set): output name,
        sensors, inputs, residual centers and scales, threshold and false-alarm rate; None in a bundle without."""
        section = self.manifest.get("unsupervised")
        return dict(section) if section else None

    def family(self, task: str, models: str = "chosen") -> str:
        """The model family of ``task`` in a model set (e.g. ``"lightgbm"``, ``"random_forest"``)."""
        return self.set_entries(models)[task]["family"]

    @property
    def native_sets(self) -> dict[str, dict[str, dict]]:
        """The native libraries ``iotengine compile`` built: set -> task -> entry (empty before)."""
        return dict(self.manifest.get("native", {}))

    @property
    def onnx_sets(self) -> dict[str, dict[str, dict]]:
        """The ONNX exports: set -> task -> entry (empty before ``iotengine compile``)."""
        return dict(self.manifest.get("onnx", {}))

    @property
    def sklearn_onnx(self) -> dict[str, dict]:
        """Per chosen scikit-learn model, its ONNX file made when the bundle was written, or why there is none."""
        return dict(self.manifest.get("sklearn_onnx", {}))

    @property
    def edge(self) -> EdgeBuild | None:
        """The edge library, or None before ``iotengine compile``."""
        section = self.manifest.get("edge")
        if section is None:
            return None
        return EdgeBuild(
            library=section["library"],
            sha256=self.manifest["files"][section["library"]],
            models=section["models"],
            trees=section["trees"],
            state_bytes=int(section["state_bytes"]),
            tasks=dict(section["tasks"]),
            library_sources=tuple(section["library_sources"]),
        )

    @property
    def feature_spec(self) -> str:
        """The version of ../shared/spec/features.md the models were trained on."""
        return str(self.manifest["feature_spec"]["version"])

    def entry(self, task: str, models: str = "chosen") -> dict | None:
        """The manifest entry of ``task``'s model in a set (file, family, columns, threshold), or None."""
        return self.set_entries(models).get(task)

    @property
    def trained_on(self) -> dict:
        """What the training data was, as the trainer recorded it (empty if it did not)."""
        return dict(self.manifest.get("trained_on", {}))

    @property
    def files(self) -> dict[str, str]:
        """Relative path -> sha256 of every file the bundle vouches for."""
        return dict(self.manifest["files"])

    # --- writing

    @classmethod
    def write(
        cls,
        path: str | os.PathLike,
        models: dict[str, TaskModel],
        *,
        sets: dict[str, dict[str, TaskModel]] | None = None,
        utc_offset_minutes: int = 0,
        extra: dict | None = None,
        unsupervised=None,
    ) -> Bundle:
        """Save fitted models (and optionally the unsupervised detector, a fitted and calibrated
        :class:`engine.models.autoencoder.LightGBMAutoencoder`) as a bundle folder, replacing the bundle files
        already there, and return it loaded (:func:`engine.bundle.writer.write_bundle`)."""
        write_bundle(
            Path(path),
            models,
            sets=sets or {},
            utc_offset_minutes=utc_offset_minutes,
            extra=extra or {},
            unsupervised=unsupervised,
        )
        return cls.load(path)

    def add_files(self, files: dict[str, bytes], section: str | None = None, entry: object = None) -> Bundle:
        """Add files (relative path -> bytes) to the bundle, and optionally a manifest section; returns it reloaded."""
        with MANIFEST_LOCK:
            manifest = json.loads((self.path / MANIFEST).read_text())
            for relative, data in files.items():
                target = self.path / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                manifest["files"][relative] = write_file(target, data)
            if section is not None:
                manifest[section] = entry
            write_manifest(self.path, manifest)
        return Bundle.load(self.path)

    # --- reading

    @classmethod
    def load(cls, path: str | os.PathLike) -> Bundle:
        """Open a bundle, refusing it if ``bundle.json`` is unreadable or any file's sha256 differs from it."""
        path = Path(path)
        manifest_path = path / MANIFEST
        try:
            manifest_bytes = manifest_path.read_bytes()
            manifest = json.loads(manifest_bytes)
        except FileNotFoundError:
            raise BundleError(f"{path}: not a bundle (no {MANIFEST})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from None
        except OSError as exc:
            raise BundleError(f"{manifest_path}: cannot read it ({exc.strerror})") from None
        if not isinstance(manifest, dict):
            raise BundleError(f"{manifest_path}: a manifest is a JSON object, not a {type(manifest).__name__}")
        if manifest.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{manifest_path}: format {manifest.get('format')!r} is not {BUNDLE_FORMAT!r}")
        if manifest.get("feature_spec", {}).get("names") != list(FEATURE_NAMES):
            raise BundleError(f"{manifest_path}: made for other features than {FEATURE_SPEC_VERSION}")
        if manifest.get(DIGEST_FIELD) != manifest_digest(manifest):
            raise BundleError(
                f"{manifest_path}: its {DIGEST_FIELD} does not match its contents: the manifest was edited after "
                "it was written (or written by an iotengine without manifest digests); refusing to load it"
            )
        check_manifest(manifest, manifest_path)
        contents = {}
        for relative, expected in manifest["files"].items():
            file = (path / relative).resolve()
            if path.resolve() not in file.parents:
                raise BundleError(f"{manifest_path}: file {relative!r} lies outside the bundle")
            try:
                data = file.read_bytes()
            except FileNotFoundError:
                raise BundleError(f"{path}: {relative} is listed in {MANIFEST} but missing") from None
            if sha256_of(data) != expected:
                raise BundleError(f"{path}: {relative} does not match its sha256 in {MANIFEST}; refusing to load it")
            contents[relative] = data
        return cls(path, manifest, contents, sha256_of(manifest_bytes))

    def verified_bytes(self, relative: str) -> bytes:
        """A bundle file's bytes, after checking them against the manifest's sha256 (again, at read time)."""
        expected = self.manifest["files"].get(relative)
        if expected is None:
            raise BundleError(f"{self.path}: {relative} is not part of the bundle")
        data = (self.path / relative).read_bytes()
        if sha256_of(data) != expected:
            raise BundleError(f"{self.path}: {relative} does not match its sha256 in {MANIFEST}; refusing to use it")
        return data

    # --- predicting

    def inputs(self, table) -> np.ndarray:
        """The (n, 68) model inputs of a telemetry table: the 67 features and machine_status."""
        table = load_telemetry(table)
        features = features_of_valid_table(table, self.utc_offset_minutes)
        return design_matrix(features, table.column("machine_status").to_numpy())

    def predict(self, table, backend: str = "lightgbm", models: str = "chosen") -> dict[str, np.ndarray]:
        """Scores of every task for every row of a telemetry table (labels are not needed).

        Parameters
        ----------
        table : path or pyarrow.Table
            Telemetry in the Kaggle layout.
        backend : {"lightgbm", "native", "iot", "onnx", "onnx-int8", "c"}, default="lightgbm"
            How the models run: ``"lightgbm"`` is each model's own library (LightGBM, treelite's interpreter
            for scikit-learn forests, numpy for linear and naive Bayes models); ``"native"`` the libraries built
            by ``iotengine compile`` (treelite + tl2cgen), through cffi (linear and naive Bayes models stay in
            numpy); ``"iot"`` the same with the libraries of iotengine's own tree generator; ``"onnx"``
            onnxruntime on one thread with the fp32 export of every model (onnxmltools for LightGBM, skl2onnx
            for scikit-learn models); ``"onnx-int8"`` the int8 (quantized GEMM form) export of LightGBM models;
            ``"c"`` the bundle's C library, features included (:func:`engine.scoring.batch.predict_with_c`).
        models : {"chosen", "lightgbm", "compact"}, default="chosen"
            The model of each task chosen by cross-validation, the task's LightGBM model, or its compact model.

        Returns
        -------
        dict
            ``anomaly_flag``, ``maintenance_required``, ``downtime_risk``: probability of the positive class,
            shape (n,); ``failure_type``: class names, shape (n,), and ``failure_type_proba``, shape (n, 5),
            columns in :data:`engine.data.schema.FAILURE_TYPES` order; ``predicted_remaining_life``: hours, shape (n,).
            With the unsupervised detector (:attr:`unsupervised`), also ``unsupervised_anomaly`` (the score,
            an alarm when >= its threshold) and ``residual_<sensor>`` for the five sensors (standardized), from
            the detector's regressors in the same backend.
        """
        if backend == "c":
            from engine.scoring.batch import predict_with_c

            return predict_with_c(self, table, models)
        table = load_telemetry(table)
        history = run_history(table) if self.unsupervised else None
        return self.predict_inputs(self.inputs(table), backend=backend, models=models, history=history)

    def predict_inputs(
        self, X: np.ndarray, backend: str = "lightgbm", models: str = "chosen", history: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """:meth:`predict` from model inputs already computed (shape (n, 68)); the unsupervised outputs too when
        ``history`` (shape (n, 10), :func:`engine.features.batch_driver.run_history`) is given."""
        if models == UNSUPERVISED_SET:
            raise InvalidInputError(f"models must be one of {', '.join(self.model_sets)}: the unsupervised detector's "
                                    "outputs come with every set")  # fmt: skip
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(INPUT_COLUMNS):
            raise InvalidInputError(f"inputs must have shape (n, {len(INPUT_COLUMNS)}), not {X.shape}")
        predictors = self._backend_models(backend, models)
        out = {}
        for name, entry in self.set_entries(models).items():
            columns = entry.get("columns")
            scores = predictors[name].predict(X if columns is None else X[:, columns])
            if name == "failure_type":
                proba = np.zeros((X.shape[0], len(FAILURE_TYPES)))
                proba[:, entry["class_indices"]] = scores.reshape(X.shape[0], -1)
                out["failure_type_proba"] = proba
                names = np.asarray([*FAILURE_TYPES, ""])  # "": no class from NaN probabilities
                out[name] = names[np.where(np.isnan(proba).any(axis=1), len(FAILURE_TYPES), proba.argmax(axis=1))]
            else:
                out[name] = np.asarray(scores, dtype=np.float64).reshape(-1)
        if history is not None:
            out.update(self.unsupervised_outputs(detector_matrix(X, history), backend))
        return out

    def unsupervised_outputs(self, D: np.ndarray, backend: str = "lightgbm") -> dict[str, np.ndarray]:
        """``unsupervised_anomaly`` and the five ``residual_<sensor>`` of detector inputs ``D`` (n, 78)."""
        section = self.unsupervised
        if section is None:
            raise BundleError(f"{self.path}: the bundle has no unsupervised detector; train it again")
        predictors = self._backend_models(backend, UNSUPERVISED_SET)
        entries = self.set_entries(UNSUPERVISED_SET)
        predicted = np.empty((D.shape[0], len(RAW)))
        for s, sensor in enumerate(RAW):
            columns = np.asarray(entries[sensor]["columns"])
            predicted[:, s] = np.asarray(predictors[sensor].predict(D[:, columns]), dtype=np.float64).reshape(-1)
        residuals = standardized_residuals(D[:, : len(RAW)], predicted, section["center"], section["scale"])
        return {SCORE_NAME: anomaly_score(residuals), **dict(zip(RESIDUAL_NAMES, residuals.T, strict=True))}

    def set_entries(self, models: str) -> dict[str, dict]:
        """Manifest entries, by task, of the chosen models (``"chosen"``) or of an extra model set."""
        if models == "chosen":
            return dict(self.manifest["tasks"])
        if models in self.manifest.get("model_sets", {}):
            return self.model_set(models)
        raise InvalidInputError(f"models must be one of {', '.join(self.model_sets)}, not {models!r}")

    def _backend_models(self, backend: str, models: str = "chosen") -> dict:
        key = (backend, models)
        if key not in self._backend_cache:
            from engine.bundle.predictors import backend_predictors

            self._backend_cache[key] = backend_predictors(self, backend, models)
        return self._backend_cache[key]

    def model(self, task: str):
        """The predictor of a task (see :mod:`engine.models.model_files`)."""
        return self._models[task]

    def model_set(self, name: str) -> dict[str, dict]:
        """Manifest entries of an extra model set (``"lightgbm"``, ``"compact"``, ``"unsupervised"``), by task
        (by sensor for the unsupervised set)."""
        return dict(self.manifest.get("model_sets", {}).get(name, {}))

    def load_set_model(self, set_name: str, task: str):
        """A predictor of a task's model from an extra set, from verified bytes."""
        entry = self.model_set(set_name)[task]
        return load_model(self.verified_bytes(entry["file"]), entry["family"], entry["kind"])
