/* iot_score: the features of a sample, machine_status, the five task models and the unsupervised detector
 * (iot_model_<task>.c, written by `iotengine export-c` for the bundle's models). */
#include "iot_models.h"
#include "iot_real.h"

static const int class_index[IOT_FAILURE_CLASSES] = IOT_FAILURE_CLASS_INDEX;
#if IOT_HAS_UNSUPERVISED
static const iot_real unsupervised_center[IOT_N_SENSORS] = IOT_UNSUPERVISED_CENTER;
static const iot_real unsupervised_scale[IOT_N_SENSORS] = IOT_UNSUPERVISED_SCALE;
#endif

void iot_history(const iot_state *s, iot_real out[IOT_N_HISTORY]) {
  int k;
  for (k = 0; k < IOT_N_SENSORS; ++k) {
    if (s->count[k] == 0) {
      out[k] = IOT_NAN;
      out[IOT_N_SENSORS + k] = IOT_NAN;
    } else { /* kernels/history.py: the Welford mean and sqrt(M2 / count) */
      out[k] = s->sensor[k].mean;
      out[IOT_N_SENSORS + k] = iot_sqrt(s->sensor[k].m2 / (iot_real)s->count[k]);
    }
  }
}

/* The residuals of the regressors' predictions and the score (engine/models/autoencoder.py, in its order of
 * operations: (x - predicted - center) / scale, then the largest |residual| over the sensors present). */
static void combine_residuals(const iot_real *inputs, const iot_real *predicted, iot_scores *out) {
#if IOT_HAS_UNSUPERVISED
  int k, any = 0;
  iot_real best = IOT_LIT(0.0);
  for (k = 0; k < IOT_N_SENSORS; ++k) {
    const iot_real x = inputs[k];
    iot_real r;
    if (isnan(x)) { /* the raw feature of a missing sensor is NaN */
      out->residual[k] = IOT_NAN;
      continue;
    }
    r = (x - predicted[k] - unsupervised_center[k]) / unsupervised_scale[k];
    out->residual[k] = r;
    if (!any || iot_fabs(r) > best) best = iot_fabs(r);
    any = 1;
  }
  out->unsupervised = any ? best : IOT_NAN;
#else
  int k;
  (void)inputs;
  (void)predicted;
  out->unsupervised = IOT_NAN;
  for (k = 0; k < IOT_N_SENSORS; ++k) out->residual[k] = IOT_NAN;
#endif
}

void iot_unsupervised_row(const iot_real *inputs, iot_scores *out) {
  iot_real predicted[IOT_N_SENSORS] = {IOT_LIT(0.0), IOT_LIT(0.0), IOT_LIT(0.0), IOT_LIT(0.0), IOT_LIT(0.0)};
#if IOT_HAS_UNSUPERVISED
  iot_model_unsupervised_temperature(inputs, &predicted[0]);
  iot_model_unsupervised_vibration(inputs, &predicted[1]);
  iot_model_unsupervised_humidity(inputs, &predicted[2]);
  iot_model_unsupervised_pressure(inputs, &predicted[3]);
  iot_model_unsupervised_energy_consumption(inputs, &predicted[4]);
#endif
  combine_residuals(inputs, predicted, out);
}

const iot_model_entry iot_model_entries[IOT_N_TASKS] = {
  {"anomaly_flag", iot_model_anomaly_flag},
  {"maintenance_required", iot_model_maintenance_required},
  {"downtime_risk", iot_model_downtime_risk},
  {"failure_type", iot_model_failure_type},
  {"predicted_remaining_life", iot_model_predicted_remaining_life}
};

static void nan_scores(iot_scores *out) {
  int k;
  out->anomaly = IOT_NAN;
  out->maintenance = IOT_NAN;
  out->downtime = IOT_NAN;
  out->failure_type = -1;
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) out->failure_proba[k] = IOT_NAN;
  out->remaining_life = IOT_NAN;
  out->unsupervised = IOT_NAN;
  for (k = 0; k < IOT_N_SENSORS; ++k) out->residual[k] = IOT_NAN;
}

static void set_failure(iot_scores *out, const iot_real *proba) {
  int k;
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) out->failure_proba[k] = IOT_LIT(0.0);
  for (k = 0; k < IOT_FAILURE_CLASSES; ++k) out->failure_proba[class_index[k]] = proba[k];
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) {
    if (isnan(out->failure_proba[k])) { /* no class from probabilities that are not numbers */
      out->failure_type = -1;
      return;
    }
  }
  out->failure_type = 0;
  for (k = 1; k < IOT_N_FAILURE_TYPES; ++k) { /* the first of equal maxima, as numpy's argmax */
    if (out->failure_proba[k] > out->failure_proba[out->failure_type]) out->failure_type = k;
  }
}

