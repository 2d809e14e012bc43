"""The results report (``docs/results.md``): PPO over training seeds against the heuristics
and the oracle on every scenario, the cross-scenario policy, learning curves.

Statistics. Every policy plays the same report seeds (paired). A single policy's intervals
come from :func:`agents.evaluation.summarise` (rliable's bootstrap over episodes). A family
of trained runs (one per training seed) is summarised over all its ``runs x episodes``
values with a *crossed* bootstrap (:func:`crossed_bootstrap`): each resample draws training
seeds and episodes independently, so the interval covers both the luck of training and the
luck of the market draws. The per-seed means also get a t-interval across seeds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from agents import eval_stats
from agents.evaluation import ScenarioResult, episode_scores

FAMILIES = {"ppo": "PPO, one per scenario", "mix": "PPO, one across all scenarios"}
# Per-episode quantities summarised for a family: (name, function of (result, results)).
FAMILY_METRICS = ("profit", "profit_diff", "normalised_score", "roi_floor_violation_days",
                  "violation_days_diff", "interruptions", "interruptions_diff",
                  "settlement_roi")


def family_labels(res: ScenarioResult, family: str) -> list[str]:
    """The labels of a family's runs in a scenario's results (``ppo_s0``, ``ppo_s1``...)."""
    return [label for label in res.results if label.startswith(f"{family}_s")]


def crossed_bootstrap(values: np.ndarray, rng: np.random.Generator,
                      reps: int = eval_stats.BOOTSTRAP_REPS,
                      confidence: float = eval_stats.CONFIDENCE) -> tuple[np.ndarray, ...]:
    """Mean over runs and episodes of ``values`` (k, runs, episodes), with a percentile
    interval from resampling runs and episodes independently (the episodes are paired
    across runs: the same seeds).

    :return: (means (k,), lower bounds (k,), upper bounds (k,)).
    """
    _, n_runs, n_eps = values.shape
    runs = rng.integers(0, n_runs, (reps, n_runs))
    eps = rng.integers(0, n_eps, (reps, n_eps))
    draws = values[:, runs[:, :, None], eps[:, None, :]].mean(axis=(2, 3))  # (k, reps)
    tail = 50 * (1 - confidence)
    low, high = np.percentile(draws, [tail, 100 - tail], axis=1)
    return values.mean(axis=(1, 2)), low, high


def seed_interval(means: np.ndarray,
                  confidence: float = eval_stats.CONFIDENCE) -> tuple[float, float, float]:
    """Mean of per-seed means and its t-interval across training seeds."""
    mean = float(np.mean(means))
    if len(means) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(means) - 1) * np.std(means, ddof=1)
                 / math.sqrt(len(means)))
    return mean, mean - half, mean + half


def _episode_values(res: ScenarioResult, label: str) -> dict[str, np.ndarray]:
    r = res.results
    m, base = r[label].metrics, r["playbook"].metrics
    return {
        "profit": m["profit"], "profit_diff": m["profit"] - base["profit"],
        "normalised_score": eval_stats.normalised_scores(
            m["profit"], r["constant"].metrics["profit"], r["oracle"].metrics["profit"]),
        "roi_floor_violation_days": m["roi_floor_violation_days"],
        "violation_days_diff": m["roi_floor_violation_days"] - base["roi_floor_violation_days"],
        "interruptions": m["interruptions"],
        "interruptions_diff": m["interruptions"] - base["interruptions"],
        "settlement_roi": m["settlement_roi"],
    }


def family_stats(res: ScenarioResult, family: str, seed: int,
                 reps: int = eval_stats.BOOTSTRAP_REPS) -> dict[str, Any] | None:
    """A family's statistics on one scenario (None if it has no run there).

    :return: ``{metric: (mean, low, high)}`` for :data:`FAMILY_METRICS` (crossed bootstrap),
        ``seeds`` (per-seed mean profit and difference), ``diff_over_seeds`` (t-interval
        across seeds), ``prob_improvement`` (an episode of the family beats the playbook's).
    """
    labels = family_labels(res, family)
    if not labels:
        return None
    per_run = [_episode_values(res, label) for label in labels]
    values = np.stack([np.stack([run[k] for run in per_run]) for k in FAMILY_METRICS])
    rng = np.random.default_rng(eval_stats.stream_seed(seed, res.scenario.name, family))
    mean, low, high = crossed_bootstrap(values, rng, reps)
    out: dict[str, Any] = {k: (float(mean[i]), float(low[i]), float(high[i]))
                           for i, k in enumerate(FAMILY_METRICS)}
    seed_diffs = np.array([run["profit_diff"].mean() for run in per_run])
    out["seeds"] = {label: {"profit": float(run["profit"].mean()),
                            "profit_diff": float(run["profit_diff"].mean())}
                    for label, run in zip(labels, per_run, strict=True)}
    out["diff_over_seeds"] = seed_interval(seed_diffs)
    out["prob_improvement"] = eval_stats.probability_of_improvement(
        values[0].ravel(), res.results["playbook"].metrics["profit"])
    out["n_runs"] = len(labels)
    return out


def family_vs_family(res: ScenarioResult, first: str, second: str, seed: int,
                     reps: int = eval_stats.BOOTSTRAP_REPS) -> tuple[float, float, float] | None:
    """Mean profit of family ``first`` minus family ``second`` on the same report seeds, with a
    bootstrap interval resampling episodes and each family's runs."""
    a, b = family_labels(res, first), family_labels(res, second)
    if not a or not b:
        return None
    pa = np.stack([res.results[label].metrics["profit"] for label in a])
    pb = np.stack([res.results[label].metrics["profit"] for label in b])
    rng = np.random.default_rng(eval_stats.stream_seed(seed, res.scenario.name, first, second))
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


def family_scores(runs: list[ScenarioResult]) -> dict[str, np.ndarray]:
    """Per-episode normalised scores for rliable's aggregates: every single policy
    (episodes, scenarios) and every family, its runs stacked ((runs x episodes), scenarios)."""
    out: dict[str, np.ndarray] = {}
    for label, scores in episode_scores(runs).items():
        key = family_of(label) or label
        out[key] = np.concatenate([out[key], scores]) if key in out else scores
    return out


# ---------------------------------------------------------------------------------------------
def read_curves(run_dir: Path, prefix: str = "eval",
                baseline: str = "playbook") -> dict[str, np.ndarray]:
    """A run's validation profits from its TensorBoard events: ``steps``, ``ppo``, ``baseline``
    (``prefix`` ``eval_<scenario>`` for one scenario of a cross-scenario run)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    ppo = acc.Scalars(f"{prefix}/ppo/profit")
    ref = acc.Scalars(f"{prefix}/{baseline}/profit")
    return {"steps": np.array([e.step for e in ppo]), "ppo": np.array([e.value for e in ppo]),
            "baseline": np.array([e.value for e in ref])}


def plot_learning_curves(curves: dict[str, dict[str, list[dict[str, np.ndarray]]]],
                         path: Path) -> Path:
    """One panel per scenario: PPO's validation profit (mean over training seeds, band from
    the lowest to the highest seed) for each family, and the playbook's line.

    :param curves: scenario -> family -> one :func:`read_curves` result per run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.eval_plots import _save

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
                           color="black", lw=1, label="playbook")
                baseline_drawn = True
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("training steps, k account-days", fontsize=7)
        ax.set_ylabel("validation profit, k CNY", fontsize=7)
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


