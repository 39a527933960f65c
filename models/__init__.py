"""Anomaly scorers, thresholds, the model registry and training code."""
