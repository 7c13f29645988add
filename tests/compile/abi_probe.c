/* What a C compiler sees in iotengine.h: offsets, sizes, status codes, limits (tests/compile/test_edge_abi.py). */
#include <stddef.h>
#include <stdio.h>
#include "iotengine.h"
#define FIELD(name) printf(#name " %zu\n", offsetof(iot_scores, name))
int main(void) {
  FIELD(anomaly); FIELD(maintenance); FIELD(downtime); FIELD(failure_type); FIELD(failure_proba);
  FIELD(remaining_life); FIELD(unsupervised); FIELD(residual);
  printf("scores %zu\nstate %zu\n", sizeof(iot_scores), sizeof(iot_state));
  printf("IOT_OK %d\nIOT_LATE %d\nIOT_EINVAL %d\nIOT_ECORRUPT %d\n", IOT_OK, IOT_LATE, IOT_EINVAL, IOT_ECORRUPT);
  printf("limit %lld\nmax_offset %d\n", (long long)IOT_TIMESTAMP_LIMIT, IOT_MAX_UTC_OFFSET_MINUTES);
  printf("inputs %d\nhistory %d\ndetector_inputs %d\nhas_unsupervised %d\n", IOT_N_INPUTS, IOT_N_HISTORY,
         IOT_N_DETECTOR_INPUTS, IOT_HAS_UNSUPERVISED);
  return 0;
}
