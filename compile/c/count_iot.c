/* Scores the first N samples of a bench_iot.c sample file with iot_score and nothing else in the loop, so that
 * an instruction count of two runs (N and 2N samples, under qemu-arm: compile/edge_resources.py) gives the
 * instructions per iot_score.
 *
 *   count_iot SAMPLES.bin N      prints a checksum of the scores */
#include <stdio.h>
#include <stdlib.h>

#include "iotengine.h"
#include "iot_samples.h"


#define MAX_MACHINES 256

int main(int argc, char **argv) {
  static iot_state states[MAX_MACHINES];
  static record records[4096];
  FILE *file;
  int64_t n = 0, count, i;
  double sum = 0.0;
  int k;
  if (argc < 3) return 2;
  count = atoll(argv[2]);
  file = fopen(argv[1], "rb");
  if (file == NULL || fread(&n, sizeof n, 1, file) != 1 || n < count || count > 4096 || count < 0) return 2;
  if (fread(records, sizeof *records, (size_t)count, file) != (size_t)count) return 2;
  fclose(file);
  for (k = 0; k < MAX_MACHINES; ++k) iot_state_init(&states[k], IOT_UTC_OFFSET_MINUTES);
  for (i = 0; i < count; ++i) {
    iot_real sensors[IOT_N_SENSORS];
    iot_scores scores;
    if (records[i].machine < 0 || records[i].machine >= MAX_MACHINES) return 2;
    for (k = 0; k < IOT_N_SENSORS; ++k) sensors[k] = (iot_real)records[i].sensors[k];
    if (iot_score(&states[records[i].machine], records[i].timestamp_s, sensors, records[i].status, &scores) == IOT_OK)
      sum += (double)scores.anomaly;
  }
  printf("%.17g\n", sum);
  return 0;
}
