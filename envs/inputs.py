"""What compiled code reads of a scenario, built in one place, with names.

A scenario enters the simulator's compiled kernels (:mod:`envs.compiled`) as one
:class:`ScenarioInputs`, built once per model by :func:`scenario_inputs`: the config's
scalars (:class:`DayConstants`), its arrays (:class:`DayTables`) and how actions map to
settings (:class:`envs.actions.ActionSettings`).

Records cross into compiled entries as plain tuples and are rebuilt by name on the other
side, first thing: Numba's dispatcher types a plain tuple in C but a named tuple in Python
(about 70 µs a call, a large share of a day). So a record of arrays crosses as
``tuple(record)`` and the entry reads ``MarketState(*state)``; the nested
:class:`ScenarioInputs` crosses as :func:`flat` and the entry reads :func:`scenario_of`.
No kernel reads a record by position.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, get_type_hints

import numpy as np

from envs.actions import ActionSettings, action_settings
from envs.calendar import PromoCalendar
from envs.compiled import helper
from envs.config import ScenarioConfig
from envs.pool import share_table

# Scalar fields of ScenarioConfig, as the named tuple compiled code reads them (``c.<field>``).
_SCALAR_TYPES = (bool, int, float)
_CONFIG_HINTS = get_type_hints(ScenarioConfig)
DayConstants = NamedTuple("DayConstants", [
    (f.name, _CONFIG_HINTS[f.name]) for f in dataclasses.fields(ScenarioConfig)
    if _CONFIG_HINTS[f.name] in _SCALAR_TYPES])
DayConstants.__module__ = __name__


def day_constants(config: ScenarioConfig) -> DayConstants:
    """The config's scalar fields, each cast to its declared type (one compiled signature)."""
    return DayConstants(*(kind(getattr(config, name))
                          for name, kind in DayConstants.__annotations__.items()))


class DayTables(NamedTuple):
    """The arrays a day reads besides the accounts' own: weekday and promotion multipliers,
    the promotion phase the advertiser sees, the refund kernel, the pool's share table.

    The calendar's arrays run over days ``-history_days .. episode_days``; day ``d`` is row
    ``calendar_offset + d`` (:func:`envs.calendar.calendar_row`)."""

    weekday_traffic: np.ndarray  # (7,) multiplier on the pool's cost, Monday first (1: off)
    refund_kernel: np.ndarray  # (REFUND_DAYS,) share of refunds landing 1..7 days later
    calendar_offset: int  # calendar row of day 0
    traffic_mult: np.ndarray  # per calendar row: multiplier on the pool's cost
    roi_mult: np.ndarray  # per calendar row: multiplier on the pool's mean ROI
    refund_mult: np.ndarray  # per calendar row: multiplier on the refund rate
    in_peak: np.ndarray  # per calendar row, bool: a promotion peak day
    days_to_peak: np.ndarray  # per calendar row: days to the next peak (int, saturating)
    days_after_peak: np.ndarray  # per calendar row: days since the last peak (int, saturating)
    share_table: np.ndarray  # envs.pool.share_table()


def day_tables(config: ScenarioConfig, calendar: PromoCalendar) -> DayTables:
    """The scenario's :class:`DayTables` (the weekday pattern flat when it is switched off)."""
    weekday = (np.asarray(config.weekday_traffic, dtype=np.float64)
               if config.weekday_enabled else np.ones(7))
    return DayTables(
        weekday_traffic=weekday,
        refund_kernel=np.asarray(config.refund_kernel, dtype=np.float64),
        calendar_offset=calendar.offset, traffic_mult=calendar.traffic_mult,
        roi_mult=calendar.roi_mult, refund_mult=calendar.refund_mult,
        in_peak=calendar.in_peak, days_to_peak=calendar.days_to_peak,
        days_after_peak=calendar.days_after_peak, share_table=share_table())


class ScenarioInputs(NamedTuple):
    """Everything compiled code reads of a scenario, fixed for a model's life."""

    constants: DayConstants  # the config's scalars (``c`` in the kernels)
    tables: DayTables  # the config's arrays (``t`` in the kernels)
    actions: ActionSettings  # how an action maps to the day's settings


def scenario_inputs(config: ScenarioConfig, calendar: PromoCalendar) -> ScenarioInputs:
    """The scenario's :class:`ScenarioInputs` (``calendar``: the config's, built once)."""
    return ScenarioInputs(day_constants(config), day_tables(config, calendar),
                          action_settings(config))


def flat(inputs: ScenarioInputs) -> tuple:
    """``inputs`` as nested plain tuples, as compiled entries take it (:func:`scenario_of`
    rebuilds it)."""
    return tuple(tuple(record) for record in inputs)


@helper
def scenario_of(flat_inputs: tuple) -> ScenarioInputs:
    """:class:`ScenarioInputs` rebuilt by name from :func:`flat` (in compiled entries)."""
    nested = ScenarioInputs(*flat_inputs)
    return ScenarioInputs(DayConstants(*nested.constants), DayTables(*nested.tables),
                          ActionSettings(*nested.actions))
