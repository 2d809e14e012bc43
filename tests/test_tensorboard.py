"""TensorBoard's default page (TIME SERIES): it opens on the comparison of PPO with the
baselines, in thousand CNY, each policy a run of its own colour; a resume truncates every run."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from agents.training.tensorboard import (
    ANSWER_GROUP,
    CI_RUNS,
    PPO_RUN,
    analyst_layout,
    answer_tags,
    truncate_events,
    write_validation,
)
from agents.training.validation import Comparison, ValidationResult

BASELINES = ("static", "playbook")


def tensorboard_order(a: str, b: str) -> int:
    """TensorBoard's tag comparison (TIME SERIES sorts its cards with it and opens the groups
    in the order of their first card): '/' and digits before any other character, runs of
    digits by their value."""
    i = j = 0
    while True:
        if i == len(a):
            return 0 if j == len(b) else -1
        if j == len(b):
            return 1
        if a[i].isdigit() and b[j].isdigit():
            i2, j2 = i, j
            while i2 < len(a) and a[i2].isdigit():
                i2 += 1
            while j2 < len(b) and b[j2].isdigit():
                j2 += 1
            x, y = int(a[i:i2]), int(b[j:j2])
            if x != y:
                return -1 if x < y else 1
            i, j = i2, j2
            continue
        special_a, special_b = a[i] == "/" or a[i].isdigit(), b[j] == "/" or b[j].isdigit()
        if special_a != special_b:
            return -1 if special_a else 1
        if not special_a and a[i] != b[j]:
            return -1 if a[i] < b[j] else 1
        i, j = i + 1, j + 1


def test_the_order_is_tensorboards():
    tags = ["train/loss", "eval/static/profit", "0_x/2_b", "0_x/10_a", "0_x/1_c", "a/b"]
    assert sorted(tags, key=functools.cmp_to_key(tensorboard_order)) == [
        "0_x/1_c", "0_x/2_b", "0_x/10_a", "a/b", "eval/static/profit", "train/loss"]


def runs(tb: Path) -> dict[str, EventAccumulator]:
    """Every run under ``tb`` by its name in TensorBoard (``.``: the run's own folder)."""
    out = {}
    for folder in sorted({p.parent for p in tb.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        out[folder.relative_to(tb).as_posix()] = acc
    return out


def last(acc: EventAccumulator, tag: str) -> float:
    return acc.Scalars(tag)[-1].value


def result(step: int, objective: str = "gmv_floor") -> ValidationResult:
    """A validation with made-up numbers (CNY per episode)."""
    static = Comparison("static", {"value": 98_000.0, "profit": 72_000.0, "return": 9.8},
                        1_500.0, -120.0, 3_100.0, 900.0, 100.0, 1_700.0)
    playbook = Comparison("playbook", {"value": -132_000.0, "profit": -122_000.0,
                                       "return": -13.2}, 231_500.0, 215_000.0, 248_000.0,
                          194_900.0, 180_000.0, 210_000.0)
    return ValidationResult(step, objective, 32,
                            {"value": 99_500.0, "profit": 72_900.0, "return": 9.95},
                            {"static": static, "playbook": playbook})


def test_the_answer_is_in_thousand_cny_one_run_per_series(tmp_path):
    writer = SummaryWriter(str(tmp_path / "tb"))
    for step in (100, 200):
        write_validation(writer, result(step))
    writer.close()
    found = runs(tmp_path / "tb")
    assert set(found) == {".", PPO_RUN, *BASELINES, *CI_RUNS}
    assert not [t for t in found["."].Tags()["scalars"] if t.startswith(ANSWER_GROUP)]
    tags = answer_tags(BASELINES)
    for run in found.values():
        for tag in run.Tags()["scalars"]:
            assert [e.step for e in run.Scalars(tag)] == [100, 200]
    # the policies' values per episode: one card, one run (colour) per policy
    per_episode = tags["value", ""]
    assert last(found[PPO_RUN], per_episode) == pytest.approx(99.5)
    assert last(found["static"], per_episode) == pytest.approx(98.0)
    assert last(found["playbook"], per_episode) == pytest.approx(-132.0)
    assert last(found[PPO_RUN], tags["profit", ""]) == pytest.approx(72.9)
    # a difference: PPO - baseline, its interval, and the baseline's own line at 0
    diff = tags["value", "static"]
    assert last(found[PPO_RUN], diff) == pytest.approx(1.5)
    assert last(found[CI_RUNS[0]], diff) == pytest.approx(-0.12)
    assert last(found[CI_RUNS[1]], diff) == pytest.approx(3.1)
    assert last(found["static"], diff) == 0.0
    assert diff not in found["playbook"].Tags()["scalars"]
    assert last(found[PPO_RUN], tags["profit", "playbook"]) == pytest.approx(194.9)
    assert last(found["playbook"], tags["profit", "playbook"]) == 0.0
    # the contracted tags stay, in CNY
    assert last(found["."], "eval/ppo_vs_static/value_diff") == pytest.approx(1_500.0)


def test_the_cards_are_numbered_in_reading_order():
    group = f"{ANSWER_GROUP}/"
    assert list(answer_tags(BASELINES).values()) == [
        group + "1_value_ppo_minus_static", group + "2_value_per_episode",
        group + "3_value_ppo_minus_playbook", group + "4_profit_ppo_minus_static",
        group + "5_profit_per_episode", group + "6_profit_ppo_minus_playbook"]
    tags = answer_tags(("static_rule", "playbook", "pid"))
    assert sorted(tags.values(), key=functools.cmp_to_key(tensorboard_order)) == list(
        tags.values())
    assert list(tags)[:3] == [("value", "static_rule"), ("value", ""), ("value", "playbook")]
    # TIME SERIES cuts a card's title (the tag after the group) at about 26 characters
    assert max(len(t.split("/", 1)[1]) for t in answer_tags(BASELINES).values()) <= 27


def test_a_resume_truncates_every_run(tmp_path):
    writer = SummaryWriter(str(tmp_path / "tb"))
    for step in (100, 200, 300):
        write_validation(writer, result(step, "profit"))
    writer.close()
    truncate_events(tmp_path / "tb", 200)
    for name, run in runs(tmp_path / "tb").items():
        for tag in run.Tags()["scalars"]:
            assert [e.step for e in run.Scalars(tag)] == [100, 200], (name, tag)


def test_the_default_page_opens_on_the_comparison(tiny_run):
    found = runs(tiny_run / "tb")
    tags = sorted({t for run in found.values() for t in run.Tags()["scalars"]},
                  key=functools.cmp_to_key(tensorboard_order))
    groups = list(dict.fromkeys(t.split("/", 1)[0] for t in tags))
    assert groups[0] == ANSWER_GROUP and "eval" in groups and "rollout" in groups
    assert tags[0] == answer_tags(BASELINES)["value", "static"]
    final = json.loads((tiny_run / "final" / "eval.json").read_text())
    assert last(found[PPO_RUN], tags[0]) == pytest.approx(final["value_diff"] / 1000,
                                                          rel=1e-5)
    assert last(found[CI_RUNS[0]], tags[0]) == pytest.approx(
        final["value_diff_ci_low"] / 1000, rel=1e-5)
    assert last(found["static"], tags[1]) == pytest.approx(
        final["reference"]["value"] / 1000, rel=1e-5)


def test_custom_scalars_open_on_the_same_answer():
    layout = analyst_layout(BASELINES, objective="profit")
    first = next(iter(layout.values()))
    chart = next(iter(first.values()))
    assert chart == ["Multiline", [f"^{answer_tags(BASELINES)['value', 'static']}$"]]
