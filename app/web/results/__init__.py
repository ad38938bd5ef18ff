"""Result pages of a job: samples side by side, checkpoints, validation accuracy, the whole-archive download."""
