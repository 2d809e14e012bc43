"""What a run writes to TensorBoard besides SB3's ``rollout/`` and ``train/`` tags: the
validation's scalars and verdict, the analyst's custom-scalars layout, the HPARAMS session,
and the event surgery that lets a resumed run continue one stream.

The tags (names from the contracts):

- ``market/<metric>``: mean episode metric of the training episodes that just ended
  (``envs.metrics.EPISODE_METRICS``), ``market/reward_terms/<term>``: their reward terms in
  CNY per episode;
- ``eval/ppo/<metric>`` and ``eval/<baseline>/<metric>`` for every baseline
  (``eval/static/profit``, ``eval/playbook/profit``, ...) at the same step: means over the
  validation seeds, plus ``return`` (reward units) and ``value`` (CNY, the run's objective);
- ``eval/ppo_vs_<baseline>/value_diff`` with ``value_diff_ci_low`` / ``value_diff_ci_high``
  and ``eval/ppo_vs_<baseline>/profit_diff`` with ``profit_diff_ci_low`` /
  ``profit_diff_ci_high``, for every baseline: the paired difference per episode (CNY) and its
  95% t-interval;
- ``eval/verdict`` (text): the comparison in words, naming the baseline and the objective;
- ``0_ppo_vs_baselines_kCNY/<n>_...`` (:func:`answer_tags`): the comparison again (on
  ``value``, then ``profit``), in thousand CNY per episode, as the group TensorBoard's default
  TIME SERIES page opens on (tags starting with a digit sort before letters there; ``<n>``
  orders the cards). Each series is its own *run* (TensorBoard colours runs, not tags), a
  folder beside the run's own events in ``tb/``:
  ``tb/ppo/`` (PPO's value; in a difference card, PPO - baseline), ``tb/<baseline>/`` (its
  value; 0 in its own difference card: the line PPO has to clear), ``tb/ppo_ci95_low/`` and
  ``tb/ppo_ci95_high/`` (the difference's 95% interval).

A cross-scenario run validates on each of its scenarios (the same seeds in each): the ``eval/``
tags above are then means over the scenarios (the differences' intervals stratified by
scenario), and ``eval_<scenario>/...`` carries the same tags for each scenario alone. With the
Lagrangian floor on, ``train/floor_multiplier`` is the multiplier after each rollout and
``train/floor_violation_days`` the rollout's mean violation days per episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

from agents.evaluation.intervals import CONFIDENCE
from agents.training.config import TrainConfig
from agents.training.validation import QUANTITIES, VALUE, ValidationResult

ANSWER_GROUP = "0_ppo_vs_baselines_kCNY"  # TIME SERIES' first group: digits sort before letters
K_CNY = 1000.0  # the answer group's unit: thousand CNY per episode
PPO_RUN = "ppo"  # tb/ppo/: PPO's series of the answer group
CI_RUNS = tuple(f"ppo_ci{round(CONFIDENCE * 100)}_{end}"
                for end in ("low", "high"))  # the interval's ends of a difference


def tensorboard_output(tb_dir: Path) -> TensorBoardOutputFormat:
    """SB3's TensorBoard output into ``tb_dir``."""
    return TensorBoardOutputFormat(str(tb_dir))


def tb_writer(logger: Logger):
    """The TensorBoard ``SummaryWriter`` behind an SB3 logger."""
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            return fmt.writer
    raise ValueError("the logger has no TensorBoard output")


def comparison_tags(baseline: str, prefix: str = "eval",
                    quantity: str = "profit") -> dict[str, str]:
    """Tags of the paired comparison against ``baseline`` on ``quantity`` (``value`` or
    ``profit``); prefix ``eval_<scenario>``: one scenario of a cross-scenario run."""
    group = f"{prefix}/ppo_vs_{baseline}"
    return {"diff": f"{group}/{quantity}_diff", "low": f"{group}/{quantity}_diff_ci_low",
            "high": f"{group}/{quantity}_diff_ci_high"}


