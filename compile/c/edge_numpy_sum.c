/* edge_numpy_sum.c: a static helper that compile/edge_models.py pastes into the model files that need it. */
#include <math.h>

/* numpy's sum of one row (np.add.reduce): the first element, plus the pairwise sum of the rest (8 partial
 * sums for up to 128 values), so the bits are numpy's. */
static double numpy_row_sum(const double *a, int n) {
  double r[8], res;
  int i, m = n - 1;
  const double *b = a + 1;
  if (n == 0) return 0.0;
  if (m < 8) {
    res = 0.0;
    for (i = 0; i < m; ++i) res += b[i];
    return a[0] + res;
  }
  for (i = 0; i < 8; ++i) r[i] = b[i];
  for (i = 8; i < m - (m % 8); i += 8) {
    int k;
    for (k = 0; k < 8; ++k) r[k] += b[i + k];
  }
  res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
  for (; i < m; ++i) res += b[i];
  return a[0] + res;
}
