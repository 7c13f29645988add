/* Times one peer's C model of one random forest (bench/edge_peers.py), and prints its class-1 probabilities.
 *
 *   peer_driver INPUTS N_ROWS N_COLS            JSON: median ns per row over blocks of 1,000 rows
 *   peer_driver INPUTS N_ROWS N_COLS --print    one probability per row (%.17g)
 *
 * INPUTS is N_ROWS x N_COLS row-major float64. The model comes from one of the adapters beside this file
 * (peer_iotengine.c, peer_emlearn.c, peer_m2cgen.c), each defining peer_predict over a row of doubles. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double peer_predict(const double *row);

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  FILE *file;
  double *rows, *blocks, sink = 0.0;
  long n, cols, i, pass, n_blocks = 0;
  if (argc < 4) return 2;
  n = atol(argv[2]);
  cols = atol(argv[3]);
  rows = malloc(sizeof(double) * (size_t)(n * cols));
  file = fopen(argv[1], "rb");
  if (rows == NULL || file == NULL || fread(rows, sizeof(double), (size_t)(n * cols), file) != (size_t)(n * cols))
    return 2;
  fclose(file);
  if (argc > 4 && strcmp(argv[4], "--print") == 0) {
    for (i = 0; i < n; ++i) printf("%.17g\n", peer_predict(rows + i * cols));
    return 0;
  }
  blocks = malloc(sizeof(double) * (size_t)(20 * (n / 1000 + 1)));
  if (blocks == NULL) return 2;
  for (pass = 0; pass < 20; ++pass) {
    for (i = 0; i + 1000 <= n; i += 1000) {
      const double start = now_ns();
      long k;
      for (k = i; k < i + 1000; ++k) sink += peer_predict(rows + k * cols);
      if (pass > 0) blocks[n_blocks++] = (now_ns() - start) / 1000.0;
    }
  }
  qsort(blocks, (size_t)n_blocks, sizeof *blocks, by_value);
  printf("{\"ns_per_row_median\": %.2f, \"checksum\": %.6g}\n", blocks[n_blocks / 2], sink);
  return 0;
}
