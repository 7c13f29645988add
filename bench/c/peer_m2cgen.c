/* m2cgen's model (m2cgen.export_to_c, saved as m2cgen_model.c: score(double *input, double *output)) as a
 * peer_driver model. */
#include "m2cgen_model.c"

double peer_predict(const double *row);

double peer_predict(const double *row) {
  double out[2];
  score((double *)row, out);
  return out[1];
}
