/* iot_score: the features of a sample, machine_status, and the five task models (iot_model_<task>.c, written by
 * `iotengine export-c` for the bundle's models). */
#include <math.h>

#include "iot_models.h"
#include "iotengine.h"

static const int class_index[IOT_FAILURE_CLASSES] = IOT_FAILURE_CLASS_INDEX;

const iot_model_entry iot_model_entries[IOT_N_TASKS] = {
  {"anomaly_flag", iot_model_anomaly_flag},
  {"maintenance_required", iot_model_maintenance_required},
  {"downtime_risk", iot_model_downtime_risk},
  {"failure_type", iot_model_failure_type},
  {"predicted_remaining_life", iot_model_predicted_remaining_life}
};

static void nan_scores(iot_scores *out) {
  int k;
  out->anomaly = NAN;
  out->maintenance = NAN;
  out->downtime = NAN;
  out->failure_type = -1;
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) out->failure_proba[k] = NAN;
  out->remaining_life = NAN;
}

static void set_failure(iot_scores *out, const double *proba) {
  int k;
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) out->failure_proba[k] = 0.0;
  for (k = 0; k < IOT_FAILURE_CLASSES; ++k) out->failure_proba[class_index[k]] = proba[k];
  out->failure_type = 0;
  for (k = 1; k < IOT_N_FAILURE_TYPES; ++k) { /* the first of equal maxima, as numpy's argmax */
    if (out->failure_proba[k] > out->failure_proba[out->failure_type]) out->failure_type = k;
  }
}

enum iot_status iot_score(iot_state *s, int64_t timestamp_s, const double sensors[IOT_N_SENSORS],
                          int32_t machine_status, iot_scores *out) {
  double inputs[IOT_N_INPUTS];
  double proba[IOT_FAILURE_CLASSES];
  enum iot_status rc;
  if (s == NULL || sensors == NULL || out == NULL) return IOT_EINVAL;
  if (machine_status < 0 || machine_status > 2) return IOT_EINVAL;
  rc = iot_features(s, timestamp_s, sensors, inputs);
  if (rc != IOT_OK) {
    if (rc == IOT_LATE) nan_scores(out);
    return rc;
  }
  inputs[IOT_N_FEATURES] = (double)machine_status;
  iot_model_anomaly_flag(inputs, &out->anomaly);
  iot_model_maintenance_required(inputs, &out->maintenance);
  iot_model_downtime_risk(inputs, &out->downtime);
  iot_model_predicted_remaining_life(inputs, &out->remaining_life);
  iot_model_failure_type(inputs, proba);
  set_failure(out, proba);
  return IOT_OK;
}

enum iot_status iot_score_many(iot_state *states, const int64_t *index, const int64_t *timestamps_s,
                               const double *sensors, const int32_t *machine_status, int64_t n, iot_scores *out,
                               int32_t *codes) {
  /* Features in arrival order, IOT_MODEL_BLOCK accepted samples at a time; then each model over the block, so
   * its code is fetched once per block instead of once per sample. Same values as iot_score per sample. */
  double inputs[IOT_MODEL_BLOCK * IOT_N_INPUTS];
  double values[IOT_MODEL_BLOCK * IOT_FAILURE_CLASSES];
  int64_t rows[IOT_MODEL_BLOCK];
  int64_t i = 0;
  if (states == NULL || index == NULL || timestamps_s == NULL || sensors == NULL || machine_status == NULL ||
      out == NULL || codes == NULL || n < 0)
    return IOT_EINVAL;
  while (i < n) {
    int m = 0, r;
    for (; i < n && m < IOT_MODEL_BLOCK; ++i) {
      double *row = inputs + m * IOT_N_INPUTS;
      enum iot_status rc;
      if (index[i] < 0 || machine_status[i] < 0 || machine_status[i] > 2) {
        codes[i] = IOT_EINVAL;
        continue;
      }
      rc = iot_features(states + index[i], timestamps_s[i], sensors + IOT_N_SENSORS * i, row);
      codes[i] = (int32_t)rc;
      if (rc == IOT_LATE) nan_scores(out + i);
      if (rc != IOT_OK) continue;
      row[IOT_N_FEATURES] = (double)machine_status[i];
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
  }
  return IOT_OK;
}
