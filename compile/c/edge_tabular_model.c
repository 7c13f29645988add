/* edge_tabular_model.c: a linear or Gaussian naive Bayes model in an edge model file. It follows the constants
 * compile/edge_models.py writes first: N_Z, STATUS_AT, N_MODEL_INPUTS, MODEL_OUTPUTS, the tables, and
 *   MODEL_SCALED       1: z is standardised with scale_mean and scale_scale (the pipeline's StandardScaler)
 *   MODEL_GAUSSIAN_NB  1: Gaussian naive Bayes (theta, var, norm, log_prior, N_CLASSES);
 *                      0: linear (coef, intercept, N_ROWS)
 *   MODEL_LINK         0: none (regression), 1: logistic (binary), 2: softmax (multiclass)
 *   MODEL_BINARY       1: a binary task, whose score is the probability of class 1
 * The operations are engine/models/model_files.py's TabularPredictor's, in its order, so the bits are its.
 * It reads the library's iot_real inputs itself, widening each into z (MODEL_READS_REAL): a float build needs no
 * double copy of the row. */
#define MODEL_READS_REAL 1
static void model_row(const iot_real *x, double *result) {
  double z[N_Z];
  int j, c, k = 0;
  /* engine.models.zoo.expand_status: the inputs without machine_status, then status == 0, 1, 2 */
  for (j = 0; j < N_MODEL_INPUTS; ++j) if (j != STATUS_AT) z[k++] = (double)x[j];
  for (c = 0; c < 3; ++c) z[k++] = (double)x[STATUS_AT] == (double)c ? 1.0 : 0.0;
  for (j = 0; j < N_Z; ++j) if (isnan(z[j])) z[j] = medians[j];
#if MODEL_SCALED
  for (j = 0; j < N_Z; ++j) z[j] = (z[j] - scale_mean[j]) / scale_scale[j];
#endif
#if MODEL_GAUSSIAN_NB
  {
    double jll[N_CLASSES], terms[N_Z], lse;
    int i;
    for (i = 0; i < N_CLASSES; ++i) {
      for (j = 0; j < N_Z; ++j) {
        const double d = z[j] - theta[i * N_Z + j];
        terms[j] = (d * d) / var[i * N_Z + j];
      }
      jll[i] = log_prior[i] + (norm[i] - 0.5 * numpy_row_sum(terms, N_Z));
    }
    lse = logsumexp(jll, N_CLASSES);
    for (i = 0; i < N_CLASSES; ++i) result[i] = exp(jll[i] - lse);
  }
#if MODEL_BINARY
  result[0] = result[1];
#endif
#else
  {
    int i;
    for (i = 0; i < N_ROWS; ++i) {
      double dot = 0.0;
      for (j = 0; j < N_Z; ++j) dot += z[j] * coef[i * N_Z + j];
      result[i] = dot + intercept[i];
    }
  }
#if MODEL_LINK == 1
  result[0] = 1.0 / (1.0 + exp(-result[0]));
#elif MODEL_LINK == 2
  softmax(result, N_ROWS);
#endif
#endif
}
