"""Evaluation harness: every op (models and baselines alike) measured by the same code."""
