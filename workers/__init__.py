"""Background work: the RQ worker entry point, task functions and the training program."""
