/* iot_state_save / iot_state_restore: a machine's state as a self-checking record (iotengine.h), so that firmware
 * can keep states in flash across resets and refuse a record that a torn write or a bit flip has damaged. */
#include <string.h>

#include "iotengine.h"

#define MAGIC "IOTS"
#define HEADER_BYTES 12
#define CRC_BYTES 4

/* CRC-32 (reflected, polynomial 0xEDB88320, as zlib): bit by bit, no table, so it costs no flash beyond the
 * loop; a state is a few hundred bytes and is saved rarely. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *bytes, size_t n) {
  size_t i;
  int bit;
  crc = ~crc;
  for (i = 0; i < n; ++i) {
    crc ^= bytes[i];
    for (bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (UINT32_C(0xEDB88320) & (0u - (crc & 1u)));
  }
  return ~crc;
}

static void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v & 0xFFu);
  p[1] = (unsigned char)((v >> 8) & 0xFFu);
  p[2] = (unsigned char)((v >> 16) & 0xFFu);
  p[3] = (unsigned char)((v >> 24) & 0xFFu);
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t iot_state_record_size(void) { return HEADER_BYTES + sizeof(iot_state) + CRC_BYTES; }

static void write_header(unsigned char *record) {
  memcpy(record, MAGIC, 4);
  record[4] = (unsigned char)(IOT_STATE_RECORD_VERSION & 0xFF);
  record[5] = (unsigned char)((IOT_STATE_RECORD_VERSION >> 8) & 0xFF);
  record[6] = (unsigned char)sizeof(iot_real);
  record[7] = 0;
  put_u32(record + 8, (uint32_t)sizeof(iot_state));
}

enum iot_status iot_state_save(const iot_state *s, unsigned char *record, size_t size) {
  if (s == NULL || record == NULL || size < iot_state_record_size()) return IOT_EINVAL;
  write_header(record);
  memcpy(record + HEADER_BYTES, s, sizeof *s);
  put_u32(record + HEADER_BYTES + sizeof *s, crc32_update(0, record, HEADER_BYTES + sizeof *s));
  return IOT_OK;
}

/* What iot_state_init and iot_features can produce: counts within the samples, an offset iot_state_init takes. */
static int reachable(const iot_state *s) {
  int k;
  if (s->samples < 0 || s->samples >= IOT_TIMESTAMP_LIMIT) return 0;
  for (k = 0; k < IOT_N_SENSORS; ++k) {
#if IOT_REAL_IS_FLOAT /* uint32_t counts: never negative */
    if ((int64_t)s->count[k] > s->samples) return 0;
#else
    if (s->count[k] < 0 || s->count[k] > s->samples) return 0;
#endif
  }
  if (s->offset_s % 60 != 0 || s->offset_s > (int64_t)IOT_MAX_UTC_OFFSET_MINUTES * 60 ||
      s->offset_s < -(int64_t)IOT_MAX_UTC_OFFSET_MINUTES * 60)
    return 0;
  if (s->samples > 0 && (s->last_timestamp > IOT_TIMESTAMP_LIMIT || s->last_timestamp < -IOT_TIMESTAMP_LIMIT)) return 0;
  return 1;
}

enum iot_status iot_state_check(const iot_state *s) {
  if (s == NULL) return IOT_EINVAL;
  return reachable(s) ? IOT_OK : IOT_ECORRUPT;
}

enum iot_status iot_state_restore(iot_state *s, const unsigned char *record, size_t size) {
  unsigned char expected[HEADER_BYTES];
  iot_state candidate;
  if (s == NULL || record == NULL) return IOT_EINVAL;
  if (size != iot_state_record_size()) return IOT_ECORRUPT;
  write_header(expected);
  if (memcmp(record, expected, HEADER_BYTES) != 0) return IOT_ECORRUPT;
  if (get_u32(record + HEADER_BYTES + sizeof candidate) != crc32_update(0, record, HEADER_BYTES + sizeof candidate))
    return IOT_ECORRUPT;
  memcpy(&candidate, record + HEADER_BYTES, sizeof candidate);
  if (!reachable(&candidate)) return IOT_ECORRUPT;
  *s = candidate;
  return IOT_OK;
}
