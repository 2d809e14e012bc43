"""Tuning and sweeps on a shared Optuna storage: search spaces, the trial queue, studies."""
