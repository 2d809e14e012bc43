"""Plots of an evaluation (PNG): bars with intervals, daily trajectories, performance profiles."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 80
# Daily quantities of a trajectory plot: (info key, axis label).
TRAJECTORY_PANELS = (("target_roi", "target ROI"), ("budget", "budget, CNY"),
                     ("spend", "spend, CNY"), ("gmv", "GMV, CNY"),
                     ("payment_roi", "payment ROI"), ("refunds", "refunds landed, CNY"))


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_bars(scenario: str, rows: list[dict], path: Path, value: str = "profit") -> Path:
    """Value (named ``value``: profit, gmv_floor return) and normalised score per policy,
    with 95% intervals (one case)."""
    names = [r["policy"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, key, label in ((axes[0], "value", f"{value} per episode, CNY"),
                           (axes[1], "normalised_score", "normalised score")):
        mean = np.array([r[key] for r in rows])
        err = np.abs(np.array([[r[f"{key}_ci_low"] for r in rows],
                               [r[f"{key}_ci_high"] for r in rows]]) - mean)
        ax.bar(names, mean, yerr=np.nan_to_num(err), capsize=4, color="#4c72b0")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_title(f"{scenario}: {label} (95% CI)")
        ax.tick_params(axis="x", rotation=30)
    return _save(fig, path)


def _shade(ax, days: np.ndarray, mask: np.ndarray, color: str, label: str | None) -> None:
    """Shade the days where ``mask`` holds (contiguous runs as one span each)."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = days[edges[:-1] == 1], days[edges[1:] == -1]
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        ax.axvspan(a - 0.5, b + 0.5, color=color, alpha=0.25, lw=0,
                   label=label if i == 0 else None)


def plot_trajectory(scenario: str, policy: str, daily: dict[str, np.ndarray], seed: int,
                    path: Path) -> Path:
    """One episode's daily settings and results; learning days orange, promotion peaks grey.

    :param daily: the rollout's per-day arrays for one episode, each of shape (days,).
    """
    days = np.arange(len(daily["spend"]))
    fig, axes = plt.subplots(len(TRAJECTORY_PANELS), 1, figsize=(8, 9), sharex=True)
    for i, (ax, (key, label)) in enumerate(zip(axes, TRAJECTORY_PANELS, strict=True)):
        _shade(ax, days, daily["learning"], "tab:orange", "learning" if i == 0 else None)
        _shade(ax, days, daily["promo"], "grey", "promotion peak" if i == 0 else None)
        ax.plot(days, daily[key], color="#4c72b0", lw=1.2)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].set_title(f"{scenario} / {policy}: one episode (seed {seed})")
    axes[0].legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("day since launch")
    return _save(fig, path)


# Panels of the behaviour plot: (info key, axis label); the last is a share of episodes.
BEHAVIOUR_PANELS = (("target_roi", "target ROI"), ("budget", "budget, CNY/day"),
                    ("spend", "spend, CNY/day"), ("gmv", "GMV, CNY/day"),
                    ("learning", "share of accounts learning"))


def plot_behaviour(scenario: str, daily: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """Every policy's daily target, budget, spend and GMV over the episode (median and
    interquartile band over seeds), and the share of accounts whose plan is learning (its
    orders below the exit threshold): a policy that winds the account down shows at a glance.

    :param daily: policy -> its rollout's per-day arrays, each of shape (seeds, days).
    """
    fig, axes = plt.subplots(len(BEHAVIOUR_PANELS), 1, figsize=(9, 11), sharex=True)
    colors = plt.get_cmap("tab10")
    for i, (policy, arrays) in enumerate(daily.items()):
        days = np.arange(arrays["spend"].shape[1])
        for ax, (key, _) in zip(axes, BEHAVIOUR_PANELS, strict=True):
            values = np.asarray(arrays[key], dtype=float)
            if key == "learning":
                ax.plot(days, values.mean(axis=0), color=colors(i % 10), lw=1.2, label=policy)
                continue
            low, mid, high = np.percentile(values, [25, 50, 75], axis=0)
            ax.plot(days, mid, color=colors(i % 10), lw=1.2, label=policy)
            ax.fill_between(days, low, high, color=colors(i % 10), alpha=0.15, lw=0)
    promo = next(iter(daily.values()))["promo"][0].astype(bool)
    for ax, (key, label) in zip(axes, BEHAVIOUR_PANELS, strict=True):
        _shade(ax, np.arange(promo.size), promo, "grey", None)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=8)
        if key in ("budget", "spend", "gmv"):
            ax.set_ylim(bottom=0)
        if key == "target_roi":
            ax.set_yscale("log")  # a controller that runs to the platform's cap stays readable
    axes[0].set_title(f"{scenario}: median and quartiles over seeds (promotion peaks grey)")
    axes[0].legend(loc="upper left", fontsize=7, ncol=4)
    axes[-1].set_xlabel("day since launch")
    return _save(fig, path)


def plot_profiles(taus: np.ndarray, profiles: dict, cis: dict, path: Path) -> Path:
    """Performance profiles of normalised scores over all scenarios (rliable)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, profile in profiles.items():
        ax.plot(taus, profile, label=name)
        ax.fill_between(taus, cis[name][0], cis[name][1], alpha=0.2)
    ax.set_xlabel("normalised score tau")
    ax.set_ylabel("share of episodes > tau")
    ax.legend(fontsize=7)
    return _save(fig, path)
