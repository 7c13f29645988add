/* libFuzzer harness over iot_score, iot_features and the CSV reader (built by tests/compile/test_edge_build.py with
 *   clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all).
 *
 * The first byte picks the target. Binary input drives four machine states with arbitrary timestamps, sensor
 * bit patterns (NaN, infinities, subnormals, huge values) and statuses; text input goes through the CSV reader
 * and, row by row, into iot_score. Beyond the sanitizers' checks, the harness aborts when a documented promise
 * is broken: IOT_LATE and IOT_EINVAL leave the state byte for byte unchanged; an accepted sample counts once;
 * probabilities lie in [0, 1]; the failure type indexes the five types. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iot_csv.h"
#include "iotengine.h"

#define MACHINES 4

static void check(int condition) {
  if (!condition) abort();
}

static void check_scores(const iot_scores *s) {
  int k;
  check(!(s->anomaly < 0.0 || s->anomaly > 1.0));
  check(!(s->maintenance < 0.0 || s->maintenance > 1.0));
  check(!(s->downtime < 0.0 || s->downtime > 1.0));
  check(s->failure_type >= 0 && s->failure_type < IOT_N_FAILURE_TYPES);
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) check(!(s->failure_proba[k] < 0.0 || s->failure_proba[k] > 1.0));
}

static void score_checked(iot_state *s, int64_t timestamp_s, const iot_real sensors[IOT_N_SENSORS], int32_t status,
                          int features_only) {
  iot_state before;
  iot_scores scores;
  iot_real out[IOT_N_FEATURES];
  unsigned char record[sizeof(iot_state) + 64];
  iot_state restored;
  enum iot_status rc;
  memcpy(&before, s, sizeof before);
  rc = features_only ? iot_features(s, timestamp_s, sensors, out)
                     : iot_score(s, timestamp_s, sensors, status, &scores);
  if (rc == IOT_OK) {
    check(s->samples == before.samples + 1 && s->last_timestamp == timestamp_s);
    if (!features_only) check_scores(&scores);
  } else {
    check(rc == IOT_LATE || rc == IOT_EINVAL);
    check(memcmp(&before, s, sizeof before) == 0);
  }
  /* every state the library reaches saves and restores to the same bytes */
  check(iot_state_record_size() <= sizeof record);
  check(iot_state_save(s, record, sizeof record) == IOT_OK);
  check(iot_state_restore(&restored, record, iot_state_record_size()) == IOT_OK);
  check(memcmp(&restored, s, sizeof restored) == 0);
}

/* Any bytes as a state record: refused (the state untouched) or restored. */
static void fuzz_record(const uint8_t *data, size_t size) {
  iot_state s, before;
  iot_state_init(&s, 0);
  memcpy(&before, &s, sizeof s);
  if (iot_state_restore(&s, data, size) != IOT_OK) check(memcmp(&before, &s, sizeof s) == 0);
}

/* Any bytes as a raw state (what a caller might read from a damaged file): iot_state_check's verdict is what
 * iot_score does with it; a refused state is untouched, an accepted one scores within its ring (ASan). */
static void fuzz_raw_state(const uint8_t *data, size_t size) {
  iot_state s, before;
  iot_scores scores;
  const iot_real sensors[IOT_N_SENSORS] = {1, 2, 3, 4, 5};
  enum iot_status verdict, rc;
  iot_state_init(&s, 0);
  memcpy(&s, data, size < sizeof s ? size : sizeof s);
  memcpy(&before, &s, sizeof s);
  verdict = iot_state_check(&s);
  rc = iot_score(&s, before.last_timestamp, sensors, 1, &scores);
  check(verdict == IOT_OK || rc == IOT_ECORRUPT || rc == IOT_EINVAL);
  if (rc == IOT_ECORRUPT) check(memcmp(&before, &s, sizeof s) == 0);
}

