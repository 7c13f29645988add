"""engine.data.synthetic: determinism, kaggle mode's fidelity to the real sample, the fleet process's properties."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from engine.data.schema import FAILURE_TYPES, SENSORS, TELEMETRY_SCHEMA
from engine.data.synthetic import FLEET_INTERVAL_S, generate


def _frame(table) -> pd.DataFrame:
    frame = table.to_pandas()
    frame["failure_type"] = frame["failure_type"].astype(str)
    return frame


@pytest.fixture(scope="module")
def kaggle():
    return _frame(generate(60_000, seed=11))


@pytest.fixture(scope="module")
def fleet():
    # 20 machines x 14 days of minutes: several degradation episodes per machine.
    return _frame(generate(20 * 14 * 1440, machines=20, mode="fleet", seed=5))


@pytest.mark.parametrize("mode", ["kaggle", "fleet"])
def test_same_seed_same_bits_other_seed_other_data(mode):
    a = generate(3_000, machines=10, mode=mode, seed=1)
    assert a.schema.equals(TELEMETRY_SCHEMA)
    b = generate(3_000, machines=10, mode=mode, seed=1)
    c = generate(3_000, machines=10, mode=mode, seed=2)
    for name in SENSORS:
        np.testing.assert_array_equal(a.column(name).to_numpy(), b.column(name).to_numpy())
    assert not np.array_equal(a.column("temperature").to_numpy(), c.column("temperature").to_numpy(), equal_nan=True)
    assert a.drop_columns(list(SENSORS)).equals(b.drop_columns(list(SENSORS)))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="mode must be one of"):
        generate(10, mode="plant")
    with pytest.raises(ValueError, match="rows must be at least 1"):
        generate(0)
    with pytest.raises(ValueError, match="start must be an ISO 8601"):
        generate(10, start="yesterday")


# --- kaggle mode: the relations found in the real sample hold there and in generated data


def _relations(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    anomaly = (frame.temperature > 90) | (frame.vibration > 80)
    life = frame.predicted_remaining_life
    return {
        "anomaly = temperature > 90 or vibration > 80": frame.anomaly_flag.to_numpy() == anomaly.to_numpy(),
        "downtime_risk = anomaly": frame.downtime_risk.to_numpy() == frame.anomaly_flag.to_numpy(),
        "maintenance = anomaly or status 2 or life < 20": frame.maintenance_required.to_numpy()
        == (anomaly | (frame.machine_status == 2) | (life < 20)).to_numpy(),
        "failure type is Normal unless status 2": (
            (frame.failure_type == "Normal") | (frame.machine_status == 2)
        ).to_numpy(),
        "life in 1..49 when anomalous": (~anomaly | life.between(1, 49)).to_numpy(),
        "life in 10..499 otherwise": (anomaly | life.between(10, 499)).to_numpy(),
        "life is whole hours": (life == np.round(life)).to_numpy(),
    }


def test_label_relations_hold_in_real_sample_and_generated_data(real_frame, kaggle):
    for name, holds in _relations(real_frame).items():
        assert holds.all(), f"real sample: {name}"
    for name, holds in _relations(kaggle).items():
        assert holds.all(), f"generated: {name}"


@pytest.mark.parametrize("sensor", SENSORS)
def test_sensor_distributions_match_the_real_sample(real_frame, kaggle, sensor):
    result = stats.ks_2samp(real_frame[sensor], kaggle[sensor])
    assert result.pvalue > 0.01, (sensor, result)
    assert abs(real_frame[sensor].mean() - kaggle[sensor].mean()) < 4 * real_frame[sensor].std() / np.sqrt(2231)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("anomaly_flag", 1),
        ("maintenance_required", 1),
        ("machine_status", 0),
        ("machine_status", 2),
        *(("failure_type", name) for name in FAILURE_TYPES),
    ],
)
def test_label_rates_match_the_real_sample(real_frame, kaggle, column, value):
    real = (real_frame[column] == value).mean()
    generated = (kaggle[column] == value).mean()
    standard_error = np.sqrt(real * (1 - real) / len(real_frame))
    assert abs(real - generated) < 4 * standard_error + 1e-3, (column, value, real, generated)


def test_sensors_independent_of_status_and_each_other(kaggle):
    corr = np.corrcoef(kaggle[list(SENSORS)].to_numpy(), rowvar=False)
    assert np.abs(corr - np.eye(5)).max() < 0.03
    for sensor in SENSORS:
        groups = [g[sensor].to_numpy() for _, g in kaggle.groupby("machine_status")]
        assert stats.kruskal(*groups).pvalue > 1e-3


INPUTS = [*SENSORS, "machine_status"]


@pytest.mark.parametrize("label", ["anomaly_flag", "maintenance_required"])
def test_model_trained_on_generated_data_scores_on_real_data_as_well_as_real_cv(real_frame, kaggle, label):
    params = {"n_estimators": 200, "num_leaves": 15, "learning_rate": 0.05, "verbose": -1, "random_state": 0}
    model = lgb.LGBMClassifier(**params).fit(kaggle[INPUTS], kaggle[label])
    f1_transfer = f1_score(real_frame[label], model.predict(real_frame[INPUTS]))

    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    scores = []
    for train, test in folds.split(real_frame, real_frame[label]):
        fold_model = lgb.LGBMClassifier(**params).fit(real_frame.iloc[train][INPUTS], real_frame.iloc[train][label])
        scores.append(f1_score(real_frame.iloc[test][label], fold_model.predict(real_frame.iloc[test][INPUTS])))
    f1_real_cv = float(np.mean(scores))
    print(f"{label}: F1 trained on generated, on real {f1_transfer:.4f}; 3-fold CV on real {f1_real_cv:.4f}")
    assert f1_transfer >= f1_real_cv - 0.02, (label, f1_transfer, f1_real_cv)
    assert f1_transfer > 0.85


# --- fleet mode


def test_fleet_every_machine_every_interval():
    table = generate(1_001, machines=10, mode="fleet", seed=3, interval_s=FLEET_INTERVAL_S)
    frame = _frame(table)
    assert len(frame) == 1_010  # rounded up to whole intervals
    per_time = frame.groupby("timestamp").machine_id.apply(lambda ids: sorted(ids))
    assert all(ids == list(range(1, 11)) for ids in per_time)
    steps = np.diff(np.unique(frame.timestamp.astype("int64") // 10**9))
    assert (steps == 300).all()


def test_fleet_remaining_life_counts_down_to_failures(fleet):
    for _, machine in fleet.groupby("machine_id"):
        life = machine.predicted_remaining_life.to_numpy()
        repairing = machine.machine_status.to_numpy() == 2
        step = np.diff(life)
        counting = ~repairing[:-1] & ~repairing[1:]
        np.testing.assert_allclose(step[counting], -1 / 60, atol=2e-4)  # minutes, rounded to 1e-4 h
        assert (life[repairing] == 0).all()


def _failures(fleet):
    """(machine frame, index of the first repair row) for every failure followed by a repair."""
    out = []
    for _, machine in fleet.groupby("machine_id"):
        machine = machine.reset_index(drop=True)
        status = machine.machine_status.to_numpy()
        starts = np.flatnonzero((status[1:] == 2) & (status[:-1] != 2)) + 1
        out += [(machine, int(s)) for s in starts if s >= 24 * 60]
    return out


def test_fleet_degradation_precedes_failures(fleet):
    failures = _failures(fleet)
    assert len(failures) >= 20
    drift_sensor = {
        "Vibration Issue": "vibration",
        "Overheating": "temperature",
        "Pressure Drop": "pressure",
        "Electrical Fault": "energy_consumption",
    }
    seen_types = set()
    for machine, start in failures:
        failure = machine.failure_type.iloc[start]
        assert failure != "Normal"
        seen_types.add(failure)
        sensor = drift_sensor[failure]
        healthy = machine[(machine.failure_type == "Normal") & (machine.machine_status != 2)][sensor]
        before = machine.iloc[start - 60 : start][sensor]
        # In the last hour before the failure the failing sensor is far outside its healthy range.
        shift = abs(before.median() - healthy.median()) / healthy.std()
        assert shift > 2.5, (failure, shift)
        assert (machine.iloc[start - 60 : start].failure_type == failure).all()
        assert (machine.iloc[start - 24 * 60 : start].maintenance_required == 1).all()
        assert (machine.iloc[start - 60 : start].anomaly_flag == 1).mean() > 0.8
    assert seen_types == set(FAILURE_TYPES[1:])


def test_fleet_anomalies_belong_to_degradation(fleet):
    healthy = fleet[fleet.failure_type == "Normal"]
    assert healthy.anomaly_flag.mean() < 0.002
    assert 0.03 < fleet.anomaly_flag.mean() < 0.3


def test_fleet_measurement_faults(fleet):
    for sensor in SENSORS:
        rate = fleet[sensor].isna().mean()
        assert 0.001 < rate < 0.004, (sensor, rate)
    # stuck sensors: long runs of one repeated value
    runs = 0
    for _, machine in fleet.groupby("machine_id"):
        values = machine.temperature.to_numpy()
        same = values[1:] == values[:-1]
        runs += int(np.count_nonzero(same[:-10] & same[10:]))
    assert runs > 0


def test_fleet_per_machine_features_carry_signal_raw_values_do_not(fleet):
    # Per-machine deviation (computed here with pandas, independently of the engine) must add to raw values:
    # the same reading is normal on one machine and anomalous on another.
    frame = fleet.sort_values(["machine_id", "timestamp"], kind="stable").copy()
    deviation = []
    for sensor in SENSORS:
        grouped = frame.groupby("machine_id")[sensor]
        name = f"{sensor}_dev"
        frame[name] = frame[sensor] - grouped.transform(lambda s: s.expanding().median())
        deviation.append(name)
    frame = frame[frame.groupby("machine_id").cumcount() > 24 * 60]
    train = frame[frame.timestamp < frame.timestamp.quantile(0.6)]
    test = frame[frame.timestamp >= frame.timestamp.quantile(0.6)]

    def f1(inputs):
        model = lgb.LGBMClassifier(n_estimators=150, num_leaves=31, verbose=-1, random_state=0)
        model.fit(train[inputs], train.anomaly_flag)
        return f1_score(test.anomaly_flag, model.predict(test[inputs]))

    raw = f1([*SENSORS, "machine_status"])
    with_machine = f1([*SENSORS, "machine_status", *deviation])
    print(f"anomaly F1, raw sensors: {raw:.3f}; with per-machine deviation: {with_machine:.3f}")
    assert with_machine > raw + 0.1, (raw, with_machine)
