"""pytest-benchmark suite for the feature paths: ``pytest bench/test_features_bench.py --benchmark-json=out.json``.

Sizes are modest so the suite runs in a minute; scripts/bench_features.py prints the full 1M-row table.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bench.baselines import PythonFeatureStream, pandas_features
from engine.data.schema import SENSORS
from engine.data.synthetic import generate
from engine.features.batch import compute_features
from engine.features.stream import FeatureStream

ROWS = 200_000


@pytest.fixture(scope="module")
def fleet():
    return generate(ROWS, mode="fleet", seed=0)


@pytest.fixture(scope="module")
def arrays(fleet):
    ids = fleet.column("machine_id").to_numpy()
    ts = fleet.column("timestamp").cast(pa.int64()).to_numpy()
    values = np.column_stack([fleet.column(s).to_numpy() for s in SENSORS])
    return ids, ts, values


def test_batch_compute_features(benchmark, fleet):
    result = benchmark(compute_features, fleet)
    assert result.shape == (ROWS, 67)


def test_pandas_usual_way(benchmark, fleet):
    frame = fleet.to_pandas()
    result = benchmark.pedantic(pandas_features, args=(frame,), rounds=3, iterations=1)
    assert result.shape == (ROWS, 67)


def test_python_per_sample(benchmark, arrays):
    ids, ts, values = arrays
    rows = list(zip(ids[:20_000].tolist(), ts[:20_000].tolist(), values[:20_000].tolist(), strict=True))

    def run():
        stream = PythonFeatureStream()
        for machine, t, x in rows:
            stream.update(machine, t, x)

    benchmark.pedantic(run, rounds=3, iterations=1)


def test_stream_update_one_sample(benchmark, arrays):
    ids, ts, values = arrays
    stream = FeatureStream()
    stream.update_batch(ids, ts, values)
    clock = iter(range(int(ts.max()) + 1, 2**62))
    sample = [70.0, 50.0, 40.0, 3.0, 2.0]
    benchmark(lambda: stream.update(1, next(clock), sample))


def test_stream_update_batch_1000(benchmark, arrays):
    ids, ts, values = arrays
    stream = FeatureStream()
    offsets = iter(range(0, 2**40, 10**6))

    def run():
        shift = next(offsets)
        stream.update_batch(ids[:1000], ts[:1000] + shift, values[:1000])

    benchmark(run)
