"""Promotion calendar: per-day multipliers and the phase features, precomputed once.

Days are counted from the plan's launch (day 0); the pre-launch history has negative days
and no promotions. Peaks are known in advance (大促 dates are public), so the days to the
next peak and since the last one are observable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.compiled import helper
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
        in_peak = np.zeros(days.shape, dtype=bool)
        to_peak = np.full(days.shape, FAR_DAYS, dtype=np.int64)
        after_peak = np.full(days.shape, FAR_DAYS, dtype=np.int64)
        peaks = cfg.promo_peak_days if cfg.promotions_enabled else ()
        length = cfg.promo_peak_length_days
        for start in peaks:
            end = start + length  # first day after the peak
            warm = (days >= start - cfg.promo_warmup_days) & (days < start)
            peak = (days >= start) & (days < end)
            after = (days >= end) & (days < end + cfg.promo_after_days)
            traffic[warm] *= cfg.promo_warmup_traffic
            traffic[peak] *= cfg.promo_peak_traffic
            traffic[after] *= cfg.promo_after_traffic
            roi[peak] *= cfg.promo_peak_roi
            refund[peak] *= cfg.promo_refund_mult
            in_peak |= peak
            before = days < start
            to_peak = np.where(before, np.minimum(to_peak, start - days), to_peak)
            to_peak = np.where(peak, 0, to_peak)
            since = days >= end
            after_peak = np.where(since, np.minimum(after_peak, days - end + 1), after_peak)
        return cls(offset, traffic, roi, refund, in_peak, np.minimum(to_peak, FAR_DAYS),
                   np.minimum(after_peak, FAR_DAYS))

    def index(self, day: np.ndarray) -> np.ndarray:
        """Row index of each ``day`` (clipped to the calendar)."""
        return calendar_row(day, self.offset, self.traffic_mult.shape[0])


@helper
def calendar_row(day: np.ndarray, offset: int, rows: int) -> np.ndarray:
    """Row of each ``day`` in a calendar of ``rows`` rows whose day 0 is row ``offset``
    (clipped to the calendar)."""
    return np.minimum(np.maximum(day + offset, 0), rows - 1)
