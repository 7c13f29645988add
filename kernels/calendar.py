"""Time-of-day and day-of-week features from a UTC timestamp shifted by a fixed offset."""

from __future__ import annotations

import math

from kernels.config import jit

SECONDS_PER_DAY = 86400
EPOCH_DAY_OF_WEEK = 3  # 1970-01-01 was a Thursday; Monday = 0


@jit
def write_calendar(timestamp_s, offset_s, out, at):
    """Write hour_sin, hour_cos, dow_sin, dow_cos, hour, day_of_week, is_weekend, shift at ``out[at:at+8]``."""
    local = timestamp_s + offset_s
    days = local // SECONDS_PER_DAY  # floor division: correct before 1970 too
    hour = (local - days * SECONDS_PER_DAY) // 3600
    dow = (days + EPOCH_DAY_OF_WEEK) % 7
    out[at] = math.sin(2.0 * math.pi * hour / 24.0)
    out[at + 1] = math.cos(2.0 * math.pi * hour / 24.0)
    out[at + 2] = math.sin(2.0 * math.pi * dow / 7.0)
    out[at + 3] = math.cos(2.0 * math.pi * dow / 7.0)
    out[at + 4] = hour
    out[at + 5] = dow
    out[at + 6] = 1.0 if dow >= 5 else 0.0
    if 6 <= hour < 14:
        out[at + 7] = 0.0
    elif 14 <= hour < 22:
        out[at + 7] = 1.0
    else:
        out[at + 7] = 2.0
