"""Time-of-day and day-of-week features from a UTC timestamp shifted by a fixed offset."""

from __future__ import annotations

import math

import numpy as np

from kernels.config import jit_inline

SECONDS_PER_DAY = 86400
EPOCH_DAY_OF_WEEK = 3  # 1970-01-01 was a Thursday; Monday = 0

# sin and cos take only 24 + 7 distinct arguments: tabulate them once (same libm, same bits as computing
# them per sample) and save four transcendental calls per sample. Numba freezes global arrays as constants.
HOUR_SIN = np.array([math.sin(2.0 * math.pi * h / 24.0) for h in range(24)])
HOUR_COS = np.array([math.cos(2.0 * math.pi * h / 24.0) for h in range(24)])
DOW_SIN = np.array([math.sin(2.0 * math.pi * d / 7.0) for d in range(7)])
DOW_COS = np.array([math.cos(2.0 * math.pi * d / 7.0) for d in range(7)])


@jit_inline
def write_calendar(timestamp_s, offset_s, out, row, at):
    """Write hour_sin, hour_cos, dow_sin, dow_cos, hour, day_of_week, is_weekend, shift at ``out[row, at:at+8]``."""
    local = timestamp_s + offset_s
    days = local // SECONDS_PER_DAY  # floor division: correct before 1970 too
    hour = (local - days * SECONDS_PER_DAY) // 3600
    dow = (days + EPOCH_DAY_OF_WEEK) % 7
    out[row, at] = HOUR_SIN[hour]
    out[row, at + 1] = HOUR_COS[hour]
    out[row, at + 2] = DOW_SIN[dow]
    out[row, at + 3] = DOW_COS[dow]
    out[row, at + 4] = hour
    out[row, at + 5] = dow
    out[row, at + 6] = 1.0 if dow >= 5 else 0.0
    if 6 <= hour < 14:
        out[row, at + 7] = 0.0
    elif 14 <= hour < 22:
        out[row, at + 7] = 1.0
    else:
        out[row, at + 7] = 2.0
