"""Training: the configuration, the loop, checkpoints and the run log."""
