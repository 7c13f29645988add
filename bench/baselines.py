"""Other ways to compute the 67 features, written independently of the Numba kernel.

- :func:`pandas_features`: the usual pandas way (groupby + rolling / ewm / expanding / cummin / cummax), as
  the seed project computed them. It is the benchmark baseline and the tests' oracle: it shares no code with
  ``kernels/``, only the contract of ../shared/spec/features.md.
- :class:`PythonFeatureStream`: a per-sample pure-Python implementation in the style of River's statistics
  (a small object per statistic with ``update``), the streaming baseline.

Needs pandas (the ``bench`` extra).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from engine.optional import optional_import
from kernels.names import SENSOR_SHORT as SHORT
from kernels.names import SENSORS
from kernels.state import SENSOR_LIMIT

EPS = 1e-6


def _exact_mean(window: np.ndarray) -> float:
    return float(np.mean(window.astype(np.longdouble)))


def _exact_std(window: np.ndarray) -> float:
    w = window.astype(np.longdouble)
    return float(np.sqrt(np.mean((w - np.mean(w)) ** 2)))


def pandas_features(frame, utc_offset_minutes: int = 0, *, exact_windows: bool = False) -> np.ndarray:
    """The 67 features with pandas, rows in the input order.

    Parameters
    ----------
    frame : pandas.DataFrame, or anything with ``to_pandas()``
        ``timestamp``, ``machine_id`` and the five sensors.
    utc_offset_minutes : int, default=0
    exact_windows : bool, default=False
        pandas' ``rolling().mean()/.std()`` are online algorithms (values added and removed from running
        sums), which leave residues of ~1e-8 where a window holds five identical values (a stuck sensor)
        after large ones. With ``exact_windows`` each window is recomputed from its values in extended
        precision (long double), so the result is the correctly rounded statistic: what an oracle needs.
        The default is the usual, fast pandas code, the benchmark baseline.
    """
    pd = optional_import("pandas", "bench", "the pandas baseline")

    if hasattr(frame, "to_pandas"):
        frame = frame.to_pandas()
    df = pd.DataFrame(
        {
            "machine_id": frame["machine_id"].to_numpy(),
            "ts": pd.to_datetime(frame["timestamp"], utc=True)
            .dt.tz_localize(None)
            .to_numpy()
            .astype("datetime64[s]")
            .astype("int64"),
            **{s: frame[s].to_numpy(dtype=float) for s in SENSORS},
        }
    )
    df = df.sort_values(["machine_id", "ts"], kind="stable")
    machine = df["machine_id"]
    cols: dict[str, pd.Series] = {}
    raw, transforms, zscores, rolls, diffs = {}, {}, {}, {}, {}
    for sensor, short in zip(SENSORS, SHORT, strict=True):
        x = df[sensor].where(df[sensor].abs() <= SENSOR_LIMIT)  # NaN, +-inf and absurd values are missing
        ok = x.notna()
        accepted = x[ok].groupby(machine[ok])
        windows = accepted.rolling(5, min_periods=1)
        if exact_windows:
            roll_mean = windows.apply(_exact_mean, raw=True)
            roll_std = windows.apply(_exact_std, raw=True)
        else:
            roll_mean, roll_std = windows.mean(), windows.std(ddof=0)
        state = pd.DataFrame(
            {
                "roll_mean": roll_mean.droplevel(0),
                "roll_std": roll_std.droplevel(0),
                "ewm": accepted.transform(lambda v: v.ewm(span=5, adjust=False).mean()),
                "mean": accepted.expanding().mean().droplevel(0),
                "std": accepted.expanding().std(ddof=0).droplevel(0),
                "min": accepted.cummin(),
                "max": accepted.cummax(),
                "diff": accepted.diff().fillna(0.0),
            }
        ).reindex(df.index)
        # Rows where this sensor is missing report the state as it stands: the last accepted row's values.
        carried = state.drop(columns="diff").groupby(machine).ffill()
        raw[sensor] = x
        clipped = x.clip(lower=0.0)
        transforms[f"{short}_sq"] = x**2
        transforms[f"{short}_sqrt"] = np.sqrt(clipped)
        transforms[f"{short}_log"] = np.log1p(clipped)
        zscores[f"{short}_zscore_machine"] = (x - state["mean"]) / (state["std"] + EPS)
        rolls[f"{short}_roll_mean_5"] = carried["roll_mean"]
        rolls[f"{short}_roll_std_5"] = carried["roll_std"]
        rolls[f"{short}_ewm_5"] = carried["ewm"]
        diffs[f"{short}_diff"] = state["diff"].where(ok)
        if short in ("temp", "vib", "pres"):
            deviation = (x - carried["roll_mean"]).abs()
            cols[f"{short}_dev_rolling"] = deviation
            cols[f"{short}_anomaly_score"] = deviation / (carried["roll_std"] + EPS)
        if short == "temp":
            temp = carried
    cols["temp_machine_mean"] = temp["mean"]
    cols["temp_machine_std"] = temp["std"]
    cols["temp_machine_min"] = temp["min"]
    cols["temp_machine_max"] = temp["max"]
    cols["temp_machine_range"] = temp["max"] - temp["min"]
    cols["temp_x_vib"] = raw["temperature"] * raw["vibration"]
    cols["hum_x_pres"] = raw["humidity"] * raw["pressure"]
    cols["energy_x_temp"] = raw["energy_consumption"] * raw["temperature"]
    local = pd.to_datetime(df["ts"] + 60 * utc_offset_minutes, unit="s")
    hour = local.dt.hour.astype(float)
    dow = local.dt.day_of_week.astype(float)
    cols["hour_sin"] = np.sin(2 * np.pi * hour / 24)
    cols["hour_cos"] = np.cos(2 * np.pi * hour / 24)
    cols["dow_sin"] = np.sin(2 * np.pi * dow / 7)
    cols["dow_cos"] = np.cos(2 * np.pi * dow / 7)
    cols["hour"] = hour
    cols["day_of_week"] = dow
    cols["is_weekend"] = (dow >= 5).astype(float)
    cols["shift"] = pd.cut(hour, bins=[-1, 5, 13, 21, 23], labels=[2, 0, 1, 2], ordered=False).astype(float)
    result = pd.DataFrame({**raw, **transforms, **zscores, **rolls, **diffs, **cols}, index=df.index)
    return result.sort_index().to_numpy(dtype=float)


# --------------------------------------------------------------------------------------------------------------


class _Window:
    def __init__(self, size: int = 5):
        self.values: deque[float] = deque(maxlen=size)

    def update(self, x: float) -> None:
        self.values.append(x)

    def get(self) -> tuple[float, float]:
        if not self.values:
            return math.nan, math.nan
        n = len(self.values)
        mean = sum(self.values) / n
        return mean, math.sqrt(sum((v - mean) ** 2 for v in self.values) / n)


class _Welford:
    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def get(self) -> tuple[float, float]:
        return (self.mean, math.sqrt(self.m2 / self.n)) if self.n else (math.nan, math.nan)


class _EWM:
    def __init__(self, alpha: float = 2 / 6):
        self.alpha, self.value = alpha, math.nan

    def update(self, x: float) -> None:
        self.value = x if math.isnan(self.value) else self.alpha * x + (1 - self.alpha) * self.value


class _Sensor:
    def __init__(self):
        self.window, self.welford, self.ewm = _Window(), _Welford(), _EWM()
        self.last = math.nan
        self.low, self.high = math.inf, -math.inf


class PythonFeatureStream:
    """Per-sample features in plain Python objects (River style); ``update`` returns a list of 67 floats.

    Late samples are not handled: this is a speed baseline, fed samples in time order.
    """

    def __init__(self, utc_offset_minutes: int = 0):
        self.offset_s = 60 * utc_offset_minutes
        self.machines: dict[int, list[_Sensor]] = {}

    def update(self, machine_id: int, timestamp_s: int, sensors) -> list[float]:
        state = self.machines.get(machine_id)
        if state is None:
            state = self.machines[machine_id] = [_Sensor() for _ in SENSORS]
        raw, transforms, zscores, rolls, diffs, deviations = [], [], [], [], [], []
        nan = math.nan
        for s, x in enumerate(sensors):
            st = state[s]
            ok = abs(x) <= SENSOR_LIMIT
            if ok:
                diff = x - st.last if not math.isnan(st.last) else 0.0
                st.last = x
                st.window.update(x)
                st.welford.update(x)
                st.ewm.update(x)
                st.low, st.high = min(st.low, x), max(st.high, x)
            roll_mean, roll_std = st.window.get()
            mean, std = st.welford.get()
            if ok:
                c = max(x, 0.0)
                raw.append(x)
                transforms += [x * x, math.sqrt(c), math.log1p(c)]
                zscores.append((x - mean) / (std + EPS))
                diffs.append(diff)
            else:
                raw.append(nan)
                transforms += [nan, nan, nan]
                zscores.append(nan)
                diffs.append(nan)
            rolls += [roll_mean, roll_std, st.ewm.value]
            if s in (0, 1, 3):
                dev = abs(x - roll_mean) if ok else nan
                deviations += [dev, dev / (roll_std + EPS)]
        t = state[0]
        mean, std = t.welford.get()
        has = t.welford.n > 0
        temp = [mean, std, t.low if has else nan, t.high if has else nan, t.high - t.low if has else nan]
        inter = [raw[0] * raw[1], raw[2] * raw[3], raw[4] * raw[0]]
        local = timestamp_s + self.offset_s
        hour = (local // 3600) % 24
        dow = (local // 86400 + 3) % 7
        shift = 0 if 6 <= hour < 14 else (1 if 14 <= hour < 22 else 2)
        calendar = [
            math.sin(2 * math.pi * hour / 24),
            math.cos(2 * math.pi * hour / 24),
            math.sin(2 * math.pi * dow / 7),
            math.cos(2 * math.pi * dow / 7),
            hour,
            dow,
            1.0 if dow >= 5 else 0.0,
            shift,
        ]
        return raw + transforms + zscores + rolls + diffs + deviations + temp + inter + calendar
