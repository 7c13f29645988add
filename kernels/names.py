"""The sensor and failure-type names; the 67 feature names in the order of ../shared/spec/features.md, and the
index of each family."""

from __future__ import annotations

# The sensor columns of the telemetry, in the order of every array of five sensors; the raw features are them.
SENSORS: tuple[str, ...] = ("temperature", "vibration", "humidity", "pressure", "energy_consumption")
SENSOR_SHORT = ("temp", "vib", "hum", "pres", "energy")
RAW = SENSORS
# The failure types, in the order of every array of class probabilities (and of iotengine.h).
FAILURE_TYPES: tuple[str, ...] = ("Normal", "Vibration Issue", "Overheating", "Pressure Drop", "Electrical Fault")

FEATURE_NAMES: tuple[str, ...] = (
    *RAW,
    *(f"{s}_{t}" for s in SENSOR_SHORT for t in ("sq", "sqrt", "log")),
    *(f"{s}_zscore_machine" for s in SENSOR_SHORT),
    *(f"{s}_{t}" for s in SENSOR_SHORT for t in ("roll_mean_5", "roll_std_5", "ewm_5")),
    *(f"{s}_diff" for s in SENSOR_SHORT),
    *(f"{s}_{t}" for s in ("temp", "vib", "pres") for t in ("dev_rolling", "anomaly_score")),
    "temp_machine_mean",
    "temp_machine_std",
    "temp_machine_min",
    "temp_machine_max",
    "temp_machine_range",
    "temp_x_vib",
    "hum_x_pres",
    "energy_x_temp",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "hour",
    "day_of_week",
    "is_weekend",
    "shift",
)
N_FEATURES = len(FEATURE_NAMES)
N_SENSORS = len(RAW)

# First index of each family; within a family features go sensor by sensor.
RAW_AT = 0
TRANSFORM_AT = 5  # 3 per sensor: sq, sqrt, log
ZSCORE_AT = 20
ROLLING_AT = 25  # 3 per sensor: roll_mean_5, roll_std_5, ewm_5
DIFF_AT = 40
DEVIATION_AT = 45  # 2 per sensor, for DEVIATION_SENSORS: dev_rolling, anomaly_score
DEVIATION_SENSORS = (0, 1, 3)  # temperature, vibration, pressure
TEMP_MACHINE_AT = 51  # mean, std, min, max, range
INTERACTION_AT = 56  # T*V, H*P, E*T
TIME_AT = 59  # hour_sin, hour_cos, dow_sin, dow_cos, hour, day_of_week, is_weekend, shift

assert N_FEATURES == 67
assert FEATURE_NAMES[ZSCORE_AT] == "temp_zscore_machine"
assert FEATURE_NAMES[ROLLING_AT] == "temp_roll_mean_5"
assert FEATURE_NAMES[DIFF_AT] == "temp_diff"
assert FEATURE_NAMES[DEVIATION_AT] == "temp_dev_rolling"
assert FEATURE_NAMES[TEMP_MACHINE_AT] == "temp_machine_mean"
assert FEATURE_NAMES[INTERACTION_AT] == "temp_x_vib"
assert FEATURE_NAMES[TIME_AT] == "hour_sin"
