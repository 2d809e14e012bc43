"""qianchuan-rl agents: policies (rules, controllers, oracle, PPO), training, evaluation."""
