/* See iot_csv.h. Fields are located in place (no copy of the line); a field is copied into a small buffer only
 * to give strtod/strtoll their terminating NUL, so lines of any length and any bytes are safe to pass. */
#include "iot_csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sensor_columns[IOT_N_SENSORS] = {
  "temperature", "vibration", "humidity", "pressure", "energy_consumption"
};

typedef struct {
  const char *start[IOT_CSV_MAX_COLUMNS];
  size_t length[IOT_CSV_MAX_COLUMNS];
  int count;
} fields;

/* Split at commas; a trailing "\r" or "\n" is not part of the last field, and a field in double quotes is its
 * text without them (as the Python loader reads it; no field of telemetry holds a comma or a quote). Returns -1
 * for too many columns. */
static int split(const char *line, size_t length, fields *f) {
  size_t begin = 0, i;
  while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) length -= 1;
  f->count = 0;
  for (i = 0; i <= length; ++i) {
    if (i == length || line[i] == ',') {
      if (f->count == IOT_CSV_MAX_COLUMNS) return -1;
      f->start[f->count] = line + begin;
      f->length[f->count] = i - begin;
      if (i - begin >= 2 && line[begin] == '"' && line[i - 1] == '"') {
        f->start[f->count] += 1;
        f->length[f->count] -= 2;
      }
      f->count += 1;
      begin = i + 1;
    }
  }
  return 0;
}

static int same(const char *field, size_t length, const char *name) {
  return strlen(name) == length && memcmp(field, name, length) == 0;
}

static int find(const fields *f, const char *name) {
  int k;
  for (k = 0; k < f->count; ++k) {
    if (same(f->start[k], f->length[k], name)) return k;
  }
  return -1;
}

int iot_csv_header(const char *line, size_t length, iot_csv_layout *layout, char *err, size_t err_size) {
  fields f;
  int s;
  const char *missing = NULL;
  if (line == NULL || layout == NULL) return -1;
  if (length >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 byte order mark, as spreadsheets write */
    line += 3;
    length -= 3;
  }
  if (split(line, length, &f) != 0) {
    if (err != NULL) snprintf(err, err_size, "header has more than %d columns", IOT_CSV_MAX_COLUMNS);
    return -1;
  }
  layout->n_columns = f.count;
  layout->timestamp = find(&f, "timestamp");
  layout->machine_id = find(&f, "machine_id");
  layout->machine_status = find(&f, "machine_status");
  if (layout->timestamp < 0) missing = "timestamp";
  if (layout->machine_id < 0) missing = "machine_id";
  if (layout->machine_status < 0) missing = "machine_status";
  for (s = 0; s < IOT_N_SENSORS; ++s) {
    layout->sensor[s] = find(&f, sensor_columns[s]);
    if (layout->sensor[s] < 0) missing = sensor_columns[s];
  }
  if (missing != NULL) {
    if (err != NULL) snprintf(err, err_size, "header has no column %s", missing);
    return -1;
  }
  return 0;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  /* Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date. */
  int64_t era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int digits(const char *text, size_t at, size_t n, int64_t *value) {
  size_t i;
  *value = 0;
  for (i = at; i < at + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    *value = *value * 10 + (text[i] - '0');
  }
  return 0;
}

int iot_csv_parse_timestamp(const char *text, size_t length, int64_t *seconds) {
  static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int64_t y, mo, d, h, mi, s;
  if (text == NULL || seconds == NULL || length != 19) return -1;
  if (text[4] != '-' || text[7] != '-' || (text[10] != ' ' && text[10] != 'T') || text[13] != ':' ||
      text[16] != ':')
    return -1;
  if (digits(text, 0, 4, &y) || digits(text, 5, 2, &mo) || digits(text, 8, 2, &d) || digits(text, 11, 2, &h) ||
      digits(text, 14, 2, &mi) || digits(text, 17, 2, &s))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] || h > 23 || mi > 59 || s > 59) return -1;
  if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return -1;
  *seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  return 0;
}

static int field_text(const fields *f, int column, char *buffer) {
  if (f->length[column] > IOT_CSV_MAX_FIELD) return -1;
  memcpy(buffer, f->start[column], f->length[column]);
  buffer[f->length[column]] = '\0';
  return 0;
}

static int bad(char *err, size_t err_size, const char *column, const fields *f, int at) {
  if (err != NULL) {
    const int shown = f->length[at] > 40 ? 40 : (int)f->length[at];
    snprintf(err, err_size, "%s: bad value \"%.*s\"", column, shown, f->start[at]);
  }
  return -1;
}

int iot_csv_row(const char *line, size_t length, const iot_csv_layout *layout, iot_csv_sample *out,
                char *err, size_t err_size) {
  fields f;
  char text[IOT_CSV_MAX_FIELD + 1];
  char *end;
  int s;
  long long integer;
  if (line == NULL || layout == NULL || out == NULL) return -1;
  if (split(line, length, &f) != 0 || f.count != layout->n_columns) {
    if (err != NULL) snprintf(err, err_size, "expected %d columns", layout->n_columns);
    return -1;
  }
  if (iot_csv_parse_timestamp(f.start[layout->timestamp], f.length[layout->timestamp], &out->timestamp_s) != 0)
    return bad(err, err_size, "timestamp", &f, layout->timestamp);

  if (field_text(&f, layout->machine_id, text) != 0 || text[0] == '\0')
    return bad(err, err_size, "machine_id", &f, layout->machine_id);
  errno = 0;
  integer = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0') return bad(err, err_size, "machine_id", &f, layout->machine_id);
  out->machine_id = (int64_t)integer;

  if (field_text(&f, layout->machine_status, text) != 0 || text[0] == '\0')
    return bad(err, err_size, "machine_status", &f, layout->machine_status);
  errno = 0;
  integer = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || integer < INT32_MIN || integer > INT32_MAX)
    return bad(err, err_size, "machine_status", &f, layout->machine_status);
  out->machine_status = (int32_t)integer;

  for (s = 0; s < IOT_N_SENSORS; ++s) {
    const int at = layout->sensor[s];
    if (field_text(&f, at, text) != 0) return bad(err, err_size, sensor_columns[s], &f, at);
    if (text[0] == '\0') {
      out->sensors[s] = NAN; /* an empty field is a missing value */
      continue;
    }
    out->sensors[s] = strtod(text, &end);
    if (*end != '\0') return bad(err, err_size, sensor_columns[s], &f, at);
  }
  return 0;
}
