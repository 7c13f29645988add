/* A reader of telemetry in the Kaggle CSV layout, one line at a time, for the example program and for edge
 * gateways that receive CSV. No allocation: the caller owns the line and the outputs. */
#ifndef IOT_CSV_H
#define IOT_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "iotengine.h"

#define IOT_CSV_MAX_COLUMNS 64
#define IOT_CSV_MAX_FIELD 63   /* longest field the reader parses, in bytes */

/* Where each needed column sits, read from the header line. */
typedef struct {
  int timestamp, machine_id, machine_status;
  int sensor[IOT_N_SENSORS];
  int n_columns;
} iot_csv_layout;

typedef struct {
  int64_t timestamp_s;          /* seconds since 1970-01-01 UTC */
  int64_t machine_id;
  double sensors[IOT_N_SENSORS];/* an empty field, "nan" or "inf" is a missing value (NaN) */
  int32_t machine_status;
} iot_csv_sample;

/* Parse the header line (length bytes, no NUL needed). Returns 0, or -1 with a message naming the missing
 * column in err. */
int iot_csv_header(const char *line, size_t length, iot_csv_layout *layout, char *err, size_t err_size);

/* Parse one data line. Returns 0, or -1 with a message naming the column and the bad value in err. */
int iot_csv_row(const char *line, size_t length, const iot_csv_layout *layout, iot_csv_sample *out,
                char *err, size_t err_size);

/* "YYYY-MM-DD HH:MM:SS" (or with 'T') to seconds since the epoch, UTC. Returns 0, or -1 if malformed. */
int iot_csv_parse_timestamp(const char *text, size_t length, int64_t *seconds);

#endif /* IOT_CSV_H */
