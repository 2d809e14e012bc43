"""The results report (``docs/results.md``): PPO over training seeds against the tuned
baselines, the playbook and the oracle on every case (scenario x objective), on the named
scenarios and the unseen markets; the cross-scenario policy; learning curves.

Statistics. Every policy plays the same report seeds (paired). A single policy's intervals
come from :func:`agents.evaluation.scores.summarise` (rliable's bootstrap over episodes). A family
of trained runs (one per training seed) is summarised over all its ``runs x episodes``
values with a *crossed* bootstrap (:func:`crossed_bootstrap`): each resample draws training
seeds and episodes independently, so the interval covers both the luck of training and the
luck of the market draws. Its ``control_share`` (mean of PPO - static over mean of oracle -
static) resamples the same way, the oracle and static on the resampled episodes
(:func:`crossed_ratio`). The per-seed means also get a t-interval across seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation import stats as eval_stats
from agents.evaluation.intervals import mean_interval
from agents.evaluation.report import value_name
from agents.evaluation.scores import (
    ScenarioResult,
    case_key,
    control_share_columns,
    episode_scores,
    value_of_control,
)

FAMILIES = {"ppo": "PPO, one per scenario", "mix": "PPO, one across all scenarios"}
# Per-episode quantities summarised for a family (value: the case's objective, CNY).
FAMILY_METRICS = ("value", "value_diff_vs_static", "value_diff_vs_playbook",
                  "value_diff_vs_static_rule", "profit", "normalised_score",
                  "roi_floor_violation_days", "interruptions", "settlement_roi")


def family_labels(res: ScenarioResult, family: str) -> list[str]:
    """The labels of a family's runs in a scenario's results (``ppo_s0``, ``ppo_s1``...)."""
    return [label for label in res.results if label.startswith(f"{family}_s")]


def _crossed_indices(rng: np.random.Generator, n_runs: int, n_eps: int, reps: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One crossed resample per row: run indices (reps, runs), then episode indices
    (reps, episodes), drawn independently."""
    return rng.integers(0, n_runs, (reps, n_runs)), rng.integers(0, n_eps, (reps, n_eps))


def crossed_bootstrap(values: np.ndarray, rng: np.random.Generator,
                      reps: int = eval_stats.BOOTSTRAP_REPS,
                      confidence: float = eval_stats.CONFIDENCE) -> tuple[np.ndarray, ...]:
    """Mean over runs and episodes of ``values`` (k, runs, episodes), with a percentile
    interval from resampling runs and episodes independently (the episodes are paired
    across runs: the same seeds).

    :return: (means (k,), lower bounds (k,), upper bounds (k,)).
    """
    _, n_runs, n_eps = values.shape
    runs, eps = _crossed_indices(rng, n_runs, n_eps, reps)
    draws = values[:, runs[:, :, None], eps[:, None, :]].mean(axis=(2, 3))  # (k, reps)
    tail = 50 * (1 - confidence)
    low, high = np.percentile(draws, [tail, 100 - tail], axis=1)
    return values.mean(axis=(1, 2)), low, high


def crossed_ratio(numerator: np.ndarray, denominator: np.ndarray, rng: np.random.Generator,
                  reps: int = eval_stats.BOOTSTRAP_REPS,
                  confidence: float = eval_stats.CONFIDENCE) -> tuple[float, float, float]:
    """``mean(numerator) / mean(denominator)`` with a crossed-bootstrap interval: each
    resample draws runs and episodes independently; the denominator (one value per episode,
    the same for every run) is averaged over the resampled episodes.

    :param numerator: (runs, episodes), e.g. PPO - static per run and seed.
    :param denominator: (episodes,), e.g. oracle - static per seed.
    """
    runs, eps = _crossed_indices(rng, *numerator.shape, reps)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = (numerator[runs[:, :, None], eps[:, None, :]].mean(axis=(1, 2))
                 / denominator[eps].mean(axis=1))
        point = float(numerator.mean() / denominator.mean())
    tail = 50 * (1 - confidence)
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return point, float(low), float(high)


def _episode_values(res: ScenarioResult, label: str, value: dict[str, np.ndarray]
                    ) -> dict[str, np.ndarray]:
    m = res.results[label].metrics
    return {
        "value": value[label], "value_diff_vs_static": value[label] - value["static"],
        "value_diff_vs_playbook": value[label] - value["playbook"],
        "value_diff_vs_static_rule": value[label] - value["static_rule"], "profit": m["profit"],
        "normalised_score": eval_stats.normalised_scores(value[label], value["constant"],
                                                         value["oracle"]),
        "roi_floor_violation_days": m["roi_floor_violation_days"],
        "interruptions": m["interruptions"], "settlement_roi": m["settlement_roi"],
    }


