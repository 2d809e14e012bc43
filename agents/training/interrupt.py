"""Stopping training on request: SIGINT/SIGTERM set a flag that a callback reads at the next
step; training then checkpoints and raises :class:`InterruptedTrainingError`, whose run folder
resumes.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback


class InterruptedTrainingError(RuntimeError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; ``run_dir`` resumes."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(f"training interrupted at step {step}; continue with "
                         f"--resume {run_dir}")
        self.run_dir = run_dir
        self.step = step


class StopOnRequest(BaseCallback):
    """Stops training at the next step once :attr:`requested` is set (SIGINT/SIGTERM)."""

    def __init__(self):
        super().__init__()
        self.requested = False

    def _on_step(self) -> bool:
        return not self.requested


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
