"""Promotion calendar: per-day multipliers and the phase features, precomputed once.

Days are counted from the plan's launch (day 0); the pre-launch history has negative days
and no promotions. Peaks are known in advance (大促 dates are public), so the days to the
next peak and since the last one are observable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from envs.compiled import helper

if TYPE_CHECKING:  # keep this module light: the recommendation CLI imports it
    from envs.config import ScenarioConfig

FAR_DAYS = 30  # "no promotion in sight": the value the phase features saturate at


@dataclass(frozen=True)
class PromoCalendar:
    """Arrays over days ``-history_days .. episode_days`` (index ``day + offset``)."""

    offset: int
    traffic_mult: np.ndarray  # multiplier on the pool's cost V
    roi_mult: np.ndarray  # multiplier on the pool's mean ROI m
    refund_mult: np.ndarray  # multiplier on the refund rate
    in_peak: np.ndarray  # bool: a peak day
    days_to_peak: np.ndarray  # days until the next peak starts (FAR_DAYS if none)
    days_after_peak: np.ndarray  # days since the last peak ended (FAR_DAYS if none)

    @classmethod
    def from_config(cls, cfg: ScenarioConfig) -> PromoCalendar:
        offset = cfg.history_days
        days = np.arange(-offset, cfg.episode_days + 1)
        traffic = np.ones(days.shape)
        roi = np.ones(days.shape)
        refund = np.ones(days.shape)
        starts = cfg.promo_peak_days if cfg.promotions_enabled else ()
        peaks = [(start, start + cfg.promo_peak_length_days) for start in starts]
        for start, end in peaks:
            warm = (days >= start - cfg.promo_warmup_days) & (days < start)
            peak = (days >= start) & (days < end)
            after = (days >= end) & (days < end + cfg.promo_after_days)
            traffic[warm] *= cfg.promo_warmup_traffic
            traffic[peak] *= cfg.promo_peak_traffic
            traffic[after] *= cfg.promo_after_traffic
            roi[peak] *= cfg.promo_peak_roi
            refund[peak] *= cfg.promo_refund_mult
        to_peak, in_peak, after_peak = promo_phase(days, peaks)
        return cls(offset, traffic, roi, refund, in_peak, to_peak, after_peak)

    def index(self, day: np.ndarray) -> np.ndarray:
        """Row index of each ``day`` (clipped to the calendar)."""
        return calendar_row(day, self.offset, self.traffic_mult.shape[0])


@helper
def calendar_row(day: np.ndarray, offset: int, rows: int) -> np.ndarray:
    """Row of each ``day`` in a calendar of ``rows`` rows whose day 0 is row ``offset``
    (clipped to the calendar)."""
    return np.minimum(np.maximum(day + offset, 0), rows - 1)


def promo_phase(days: np.ndarray, peaks: Sequence[tuple[int, int]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The phase features of each day: ``(days_to_peak, in_peak, days_after_peak)``, int64,
    bool and int64 arrays shaped like ``days``. Days to a peak are 0 on a peak day, days
    after count from the first day after a peak (1); both saturate at :data:`FAR_DAYS`.

    :param days: day numbers (the calendar's, from launch; ``recommend``: from the day
        being decided).
    :param peaks: ``(start, end)`` per peak, ``end`` the first day after it.
    """
    days = np.asarray(days, dtype=np.int64)
    in_peak = np.zeros(days.shape, dtype=bool)
    to_peak = np.full(days.shape, FAR_DAYS, dtype=np.int64)
    after_peak = np.full(days.shape, FAR_DAYS, dtype=np.int64)
    for start, end in peaks:
        peak = (days >= start) & (days < end)
        in_peak |= peak
        before = days < start
        to_peak = np.where(before, np.minimum(to_peak, start - days), to_peak)
        to_peak = np.where(peak, 0, to_peak)
        since = days >= end
        after_peak = np.where(since, np.minimum(after_peak, days - end + 1), after_peak)
    return np.minimum(to_peak, FAR_DAYS), in_peak, np.minimum(after_peak, FAR_DAYS)
