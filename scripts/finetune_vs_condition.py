"""Fine-tuning against conditioning, on a few decision-value accounts (a measurement).

    python scripts/finetune_vs_condition.py --accounts 400 402 405 --steps 250000 \
        --run /path/to/runs/results/mix__all_scenarios-6742b079__0

For each account of ``scripts/decision_value.py`` (its cached record gives G, F and T on the
same report seeds), PPO continues from the shipped profit policy's run (``best`` checkpoint,
its observation statistics frozen) on the fit's posterior markets
(:func:`agents.calibration.adapt.posterior_configs`, the base's anchor, the paired reward, as
the policy was trained) for ``--steps`` env steps, then plays the account's true market from
launch on the same report seeds: ``FT``. Prints FT - G beside F - G (conditioning) and
T - G, CNY per 84-day launch, with paired intervals over seeds. A measurement; it asserts
nothing and writes nothing but its output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

def shipped_run(objective: str = "profit") -> Path:
    """The run the shipped policy was exported from (its manifest's ``source.run_dir``)."""
    manifest = json.loads((ROOT / "models" / objective / "policy.json").read_text())
    return ROOT / manifest["source"]["run_dir"]


def main(argv: list[str] | None = None) -> int:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.calibration.account import account_history
    from agents.calibration.adapt import ADAPT_DRAWS, posterior_configs
    from agents.calibration.fit import fit_account
    from agents.calibration.population import ACCOUNT_KEYS, MARKETS
    from agents.calibration.synthetic import synthetic_account
    from agents.evaluation.intervals import paired_difference
    from agents.evaluation.rollout import episode_value
    from agents.policies.anchored import AnchoredPolicy, sb3_predictor
    from agents.policies.baseline_store import baseline_scenario, load_static
    from agents.serving.inputs import parse_promotions
    from agents.serving.report import read_report
    from agents.training.paired_env import PairedVecEnv
    from envs.config import load_scenario
    from envs.seeds import REPORT_SEED
    from scripts.decision_value import HISTORY_DAYS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, nargs="+", default=[400, 402, 405])
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--n-envs", type=int, default=64)
    p.add_argument("--run", type=Path, default=None,
                   help="the shipped profit policy's run folder (default: its manifest's)")
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "decision_value" / "accounts")
    args = p.parse_args(argv)
    args.run = args.run or shipped_run()
    torch.set_num_threads(1)
    objective = "profit"
    for index in args.accounts:
        started = time.perf_counter()
        record = json.loads((args.cache / f"account_{index}_32_net.json").read_text())
        values = {k: np.asarray(v) for k, v in record["objectives"][objective]["values"].items()}
        market = load_scenario(MARKETS[index % len(MARKETS)])
        base = load_scenario(baseline_scenario(market))
        acc = synthetic_account(market, index, HISTORY_DAYS)
        path = acc.write(args.cache / f"account_{index}.csv")
        history = account_history(read_report(path), base, parse_promotions(
            acc.promo_dates, base.promo_peak_length_days))
        fit = fit_account(history, base)
        keys = {k: getattr(acc.config, k) for k in ACCOUNT_KEYS}
        configs = [c.replace(name=base.name) for c in
                   posterior_configs(fit, objective, ADAPT_DRAWS, account=keys)]
        venv = PairedVecEnv(configs, args.n_envs, seed=index, paired_reward=True)
        env = VecNormalize.load(str(args.run / "best" / "vecnormalize.pkl"), venv)
        env.training = False  # the observation statistics stay the shipped network's
        model = PPO.load(args.run / "best" / "model.zip", env=env, device="cpu")
        model.learn(total_timesteps=args.steps, reset_num_timesteps=False)
        truth = acc.config.replace(objective=objective, action_space="full")
        policy = AnchoredPolicy(sb3_predictor(model), truth,
                                anchor=load_static(base.replace(objective=objective)),
                                observation_filter=env.normalize_obs)
        seeds = REPORT_SEED + np.arange(len(values["G"]))
        ft = episode_value(truth, policy, seeds)
        lines = []
        for name, x in (("FT - G (fine-tuned)", ft), ("F - G (conditioned)", values["F"]),
                        ("T - G (truth)", values["T"])):
            mean, low, high = paired_difference(x, values["G"])
            lines.append(f"{name} {mean / 1000:+.1f}k [{low / 1000:+.1f}, {high / 1000:+.1f}]")
        print(f"account {index} ({market.name}): " + "; ".join(lines)
              + f"  [{time.perf_counter() - started:.0f} s, {args.steps} steps]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
