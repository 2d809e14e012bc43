"""Experiments: tuning studies, multi-seed sweeps and baseline searches on a shared Optuna
storage, and the speed measurements of ``scripts/benchmark.py``."""
