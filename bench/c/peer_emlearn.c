/* emlearn's model (emlearn.convert(..., method="inline", dtype="float"), saved as eml_model.h with the name
 * eml_model) as a peer_driver model: float features, the mean of the trees' votes. */
#include "eml_model.h"

#define N_INPUTS 68

double peer_predict(const double *row);

double peer_predict(const double *row) {
  float features[N_INPUTS];
  float out[2];
  int j;
  for (j = 0; j < N_INPUTS; ++j) features[j] = (float)row[j];
  eml_model_predict_proba(features, N_INPUTS, out, 2);
  return (double)out[1];
}
