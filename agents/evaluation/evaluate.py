"""Paired benchmark of policies on scenarios and objectives: every policy on the same seeds.

:func:`evaluate` runs heuristics (by registered name) and trained runs (by run folder) on
each *case*, a scenario scored on one objective (``profit``, ``gmv_floor``; both by default),
with one episode per seed from ``seed`` on. A case's ``value`` is the episode's value under
its objective (:func:`agents.evaluation.rollout.objective_values`, CNY per launch); tuned
baselines and the oracle use that objective's settings and plans. It writes to ``out_dir``:

- ``summary.csv``: one row per case and policy; the value and every episode metric
  (contracts) with its mean and 95% interval, the paired difference against the playbook
  with its interval, the normalised score ``(value - constant) / (oracle - constant)`` and
  the probability that an episode of the policy beats the playbook's; its GMV, spend and
  last-28-day spend as shares of the reference policy's (:mod:`agents.evaluation.behaviour`); where
  ``static`` is played, the paired difference against it, the case's value of control
  (oracle - static) and the control share; and the paired difference against the best
  heuristic, chosen per case on validation seeds (:func:`best_heuristic`, always played);
- ``episodes.csv`` (every episode's value and metrics), ``report.md``, ``eval.json``;
- PNG plots per case: bars, every policy's daily target, budget, spend, GMV and learning
  share (median and quartiles over seeds, ``behaviour_<scenario>_<objective>.png``), one
  episode's trajectory per policy; performance profiles per objective;
- TensorBoard scalars ``eval/<policy>/<metric>`` under ``tb/<scenario>/<objective>/``.

The references ``constant``, ``oracle`` (for the normalised score) and ``playbook`` (for the
paired differences) are always run.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents.evaluation import behaviour
from agents.evaluation import plots as eval_plots
from agents.evaluation import stats as eval_stats
from agents.evaluation.rollout import RolloutResult, episode_value, objective_values, rollout
from agents.policies import POLICIES, make_policy
from agents.policies.baseline_store import OBJECTIVES, BaselineError, baseline_scenario
from agents.run_folder import (
    RunError,
    command_line,
    machine_context,
    package_versions,
    write_json_atomic,
    write_text_atomic,
)
from envs.config import ConfigError, ScenarioConfig, is_unseen, load_scenario
from envs.metrics import EPISODE_METRICS
from envs.seeds import REPORT_SEED

# configs/baselines/: the policies whose numbers a search on training seeds made
TUNED_BASELINES = ("static", "static_rule", "step_tuned", "pid_tuned", "playbook_tuned")
NOT_HEURISTICS = ("constant", "oracle", "static")  # references, and static reported apart
REFERENCES = ("constant", "oracle", "playbook")


class EvaluationError(ValueError):
    """A policy, scenario or run folder cannot be evaluated (a message for the user)."""


@dataclass
class PolicySource:
    """Where a policy comes from: a registered name, or a trained run folder."""

    label: str
    name: str | None = None  # registered policy
    run_dir: Path | None = None  # trained run

    def build(self, scenario: ScenarioConfig):
        """The policy and the config to run it on, for one scenario."""
        if self.name is not None:
            policy = make_policy(self.name, scenario)
            return policy, policy.config
        from agents.policies.ppo import load_trained_policy

        policy = load_trained_policy(self.run_dir)
        # Paired comparisons need every policy on the same market: the benchmark's scenario,
        # in the run's own action space (not its training config, which may randomise
        # parameters or mix scenarios).
        return policy.playing(scenario)


def resolve_policies(names: list[str]) -> list[PolicySource]:
    """Registered names and run folders -> sources, references first; errors name what exists.

    Trained runs are loaded once here, so a missing or damaged model fails before any work.
    """
    sources: list[PolicySource] = []
    runs = [n for n in names if n not in POLICIES]
    for name in runs:
        path = Path(name)
        if not path.exists() and "/" not in name and "\\" not in name:
            raise EvaluationError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}"
                                  " (or give a trained run folder)")
        _check_run(path)
    for ref in REFERENCES:
        if ref not in names:
            sources.append(PolicySource(ref, name=ref))
    for name in names:
        if name in POLICIES:
            sources.append(PolicySource(name, name=name))
        else:
            label = "ppo" if len(runs) == 1 else f"ppo_{Path(name).name}"
            sources.append(PolicySource(label, run_dir=Path(name)))
    seen: set[str] = set()
    unique = [s for s in sources if not (s.label in seen or seen.add(s.label))]
    return unique


def check_tuned_baselines(names: list[str], configs: list[ScenarioConfig]) -> None:
    """Tuned baselines among ``names`` load for every scenario (a file of this env version,
    with the scenario's objective), before any work; else an :class:`EvaluationError`."""
    for config in configs:
        for name in names:
            if name in TUNED_BASELINES:
                try:
                    make_policy(name, config)
                except BaselineError as exc:
                    raise EvaluationError(f"{name} on {config.name}: {exc}") from None


def _check_run(path: Path) -> None:
    """Load a run's model once; any failure becomes an :class:`EvaluationError`."""
    from agents.policies.ppo import load_trained_policy

    try:
        load_trained_policy(path)
    except RunError as exc:
        raise EvaluationError(f"{exc}{_runs_hint(path)}") from None
    except Exception as exc:  # a damaged zip or pickle raises many kinds of errors
        raise EvaluationError(f"cannot load the model of run {str(path)!r}: "
                              f"{type(exc).__name__}: {exc}") from None


def _runs_hint(path: Path) -> str:
    parent = path.parent if path.parent.is_dir() else Path("runs")
    found = sorted(p.name for p in parent.glob("*") if (p / "run.json").is_file())
    return f"; runs in {parent}: {', '.join(found) if found else 'none'}"


def resolve_scenarios(names: list[str], objectives: tuple[str, ...] | None = None
                      ) -> list[ScenarioConfig]:
    """Scenario configs by name or YAML path, one per objective in ``objectives`` (None: each
    scenario's own); an unknown scenario lists the known ones."""
    try:
        if objectives is None:
            return [load_scenario(n) for n in names]
        return [load_scenario(n, objective=o) for o in objectives for n in names]
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None


def case_key(config: ScenarioConfig) -> str:
    """``<scenario>/<objective>``: one benchmark case (a scenario scored on one objective)."""
    return f"{config.name}/{config.objective}"


def case_stem(scenario: str, objective: str) -> str:
    """The file-name part of a case (``3c_gmv_floor``)."""
    return f"{scenario}_{objective}"


@dataclass
class ScenarioResult:
    """Every policy's episodes on one scenario (same seeds)."""

    scenario: ScenarioConfig
    seeds: np.ndarray
    results: dict[str, RolloutResult] = field(default_factory=dict)


def run_all(sources: list[PolicySource], scenarios: list[ScenarioConfig], episodes: int,
            seed: int, progress: bool = True) -> list[ScenarioResult]:
    """Roll out every policy on every scenario over seeds ``seed .. seed + episodes - 1``."""
    seeds = np.arange(seed, seed + episodes)
    out = [ScenarioResult(sc, seeds) for sc in scenarios]
    bar = tqdm(total=len(sources) * len(scenarios), disable=not progress, unit="run",
               desc="evaluate")
    for res in out:
        for src in sources:
            bar.set_postfix_str(f"{res.scenario.name}/{src.label}")
            policy, config = src.build(res.scenario)
            res.results[src.label] = rollout(policy, config, seeds, record_daily=True)
            bar.update()
    bar.close()
    return out


def best_heuristic(config: ScenarioConfig, episodes: int) -> str:
    """The registered heuristic, tuned or not, with the highest mean value (the config's
    objective) on the first ``episodes`` validation seeds (from 20000, never the report
    seeds). Not a reference (constant, oracle) and not ``static``, which is reported apart;
    a tuned heuristic without a file for the scenario is passed over. An unseen market is
    never used to choose: its base scenario's choice stands."""
    from agents.training.callbacks import validation_seeds

    if is_unseen(config):
        config = load_scenario(baseline_scenario(config), objective=config.objective)
    seeds = validation_seeds(episodes)
    values = {}
    for name in sorted(POLICIES):
        if name in NOT_HEURISTICS:
            continue
        try:
            policy = make_policy(name, config)
        except BaselineError:
            continue
        values[name] = float(episode_value(config, policy, seeds).mean())
    return max(values, key=values.get)


VALUE_KEYS = ("value", *EPISODE_METRICS)  # per-episode columns of a row, "value" first


def summarise(runs: list[ScenarioResult], seed: int,
              reps: int = eval_stats.BOOTSTRAP_REPS,
              best: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows of ``summary.csv``: per case (scenario and objective) and policy, means,
    intervals, paired differences.

    ``value`` is the episode's value under the case's objective (CNY: profit, or the
    ``gmv_floor`` return); the normalised score, the comparisons with ``static``, the best
    heuristic and the oracle (``value_of_control``, ``control_share``) are all on it. Every
    interval comes from one seeded rliable bootstrap per case and policy over the per-episode
    columns: value and episode metrics, their per-seed differences against the playbook and
    the per-episode normalised score (:mod:`agents.evaluation.stats`).

    :param best: case key (:func:`case_key`) -> the best heuristic's label.
    """
    rows = []
    for res in runs:
        r, case = res.results, case_key(res.scenario)
        value = {label: objective_values(res.scenario, result) for label, result in r.items()}
        per_episode = {label: {"value": value[label], **result.metrics}
                       for label, result in r.items()}
        base = per_episode["playbook"]
        reference = behaviour.reference_policy(list(r)) if all(v.daily for v in r.values()) \
            else None
        voc = (value_of_control(value["oracle"], value["static"], seed, case, reps)
               if "static" in r else None)
        for label, m in per_episode.items():
            columns = np.column_stack(
                [m[k] for k in VALUE_KEYS] + [m[k] - base[k] for k in VALUE_KEYS]
                + [eval_stats.normalised_scores(m["value"], value["constant"],
                                                value["oracle"])])
            mean, low, high = eval_stats.column_means(
                columns, eval_stats.stream_seed(seed, case, label), reps)
            k = len(VALUE_KEYS)
            row: dict[str, Any] = {"scenario": res.scenario.name,
                                   "objective": res.scenario.objective, "policy": label,
                                   "episodes": len(res.seeds), "normalised_score": mean[-1],
                                   "normalised_score_ci_low": low[-1],
                                   "normalised_score_ci_high": high[-1]}
            row["prob_improvement_vs_playbook"] = eval_stats.probability_of_improvement(
                m["value"], base["value"])
            if best is not None and best.get(case) in r:
                name = best[case]
                d_mean, d_low, d_high = eval_stats.column_means(
                    (m["value"] - value[name])[:, None],
                    eval_stats.stream_seed(seed, case, label, "best"), reps)
                row.update(best_heuristic=name, value_diff_vs_best_heuristic=d_mean[0],
                           value_diff_vs_best_heuristic_ci_low=d_low[0],
                           value_diff_vs_best_heuristic_ci_high=d_high[0])
            if voc is not None:
                row.update(_against_static(m["value"], value["static"], value["oracle"], seed,
                                           case, label, reps, voc))
            if reference is not None:
                row.update(behaviour.share_columns(r[label].daily, r[reference].daily,
                                                   reference))
            for i, key in enumerate(VALUE_KEYS):
                row.update({key: mean[i], f"{key}_ci_low": low[i], f"{key}_ci_high": high[i],
                            f"{key}_diff_vs_playbook": mean[k + i],
                            f"{key}_diff_ci_low": low[k + i],
                            f"{key}_diff_ci_high": high[k + i]})
            rows.append(row)
    return rows


def value_of_control(oracle: np.ndarray, static: np.ndarray, seed: int, case: str,
                      reps: int) -> dict[str, float]:
    """The case's ``value_of_control``: oracle - static value, paired, with its interval."""
    voc, low, high = eval_stats.column_means(
        (oracle - static)[:, None], eval_stats.stream_seed(seed, case, "value_of_control"),
        reps)
    return {"value_of_control": voc[0], "value_of_control_ci_low": low[0],
            "value_of_control_ci_high": high[0]}


def _against_static(value: np.ndarray, static: np.ndarray, oracle: np.ndarray, seed: int,
                    case: str, label: str, reps: int,
                    voc: dict[str, float] | None = None) -> dict[str, float]:
    """Paired value difference against ``static`` (with its interval); the case's value of
    control (``voc`` when the caller has it, from :func:`_value_of_control`); and
    ``control_share`` = mean(policy - static) / mean(oracle - static) with a joint bootstrap
    interval, NaN (n/a) where the value of control's lower bound is <= 0: nothing measurable
    to learn beyond fixed settings.

    :param value: per-episode values (CNY) of the policy; ``static`` and ``oracle`` the
        references' on the same seeds.
    """
    if voc is None:
        voc = value_of_control(oracle, static, seed, case, reps)
    mean, low, high = eval_stats.column_means(
        (value - static)[:, None], eval_stats.stream_seed(seed, case, label, "static"), reps)
    share = eval_stats.ratio_of_means(value - static, oracle - static,
                                      eval_stats.stream_seed(seed, case, label, "share"), reps)
    return {"value_diff_vs_static": mean[0], "value_diff_vs_static_ci_low": low[0],
            "value_diff_vs_static_ci_high": high[0], **voc,
            **control_share_columns(share, voc)}


def control_share_columns(share: tuple[float, float, float],
                          voc: dict[str, float]) -> dict[str, float]:
    """``control_share`` and its interval, NaN (n/a) where the value of control's lower
    bound is <= 0."""
    if not voc["value_of_control_ci_low"] > 0:
        share = (float("nan"),) * 3
    return {"control_share": share[0], "control_share_ci_low": share[1],
            "control_share_ci_high": share[2]}


def episode_scores(runs: list[ScenarioResult]) -> dict[str, dict[str, np.ndarray]]:
    """Per-episode normalised scores on each case's value, for rliable: objective -> policy
    -> (episodes, scenarios)."""
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for res in runs:
        value = {label: objective_values(res.scenario, result)
                 for label, result in res.results.items()}
        by_policy = out.setdefault(res.scenario.objective, {})
        for label in res.results:
            by_policy.setdefault(label, []).append(
                eval_stats.normalised_scores(value[label], value["constant"], value["oracle"]))
    return {obj: {k: np.stack(v, axis=1) for k, v in per.items()} for obj, per in out.items()}


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def _episode_rows(runs: list[ScenarioResult]) -> list[dict[str, Any]]:
    rows = []
    for res in runs:
        for label, result in res.results.items():
            value = objective_values(res.scenario, result)
            for i, s in enumerate(res.seeds):
                rows.append({"scenario": res.scenario.name,
                             "objective": res.scenario.objective, "policy": label,
                             "seed": int(s), "value": float(value[i]),
                             **{k: float(result.metrics[k][i]) for k in EPISODE_METRICS}})
    return rows


def _fmt(row: dict[str, Any], key: str, digits: int = 0) -> str:
    return (f"{row[key]:,.{digits}f} [{row[key + '_ci_low']:,.{digits}f}, "
            f"{row[key + '_ci_high']:,.{digits}f}]")


def _fmt_diff(row: dict[str, Any], key: str) -> str:
    """:func:`_fmt` of ``key`` (CNY), or n/a when the row lacks it."""
    return _fmt(row, key) if key in row else "n/a"


VALUE_NAMES = {"profit": "profit", "gmv_floor": "gmv_floor return"}


def value_name(objective: str) -> str:
    """What a case's value is called in tables (``profit``, ``gmv_floor return``)."""
    return VALUE_NAMES.get(objective, objective)


def objectives_of(rows: list[dict[str, Any]]) -> list[str]:
    """The objectives in ``rows``, in order of first appearance."""
    return list(dict.fromkeys(r["objective"] for r in rows))


def heuristics_table(rows: list[dict[str, Any]], objective: str) -> str:
    """Markdown: value (k CNY) and normalised score per scenario (rows) and policy, for one
    objective."""
    rows = [r for r in rows if r["objective"] == objective]
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    by = {(r["scenario"], r["policy"]): r for r in rows}
    lines = ["| scenario | " + " | ".join(policies) + " |",
             "|---|" + "---|" * len(policies)]
    for sc in scenarios:
        cells = [f"{by[sc, p]['value'] / 1000:,.0f}k ({by[sc, p]['normalised_score']:.2f})"
                 for p in policies]
        lines.append(f"| {sc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregates_lines(aggregates: dict[str, dict[str, float]]) -> list[str]:
    """Markdown rows of IQM and mean normalised score per policy."""
    out = ["| policy | IQM [95% CI] | mean [95% CI] |", "|---|---|---|"]
    for label, a in aggregates.items():
        out.append(f"| {label} | {a['iqm']:.3f} [{a['iqm_ci_low']:.3f}, {a['iqm_ci_high']:.3f}]"
                   f" | {a['mean']:.3f} [{a['mean_ci_low']:.3f}, {a['mean_ci_high']:.3f}] |")
    return out


def _case_section(rows: list[dict[str, Any]], sc: str, objective: str, plots: bool
                  ) -> list[str]:
    """One case's tables: every policy's value, metrics and comparisons."""
    mine = [r for r in rows if r["scenario"] == sc and r["objective"] == objective]
    name = value_name(objective)
    out = [f"### {sc}, {objective}", "",
           f"| policy | {name}, CNY | normalised | {name} vs playbook, CNY | P(beats playbook) "
           "| profit, CNY | payment ROI | settlement ROI | learning days | interruptions |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in mine:
        out.append(
            f"| {r['policy']} | {_fmt(r, 'value')} | {_fmt(r, 'normalised_score', 2)} | "
            f"{r['value_diff_vs_playbook']:,.0f} [{r['value_diff_ci_low']:,.0f}, "
            f"{r['value_diff_ci_high']:,.0f}] | {r['prob_improvement_vs_playbook']:.2f} | "
            f"{r['profit']:,.0f} | {r['payment_roi']:.2f} | {r['settlement_roi']:.2f} | "
            f"{r['learning_days']:.1f} | {r['interruptions']:.1f} |")
    if "value_diff_vs_static" in mine[0]:
        first = mine[0]
        out += ["", f"Against `static` (value of control, oracle − static: "
                f"{_fmt_diff(first, 'value_of_control')} CNY; control share n/a where its "
                "lower bound is ≤ 0):", "",
                f"| policy | {name} − static, CNY [95% CI] | control share [95% CI] | "
                f"{name} − the best heuristic ({first.get('best_heuristic', 'n/a')}, chosen on "
                "validation seeds), CNY [95% CI] |", "|---|---|---|---|"]
        for r in mine:
            share = ("n/a" if np.isnan(r["control_share"]) else
                     f"{r['control_share']:.2f} [{r['control_share_ci_low']:.2f}, "
                     f"{r['control_share_ci_high']:.2f}]")
            out.append(f"| {r['policy']} | {_fmt_diff(r, 'value_diff_vs_static')} | {share} | "
                       f"{_fmt_diff(r, 'value_diff_vs_best_heuristic')} |")
    shares = [k for k in mine[0] if k.startswith(("gmv_share_vs_", "spend_share_vs_",
                                                   "spend_last"))]
    if shares:
        ref = shares[0].rsplit("_vs_", 1)[1]
        out += ["", f"Volume as a share of {ref}'s on the same seeds (GMV, spend, spend over "
                f"the last {behaviour.LAST_DAYS} days):", "",
                "| policy | " + " | ".join(k.replace(f"_vs_{ref}", "") for k in shares)
                + " |", "|---|" + "---|" * len(shares)]
        out += [f"| {r['policy']} | " + " | ".join(f"{r[k]:.2f}" for k in shares) + " |"
                for r in mine]
    stem = case_stem(sc, objective)
    out += ["", f"![{sc}, {objective}](bars_{stem}.png)", "",
            f"![{sc}, {objective}: behaviour](behaviour_{stem}.png)", ""] if plots else [""]
    return out


def report_markdown(rows: list[dict[str, Any]],
                    aggregates: dict[str, dict[str, dict[str, float]]],
                    record: dict[str, Any], plots: bool = True) -> str:
    """The human-readable report (with links to the PNG plots if they were drawn).

    :param aggregates: objective -> policy -> IQM and mean normalised score.
    """
    out = [f"# Evaluation {record['created']}", "",
           f"Seeds {record['seeds'][0]}..{record['seeds'][-1]} ({record['episodes']} episodes "
           "per case, the same seeds for every policy: paired). A case is a scenario scored on "
           "one objective: its value is the episode's profit (`profit`) or its settled GMV "
           "less the settlement-ROI floor's penalty (`gmv_floor`), CNY per launch; tuned "
           "baselines and the oracle use that objective's settings and plans. Intervals are "
           "95% percentile intervals of rliable's stratified bootstrap over episodes; "
           "differences are means of per-seed differences; normalised score = (value - "
           "constant) / (oracle - constant), per episode the gain over the constant policy on "
           "the same seed.", "",
           f"Command: `{' '.join(record['command'])}`", ""]
    for objective in objectives_of(rows):
        name = value_name(objective)
        out += [f"## Objective `{objective}`", "",
                f"{name.capitalize()} per episode (k CNY) and normalised score:", "",
                heuristics_table(rows, objective), "",
                "Across scenarios (normalised score, rliable stratified bootstrap):", "",
                *aggregates_lines(aggregates.get(objective, {})), ""]
        if plots:
            out += [f"![performance profiles](performance_profiles_{objective}.png)", ""]
        for sc in dict.fromkeys(r["scenario"] for r in rows if r["objective"] == objective):
            out += _case_section(rows, sc, objective, plots)
    return "\n".join(out) + "\n"


def write_tensorboard(rows: list[dict[str, Any]], tb_dir: Path) -> None:
    """Scalars ``eval/<policy>/<metric>`` (value, the episode metrics, the normalised score),
    one folder per case: ``tb/<scenario>/<objective>``."""
    from torch.utils.tensorboard import SummaryWriter

    for sc, objective in dict.fromkeys((r["scenario"], r["objective"]) for r in rows):
        writer = SummaryWriter(str(tb_dir / sc / objective))
        for r in (r for r in rows if r["scenario"] == sc and r["objective"] == objective):
            for key in (*VALUE_KEYS, "normalised_score"):
                writer.add_scalar(f"eval/{r['policy']}/{key}", r[key], 0)
        writer.close()


def evaluate(policies: list[str], scenarios: list[str], episodes: int = 32,
             seed: int = REPORT_SEED, out_dir: Path | None = None, progress: bool = True,
             tensorboard: bool = True, plots: bool = True,
             bootstrap_reps: int = eval_stats.BOOTSTRAP_REPS,
             objectives: tuple[str, ...] | None = OBJECTIVES) -> Path:
    """Benchmark ``policies`` on ``scenarios`` under ``objectives`` and write the outputs;
    return the folder.

    :param policies: registered names and/or trained run folders.
    :param scenarios: scenario names or YAML paths.
    :param objectives: each scenario is scored once per objective (None: its own).
    :param bootstrap_reps: bootstrap resamples of every interval and aggregate (the
        performance profiles' bands use a quarter of them).
    :param out_dir: default: ``<run>/eval/`` for a single trained run, else
        ``runs/eval__<time>/``.
    :raises EvaluationError: unknown policy or scenario, missing run, damaged model.
    """
    if episodes < 2:
        raise EvaluationError("--episodes must be at least 2 (intervals need a spread)")
    if seed < 0:
        raise EvaluationError(f"--seed must be >= 0, got {seed}")
    if bootstrap_reps < 100:
        raise EvaluationError(f"--bootstrap-reps must be at least 100, got {bootstrap_reps}")
    unknown = sorted(set(objectives or ()) - set(OBJECTIVES))
    if unknown:
        raise EvaluationError(f"unknown objective(s) {', '.join(unknown)}; known: "
                              f"{', '.join(OBJECTIVES)}")
    sources = resolve_policies(policies)
    configs = resolve_scenarios(scenarios, objectives)
    check_tuned_baselines([s.name for s in sources if s.name], configs)
    best = {case_key(c): best_heuristic(c, episodes) for c in configs}
    played = {s.label for s in sources}
    sources += [PolicySource(name, name=name) for name in dict.fromkeys(best.values())
                if name not in played]
    if out_dir is None:
        trained = [s.run_dir for s in sources if s.run_dir is not None]
        out_dir = (trained[0] / "eval" if len(trained) == 1
                   else Path("runs") / f"eval__{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = run_all(sources, configs, episodes, seed, progress)
    rows = summarise(runs, seed, bootstrap_reps, best)
    scores = episode_scores(runs)
    aggregates = {obj: eval_stats.aggregate_scores(per, seed, bootstrap_reps)
                  for obj, per in scores.items()}
    record = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command_line(),
        "seed": seed, "episodes": episodes, "seeds": [int(s) for s in runs[0].seeds],
        "bootstrap_reps": bootstrap_reps,
        "objectives": list(dict.fromkeys(c.objective for c in configs)),
        "policies": [{"label": s.label, "name": s.name,
                      "run_dir": str(s.run_dir) if s.run_dir else None} for s in sources],
        "best_heuristic": best,
        "scenarios": {case_key(c): {"hash": c.hash(), "config": c.to_dict()}
                      for c in configs},
        "packages": package_versions(), "machine": machine_context(),
        "aggregates": aggregates,
    }
    write_text_atomic(out_dir / "summary.csv", _csv_text(rows))
    write_text_atomic(out_dir / "episodes.csv", _csv_text(_episode_rows(runs)))
    if plots:
        _write_plots(runs, rows, scores, seed, bootstrap_reps // 4, out_dir)
    if tensorboard:
        write_tensorboard(rows, out_dir / "tb")
    record["wall_time_s"] = round(time.perf_counter() - started, 1)
    write_text_atomic(out_dir / "report.md", report_markdown(rows, aggregates, record, plots))
    write_json_atomic(out_dir / "eval.json", record)
    return out_dir


def _write_plots(runs: list[ScenarioResult], rows: list[dict[str, Any]],
                 scores: dict[str, dict[str, np.ndarray]], seed: int, profile_reps: int,
                 out_dir: Path) -> None:
    for res in runs:
        name, objective = res.scenario.name, res.scenario.objective
        stem, title = case_stem(name, objective), f"{name}, {objective}"
        eval_plots.plot_bars(title, [r for r in rows if r["scenario"] == name
                                     and r["objective"] == objective],
                             out_dir / f"bars_{stem}.png", value_name(objective))
        eval_plots.plot_behaviour(title, {label: result.daily
                                          for label, result in res.results.items()},
                                  out_dir / f"behaviour_{stem}.png")
        for label, result in res.results.items():
            first = {k: v[0] for k, v in result.daily.items()}
            eval_plots.plot_trajectory(title, label, first, int(res.seeds[0]),
                                       out_dir / f"trajectory_{stem}_{label}.png")
    taus = np.linspace(-1.0, 1.5, 51)
    for objective, per in scores.items():
        profiles, cis = eval_stats.performance_profiles(per, taus, seed, profile_reps)
        eval_plots.plot_profiles(taus, profiles, cis,
                                 out_dir / f"performance_profiles_{objective}.png")
