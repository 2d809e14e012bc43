"""Train PPO on a scenario into a run folder (or resume one); print how it compares.

    python scripts/train.py                                   # defaults: configs/ppo/default.yaml
    python scripts/train.py --scenario beauty --timesteps 500000 --seed 1
    python scripts/train.py --set ppo.learning_rate=1e-4 --set policy.net_arch=128,128
    python scripts/train.py --resume runs/3c__default__0__20250101-120000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.run_folder import RunError
from agents.training.config import list_presets, load_train_config
from agents.training.interrupt import InterruptedTrainingError
from agents.training.summary import describe_run
from agents.training.train import resume, train
from envs.config import ConfigError

_ONLY_NEW_RUNS = ("config", "scenario", "seed", "n_envs", "run_name", "set")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--config", help="preset in configs/ppo/ or a YAML path "
                        f"(presets: {', '.join(list_presets())}; default: the scenario's "
                        "own preset if any, else default)")
    parser.add_argument("--scenario", help="scenario preset (configs/scenarios/) or YAML path")
    parser.add_argument("--timesteps", type=int, help="total env steps (account-days)")
    parser.add_argument("--seed", type=int, help="the run's seed")
    parser.add_argument("--n-envs", type=int, help="accounts simulated in parallel")
    parser.add_argument("--device", help="torch device: cpu, auto, cuda, cuda:N")
    parser.add_argument("--run-name", help="the run folder's whole name (must be new)")
    parser.add_argument("--resume", metavar="RUN", help="continue a run (folder or name) "
                        "from its last checkpoint")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. ppo.n_steps=128 (repeatable)")
    parser.add_argument("--runs-dir", default="runs", help="where run folders live")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.resume:
            given = [f"--{k.replace('_', '-')}" for k in _ONLY_NEW_RUNS if getattr(args, k)]
            if given:
                raise RunError(f"--resume continues a run with its own config; "
                               f"{', '.join(given)} cannot change it (only --timesteps and "
                               "--device can)")
            run_dir = resume(args.resume, runs_dir=args.runs_dir,
                             total_timesteps=args.timesteps, device=args.device)
        else:
            named = {"training.total_timesteps": args.timesteps, "seed": args.seed,
                     "env.n_envs": args.n_envs, "training.device": args.device}
            config = load_train_config(args.config, scenario=args.scenario, sets=args.set,
                                       values={k: v for k, v in named.items() if v is not None})
            run_dir = train(config, runs_dir=args.runs_dir, run_name=args.run_name)
    except (ConfigError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InterruptedTrainingError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 130
    print(describe_run(run_dir, Path(args.runs_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
