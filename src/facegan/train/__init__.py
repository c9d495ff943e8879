"""Training: datasets, losses, trainers, presets, checkpoints."""
