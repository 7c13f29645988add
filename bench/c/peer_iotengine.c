/* iotengine's model (an edge model file of the exported tree beside this adapter) as a peer_driver model. */
#include "iot_models.h"

double peer_predict(const double *row);

double peer_predict(const double *row) {
  iot_real inputs[IOT_N_DETECTOR_INPUTS];
  iot_real out;
  int j;
  for (j = 0; j < IOT_N_INPUTS; ++j) inputs[j] = (iot_real)row[j];
  iot_model_anomaly_flag(inputs, &out);
  return (double)out;
}
