"""The fleet process behind ``engine.data.synthetic.generate(mode="fleet")``: every machine, every interval.

Per machine, a renewal process: a healthy phase of random length, a degradation episode of one failure type
that drifts the sensors (accelerating, as wear does) until the failure, then a repair under maintenance
status, then healthy again. Because each phase's length is drawn when the phase starts, the time of the next
failure is known at every step, so remaining life is exact, not estimated.

Observed sensors = machine baseline + daily load cycle + AR(1) noise + degradation drift, then a measurement
layer adds missing values, stuck sensors and spikes. Labels come from the process, never from the
measurement layer: a spike is not an anomaly, a drift is.

Sensor order is the spec's: temperature, vibration, humidity, pressure, energy_consumption.
"""

from __future__ import annotations

import math

import numpy as np

from kernels.config import jit

N_SENSORS = 5

PHASE_HEALTHY = 0
PHASE_DEGRADING = 1
PHASE_REPAIR = 2

STATUS_IDLE = 0
STATUS_RUNNING = 1
STATUS_MAINTENANCE = 2

# Failure type codes follow engine.data.schema.FAILURE_TYPES: 0 Normal, 1 Vibration Issue, 2 Overheating,
# 3 Pressure Drop, 4 Electrical Fault.
# Drift added at the moment of failure, per failure type (rows) and sensor (columns); it grows as
# progress**2 over the episode.
FAILURE_DRIFT = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [4.0, 45.0, 0.0, 0.0, 0.3],  # vibration issue: bearing wear shakes and warms the machine
        [30.0, 5.0, -4.0, 0.0, 0.8],  # overheating: cooling fails, the room dries
        [2.0, 3.0, 0.0, -1.8, 0.6],  # pressure drop: a leak, the pump works harder
        [8.0, 0.0, 0.0, 0.0, 2.2],  # electrical fault: current rises and gets erratic
    ]
)
FAILURE_TYPE_WEIGHTS = np.array([0.0, 0.35, 0.30, 0.25, 0.10])

# How strongly each sensor follows the daily load (value at full load minus value at no load).
LOAD_EFFECT = np.array([8.0, 12.0, -3.0, 0.25, 1.5])
# Band half-width, in noise standard deviations, outside which a process value is anomalous.
ANOMALY_BAND = 4.0


