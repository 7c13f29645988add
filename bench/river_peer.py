"""River (https://riverml.xyz), the usual library for online statistics in Python, as a peer of the streaming
features: the features its statistics compute, one ``update`` per statistic per sample.

Per machine and sensor: ``utils.Rolling(stats.Mean)`` and ``utils.Rolling(stats.Var, ddof=0)`` over the last 5
values (roll_mean_5, roll_std_5), ``stats.EWMean`` with pandas' ``span=5, adjust=False`` factor (ewm_5),
``stats.Mean`` and ``stats.Var(ddof=0)`` over every value (the machine mean and std behind zscore_machine); and
``stats.Min``/``stats.Max`` of the temperature. A missing value (NaN or infinite) updates nothing, as the spec
says. These are the stateful features, the ones a per-sample library has to keep; the rest are arithmetic on
them.

Needs river (the ``bench`` extra).
"""

from __future__ import annotations

import math

from engine.optional import optional_import
from kernels.names import SENSOR_SHORT, SENSORS
from kernels.state import EPS, EWM_ALPHA, SENSOR_LIMIT, WINDOW

__all__ = ["RIVER_FEATURES", "RiverFeatureStream"]

# Names (kernels.names.FEATURE_NAMES) of what RiverFeatureStream.update returns, in order.
RIVER_FEATURES: tuple[str, ...] = (
    *(
        name
        for short in SENSOR_SHORT
        for name in (f"{short}_roll_mean_5", f"{short}_roll_std_5", f"{short}_ewm_5", f"{short}_zscore_machine")
    ),
    "temp_machine_mean",
    "temp_machine_std",
    "temp_machine_min",
    "temp_machine_max",
    "temp_machine_range",
)


class _SensorStatistics:
    def __init__(self, stats, utils):
        self.roll_mean = utils.Rolling(stats.Mean, window_size=WINDOW)
        self.roll_var = utils.Rolling(stats.Var, window_size=WINDOW, ddof=0)
        self.ewm = stats.EWMean(fading_factor=EWM_ALPHA)
        self.mean = stats.Mean()
        self.var = stats.Var(ddof=0)
        self.seen = False

    def update(self, x: float) -> None:
        self.roll_mean.update(x)
        self.roll_var.update(x)
        self.ewm.update(x)
        self.mean.update(x)
        self.var.update(x)
        self.seen = True


class RiverFeatureStream:
    """The River-computable features of :data:`RIVER_FEATURES`, one sample at a time, any number of machines."""

    def __init__(self):
        purpose = "the River peer of the feature benchmark"
        self._stats = optional_import("river.stats", "bench", purpose)
        self._utils = optional_import("river.utils", "bench", purpose)
        self._machines: dict[int, tuple[list[_SensorStatistics], object, object]] = {}

    def update(self, machine_id: int, sensors) -> list[float]:
        """Apply one sample (the five sensors, in :data:`kernels.names.SENSORS` order); its River features."""
        state = self._machines.get(machine_id)
        if state is None:
            sensors_state = [_SensorStatistics(self._stats, self._utils) for _ in SENSORS]
            state = (sensors_state, self._stats.Min(), self._stats.Max())
            self._machines[machine_id] = state
        sensor_stats, low, high = state
        out = []
        for statistics, x in zip(sensor_stats, sensors, strict=True):
            present = abs(x) <= SENSOR_LIMIT
            if present:
                statistics.update(x)
            if not statistics.seen:
                out += [math.nan] * 4
                continue
            std = math.sqrt(statistics.var.get())
            zscore = (x - statistics.mean.get()) / (std + EPS) if present else math.nan
            # River's rolling variance removes values as they leave the window and can end a hair below zero
            roll_std = math.sqrt(max(0.0, statistics.roll_var.get()))
            out += [statistics.roll_mean.get(), roll_std, statistics.ewm.get(), zscore]
        temperature = sensor_stats[0]
        if abs(sensors[0]) <= SENSOR_LIMIT:
            low.update(sensors[0])
            high.update(sensors[0])
        if temperature.seen:
            out += [temperature.mean.get(), math.sqrt(temperature.var.get()), low.get(), high.get()]
            out.append(high.get() - low.get())
        else:
            out += [math.nan] * 5
        return out
