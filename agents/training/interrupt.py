"""Stopping training on request: SIGINT/SIGTERM set a flag that a callback reads at the next
step; training then checkpoints and raises :class:`InterruptedTrainingError`, whose run folder
resumes.

The stop lands mid-rollout, after steps PPO has collected but not learnt from. The checkpoint
is taken at the rollout's start instead (:meth:`StopOnRequest.rewind`): the model has not
changed since then, and the step counter and the normalisation statistics go back to what
they were. A resumed run collects that rollout again, so its validations and checkpoints land
at the same steps as an uninterrupted run's and its step budget is the same.
"""

from __future__ import annotations

import copy
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback


class InterruptedTrainingError(RuntimeError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; ``run_dir`` resumes.

    :param step: the checkpoint's step (the last completed PPO update's).
    :param recollected: steps collected after it and dropped (collected again on resume).
    """

    def __init__(self, run_dir: Path, step: int, recollected: int = 0):
        again = (f"; the {recollected} steps collected since its last update are collected "
                 "again" if recollected else "")
        super().__init__(f"training interrupted at step {step}{again}; continue with "
                         f"--resume {run_dir}")
        self.run_dir = run_dir
        self.step = step
        self.recollected = recollected


class StopOnRequest(BaseCallback):
    """Stops training at the next step once :attr:`requested` is set (SIGINT/SIGTERM), and
    remembers the rollout's start so :meth:`rewind` can go back to it."""

    def __init__(self):
        super().__init__()
        self.requested = False
        self._in_rollout = False
        self._start_step = 0
        self._start_state: dict[str, Any] = {}

    def _on_rollout_start(self) -> None:
        self._in_rollout = True
        self._start_step = self.model.num_timesteps
        vecnormalize = self.model.get_vec_normalize_env()
        self._start_state = {"ep_info_buffer": copy.deepcopy(self.model.ep_info_buffer)}
        if vecnormalize is not None:  # a few arrays (features + 1 return): cheap to copy
            self._start_state["obs_rms"] = copy.deepcopy(vecnormalize.obs_rms)
            self._start_state["ret_rms"] = copy.deepcopy(vecnormalize.ret_rms)

    def _on_rollout_end(self) -> None:
        self._in_rollout = False

    def _on_step(self) -> bool:
        return not self.requested

    def rewind(self) -> int:
        """After a stop mid-rollout, put the step counter, the normalisation statistics and
        the episode statistics back to the rollout's start (the policy has not changed since:
        PPO updates only between rollouts). Returns the number of steps dropped (0 when the
        stop came between rollouts)."""
        if not self._in_rollout:
            return 0
        dropped = self.model.num_timesteps - self._start_step
        self.model.num_timesteps = self._start_step
        self.model.ep_info_buffer = self._start_state["ep_info_buffer"]
        vecnormalize = self.model.get_vec_normalize_env()
        if vecnormalize is not None:
            vecnormalize.obs_rms = self._start_state["obs_rms"]
            vecnormalize.ret_rms = self._start_state["ret_rms"]
        self._in_rollout = False
        return dropped


@contextmanager
def stop_on_signals(stop: StopOnRequest) -> Iterator[None]:
    """SIGINT/SIGTERM ask training to stop at the next step (then it checkpoints)."""
    def handler(signum, frame):  # noqa: ARG001
        stop.requested = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
