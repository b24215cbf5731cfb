"""flaxnets trainer: one ``train_and_evaluate(config, workdir)`` for every registered model."""
