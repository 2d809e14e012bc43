"""The environment's version: bump when dynamics, features or actions change meaning.

Kept in its own module so serving code can check a model against it without loading the
simulator.
"""

ENV_VERSION = 1  # 1: the market model's second version (issue #14)