static void fuzz_binary(const uint8_t *data, size_t size) {
  iot_state states[MACHINES];
  size_t at = 0;
  int k;
  int32_t offset;
  if (size < 4) return;
  memcpy(&offset, data, 4);
  at = 4;
  /* any offset: those beyond a day are refused and leave the state as it was */
  for (k = 0; k < MACHINES; ++k) {
    iot_state_init(&states[k], 0);
    if (iot_state_init(&states[k], offset) != IOT_OK) {
      check(offset > IOT_MAX_UTC_OFFSET_MINUTES || offset < -IOT_MAX_UTC_OFFSET_MINUTES);
      check(states[k].offset_s == 0 && states[k].samples == 0);
    }
  }
  /* record: 1 byte control, 8 bytes timestamp, 40 bytes sensors, 4 bytes status */
  while (at + 53 <= size) {
    const uint8_t control = data[at];
    iot_state *s = &states[control % MACHINES];
    int64_t raw;
    double values[IOT_N_SENSORS];
    iot_real sensors[IOT_N_SENSORS];
    int32_t status;
    memcpy(&raw, data + at + 1, 8);
    memcpy(values, data + at + 9, 40);
    for (k = 0; k < IOT_N_SENSORS; ++k) sensors[k] = (iot_real)values[k];
    memcpy(&status, data + at + 49, 4);
    at += 53;
    if (control & 4u) { /* mostly in order: a small step from the machine's last timestamp */
      raw = s->last_timestamp + (int64_t)(raw & 0xFFFF) - ((control & 8u) ? 30 : 0);
    }
    if (control & 16u) status = (int32_t)((uint32_t)status % 3u);
    score_checked(s, raw, sensors, status, (control & 32u) != 0);
  }
}

static void fuzz_csv(const uint8_t *data, size_t size) {
  iot_state states[MACHINES];
  iot_csv_layout layout;
  iot_csv_sample sample;
  char err[160];
  const char *text = (const char *)data;
  size_t start = 0, end;
  int k, have_header = 0;
  for (k = 0; k < MACHINES; ++k) iot_state_init(&states[k], 0);
  while (start < size) {
    for (end = start; end < size && text[end] != '\n'; ++end) {
    }
    if (!have_header) {
      have_header = iot_csv_header(text + start, end - start, &layout, err, sizeof err) == 0;
    } else if (iot_csv_row(text + start, end - start, &layout, &sample, err, sizeof err) == 0) {
      iot_real sensors[IOT_N_SENSORS];
      for (k = 0; k < IOT_N_SENSORS; ++k) sensors[k] = (iot_real)sample.sensors[k];
      score_checked(&states[(uint64_t)sample.machine_id % MACHINES], sample.timestamp_s, sensors,
                    sample.machine_status, 0);
    } else {
      check(strlen(err) < sizeof err);
    }
    {
      int64_t seconds;
      (void)iot_csv_parse_timestamp(text + start, end - start, &seconds);
    }
    start = end + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  iot_state s;
  iot_scores scores;
  iot_real sensors[IOT_N_SENSORS] = {0, 0, 0, 0, 0};
  iot_real out[IOT_N_FEATURES];
  check(iot_state_init(NULL, 0) == IOT_EINVAL);
  check(iot_state_init(&s, IOT_MAX_UTC_OFFSET_MINUTES + 1) == IOT_EINVAL);
  check(iot_state_init(&s, -IOT_MAX_UTC_OFFSET_MINUTES) == IOT_OK);
  check(iot_state_init(&s, 0) == IOT_OK);
  check(iot_status_str(IOT_LATE) != iot_status_str(IOT_OK) && iot_status_str((enum iot_status)99) != NULL);
  check(iot_score(NULL, 0, sensors, 1, &scores) == IOT_EINVAL);
  check(iot_score(&s, 0, NULL, 1, &scores) == IOT_EINVAL);
  check(iot_score(&s, 0, sensors, 1, NULL) == IOT_EINVAL);
  check(iot_features(&s, 0, sensors, NULL) == IOT_EINVAL);
  check(iot_score(&s, 0, sensors, 3, &scores) == IOT_EINVAL && s.samples == 0);
  (void)out;
  if (size == 0) return 0;
  if (data[0] & 4u) {
    fuzz_raw_state(data + 1, size - 1);
  } else if (data[0] & 2u) {
    fuzz_record(data + 1, size - 1);
  } else if (data[0] & 1u) {
    fuzz_binary(data + 1, size - 1);
  } else {
    fuzz_csv(data + 1, size - 1);
  }
  return 0;
}
