"""Evaluation: rollouts, paired benchmarks, statistics, plots, results."""
