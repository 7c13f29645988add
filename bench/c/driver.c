/* Times a model library's iot_predict from C, with no Python in the loop.
 *
 *   driver LIBRARY INPUTS N_ROWS N_COLS BATCH REPEATS
 *
 * INPUTS is N_ROWS x N_COLS row-major float64 (NaN = missing). BATCH 1 times every call on its own
 * (REPEATS passes over the rows: median and p99 of single calls, clock_gettime overhead included);
 * BATCH > 1 times REPEATS calls on the first BATCH rows (median and p99 over calls, per row).
 * Prints one JSON object on stdout, with a checksum of the outputs so no call can be optimized away. */
#define _POSIX_C_SOURCE 199309L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int (*predict_fn)(const double *, int64_t, int64_t, int, double *);
typedef int32_t (*count_fn)(void);

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double percentile(int64_t *values, size_t n, double q) {
  qsort(values, n, sizeof *values, by_value);
  size_t at = (size_t)(q * (double)(n - 1) + 0.5);
  return (double)values[at];
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s LIBRARY INPUTS N_ROWS N_COLS BATCH REPEATS\n", argv[0]);
    return 2;
  }
  const int64_t n_rows = atoll(argv[3]), n_cols = atoll(argv[4]), batch = atoll(argv[5]);
  const int64_t repeats = atoll(argv[6]);
  if (n_rows <= 0 || n_cols <= 0 || batch <= 0 || batch > n_rows || repeats <= 0) {
    fprintf(stderr, "driver: bad sizes\n");
    return 2;
  }
  void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    fprintf(stderr, "driver: %s\n", dlerror());
    return 1;
  }
  predict_fn predict = (predict_fn)(uintptr_t)dlsym(library, "iot_predict");
  count_fn outputs = (count_fn)(uintptr_t)dlsym(library, "iot_num_outputs");
  if (!predict || !outputs) {
    fprintf(stderr, "driver: %s has no iot_predict/iot_num_outputs\n", argv[1]);
    return 1;
  }
  const int64_t n_out = outputs();
  double *X = malloc((size_t)(n_rows * n_cols) * sizeof *X);
  double *y = malloc((size_t)(n_rows * n_out) * sizeof *y);
  FILE *file = fopen(argv[2], "rb");
  if (!X || !y || !file || fread(X, sizeof *X, (size_t)(n_rows * n_cols), file) != (size_t)(n_rows * n_cols)) {
    fprintf(stderr, "driver: cannot read %s\n", argv[2]);
    return 1;
  }
  fclose(file);
  const int64_t calls = batch == 1 ? n_rows * repeats : repeats;
  int64_t *times = malloc((size_t)calls * sizeof *times);
  double checksum = 0.0;
  predict(X, batch, n_cols, 0, y); /* warm-up: page in code and tables */
  for (int64_t c = 0; c < calls; ++c) {
    const double *x = batch == 1 ? X + (c % n_rows) * n_cols : X;
    const int64_t started = now_ns();
    if (predict(x, batch, n_cols, 0, y) != 0) {
      fprintf(stderr, "driver: iot_predict failed\n");
      return 1;
    }
    times[c] = now_ns() - started;
    checksum += y[0];
  }
  const double median = percentile(times, (size_t)calls, 0.5) / (double)batch;
  const double p99 = percentile(times, (size_t)calls, 0.99) / (double)batch;
  printf("{\"batch\": %lld, \"calls\": %lld, \"median_ns_per_row\": %.1f, \"p99_ns_per_row\": %.1f, "
         "\"checksum\": %.17g}\n",
         (long long)batch, (long long)calls, median, p99, checksum);
  free(times);
  free(X);
  free(y);
  dlclose(library);
  return 0;
}
