/* The sample files of bench_iot.c and count_iot.c (bench/edge.py's write_samples): int64 n, then n records. */
#ifndef IOT_SAMPLES_H
#define IOT_SAMPLES_H
#include <stdint.h>

#include "iotengine.h"

typedef struct {
  int64_t machine; /* 0..n_machines-1 */
  int64_t timestamp_s;
  double sensors[IOT_N_SENSORS];
  int32_t status;
  int32_t pad;
} record;

#endif