def family_stats(res: ScenarioResult, family: str, seed: int,
                 reps: int = eval_stats.BOOTSTRAP_REPS,
                 best: str | None = None) -> dict[str, Any] | None:
    """A family's statistics on one case (None if it has no run there).

    :param best: the case's best heuristic (its label among the results), for
        ``value_diff_vs_best``.
    :return: ``{metric: (mean, low, high)}`` for :data:`FAMILY_METRICS` (crossed bootstrap),
        ``control_share`` (crossed, n/a where the value of control's lower bound is <= 0),
        ``seeds`` (per-seed mean value and difference against static), ``diff_over_seeds``
        (t-interval across seeds), ``prob_improvement`` (an episode of the family beats
        static's).
    """
    labels = family_labels(res, family)
    if not labels:
        return None
    value = res.values()
    case = case_key(res.scenario)
    per_run = [_episode_values(res, label, value) for label in labels]
    keys = list(FAMILY_METRICS)
    if best is not None and best in value:
        for run, label in zip(per_run, labels, strict=True):
            run["value_diff_vs_best"] = value[label] - value[best]
        keys.append("value_diff_vs_best")
    values = np.stack([np.stack([run[k] for run in per_run]) for k in keys])
    rng = np.random.default_rng(eval_stats.stream_seed(seed, case, family))
    mean, low, high = crossed_bootstrap(values, rng, reps)
    out: dict[str, Any] = {k: (float(mean[i]), float(low[i]), float(high[i]))
                           for i, k in enumerate(keys)}
    voc = value_of_control(value["oracle"], value["static"], seed, case, reps)
    share = crossed_ratio(values[keys.index("value_diff_vs_static")],
                          value["oracle"] - value["static"],
                          np.random.default_rng(eval_stats.stream_seed(seed, case, family,
                                                                       "share")), reps)
    columns = control_share_columns(share, voc)
    out["control_share"] = (columns["control_share"], columns["control_share_ci_low"],
                            columns["control_share_ci_high"])
    out["value_of_control"] = (voc["value_of_control"], voc["value_of_control_ci_low"],
                               voc["value_of_control_ci_high"])
    out["best_heuristic"] = best
    seed_diffs = np.array([run["value_diff_vs_static"].mean() for run in per_run])
    out["seeds"] = {label: {"value": float(run["value"].mean()),
                            "value_diff_vs_static": float(run["value_diff_vs_static"].mean())}
                    for label, run in zip(labels, per_run, strict=True)}
    out["diff_over_seeds"] = mean_interval(seed_diffs)
    out["prob_improvement"] = eval_stats.probability_of_improvement(
        values[0].ravel(), value["static"])
    out["n_runs"] = len(labels)
    return out


def family_vs_family(res: ScenarioResult, first: str, second: str, seed: int,
                     reps: int = eval_stats.BOOTSTRAP_REPS) -> tuple[float, float, float] | None:
    """Mean value of family ``first`` minus family ``second`` on the same report seeds, with a
    bootstrap interval resampling episodes and each family's runs."""
    a, b = family_labels(res, first), family_labels(res, second)
    if not a or not b:
        return None
    value = res.values()
    pa = np.stack([value[label] for label in a])
    pb = np.stack([value[label] for label in b])
    rng = np.random.default_rng(eval_stats.stream_seed(seed, case_key(res.scenario), first,
                                                       second))
    n_eps = pa.shape[1]
    eps = rng.integers(0, n_eps, (reps, n_eps))
    ra = rng.integers(0, len(a), (reps, len(a)))
    rb = rng.integers(0, len(b), (reps, len(b)))
    draws = (pa[ra[:, :, None], eps[:, None, :]].mean(axis=(1, 2))
             - pb[rb[:, :, None], eps[:, None, :]].mean(axis=(1, 2)))
    tail = 50 * (1 - eval_stats.CONFIDENCE)
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(pa.mean() - pb.mean()), float(low), float(high)


def family_of(label: str) -> str | None:
    """The family of a trained run's label (``ppo_s1`` -> ``ppo``), None for a policy."""
    return next((f for f in FAMILIES if label.startswith(f"{f}_s")), None)