def verdict(stats_: dict[str, Any], playbook: dict[str, Any]) -> str:
    """Whether a family meets the issue's bar on a scenario, and if not, what fails."""
    fails = []
    if not stats_["profit_diff"][1] > 0:
        fails.append("profit interval includes 0" if stats_["profit_diff"][2] > 0
                     else "earns less")
    if stats_["roi_floor_violation_days"][0] > playbook["roi_floor_violation_days"]:
        fails.append("more violation days")
    if stats_["interruptions"][0] > playbook["interruptions"]:
        fails.append("more interruptions")
    return "**yes**" if not fails else "no: " + ", ".join(fails)


def _family_rows(fam: dict[str, dict[str, Any]], family: str):
    """``(scenario, stats)`` for every scenario where ``family`` has runs."""
    return [(scenario, per[family]) for scenario, per in fam.items() if per.get(family)]


def headline_table(rows: list[dict[str, Any]], fam: dict[str, dict[str, Any]],
                   family: str = "ppo") -> str:
    """PPO (over training seeds) next to the playbook and the oracle, per scenario."""
    by = {(r["scenario"], r["policy"]): r for r in rows}
    lines = [
        "| scenario | playbook profit | oracle profit | PPO profit | PPO − playbook [95% CI] "
        "| of the playbook→oracle gap | P(PPO episode > playbook's) | normalised score: PPO "
        "(playbook) | ROI-floor violation days: PPO (playbook) | interruptions: PPO "
        "(playbook) | PPO ahead? |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for scenario, s in _family_rows(fam, family):
        pb, orc = by[scenario, "playbook"], by[scenario, "oracle"]
        gap = orc["profit"] - pb["profit"]
        share = f"{s['profit_diff'][0] / gap:.0%}" if gap > 0 else "n/a"
        lines.append(
            f"| {scenario} | {_ci_k(_row_triple(pb, 'profit'))} | "
            f"{_ci_k(_row_triple(orc, 'profit'))} | {_ci_k(s['profit'])} | "
            f"{_ci_k(s['profit_diff'], signed=True)} | {share} | "
            f"{s['prob_improvement']:.2f} | {_ci(s['normalised_score'])} "
            f"({pb['normalised_score']:.2f}) | {s['roi_floor_violation_days'][0]:.1f} "
            f"({pb['roi_floor_violation_days']:.1f}) | {s['interruptions'][0]:.2f} "
            f"({pb['interruptions']:.2f}) | {verdict(s, pb)} |")
    return "\n".join(lines)


def policies_table(rows: list[dict[str, Any]], scenario: str) -> str:
    """Every policy (and trained run) on one scenario."""
    lines = ["| policy | profit [95% CI] | normalised score | − playbook [95% CI] "
             "| P(> playbook) | settlement ROI | violation days | interruptions |",
             "|---|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["scenario"] == scenario):
        diff = (r["profit_diff_vs_playbook"], r["profit_diff_ci_low"], r["profit_diff_ci_high"])
        lines.append(
            f"| {r['policy']} | {_ci_k(_row_triple(r, 'profit'))} | "
            f"{_ci(_row_triple(r, 'normalised_score'))} | {_ci_k(diff, signed=True)} | "
            f"{r['prob_improvement_vs_playbook']:.2f} | {r['settlement_roi']:.2f} | "
            f"{r['roi_floor_violation_days']:.1f} | {r['interruptions']:.2f} |")
    return "\n".join(lines)


def seeds_table(fam: dict[str, dict[str, Any]], family: str = "ppo") -> str:
    """Per scenario: each training seed's mean profit and difference, and the spread."""
    lines = ["| scenario | PPO − playbook per training seed (k CNY) | mean over seeds "
             "[95% t-interval across seeds] | profit per seed (k CNY) |", "|---|---|---|---|"]
    for scenario, s in _family_rows(fam, family):
        seeds = s["seeds"]
        diffs = ", ".join(f"{label.split('_')[-1]}: {v['profit_diff'] / 1000:+.1f}"
                          for label, v in seeds.items())
        profits = ", ".join(f"{v['profit'] / 1000:.1f}" for v in seeds.values())
        lines.append(f"| {scenario} | {diffs} | {_ci_k(s['diff_over_seeds'], signed=True)} | "
                     f"{profits} |")
    return "\n".join(lines)


def cross_table(rows: list[dict[str, Any]], fam: dict[str, dict[str, Any]],
                cross: dict[str, tuple[float, float, float] | None]) -> str:
    """The cross-scenario policy next to the per-scenario ones."""
    by = {(r["scenario"], r["policy"]): r for r in rows}
    lines = ["| scenario | per-scenario PPO − playbook | cross-scenario PPO − playbook | "
             "cross − per-scenario [95% CI] | normalised: per-scenario / cross | "
             "violation days: per-scenario / cross | cross ahead of playbook? |",
             "|---|---|---|---|---|---|---|"]
    for scenario, per in fam.items():
        p, m = per.get("ppo"), per.get("mix")
        if p is None or m is None or cross.get(scenario) is None:
            continue
        lines.append(
            f"| {scenario} | {_ci_k(p['profit_diff'], signed=True)} | "
            f"{_ci_k(m['profit_diff'], signed=True)} | {_ci_k(cross[scenario], signed=True)} | "
            f"{p['normalised_score'][0]:.2f} / {m['normalised_score'][0]:.2f} | "
            f"{p['roi_floor_violation_days'][0]:.1f} / {m['roi_floor_violation_days'][0]:.1f}"
            f" | {verdict(m, by[scenario, 'playbook'])} |")
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
    lines = ["| run | steps | training s | steps/s | last validation: PPO − playbook "
             "(CNY/episode) |", "|---|---|---|---|---|"]
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
            "final_diff": final.get("profit_diff", math.nan)}


def document(meta: dict[str, Any], rows: list[dict[str, Any]],
             fam: dict[str, dict[str, Any]], cross: dict[str, Any],
             aggregates: dict[str, dict[str, float]], records: list[dict[str, Any]],
             curves_png: str) -> str:
    """The whole ``docs/results.md``."""
    seeds = meta["report_seeds"]
    has_mix = any(per.get("mix") for per in fam.values())
    out = [
        "# Results: PPO against the playbook and the oracle on every scenario", "",
        f"Written by `{meta['command']}` on {meta['created']} (git {meta['git_commit']}"
        f"{', uncommitted changes' if meta['git_dirty'] else ''}); wall time "
        f"**{meta['wall_time_s'] / 60:.1f} min** on {meta['machine']} ({meta['workers']} "
        f"training process{'es' if meta['workers'] > 1 else ''} at a time, one torch thread "
        "each): training "
        f"{meta['train_wall_s'] / 60:.1f} min, evaluation {meta['eval_wall_s'] / 60:.1f} min"
        f"{meta['resumed_note']}.", "",
        f"Every policy plays the same {meta['episodes']} report seeds {seeds[0]}..{seeds[-1]} "
        "on each scenario (paired). PPO is trained with the scenario's preset "
        f"({meta['ppo_presets']}, {meta['ppo_timesteps']}) for each of the training seeds "
        f"{', '.join(map(str, meta['training_seeds']))}; each run is benchmarked with its best "
        "model by validation (seeds 20000.., never the report seeds). PPO's intervals come "
        "from a crossed bootstrap over training seeds and episodes; single policies' from "
        "rliable's bootstrap over episodes. Normalised score = (profit − constant) / (oracle "
        "− constant). 95% intervals throughout; k = thousand CNY per 84-day episode.", "",
        "## PPO against the playbook and the oracle", "",
        headline_table(rows, fam), "",
        "*PPO ahead?* asks for the issue's bar: the lower end of the paired difference's "
        "interval above 0, and no more ROI-floor violation days or interruptions (means) "
        "than the playbook.", "",
        "## Across scenarios: normalised score (rliable IQM and mean, stratified bootstrap)",
        "", aggregates_table(aggregates), ""]
    if has_mix:
        out += ["## One policy across scenarios against one policy per scenario", "",
                f"The cross-scenario policy ({meta['mix_preset']}, {meta['mix_timesteps']}) "
                "trains one network on a batch split across every scenario, with each "
                "account's market parameters drawn ±20% around its scenario's; it is judged "
                "on the scenarios themselves.", "", cross_table(rows, fam, cross), ""]
    out += ["## PPO over training seeds", "", seeds_table(fam), ""]
    if has_mix:
        out += ["Cross-scenario policy:", "", seeds_table(fam, "mix"), ""]
    out += ["## Learning curves", "",
            f"![validation profit during training]({curves_png})", "",
            "Validation profit per episode (seeds 20000..) during training: mean over training "
            "seeds, band from the lowest to the highest seed; the black line is the playbook "
            "on the same validation seeds. The cross-scenario runs (dashed) count all their "
            "steps, shared by every scenario, and validate on the scenarios as named (without "
            "the training's ±20% randomisation).", "",
            "## Every policy on every scenario", ""]
    for scenario in fam:
        out += [f"### {scenario}", "", policies_table(rows, scenario), ""]
    out += ["## Training runs", "", runs_table(records), ""]
    return "\n".join(out)
