"""The five tasks and their models: the zoo, model files, cross-validation, ceilings, reduction, training."""