def family_scores(runs: list[ScenarioResult]) -> dict[str, dict[str, np.ndarray]]:
    """Per-episode normalised scores for rliable's aggregates, per objective: every single
    policy (episodes, scenarios) and every family, its runs stacked ((runs x episodes),
    scenarios)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for objective, per in episode_scores(runs).items():
        mine = out.setdefault(objective, {})
        for label, scores in per.items():
            key = family_of(label) or label
            mine[key] = np.concatenate([mine[key], scores]) if key in mine else scores
    return out


# ---------------------------------------------------------------------------------------------
def read_curves(run_dir: Path, prefix: str = "eval",
                baseline: str = "static") -> dict[str, np.ndarray]:
    """A run's validation values (its objective, CNY per episode) from its TensorBoard
    events: ``steps``, ``ppo``, ``baseline`` (``prefix`` ``eval_<scenario>`` for one scenario
    of a cross-scenario run)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    ppo = acc.Scalars(f"{prefix}/ppo/value")
    ref = acc.Scalars(f"{prefix}/{baseline}/value")
    return {"steps": np.array([e.step for e in ppo]), "ppo": np.array([e.value for e in ppo]),
            "baseline": np.array([e.value for e in ref])}


def plot_learning_curves(curves: dict[str, dict[str, list[dict[str, np.ndarray]]]],
                         path: Path) -> Path:
    """One panel per case: PPO's validation value (mean over training seeds, band from the
    lowest to the highest seed) for each family, and static's line.

    :param curves: ``<scenario>/<objective>`` -> family -> one :func:`read_curves` result
        per run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.evaluation.plots import _save

    names = list(curves)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False)
    styles = {"ppo": ("#4c72b0", "-"), "mix": ("#dd8452", "--")}
    for ax, name in zip(axes.ravel(), names, strict=False):
        baseline_drawn = False
        for family, runs in curves[name].items():
            if not runs:
                continue
            n = min(len(r["steps"]) for r in runs)
            steps = runs[0]["steps"][:n] / 1000
            profit = np.stack([r["ppo"][:n] for r in runs]) / 1000
            color, style = styles.get(family, ("gray", ":"))
            ax.plot(steps, profit.mean(axis=0), style, color=color, lw=1.5,
                    label=f"{family} ({len(runs)} seeds)")
            ax.fill_between(steps, profit.min(axis=0), profit.max(axis=0), color=color,
                            alpha=0.2, lw=0)
            if not baseline_drawn:
                ax.axhline(float(np.mean([r["baseline"][-1] for r in runs])) / 1000,
                           color="black", lw=1, label="static")
                baseline_drawn = True
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("training steps, k account-days", fontsize=7)
        ax.set_ylabel(f"validation {value_name(name.rsplit('/', 1)[-1])}, k CNY",
                      fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return _save(fig, Path(path))


# ---------------------------------------------------------------------------------------------
def _k(value: float, signed: bool = False) -> str:
    """CNY -> ``12.3k`` (``+12.3k`` when signed)."""
    return f"{value / 1000:{'+' if signed else ''},.1f}k"


def _ci_k(triple: tuple[float, float, float], signed: bool = False) -> str:
    mean, low, high = triple
    return (f"{_k(mean, signed)} [{_k(low, signed).rstrip('k')}, "
            f"{_k(high, signed).rstrip('k')}]")


def _ci(triple: tuple[float, float, float], digits: int = 2) -> str:
    mean, low, high = triple
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _row_triple(row: dict[str, Any], key: str) -> tuple[float, float, float]:
    return row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"]


def verdict(stats_: dict[str, Any], against: str = "static") -> str:
    """PPO against ``against`` (``static``, ``static_rule``) on a case: ahead or behind where
    the crossed interval of the paired difference excludes 0, else not distinguishable."""
    _, low, high = stats_[f"value_diff_vs_{against}"]
    if low > 0:
        return "**ahead**"
    if high < 0:
        return "behind"
    return "not distinguishable"


def _cases(fam: dict[str, dict[str, Any]], objective: str, unseen: bool, family: str = "ppo"
           ) -> list[tuple[str, dict[str, Any]]]:
    """``(scenario, stats)`` of ``family`` for every case of ``objective``, named scenarios or
    unseen markets."""
    out = []
    for key, per in fam.items():
        scenario, obj = key.rsplit("/", 1)
        if obj == objective and per.get(family) and is_unseen_name(scenario) == unseen:
            out.append((scenario, per[family]))
    return out


def is_unseen_name(scenario: str) -> bool:
    from envs.config import UNSEEN_PREFIX

    return scenario.startswith(UNSEEN_PREFIX)


def _share(triple: tuple[float, float, float]) -> str:
    return "n/a" if math.isnan(triple[0]) else _ci(triple)


def headline_table(rows: list[dict[str, Any]], fam: dict[str, dict[str, Any]],
                   objective: str, unseen: bool = False, family: str = "ppo") -> str:
    """PPO (over training seeds) against ``static``, the best heuristic, the playbook and the
    oracle on every case of ``objective`` (values in k CNY)."""
    by = {(r["scenario"], r["objective"], r["policy"]): r for r in rows}
    lines = [
        f"| {'market' if unseen else 'scenario'} | static | oracle | value of control "
        "(oracle − static) | PPO | PPO − static [95% CI] | control share [95% CI] | PPO − "
        "best heuristic [95% CI] | PPO − playbook [95% CI] | PPO against static |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for scenario, s in _cases(fam, objective, unseen, family):
        st, orc = by[scenario, objective, "static"], by[scenario, objective, "oracle"]
        best = (f"{_ci_k(s['value_diff_vs_best'], signed=True)} ({s['best_heuristic']})"
                if "value_diff_vs_best" in s else "n/a")
        lines.append(
            f"| {scenario} | {_k(st['value'])} | {_k(orc['value'])} | "
            f"{_ci_k(s['value_of_control'], signed=True)} | {_ci_k(s['value'])} | "
            f"{_ci_k(s['value_diff_vs_static'], signed=True)} | {_share(s['control_share'])} | "
            f"{best} | {_ci_k(s['value_diff_vs_playbook'], signed=True)} | {verdict(s)} |")
    return "\n".join(lines)


def rule_table(fam: dict[str, dict[str, Any]], objective: str, family: str = "mix") -> str:
    """``family`` (the shipped cross-scenario policy) on every unseen market of ``objective``
    against the one-line rule ``static_rule`` and the base scenario's ``static``."""
    lines = ["| market | − static_rule [95% CI] | against static_rule | − static [95% CI] | "
             "against static |", "|---|---|---|---|---|"]
    for scenario, s in _cases(fam, objective, True, family):
        if "value_diff_vs_static_rule" not in s:
            continue
        lines.append(f"| {scenario} | {_ci_k(s['value_diff_vs_static_rule'], signed=True)} | "
                     f"{verdict(s, 'static_rule')} | "
                     f"{_ci_k(s['value_diff_vs_static'], signed=True)} | "
                     f"{verdict(s)} |")
    return "\n".join(lines)


