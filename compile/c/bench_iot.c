/* Timing of iot_features and iot_score, in C, over recorded samples replayed until at least the requested
 * number of samples (each replay shifts the timestamps past the previous one, so no sample is late).
 *
 *   iotengine_bench SAMPLES.bin [min_samples]
 *
 * SAMPLES.bin: int64 n, then n records {int64 machine, int64 timestamp_s, double sensors[5], int32 status,
 * int32 pad}; machine indexes 0..n_machines-1. Prints one JSON object: per sample, the median and p99 over
 * blocks of 1000 consecutive calls (clock_gettime per block), for both functions, and the per-call median and
 * p99 of iot_score (clock_gettime per call), each task model alone on the recorded inputs, and the unsupervised
 * detector alone (its five regressors, residuals and score: iot_unsupervised_row). The program
 * allocates; the library it times does not. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iot_models.h"
#include "iotengine.h"
#include "iot_samples.h"


#define BLOCK 1000
#define SENSORS_OF(k) (sensors + IOT_N_SENSORS * (k))

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double quantile(double *v, size_t n, double q) {
  qsort(v, n, sizeof *v, compare);
  return v[(size_t)(q * (double)(n - 1))];
}

int main(int argc, char **argv) {
  FILE *file;
  int64_t n = 0, machines = 0, span, i, pass, passes, min_samples;
  record *records;
  iot_state *states;
  iot_real *sensors; /* the records' sensors as iot_real */
  double *block_features, *block_score, *calls, sink = 0.0;
  size_t blocks = 0, n_calls = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s SAMPLES.bin [min_samples]\n", argv[0]);
    return 2;
  }
  min_samples = argc > 2 ? atoll(argv[2]) : 1000000;
  file = fopen(argv[1], "rb");
  if (file == NULL || fread(&n, sizeof n, 1, file) != 1 || n <= 0) {
    fprintf(stderr, "%s: cannot read\n", argv[1]);
    return 2;
  }
  records = malloc((size_t)n * sizeof *records);
  if (records == NULL || fread(records, sizeof *records, (size_t)n, file) != (size_t)n) {
    fprintf(stderr, "%s: short file\n", argv[1]);
    return 2;
  }
  fclose(file);
  sensors = malloc(sizeof(iot_real) * IOT_N_SENSORS * (size_t)n);
  if (sensors == NULL) return 2;
  for (i = 0; i < n * IOT_N_SENSORS; ++i) sensors[i] = (iot_real)records[i / IOT_N_SENSORS].sensors[i % IOT_N_SENSORS];
  for (i = 0; i < n; ++i) if (records[i].machine + 1 > machines) machines = records[i].machine + 1;
  span = records[n - 1].timestamp_s - records[0].timestamp_s + 86400;
  passes = (min_samples + n - 1) / n;
  states = malloc((size_t)machines * iot_state_size());
  block_features = malloc(sizeof(double) * (size_t)(passes * n / BLOCK + 1));
  block_score = malloc(sizeof(double) * (size_t)(passes * n / BLOCK + 1));
  calls = malloc(sizeof(double) * (size_t)(passes * n));
  if (states == NULL || block_features == NULL || block_score == NULL || calls == NULL) return 2;

  /* iot_features, blocks of BLOCK calls (one warm-up pass first) */
  for (pass = -1; pass < passes; ++pass) {
    for (i = 0; i < machines; ++i) iot_state_init(&states[i], IOT_UTC_OFFSET_MINUTES);
    for (i = 0; i + BLOCK <= n; i += BLOCK) {
      iot_real out[IOT_N_FEATURES];
      const int64_t shift = (pass + 1) * span;
      const double start = now_ns();
      int64_t k;
      for (k = i; k < i + BLOCK; ++k) {
        const record *r = &records[k];
        iot_features(&states[r->machine], r->timestamp_s + shift, SENSORS_OF(k), out);
        sink += (double)out[25];
      }
      if (pass >= 0) block_features[blocks++] = (now_ns() - start) / BLOCK;
    }
  }
  /* iot_score, blocks of BLOCK calls */
  {
    size_t score_blocks = 0;
    for (pass = -1; pass < passes; ++pass) {
      for (i = 0; i < machines; ++i) iot_state_init(&states[i], IOT_UTC_OFFSET_MINUTES);
      for (i = 0; i + BLOCK <= n; i += BLOCK) {
        iot_scores scores;
        const int64_t shift = (pass + 1) * span;
        const double start = now_ns();
        int64_t k;
        for (k = i; k < i + BLOCK; ++k) {
          const record *r = &records[k];
          iot_score(&states[r->machine], r->timestamp_s + shift, SENSORS_OF(k), r->status, &scores);
          sink += (double)scores.anomaly;
        }
        if (pass >= 0) block_score[score_blocks++] = (now_ns() - start) / BLOCK;
      }
    }
    /* iot_score, one clock reading per call */
    for (pass = 0; pass < passes; ++pass) {
      for (i = 0; i < machines; ++i) iot_state_init(&states[i], IOT_UTC_OFFSET_MINUTES);
      for (i = 0; i < n; ++i) {
        iot_scores scores;
        const record *r = &records[i];
        const double start = now_ns();
        iot_score(&states[r->machine], r->timestamp_s + pass * span, SENSORS_OF(i), r->status, &scores);
        calls[n_calls++] = now_ns() - start;
        sink += (double)scores.remaining_life;
      }
    }
    printf("{\"samples\": %lld, \"machines\": %lld, \"state_bytes\": %lu, ", (long long)(blocks * BLOCK),
           (long long)machines, (unsigned long)iot_state_size());
    printf("\"features_ns_median\": %.1f, \"features_ns_p99\": %.1f, ", quantile(block_features, blocks, 0.5),
           quantile(block_features, blocks, 0.99));
    printf("\"score_ns_median\": %.1f, \"score_ns_p99\": %.1f, ", quantile(block_score, score_blocks, 0.5),
           quantile(block_score, score_blocks, 0.99));
    printf("\"score_call_ns_median\": %.1f, \"score_call_ns_p99\": %.1f, ", quantile(calls, n_calls, 0.5),
           quantile(calls, n_calls, 0.99));
  }
  /* iot_score_many over micro-batches of 256 samples (how StreamScorer calls it), per sample */
  {
    int64_t *index = malloc(sizeof(int64_t) * (size_t)n), *stamps = malloc(sizeof(int64_t) * (size_t)n);
    iot_real *values = malloc(sizeof(iot_real) * IOT_N_SENSORS * (size_t)n);
    int32_t *statuses = malloc(sizeof(int32_t) * (size_t)n), *codes = malloc(sizeof(int32_t) * (size_t)n);
    iot_scores *scores = malloc(sizeof(iot_scores) * (size_t)n);
    double *many = malloc(sizeof(double) * (size_t)(passes * n / 256 + 1));
    size_t many_blocks = 0;
    if (index == NULL || stamps == NULL || values == NULL || statuses == NULL || codes == NULL || scores == NULL ||
        many == NULL)
      return 2;
    for (pass = -1; pass < passes; ++pass) {
      for (i = 0; i < machines; ++i) iot_state_init(&states[i], IOT_UTC_OFFSET_MINUTES);
      for (i = 0; i < n; ++i) {
        index[i] = records[i].machine;
        stamps[i] = records[i].timestamp_s + (pass + 1) * span;
        memcpy(values + IOT_N_SENSORS * i, SENSORS_OF(i), sizeof(iot_real) * IOT_N_SENSORS);
        statuses[i] = records[i].status;
      }
      for (i = 0; i + 256 <= n; i += 256) {
        const double start = now_ns();
        iot_score_many(states, index + i, stamps + i, values + IOT_N_SENSORS * i, statuses + i, 256, scores + i,
                       codes + i);
        if (pass >= 0) many[many_blocks++] = (now_ns() - start) / 256;
        sink += (double)scores[i].anomaly;
      }
    }
    printf("\"score_many_ns_median\": %.1f, \"score_many_ns_p99\": %.1f, ", quantile(many, many_blocks, 0.5),
           quantile(many, many_blocks, 0.99));
    free(many);
    free(index);
    free(stamps);
    free(values);
    free(statuses);
    free(codes);
    free(scores);
  }
  /* each model alone, on the inputs of the first pass, blocks of BLOCK calls */
  {
    iot_real *inputs = malloc(sizeof(iot_real) * IOT_N_DETECTOR_INPUTS * (size_t)n);
    int task;
    size_t model_blocks;
    if (inputs == NULL) return 2;
    for (i = 0; i < machines; ++i) iot_state_init(&states[i], IOT_UTC_OFFSET_MINUTES);
    for (i = 0; i < n; ++i) {
      iot_real *row = inputs + i * IOT_N_DETECTOR_INPUTS;
      iot_history(&states[records[i].machine], row + IOT_N_INPUTS);
      iot_features(&states[records[i].machine], records[i].timestamp_s, SENSORS_OF(i), row);
      row[IOT_N_FEATURES] = (iot_real)records[i].status;
    }
    printf("\"tasks_ns_median\": {");
    for (task = 0; task < IOT_N_TASKS; ++task) {
      model_blocks = 0;
      for (pass = -1; pass < passes; ++pass) {
        for (i = 0; i + BLOCK <= n; i += BLOCK) {
          iot_real out[IOT_N_FAILURE_TYPES];
          const double start = now_ns();
          int64_t k;
          for (k = i; k < i + BLOCK; ++k) {
            iot_model_entries[task].predict(inputs + k * IOT_N_DETECTOR_INPUTS, out);
            sink += (double)out[0];
          }
          if (pass >= 0) block_score[model_blocks++] = (now_ns() - start) / BLOCK;
        }
      }
      printf("%s\"%s\": %.1f", task ? ", " : "", iot_model_entries[task].task,
             quantile(block_score, model_blocks, 0.5));
    }
    printf("}, \"unsupervised_ns_median\": ");
#if IOT_HAS_UNSUPERVISED
    model_blocks = 0;
    for (pass = -1; pass < passes; ++pass) {
      for (i = 0; i + BLOCK <= n; i += BLOCK) {
        iot_scores scores;
        const double start = now_ns();
        int64_t k;
        for (k = i; k < i + BLOCK; ++k) {
          iot_unsupervised_row(inputs + k * IOT_N_DETECTOR_INPUTS, &scores);
          sink += (double)scores.residual[0];
        }
        if (pass >= 0) block_score[model_blocks++] = (now_ns() - start) / BLOCK;
      }
    }
    printf("%.1f", quantile(block_score, model_blocks, 0.5));
#else
    printf("null");
#endif
    printf(", \"checksum\": \"%.6g\"}\n", sink);
    free(inputs);
  }
  free(records);
  free(sensors);
  free(states);
  free(block_features);
  free(block_score);
  free(calls);
  return 0;
}
