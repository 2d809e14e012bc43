"""What a training session is built from: the batched training env behind ``VecNormalize``,
the PPO model, the scenarios validated on, and the check that every baseline can play them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.utils import LinearSchedule, set_random_seed
from stable_baselines3.common.vec_env import VecNormalize

from agents.policies import make_policy
from agents.training.config import TrainConfig
from envs.config import ConfigError, ScenarioConfig, list_scenarios
from envs.vec_env import QianchuanVecEnv

ACTIVATION_CLASSES = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU,
                      "leaky_relu": torch.nn.LeakyReLU, "silu": torch.nn.SiLU}


def session_seed(seed: int, session: int) -> int:
    """The training env's generator seed for a session of a run (0: the first).

    Derived through ``SeedSequence`` so training draws never coincide with the per-account
    generators of the report (10000+) or validation (20000+) seeds.
    """
    return int(np.random.SeedSequence([seed, session, 0x5151]).generate_state(1)[0])


def make_training_env(config: TrainConfig, scenario: ScenarioConfig | list[ScenarioConfig],
                      session: int = 0, vecnormalize_path: Path | None = None) -> VecNormalize:
    """The batched training env behind ``VecNormalize`` (fresh, or with saved statistics);
    a list of scenarios splits the batch across them. With ``env.anchor: static`` the accounts
    act through anchored actions beside twins playing ``static``
    (:mod:`agents.training.paired_env`)."""
    if config.env.anchor == "static":
        from agents.training.paired_env import PairedVecEnv

        names = scenario if isinstance(scenario, list) else [scenario]
        venv = PairedVecEnv(names, config.env.n_envs, session_seed(config.seed, session),
                            paired_reward=config.env.paired_reward)
    else:
        venv = QianchuanVecEnv(scenario, config.env.n_envs, session_seed(config.seed, session))
    if vecnormalize_path is not None:
        env = VecNormalize.load(str(vecnormalize_path), venv)
        env.training = True
        return env
    return VecNormalize(venv, norm_obs=True, norm_reward=config.env.normalize_reward,
                        clip_obs=config.env.clip_obs, gamma=config.ppo.gamma)


def validation_scenarios(scenarios: list[ScenarioConfig]) -> list[ScenarioConfig]:
    """The scenarios a run validates on: its own, without per-episode parameter randomisation
    (``randomize``: a training device; validation, like the report, judges the scenario)."""
    return [s.replace(randomize=0.0) if s.randomize else s for s in scenarios]


def check_baselines(config: TrainConfig, scenarios: list[ScenarioConfig] | None = None,
                    fix: str = "--set training.baselines=static_rule,playbook") -> None:
    """Every baseline of ``training.baselines`` can play every scenario the run validates on
    (a tuned one, ``static``, needs settings for the scenario and objective of this env
    version in ``configs/baselines/``), checked before any work.

    :param scenarios: the run's scenarios (default: the config's).
    :param fix: how to choose other baselines, for the message.
    :raises ConfigError: naming the baseline and the scenario, and how to go on.
    """
    from agents.policies.baseline_store import BaselineError, baseline_scenario

    for scenario in validation_scenarios(scenarios or config.scenario_configs()):
        for name in config.training.baselines:
            try:
                make_policy(name, scenario)
            except BaselineError as exc:
                if baseline_scenario(scenario) in list_scenarios():
                    why = f"{exc}; or"
                else:
                    why = (f"{scenario.name!r} is a scenario of your own and "
                           "scripts/search_baselines.py tunes the named ones "
                           "(configs/scenarios/); instead")
                raise ConfigError(f"training.baselines: {name} cannot play scenario "
                                  f"{scenario.name!r}: {why} validate against the one-line "
                                  f"rule, which plays any scenario untuned: {fix}") from None


def make_model(config: TrainConfig, env: VecNormalize) -> PPO:
    """A new PPO model; torch is seeded with the run's seed first (same seed, same weights)."""
    set_random_seed(config.seed)
    p, net = config.ppo, config.policy
    lr = (LinearSchedule(p.learning_rate, 0.0, 1.0) if p.lr_schedule == "linear"
          else p.learning_rate)
    return PPO(
        "MlpPolicy", env, learning_rate=lr, n_steps=p.n_steps, batch_size=p.batch_size,
        n_epochs=p.n_epochs, gamma=p.gamma, gae_lambda=p.gae_lambda, clip_range=p.clip_range,
        ent_coef=p.ent_coef, vf_coef=p.vf_coef, max_grad_norm=p.max_grad_norm,
        target_kl=p.target_kl, device=config.training.device, verbose=0,
        policy_kwargs={"net_arch": {"pi": list(net.net_arch), "vf": list(net.net_arch)},
                       "activation_fn": ACTIVATION_CLASSES[net.activation],
                       "log_std_init": net.log_std_init, "ortho_init": net.ortho_init})
