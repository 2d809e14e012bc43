"""The environment's version: bump when dynamics, features or actions change meaning.

Kept in its own module so serving code can check a model against it without loading the
simulator.
"""

ENV_VERSION = 0
