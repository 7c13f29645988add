/* A minimal firmware image around the edge library, to measure what a microcontroller pays for it
 * (compile/edge_resources.py): linked without start files and with --gc-sections from reset_handler, so the image
 * holds the library's scoring path, iot_state_save/restore and what they pull from libm and libgcc, and nothing
 * of a C runtime. The sensors come through a volatile so that nothing is folded at build time. */
#include "iotengine.h"

void reset_handler(void);

static volatile iot_real sensor_port[IOT_N_SENSORS];
static volatile int64_t clock_port;
static volatile iot_real result_port;

void reset_handler(void) {
  iot_state state;
  iot_scores scores;
  iot_real sensors[IOT_N_SENSORS];
  unsigned char record[512];
  int k;
  (void)iot_state_init(&state, IOT_UTC_OFFSET_MINUTES);
  for (;;) {
    for (k = 0; k < IOT_N_SENSORS; ++k) sensors[k] = sensor_port[k];
    if (iot_score(&state, clock_port, sensors, 1, &scores) == IOT_OK) result_port = scores.anomaly;
    if (iot_state_record_size() <= sizeof record && iot_state_save(&state, record, sizeof record) == IOT_OK)
      (void)iot_state_restore(&state, record, iot_state_record_size());
  }
}
