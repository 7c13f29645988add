/* Example: score telemetry in the Kaggle CSV layout read from stdin, one output line per input row.
 *
 *   ./iotengine_example < smart_manufacturing_sample.csv             scores
 *   ./iotengine_example --features < smart_manufacturing_sample.csv  the 67 features instead
 *
 * Output (CSV): machine_id,timestamp,code,... where code is ok, late, or error (with the reason on stderr).
 * One iot_state per machine, in a fixed table on the stack: no allocation anywhere. Exit status 0 when every
 * row was scored or late, 1 when some row was rejected, 2 on a bad header or too many machines. */
#include <stdio.h>
#include <string.h>

#include "iot_csv.h"
#include "iotengine.h"

#if IOT_REAL_IS_FLOAT
#define REAL_FORMAT ",%.9g" /* enough digits to read the same float back */
#else
#define REAL_FORMAT ",%.17g"
#endif

#define MAX_MACHINES 1024
#define MAX_LINE 4096 /* bytes per line, newline included */

typedef struct {
  int64_t id[MAX_MACHINES];
  unsigned char used[MAX_MACHINES];
  iot_state state[MAX_MACHINES];
} machine_table;

/* Open addressing: the slot of a machine id, or NULL when the table is full. */
static iot_state *state_of(machine_table *table, int64_t id) {
  const uint64_t hash = (uint64_t)id * UINT64_C(0x9E3779B97F4A7C15);
  size_t probe;
  for (probe = 0; probe < MAX_MACHINES; ++probe) {
    const size_t k = (size_t)((hash >> 32) + probe) % MAX_MACHINES;
    if (!table->used[k]) {
      table->used[k] = 1;
      table->id[k] = id;
      iot_state_init(&table->state[k], IOT_UTC_OFFSET_MINUTES); /* cannot fail: a valid offset */
      return &table->state[k];
    }
    if (table->id[k] == id) return &table->state[k];
  }
  return NULL;
}

static void print_real(iot_real value) { printf(REAL_FORMAT, (double)value); }

static void print_scores(const iot_scores *s) {
  int k;
  print_real(s->anomaly);
  print_real(s->maintenance);
  print_real(s->downtime);
  printf(",%s", iot_failure_type_names[s->failure_type]);
  for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) print_real(s->failure_proba[k]);
  print_real(s->remaining_life);
  print_real(s->unsupervised);
  printf("\n");
}

int main(int argc, char **argv) {
  static machine_table table; /* 450 kB: static storage of the program, not of the library */
  char line[MAX_LINE + 1];
  char err[160];
  iot_csv_layout layout;
  long line_number = 1;
  int features = argc > 1 && strcmp(argv[1], "--features") == 0;
  int rejected = 0, k;

  if (fgets(line, sizeof line, stdin) == NULL) {
    fprintf(stderr, "line 1: no header\n");
    return 2;
  }
  if (iot_csv_header(line, strlen(line), &layout, err, sizeof err) != 0) {
    fprintf(stderr, "line 1: %s\n", err);
    return 2;
  }
  printf("machine_id,timestamp,code");
  if (features) {
    for (k = 0; k < IOT_N_FEATURES; ++k) printf(",%s", iot_feature_names[k]);
  } else {
    printf(",anomaly,maintenance,downtime,failure_type");
    for (k = 0; k < IOT_N_FAILURE_TYPES; ++k) printf(",p_%s", iot_failure_type_names[k]);
    printf(",remaining_life,unsupervised");
  }
  printf("\n");

  while (fgets(line, sizeof line, stdin) != NULL) {
    size_t length = strlen(line);
    iot_csv_sample sample;
    iot_real sensors[IOT_N_SENSORS];
    iot_state *state;
    enum iot_status rc;
    line_number += 1;
    if (length > 0 && line[length - 1] != '\n' && !feof(stdin)) { /* longer than the buffer: skip the rest */
      int c;
      while ((c = getchar()) != EOF && c != '\n') {
      }
      fprintf(stderr, "line %ld: longer than %d bytes\n", line_number, MAX_LINE);
      rejected = 1;
      continue;
    }
    if (iot_csv_row(line, length, &layout, &sample, err, sizeof err) != 0) {
      fprintf(stderr, "line %ld: %s\n", line_number, err);
      rejected = 1;
      continue;
    }
    state = state_of(&table, sample.machine_id);
    if (state == NULL) {
      fprintf(stderr, "line %ld: more than %d machines\n", line_number, MAX_MACHINES);
      return 2;
    }
    printf("%lld,%lld", (long long)sample.machine_id, (long long)sample.timestamp_s);
    for (k = 0; k < IOT_N_SENSORS; ++k) sensors[k] = (iot_real)sample.sensors[k]; /* the nearest float */
    if (features) {
      iot_real out[IOT_N_FEATURES];
      rc = iot_features(state, sample.timestamp_s, sensors, out);
      if (rc == IOT_OK) {
        printf(",ok");
        for (k = 0; k < IOT_N_FEATURES; ++k) print_real(out[k]);
        printf("\n");
      }
    } else {
      iot_scores scores;
      rc = iot_score(state, sample.timestamp_s, sensors, sample.machine_status, &scores);
      if (rc == IOT_OK) {
        printf(",ok");
        print_scores(&scores);
      }
    }
    if (rc == IOT_LATE) {
      printf(",late\n");
    } else if (rc != IOT_OK) {
      printf(",error\n");
      fprintf(stderr, "line %ld: rejected by the library (machine_status %d outside 0..2?): %s\n", line_number,
              (int)sample.machine_status, iot_status_str(rc));
      rejected = 1;
    }
  }
  return rejected;
}
