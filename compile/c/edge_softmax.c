/* edge_softmax.c: a static helper that compile/edge_models.py pastes into the model files that need it. */
#include <math.h>

/* scipy.special.softmax: exp(x - max(x)) / sum, the sum in order. */
static void softmax(double *y, int n) {
  double top = y[0], sum = 0.0;
  int k;
  for (k = 1; k < n; ++k) if (y[k] > top) top = y[k];
  for (k = 0; k < n; ++k) y[k] = exp(y[k] - top);
  for (k = 0; k < n; ++k) sum += y[k];
  for (k = 0; k < n; ++k) y[k] = y[k] / sum;
}