enum iot_status iot_score(iot_state *s, int64_t timestamp_s, const iot_real sensors[IOT_N_SENSORS],
                          int32_t machine_status, iot_scores *out) {
  iot_real inputs[IOT_N_DETECTOR_INPUTS];
  iot_real proba[IOT_FAILURE_CLASSES];
  enum iot_status rc;
  if (s == NULL || sensors == NULL || out == NULL) return IOT_EINVAL;
  if (machine_status < 0 || machine_status > 2) return IOT_EINVAL;
  iot_history(s, inputs + IOT_N_INPUTS); /* before the sample changes the state */
  rc = iot_features(s, timestamp_s, sensors, inputs);
  if (rc != IOT_OK) {
    if (rc == IOT_LATE) nan_scores(out);
    return rc;
  }
  inputs[IOT_N_FEATURES] = (iot_real)machine_status;
  iot_model_anomaly_flag(inputs, &out->anomaly);
  iot_model_maintenance_required(inputs, &out->maintenance);
  iot_model_downtime_risk(inputs, &out->downtime);
  iot_model_predicted_remaining_life(inputs, &out->remaining_life);
  iot_model_failure_type(inputs, proba);
  set_failure(out, proba);
  iot_unsupervised_row(inputs, out);
  return IOT_OK;
}

enum iot_status iot_score_many(iot_state *states, const int64_t *index, const int64_t *timestamps_s,
                               const iot_real *sensors, const int32_t *machine_status, int64_t n, iot_scores *out,
                               int32_t *codes) {
  /* Features in arrival order, IOT_MODEL_BLOCK accepted samples at a time; then each model over the block, so
   * its code is fetched once per block instead of once per sample. Same values as iot_score per sample. */
  iot_real inputs[IOT_MODEL_BLOCK * IOT_ROW_STRIDE];
  iot_real values[IOT_MODEL_BLOCK * IOT_FAILURE_CLASSES];
#if IOT_HAS_UNSUPERVISED
  iot_real predicted[IOT_MODEL_BLOCK * IOT_N_SENSORS];
#endif
  int64_t rows[IOT_MODEL_BLOCK];
  int64_t i = 0;
  if (states == NULL || index == NULL || timestamps_s == NULL || sensors == NULL || machine_status == NULL ||
      out == NULL || codes == NULL || n < 0)
    return IOT_EINVAL;
  while (i < n) {
    int m = 0, r;
    for (; i < n && m < IOT_MODEL_BLOCK; ++i) {
      iot_real *row = inputs + m * IOT_ROW_STRIDE;
      enum iot_status rc;
      if (index[i] < 0 || machine_status[i] < 0 || machine_status[i] > 2) {
        codes[i] = IOT_EINVAL;
        continue;
      }
      iot_history(states + index[i], row + IOT_N_INPUTS);
      rc = iot_features(states + index[i], timestamps_s[i], sensors + IOT_N_SENSORS * i, row);
      codes[i] = (int32_t)rc;
      if (rc == IOT_LATE) nan_scores(out + i);
      if (rc != IOT_OK) continue;
      row[IOT_N_FEATURES] = (iot_real)machine_status[i];
      rows[m++] = i;
    }
    iot_model_anomaly_flag_many(inputs, m, values);
    for (r = 0; r < m; ++r) out[rows[r]].anomaly = values[r];
    iot_model_maintenance_required_many(inputs, m, values);
    for (r = 0; r < m; ++r) out[rows[r]].maintenance = values[r];
    iot_model_downtime_risk_many(inputs, m, values);
    for (r = 0; r < m; ++r) out[rows[r]].downtime = values[r];
    iot_model_predicted_remaining_life_many(inputs, m, values);
    for (r = 0; r < m; ++r) out[rows[r]].remaining_life = values[r];
    iot_model_failure_type_many(inputs, m, values);
    for (r = 0; r < m; ++r) set_failure(out + rows[r], values + r * IOT_FAILURE_CLASSES);
#if IOT_HAS_UNSUPERVISED
    iot_model_unsupervised_temperature_many(inputs, m, values);
    for (r = 0; r < m; ++r) predicted[r * IOT_N_SENSORS + 0] = values[r];
    iot_model_unsupervised_vibration_many(inputs, m, values);
    for (r = 0; r < m; ++r) predicted[r * IOT_N_SENSORS + 1] = values[r];
    iot_model_unsupervised_humidity_many(inputs, m, values);
    for (r = 0; r < m; ++r) predicted[r * IOT_N_SENSORS + 2] = values[r];
    iot_model_unsupervised_pressure_many(inputs, m, values);
    for (r = 0; r < m; ++r) predicted[r * IOT_N_SENSORS + 3] = values[r];
    iot_model_unsupervised_energy_consumption_many(inputs, m, values);
    for (r = 0; r < m; ++r) predicted[r * IOT_N_SENSORS + 4] = values[r];
    for (r = 0; r < m; ++r) combine_residuals(inputs + r * IOT_ROW_STRIDE, predicted + r * IOT_N_SENSORS, out + rows[r]);
#else
    for (r = 0; r < m; ++r) combine_residuals(inputs + r * IOT_ROW_STRIDE, values, out + rows[r]);
#endif
  }
  return IOT_OK;
}
