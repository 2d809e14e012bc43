"""The terminal's progress bar during training (rich): steps, time, ETA, the recent episode
reward and the last validation next to the first baseline.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.training.callbacks import ValidationCallback
from agents.training.validation import VALUE


def _short_cny(value: float) -> str:
    """12345 -> '12.3k', -1234567 -> '-1.23M' (CNY)."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


class ProgressBarCallback(BaseCallback):
    """A rich progress bar: steps, elapsed time, ETA, steps/s, the recent episode reward and
    the last validation's value (the run's objective) next to the first baseline's."""

    def __init__(self, total_timesteps: int, validation: ValidationCallback):
        super().__init__()
        self.total = total_timesteps
        self.validation = validation
        self.progress = None
        self._task = None

    def _on_training_start(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        fixed = Column(no_wrap=True)  # the numbers stay on one line; the text wraps
        self.progress = Progress(
            BarColumn(bar_width=24), MofNCompleteColumn(table_column=fixed),
            TextColumn("steps"), TimeElapsedColumn(table_column=Column(no_wrap=True)),
            TextColumn("ETA"), TimeRemainingColumn(table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[info]}", table_column=Column(overflow="fold", ratio=1)))
        self.progress.start()
        self._task = self.progress.add_task("train", total=self.total,
                                            completed=self.model.num_timesteps, info="")

    def _describe(self) -> str:
        parts = []
        rewards = [ep["r"] for ep in self.model.ep_info_buffer or ()]
        if rewards:
            parts.append(f"reward {np.mean(rewards):.2f}")
        last = self.validation.last
        if last is not None:
            parts.append(f"val {last.objective}: PPO {_short_cny(last.ppo[VALUE])} vs "
                         f"{last.baseline} {_short_cny(last.primary.reference[VALUE])}")
        return " | ".join(parts)

    def _on_rollout_start(self) -> None:
        if self.progress is not None:
            self.progress.update(self._task, completed=self.model.num_timesteps,
                                 info=self._describe())

    def _on_step(self) -> bool:
        if self.progress is not None and self.n_calls % 16 == 0:
            self.progress.update(self._task, completed=self.model.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        if self.progress is not None:
            done = self.model.num_timesteps  # the last rollout may pass the total
            self.progress.update(self._task, total=max(done, self.total), completed=done,
                                 info=self._describe())
            self.progress.stop()
            self.progress = None
