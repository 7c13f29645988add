/* edge_logsumexp.c: a static helper that compile/edge_models.py pastes into the model files that need it. */
#include <math.h>

/* scipy.special.logsumexp (1.15+): the maxima are taken out of the sum, s = sum(exp(a - max)) / count(max),
 * log1p(s) + log(count) + max. */
static double logsumexp(const double *a, int n) {
  double top = a[0], s = 0.0;
  int k, m = 0;
  for (k = 1; k < n; ++k) if (a[k] > top) top = a[k];
  for (k = 0; k < n; ++k) {
    if (a[k] == top) m += 1; else s += exp(a[k] - top);
  }
  if (s != 0.0) s = s / m;
  return log1p(s) + log((double)m) + top;
}
