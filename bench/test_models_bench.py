"""pytest-benchmark suite for the model runtimes: ``pytest bench/test_models_bench.py --benchmark-json=out.json``.

One 100-tree LightGBM model trained on generated fleet data, every runtime that runs in-process, at batch 1 and
1,000. ``iotengine bench`` is the full side-by-side suite (C driver, lleaves, the bundle's models, charts).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from bench.artifacts import build_artifacts
from engine.data.synthetic import FLEET_INTERVAL_S, generate
from engine.models.tasks import inputs_and_targets


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    X, y = inputs_and_targets(generate(30_000, mode="fleet", seed=3, interval_s=FLEET_INTERVAL_S))
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "num_threads": 1, "deterministic": True}
    booster = lgb.train(params, lgb.Dataset(X[:20_000], y["anomaly_flag"][:20_000]), 100)
    return build_artifacts("anomaly_100", booster, "binary", tmp_path_factory.mktemp("models")), X[20_000:]


RUNTIMES = ("lightgbm", "iot", "native", "uint8", "onnx-fp32", "onnx-int8")


@pytest.mark.parametrize("batch", [1, 1_000])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_predict(benchmark, artifacts, runtime, batch):
    built, X = artifacts
    block = np.ascontiguousarray(X[:batch])
    if runtime == "lightgbm":
        run = lambda: built.booster.predict(block, num_threads=1)  # noqa: E731
    elif runtime in built.native:
        run = lambda: built.native[runtime].predict(block)  # noqa: E731
    else:
        run = lambda: built.onnx[runtime].predict(block)  # noqa: E731
    benchmark.extra_info.update(runtime=runtime, batch=batch, rows=batch)
    result = benchmark(run)
    assert np.asarray(result).shape[0] == batch