@jit
def simulate_fleet(
    rng,
    steps,
    start_s,
    interval_s,
    baseline,
    noise_sd,
    noise_phi,
    mean_healthy_hours,
    episode_hours,
    repair_hours,
    failure_drift,
    failure_weights,
    load_effect,
    anomaly_band,
    missing_rate,
    spike_rate,
    stuck_rate,
    stuck_steps,
    maintenance_lead_hours,
    downtime_horizon_hours,
):
    """Simulate ``steps`` intervals of a fleet of ``baseline.shape[0]`` machines.

    Returns arrays in time-major order (all machines at interval 0, then interval 1, ...): timestamps (s),
    machine index, observed sensors (n, 5), status, anomaly, remaining life (hours), failure type code,
    downtime risk, maintenance required.
    """
    machines = baseline.shape[0]
    n = steps * machines
    hours_per_step = interval_s / 3600.0

    timestamps = np.empty(n, np.int64)
    machine_index = np.empty(n, np.int64)
    sensors = np.empty((n, N_SENSORS), np.float64)
    status_out = np.empty(n, np.int8)
    anomaly_out = np.empty(n, np.int8)
    remaining_life = np.empty(n, np.float64)
    failure_out = np.empty(n, np.int8)
    downtime_out = np.empty(n, np.float64)
    maintenance_out = np.empty(n, np.int8)

    phase = np.zeros(machines, np.int64)
    phase_end = np.zeros(machines, np.int64)  # first step of the next phase
    failure_step = np.zeros(machines, np.int64)  # step at which the current or next degradation fails
    episode_start = np.zeros(machines, np.int64)
    episode_type = np.zeros(machines, np.int64)
    idle = np.zeros(machines, np.bool_)
    noise = np.zeros((machines, N_SENSORS))
    stuck_left = np.zeros((machines, N_SENSORS), np.int64)
    stuck_value = np.zeros((machines, N_SENSORS))
    cumulative_weights = np.cumsum(failure_weights)

    for m in range(machines):
        for s in range(N_SENSORS):
            noise[m, s] = rng.normal() * noise_sd[m, s]
        # Start each machine somewhere in its life, so that failures are spread over time from the start.
        healthy = _draw_steps(rng, mean_healthy_hours, hours_per_step, True)
        phase[m] = PHASE_HEALTHY
        phase_end[m] = int(rng.random() * healthy) + 1
        failure_step[m] = phase_end[m] + _draw_uniform_steps(rng, episode_hours, hours_per_step)

    for t in range(steps):
        now = start_s + t * interval_s
        seconds_of_day = now % 86400
        day_of_week = (now // 86400 + 3) % 7  # 1970-01-01 was a Thursday
        hour = seconds_of_day / 3600.0
        load = 0.5 + 0.5 * math.sin(2.0 * math.pi * (hour - 9.0) / 24.0)
        if day_of_week >= 5:
            load *= 0.6

        for m in range(machines):
            # --- the process: phase transitions
            if t >= phase_end[m]:
                if phase[m] == PHASE_HEALTHY:
                    phase[m] = PHASE_DEGRADING
                    episode_start[m] = t
                    phase_end[m] = failure_step[m]
                    u = rng.random() * cumulative_weights[-1]
                    k = 0
                    while cumulative_weights[k] <= u:
                        k += 1
                    episode_type[m] = k
                elif phase[m] == PHASE_DEGRADING:
                    phase[m] = PHASE_REPAIR
                    phase_end[m] = t + _draw_uniform_steps(rng, repair_hours, hours_per_step)
                else:
                    phase[m] = PHASE_HEALTHY
                    phase_end[m] = t + _draw_steps(rng, mean_healthy_hours, hours_per_step, False)
                    failure_step[m] = phase_end[m] + _draw_uniform_steps(rng, episode_hours, hours_per_step)
                    episode_type[m] = 0
                    for s in range(N_SENSORS):
                        noise[m, s] = rng.normal() * noise_sd[m, s]

            # Idle spells: about an hour long, a few a day, never while under repair.
            if idle[m]:
                if rng.random() < hours_per_step / 1.0:
                    idle[m] = False
            elif rng.random() < hours_per_step / 8.0:
                idle[m] = True

            if phase[m] == PHASE_REPAIR:
                status = STATUS_MAINTENANCE
                machine_load = -0.6  # stopped: below the idle level
            elif idle[m]:
                status = STATUS_IDLE
                machine_load = 0.0
            else:
                status = STATUS_RUNNING
                machine_load = load

            progress = 0.0
            if phase[m] == PHASE_DEGRADING:
                span = failure_step[m] - episode_start[m]
                progress = (t - episode_start[m] + 1) / span if span > 0 else 1.0

            i = t * machines + m
            anomalous = False
            for s in range(N_SENSORS):
                phi = noise_phi[s]
                sd = noise_sd[m, s]
                if phase[m] == PHASE_DEGRADING and episode_type[m] == 4 and s == 4:
                    sd = sd * (1.0 + 4.0 * progress)  # electrical faults make the current erratic
                noise[m, s] = phi * noise[m, s] + math.sqrt(1.0 - phi * phi) * sd * rng.normal()
                expected = baseline[m, s] + load_effect[s] * machine_load
                drift = failure_drift[episode_type[m], s] * progress * progress
                value = expected + noise[m, s] + drift
                if abs(value - expected) > anomaly_band * noise_sd[m, s]:
                    anomalous = True

                # --- the measurement layer
                if stuck_left[m, s] > 0:
                    stuck_left[m, s] -= 1
                    value = stuck_value[m, s]
                elif rng.random() < stuck_rate:
                    stuck_left[m, s] = 1 + int(rng.random() * stuck_steps)
                    stuck_value[m, s] = value
                if rng.random() < spike_rate:
                    sign = 1.0 if rng.random() < 0.5 else -1.0
                    value += sign * (6.0 + 6.0 * rng.random()) * noise_sd[m, s]
                if rng.random() < missing_rate:
                    value = np.nan
                sensors[i, s] = value

            if phase[m] == PHASE_REPAIR:
                life = 0.0
                failure = episode_type[m]
                risk = 1.0
            else:
                life = (failure_step[m] - t) * hours_per_step
                failure = episode_type[m] if phase[m] == PHASE_DEGRADING else 0
                risk = max(0.0, 1.0 - life / downtime_horizon_hours)

            timestamps[i] = now
            machine_index[i] = m
            status_out[i] = status
            anomaly_out[i] = 1 if anomalous else 0
            remaining_life[i] = life
            failure_out[i] = failure
            downtime_out[i] = risk
            maintenance_out[i] = 1 if (status == STATUS_MAINTENANCE or life <= maintenance_lead_hours) else 0

    return (
        timestamps,
        machine_index,
        sensors,
        status_out,
        anomaly_out,
        remaining_life,
        failure_out,
        downtime_out,
        maintenance_out,
    )


@jit
def _draw_steps(rng, mean_hours, hours_per_step, at_random_point):
    """Length, in steps, of a healthy phase: exponential with the given mean, at least one step."""
    hours = -mean_hours * math.log(1.0 - rng.random())
    if at_random_point:
        hours = hours + mean_hours * rng.random()
    return max(1, int(hours / hours_per_step))


@jit
def _draw_uniform_steps(rng, bounds_hours, hours_per_step):
    hours = bounds_hours[0] + (bounds_hours[1] - bounds_hours[0]) * rng.random()
    return max(1, int(hours / hours_per_step))