def answer_tags(baselines: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """The answer group's tags in card order, keyed by ``(quantity, baseline)`` for a paired
    difference PPO - baseline and by ``(quantity, "")`` for the policies' means per episode.

    On ``value`` (the run's objective, the verdict's), then on ``profit``: the difference
    against the first baseline (the verdict's), the means of PPO and every baseline, the
    differences against the other baselines. For example
    ``0_ppo_vs_baselines_kCNY/1_value_ppo_minus_static``,
    ``0_ppo_vs_baselines_kCNY/2_value_per_episode``, ...,
    ``0_ppo_vs_baselines_kCNY/6_profit_ppo_minus_playbook`` (short: TIME SERIES cuts a card's
    title at about 26 characters).
    """
    keys: list[tuple[str, str]] = []
    for quantity in QUANTITIES:
        keys += [(quantity, baselines[0]), (quantity, ""),
                 *((quantity, b) for b in baselines[1:])]
    tags = {}
    for n, (quantity, baseline) in enumerate(keys, start=1):
        card = f"ppo_minus_{baseline}" if baseline else "per_episode"
        tags[quantity, baseline] = f"{ANSWER_GROUP}/{n}_{quantity}_{card}"
    return tags


def answer_points(result: ValidationResult) -> dict[str, dict[str, float]]:
    """One validation's answer group: per run folder (``ppo``, each baseline, the interval's
    ends), per tag, the value in thousand CNY per episode."""
    runs: dict[str, dict[str, float]] = {PPO_RUN: {}, CI_RUNS[0]: {}, CI_RUNS[1]: {}}
    runs.update({name: {} for name in result.comparisons})
    tags = answer_tags(tuple(result.comparisons))
    for (quantity, baseline), tag in tags.items():
        if not baseline:
            runs[PPO_RUN][tag] = result.ppo[quantity] / K_CNY
            for name, comparison in result.comparisons.items():
                runs[name][tag] = comparison.reference[quantity] / K_CNY
            continue
        diff, low, high = result.comparisons[baseline].interval(quantity)
        runs[PPO_RUN][tag] = diff / K_CNY
        runs[baseline][tag] = 0.0  # the baseline minus itself: the line PPO has to clear
        runs[CI_RUNS[0]][tag], runs[CI_RUNS[1]][tag] = low / K_CNY, high / K_CNY
    return runs


def run_writer(writer, name: str):
    """The event writer of the sibling run ``<writer's folder>/<name>/`` (TensorBoard colours
    by run, so a series needs a folder of its own to get its own colour). ``writer`` owns it,
    as it owns ``add_scalars``' writers: its ``flush`` and ``close`` cover it."""
    from torch.utils.tensorboard.writer import FileWriter

    if writer.all_writers is None:
        raise ValueError("the TensorBoard writer is closed")
    folder = str(Path(writer.get_logdir()) / name)
    if folder not in writer.all_writers:
        writer.all_writers[folder] = FileWriter(folder, writer.max_queue, writer.flush_secs,
                                                writer.filename_suffix)
    return writer.all_writers[folder]


def write_answer(writer, result: ValidationResult) -> None:
    """The answer group of one validation (:func:`answer_points`), each run in its folder."""
    from torch.utils.tensorboard.summary import scalar

    for run, points in answer_points(result).items():
        events = run_writer(writer, run)
        for tag, value in points.items():
            events.add_summary(scalar(tag, value), result.step)


def analyst_layout(baselines: tuple[str, ...], scenarios: tuple[str, ...] = (),
                   objective: str = "profit") -> dict[str, dict[str, list]]:
    """CUSTOM SCALARS charts that put PPO and the baselines on the same axes.

    A run's lines share its colour; the baselines' are the flat ones (the same deterministic
    policies on the same seeds at every validation).

    :param baselines: the first is the verdict's (its charts come first).
    :param scenarios: the scenarios of a cross-scenario run (charts for each).
    :param objective: the run's objective, for the titles (the tags do not depend on it).
    """
    first, names = baselines[0], " and ".join(baselines)

    def lines(metric: str, prefix: str = "eval") -> list:
        return ["Multiline", [f"^{prefix}/{who}/{metric}$" for who in ("ppo", *baselines)]]

    def margin(baseline: str, quantity: str, prefix: str = "eval") -> list:
        tags = comparison_tags(baseline, prefix, quantity)
        return ["Margin", [tags["diff"], tags["low"], tags["high"]]]

    value = f"{objective} value per episode, CNY"
    charts: dict[str, list] = {}
    runs = f"one colour per run folder: {PPO_RUN}, {names}, the interval's ends"
    for tag in answer_tags(baselines).values():
        charts[f"{tag.split('/', 1)[1]} ({runs})"] = ["Multiline", [f"^{tag}$"]]
    for baseline in baselines:
        charts[f"PPO minus {baseline}: {value}, 95% CI (above 0: PPO better)"] = margin(
            baseline, VALUE)
    charts[f"{value}: PPO (curve) vs {names} (flat lines)"] = lines(VALUE)
    for baseline in baselines:
        charts[f"PPO minus {baseline}: profit per episode, CNY, 95% CI"] = margin(
            baseline, "profit")
    charts[f"profit per episode, CNY: PPO (curve) vs {names} (flat lines)"] = lines("profit")
    for metric in ("settlement_roi", "gmv", "spend", "roi_floor_violation_days"):
        charts[f"{metric}: PPO (curve) vs {names} (flat lines)"] = lines(metric)
    training = {
        "profit per training episode, CNY": ["Multiline", ["^market/profit$"]],
        "settlement ROI of training episodes": ["Multiline", ["^market/settlement_roi$"]],
        "reward terms per training episode, CNY": ["Multiline", ["^market/reward_terms/"]],
    }
    layout = {f"Does PPO beat {first}? ({objective}, validation seeds 20000..)": charts,
              "Training episodes": training}
    if scenarios:
        per: dict[str, list] = {}
        for name in scenarios:
            prefix = f"eval_{name}"
            for baseline in baselines:
                per[f"{name}: PPO minus {baseline}, {value}, 95% CI"] = margin(
                    baseline, VALUE, prefix)
            per[f"{name}: {value}: PPO vs {names}"] = lines(VALUE, prefix)
            per[f"{name}: profit per episode, CNY: PPO vs {names}"] = lines("profit", prefix)
        layout[f"Per scenario (the charts above: means over {len(scenarios)} scenarios)"] = per
    return layout


def _write_scalars(writer, result: ValidationResult, prefix: str) -> None:
    step = result.step
    for key, value in result.ppo.items():
        writer.add_scalar(f"{prefix}/ppo/{key}", value, step)
    for name, comparison in result.comparisons.items():
        for key, value in comparison.reference.items():
            writer.add_scalar(f"{prefix}/{name}/{key}", value, step)
        for quantity in QUANTITIES:
            tags = comparison_tags(name, prefix, quantity)
            for end, value in zip(("diff", "low", "high"), comparison.interval(quantity),
                                  strict=True):
                writer.add_scalar(tags[end], value, step)


def write_validation(writer, result: ValidationResult) -> None:
    """The ``eval/`` tags and the verdict text of one validation (and ``eval_<scenario>/``
    tags for each scenario of a cross-scenario run), and the answer group in its run
    folders (:func:`write_answer`)."""
    _write_scalars(writer, result, "eval")
    write_answer(writer, result)
    text = result.sentence()
    for name, part in (result.per_scenario or {}).items():
        _write_scalars(writer, part, f"eval_{name}")
        text += f"  \n{name}: {part.sentence()}"
    if result.per_scenario:
        text = f"mean over {len(result.per_scenario)} scenarios: {text}"
    writer.add_text("eval/verdict", text, result.step)
    writer.flush()


def _is_hparams(event) -> bool:
    return any(v.metadata.plugin_data.plugin_name == "hparams" for v in event.summary.value)


def truncate_events(tb_dir: Path, last_step: int) -> int:
    """Drop events with ``step > last_step`` from the event files in ``tb_dir`` and its run
    folders (``tb/ppo/``, ...; each file rewritten atomically in place), so a resumed run
    continues one stream; also the HPARAMS session of an earlier finish (a run writes it when
    it finishes). Returns the number of events dropped."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    dropped = 0
    for path in sorted(Path(tb_dir).rglob("events.out.tfevents.*")):
        kept = []
        for record in RawEventFileLoader(str(path)).Load():
            event = event_pb2.Event.FromString(record)
            if event.step > last_step or _is_hparams(event):
                dropped += 1
            else:
                kept.append(record)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            writer = RecordWriter(f)
            for record in kept:
                writer.write(record)
        tmp.replace(path)
    return dropped


def run_hparams(config: TrainConfig, label: str, scenario_hash: str) -> dict[str, Any]:
    """Flat hyperparameters for the HPARAMS tab (lists and mappings as text), with the run's
    ``label`` (run.json's ``scenario``) and ``scenario_hash``."""
    flat: dict[str, Any] = {"scenario": label, "scenario_hash": scenario_hash}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict) and not prefix.endswith("overrides"):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else key, value)
        elif isinstance(node, (list, dict)):
            flat[prefix] = yaml.safe_dump(node, default_flow_style=True).strip()
        elif node is None:
            flat[prefix] = "none"
        else:
            flat[prefix] = node

    walk("", config.to_dict())
    return flat


def hparam_metrics(baselines: tuple[str, ...]) -> dict[str, float]:
    """The HPARAMS tab's metric tags: PPO's and every baseline's value and profit, the paired
    differences with their intervals, PPO's ROI, violation days and return."""
    keys = ["eval/ppo/value", "eval/ppo/profit"]
    for name in baselines:
        keys += [f"eval/{name}/value", f"eval/{name}/profit"]
        for quantity in (VALUE, "profit"):
            keys += comparison_tags(name, quantity=quantity).values()
    keys += ["eval/ppo/settlement_roi", "eval/ppo/roi_floor_violation_days", "eval/ppo/return",
             "rollout/ep_rew_mean"]
    return dict.fromkeys(keys, 0.0)


def write_hparams(writer, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
    """The HPARAMS tab's session: the config and the tags of its metrics (their values are
    the scalars' last points). Written directly, not through a logger dump, so the last
    update's ``train/`` values do not land on an already used step."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    for summary in hparams_summaries(hparams, metrics):
        writer.file_writer.add_summary(summary)
    writer.flush()
