"""What a finished run prints: where it is, how to look at it, and PPO next to the baselines
on the run's objective with the paired differences.
"""

from __future__ import annotations

import math
from pathlib import Path

from agents.run_folder import read_run_json
from agents.training.validation import VALUE, VERDICT_WORDS
from envs.seeds import VALIDATION_SEED


def describe_run(run_dir: Path, runs_root: Path | None = None) -> str:
    """What a run ends with: where it is, how to look at it, PPO next to the baselines on the
    run's objective (value, CNY per episode) and the other metrics, and the paired
    differences against each baseline."""
    run_dir = Path(run_dir)
    info = read_run_json(run_dir)
    final, best = info.get("final_eval"), info.get("best_eval")
    root = runs_root if runs_root is not None else run_dir.parent
    lines = [f"run folder: {run_dir}",
             f"TensorBoard: tensorboard --logdir {root}   then open "
             "http://localhost:6006/#custom_scalars (PPO vs the baselines; verdicts in #text)"]
    if final is None:
        return "\n".join(lines)
    objective, comparisons = final["objective"], final["comparisons"]
    sessions = info.get("sessions", [])
    if sessions and "seconds" in sessions[-1]:
        s = sessions[-1]
        lines.append(f"trained {s['end_step'] - s['start_step']:,} steps in {s['seconds']:.0f} s "
                     f"({s['steps_per_second']:,.0f} steps/s)")
    lines.append(f"validation: {final['n_seeds']} episodes on seeds {VALIDATION_SEED}.. (scenario "
                 f"{info['scenario']}, objective {objective}), means per episode")
    cols = [("PPO final", final["ppo"])]
    if best is not None:
        cols.append((f"PPO best (step {best['step']:,})", best["ppo"]))
    cols += [(name, c["reference"]) for name, c in comparisons.items()]
    lines.append(f"  {'metric':26s}" + "".join(f"{name:>24s}" for name, _ in cols))
    money = (VALUE, "profit", "gmv", "settled_gmv", "spend")
    for key in (VALUE, "profit", "gmv", "settled_gmv", "spend", "payment_roi",
                "settlement_roi", "refund_rate", "learning_days", "interruptions",
                "roi_floor_violation_days"):
        fmt = "{:>24,.0f}" if key in money else "{:>24.3f}"
        label = f"value ({objective}), CNY" if key == VALUE else key
        lines.append(f"  {label:26s}" + "".join(fmt.format(v.get(key, math.nan))
                                                 for _, v in cols))
    label = "profit" if objective == "profit" else f"{objective} value"
    for name, c in comparisons.items():
        profit = "" if objective == "profit" else (
            f"; profit {c['profit_diff']:+,.0f} [{c['profit_diff_ci_low']:+,.0f}, "
            f"{c['profit_diff_ci_high']:+,.0f}]")
        lines.append(
            f"  PPO final - {name}: {label} {c['value_diff']:+,.0f} CNY/episode, 95% CI "
            f"[{c['value_diff_ci_low']:+,.0f}, {c['value_diff_ci_high']:+,.0f}]{profit} -> "
            f"{VERDICT_WORDS[c['verdict']]} {name}")
    for scenario, part in (final.get("per_scenario") or {}).items():
        for name, c in part["comparisons"].items():
            lines.append(f"    {scenario:14s} PPO {part['ppo'][VALUE]:>13,.0f}  {name:>11s} "
                         f"{c['reference'][VALUE]:>13,.0f}  difference {c['value_diff']:+,.0f} "
                         f"[{c['value_diff_ci_low']:+,.0f}, {c['value_diff_ci_high']:+,.0f}]")
    return "\n".join(lines)