def policies_table(rows: list[dict[str, Any]], scenario: str, objective: str) -> str:
    """Every policy (and trained run) on one case."""
    name = value_name(objective)
    lines = [f"| policy | {name} [95% CI] | − static [95% CI] | control share | − playbook "
             "[95% CI] | normalised score | profit | settlement ROI | violation days | "
             "interruptions |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["scenario"] != scenario or r["objective"] != objective:
            continue
        vs_static = (_ci_k(_row_triple(r, "value_diff_vs_static"), signed=True)
                     if "value_diff_vs_static" in r else "n/a")
        share = (_share(_row_triple(r, "control_share")) if "control_share" in r else "n/a")
        diff = (r["value_diff_vs_playbook"], r["value_diff_ci_low"], r["value_diff_ci_high"])
        lines.append(
            f"| {r['policy']} | {_ci_k(_row_triple(r, 'value'))} | {vs_static} | {share} | "
            f"{_ci_k(diff, signed=True)} | {_ci(_row_triple(r, 'normalised_score'))} | "
            f"{_k(r['profit'])} | {r['settlement_roi']:.2f} | "
            f"{r['roi_floor_violation_days']:.1f} | {r['interruptions']:.2f} |")
    return "\n".join(lines)


def seeds_table(fam: dict[str, dict[str, Any]], objective: str, family: str = "ppo") -> str:
    """Per scenario: each training seed's mean value and difference against static, and the
    spread."""
    lines = ["| scenario | PPO − static per training seed (k CNY) | mean over seeds "
             "[95% t-interval across seeds] | value per seed (k CNY) |", "|---|---|---|---|"]
    for scenario, s in _cases(fam, objective, False, family):
        seeds = s["seeds"]
        diffs = ", ".join(f"{label.split('_')[-1]}: "
                          f"{v['value_diff_vs_static'] / 1000:+.1f}"
                          for label, v in seeds.items())
        values = ", ".join(f"{v['value'] / 1000:.1f}" for v in seeds.values())
        lines.append(f"| {scenario} | {diffs} | {_ci_k(s['diff_over_seeds'], signed=True)} | "
                     f"{values} |")
    return "\n".join(lines)


def cross_table(fam: dict[str, dict[str, Any]], cross: dict[str, Any], objective: str) -> str:
    """The cross-scenario policy next to the per-scenario ones, on one objective."""
    lines = ["| scenario | per-scenario PPO − static | cross-scenario PPO − static | "
             "cross − per-scenario [95% CI] | control share: per-scenario / cross | "
             "cross against static |", "|---|---|---|---|---|---|"]
    for scenario, p in _cases(fam, objective, False, "ppo"):
        key = f"{scenario}/{objective}"
        m = fam[key].get("mix")
        if m is None or cross.get(key) is None:
            continue
        lines.append(
            f"| {scenario} | {_ci_k(p['value_diff_vs_static'], signed=True)} | "
            f"{_ci_k(m['value_diff_vs_static'], signed=True)} | "
            f"{_ci_k(cross[key], signed=True)} | {_share(p['control_share'])} / "
            f"{_share(m['control_share'])} | {verdict(m)} |")
    return "\n".join(lines)


def aggregates_table(aggregates: dict[str, dict[str, float]]) -> str:
    lines = ["| policy | IQM [95% CI] | mean [95% CI] |", "|---|---|---|"]
    for label, a in aggregates.items():
        name = FAMILIES.get(label, label)
        lines.append(f"| {name} | {a['iqm']:.3f} [{a['iqm_ci_low']:.3f}, "
                     f"{a['iqm_ci_high']:.3f}] | {a['mean']:.3f} [{a['mean_ci_low']:.3f}, "
                     f"{a['mean_ci_high']:.3f}] |")
    return "\n".join(lines)


def runs_table(records: list[dict[str, Any]]) -> str:
    """The training runs: steps, wall time, speed, last validation."""
    lines = ["| run | steps | training s | steps/s | last validation: PPO − "
             "static (CNY/episode, the run's objective) |", "|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['name']} | {r['steps']:,} | {r['seconds']:.0f} | "
                     f"{r['steps_per_second']:,.0f} | {r['final_diff']:+,.0f} |")
    return "\n".join(lines)


def run_record(run_dir: Path) -> dict[str, Any]:
    """A finished run's steps, training seconds (all sessions) and last validation."""
    from agents.run_folder import read_run_json

    info = read_run_json(run_dir)
    seconds = sum(s.get("seconds", 0.0) for s in info.get("sessions", []))
    steps = int(info.get("num_timesteps", 0))
    final = info.get("final_eval") or {}
    return {"name": Path(run_dir).name, "steps": steps, "seconds": seconds,
            "steps_per_second": steps / seconds if seconds else math.nan,
            "final_diff": final.get("value_diff", math.nan)}


def _unseen_reasons() -> dict[str, tuple[str, str]]:
    """Unseen market name -> (base scenario, reason)."""
    from envs.config import list_unseen

    return {m.name: (m.base, m.reason) for m in list_unseen()}


def document(meta: dict[str, Any], rows: list[dict[str, Any]],
             fam: dict[str, dict[str, Any]], cross: dict[str, Any],
             aggregates: dict[str, dict[str, dict[str, float]]],
             records: list[dict[str, Any]], curves_png: str) -> str:
    """The whole ``docs/results.md``."""
    seeds = meta["report_seeds"]
    has_mix = any(per.get("mix") for per in fam.values())
    objectives = meta["objectives"]
    out = [
        "# Results: PPO against the tuned baselines and the oracle, on both objectives, on "
        "the named scenarios and on unseen markets", "",
        f"Written by `{meta['command']}` on {meta['created']} (git {meta['git_commit']}"
        f"{', uncommitted changes' if meta['git_dirty'] else ''}); wall time "
        f"**{meta['wall_time_s'] / 60:.1f} min** on {meta['machine']} ({meta['workers']} "
        f"process{'es' if meta['workers'] > 1 else ''} at a time, one torch thread each): "
        f"training {meta['train_wall_s'] / 60:.1f} min, evaluation "
        f"{meta['eval_wall_s'] / 60:.1f} min{meta['resumed_note']}. Tuned baselines read "
        f"from `configs/baselines/` (env version {meta['baselines']['env_version']}; made by "
        "`python scripts/search_baselines.py`, not by this command).", "",
        f"A *case* is a scenario scored on one objective: `profit` (contribution profit) or "
        "`gmv_floor` (settled GMV less the settlement-ROI floor's penalty), CNY per 84-day "
        f"launch (k = thousand). Every policy plays the same {meta['episodes']} report seeds "
        f"{seeds[0]}..{seeds[-1]} on each case (paired); PPO is trained on the case's "
        f"objective with the scenario's preset ({meta['ppo_presets']}, "
        f"{meta['ppo_timesteps']}) for each of the training seeds "
        f"{', '.join(map(str, meta['training_seeds']))}, and benchmarked with its best model "
        "by validation (seeds 20000.., never the report seeds). `static` is the best fixed "
        "settings found on training seeds for the scenario and objective; the best heuristic "
        "is the registered rule (tuned or not, `static` apart) with the highest mean on "
        "validation seeds; the value of control is oracle − static; the control share is "
        "mean(PPO − static) / mean(oracle − static), n/a where the value of control's "
        "interval reaches 0. PPO's intervals come from a crossed bootstrap over training "
        "seeds and episodes; single policies' from rliable's bootstrap over episodes. 95% "
        "intervals throughout.", ""]
    for objective in objectives:
        out += [f"## PPO against `static`: objective `{objective}`", "",
                headline_table(rows, fam, objective), ""]
    if meta.get("unseen_seeds"):
        useen = meta["unseen_seeds"]
        reasons = _unseen_reasons()
        out += ["## Unseen markets", "",
                "Perturbed markets no training or tuning ever used (`configs/scenarios/"
                f"unseen/`), on seeds {useen[0]}..{useen[1]}. Each is played by the runs and "
                "the tuned baselines of its base scenario; the best heuristic is its base's "
                "choice.", "", "| market | base | why it is there |", "|---|---|---|"]
        out += [f"| {name} | {base} | {reason} |" for name, (base, reason) in reasons.items()]
        out.append("")
        for objective in objectives:
            out += [f"### Objective `{objective}`", "",
                    headline_table(rows, fam, objective, unseen=True), ""]
        if any(per.get("mix") for key, per in fam.items() if is_unseen_name(key)):
            out += ["### The cross-scenario policy against the one-line rule", "",
                    "The policy across all scenarios (the shipped one; its 3 training seeds, "
                    "crossed bootstrap) on each unseen market, against `static_rule` (one "
                    "target multiple for every scenario, all budget on payment-ROI plans) and "
                    "the base scenario's `static`.", ""]
            for objective in objectives:
                out += [f"Objective `{objective}`:", "", rule_table(fam, objective), ""]
    out += ["## Across scenarios: normalised score (rliable IQM and mean, stratified "
            "bootstrap)", "",
            "Normalised score = (value − constant) / (oracle − constant) on the named "
            "scenarios.", ""]
    for objective in objectives:
        out += [f"Objective `{objective}`:", "", aggregates_table(aggregates.get(objective, {})),
                ""]
    if has_mix:
        out += ["## One policy across scenarios against one policy per scenario", "",
                f"The cross-scenario policy ({meta['mix_preset']}, {meta['mix_timesteps']}) "
                "trains one network on a batch split across every scenario, with each "
                "account's market parameters drawn ±20% around its scenario's; it is judged "
                "on the scenarios themselves.", ""]
        for objective in objectives:
            out += [f"Objective `{objective}`:", "", cross_table(fam, cross, objective), ""]
    out += ["## PPO over training seeds", ""]
    for objective in objectives:
        out += [f"Objective `{objective}`:", "", seeds_table(fam, objective), ""]
    out += ["## Learning curves", "",
            f"![validation value during training]({curves_png})", "",
            "Validation value per episode (seeds 20000..; the run's objective) during "
            "training, one panel per scenario and objective: mean over training seeds, band "
            "from the lowest to the highest seed; the black line is `static` on the same "
            "validation seeds. The "
            "cross-scenario runs (dashed) count all their steps, shared by every scenario.", "",
            "## Every policy on every case", ""]
    for key in fam:
        scenario, objective = key.rsplit("/", 1)
        out += [f"### {scenario}, {objective}", "", policies_table(rows, scenario, objective),
                ""]
    out += ["## Training runs", "", runs_table(records), ""]
    return "\n".join(out)
