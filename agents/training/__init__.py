"""Training PPO: typed configs, the run loop, callbacks, the paired env."""
