"""How a policy runs the account, beside what it earns: volume next to a reference policy.

A policy can earn well by winding the account down (a climbing target, a shrinking budget),
which an operator would not accept and which leaves the account weak after the episode. The
columns here make that visible in ``summary.csv``: episode GMV and spend, and spend over the
last four weeks, each as a share of the reference policy's on the same seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The reference of the share columns: the first of these that the evaluation played.
REFERENCES = ("static", "playbook")
LAST_DAYS = 28  # "the last weeks": spend over the episode's last 28 days


def reference_policy(labels: list[str]) -> str | None:
    """The first of :data:`REFERENCES` among ``labels`` (None if none was played)."""
    return next((name for name in REFERENCES if name in labels), None)


def share_columns(daily: dict[str, np.ndarray],
                  reference: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    """GMV, spend and last-28-day spend as shares of the reference's (ratio of the means
    over the same seeds; NaN where the reference spent nothing), named ``*_vs_<name>``.

    :param daily: a rollout's per-day arrays, each (seeds, days) in CNY.
    :param reference: the reference policy's, on the same seeds.
    """
    def ratio(key: str, days: slice) -> float:
        mine = float(daily[key][:, days].sum(axis=1).mean())
        theirs = float(reference[key][:, days].sum(axis=1).mean())
        return mine / theirs if theirs > 0 else float("nan")

    last = slice(-LAST_DAYS, None)
    return {f"gmv_share_vs_{name}": ratio("gmv", slice(None)),
            f"spend_share_vs_{name}": ratio("spend", slice(None)),
            f"spend_last{LAST_DAYS}_share_vs_{name}": ratio("spend", last)}
