"""Rule ablation of the playbook: what each of the article's rules is worth in this market.

The playbook chains ten rules (:class:`agents.policies.playbook.PlaybookPolicy`). Dropping one
at a time and playing both versions on the same seeds (common random numbers) gives each
rule's paired contribution, under both objectives: profit per launch (CNY) and the
``gmv_floor`` return (settled GMV with the settlement-ROI floor's penalty, CNY). A positive
contribution means the rule pays; a negative one, that the playbook does better without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.evaluation import stats as eval_stats
from agents.evaluation.rollout import episode_value
from agents.policies.playbook import PlaybookPolicy
from envs.config import ScenarioConfig, load_scenario


class PlaybookWithout(PlaybookPolicy):
    """The playbook with one rule (by class name) left out; the others in their order."""

    def __init__(self, config: ScenarioConfig, rule: str):
        super().__init__(config)
        kept = tuple(r for r in self.rules if type(r).__name__ != rule)
        if len(kept) == len(self.rules):
            raise ValueError(f"the playbook has no rule {rule!r}; it has "
                             f"{', '.join(rule_names())}")
        self.rules = kept


def rule_names() -> list[str]:
    """The playbook's rules, in the order it applies them (class names)."""
    return [type(r).__name__ for r in PlaybookPolicy(load_scenario("3c")).rules]


@dataclass
class RuleValue:
    """One rule's paired contribution on one scenario and objective (CNY per launch)."""

    scenario: str
    objective: str
    rule: str
    section: str  # the article's section the rule comes from
    contribution: float  # full playbook minus the playbook without the rule, mean over seeds
    ci_low: float
    ci_high: float
    playbook: float  # the full playbook's mean, for scale


def ablate(scenario: str, objective: str, seeds: np.ndarray, seed: int,
           reps: int = eval_stats.BOOTSTRAP_REPS) -> list[RuleValue]:
    """Each rule's paired contribution on ``scenario`` under ``objective`` over ``seeds``,
    with the 95% interval of rliable's bootstrap (seeded from ``seed`` and the names)."""
    config = load_scenario(scenario, objective=objective)
    playbook = PlaybookPolicy(config)
    full = episode_value(config, playbook, seeds)
    out = []
    for rule in playbook.rules:
        name, section = type(rule).__name__, rule.section
        diff = full - episode_value(config, PlaybookWithout(config, name), seeds)
        mean, low, high = eval_stats.column_means(
            diff[:, None], eval_stats.stream_seed(seed, scenario, objective, name), reps)
        out.append(RuleValue(scenario, objective, name, section, float(mean[0]),
                             float(low[0]), float(high[0]), float(full.mean())))
    return out


def markdown_table(values: list[RuleValue], objective: str) -> str:
    """Rules (rows) by scenarios (columns): contribution in k CNY with its interval; a cell
    is bold where the interval excludes zero."""
    rows = [v for v in values if v.objective == objective]
    scenarios = list(dict.fromkeys(v.scenario for v in rows))
    by = {(v.rule, v.scenario): v for v in rows}
    lines = ["| rule (article section) | " + " | ".join(scenarios) + " |",
             "|---|" + "---|" * len(scenarios)]
    for name in dict.fromkeys(v.rule for v in rows):
        section = next(v.section for v in rows if v.rule == name)
        cells = []
        for sc in scenarios:
            v = by[name, sc]
            text = f"{v.contribution / 1e3:+.1f} [{v.ci_low / 1e3:+.1f}, {v.ci_high / 1e3:+.1f}]"
            cells.append(f"**{text}**" if v.ci_low > 0 or v.ci_high < 0 else text)
        lines.append(f"| {name} ({section}) | " + " | ".join(cells) + " |")
    full = {v.scenario: v.playbook for v in rows}
    lines.append("| *full playbook* | " + " | ".join(f"{full[sc] / 1e3:.1f}"
                                                     for sc in scenarios) + " |")
    return "\n".join(lines)
