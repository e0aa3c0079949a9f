"""The inference model-state manager, sans-IO: detect a harmful update, redirect, roll back.

A baseline model (the online model's parameters from a few minutes earlier) serves a
small share of traffic.  Every step the manager receives the quality (logloss) each
model achieved on its own traffic; over a sliding window it compares them, and when
the online model is worse than the baseline by more than `margin` it moves
healthy -> uncertain, and after `confirm_steps` more bad windows, -> corrupted.  On
corruption it tells the caller to redirect all traffic to the baseline and to roll
the online model back to the last state known healthy (restored from the witness
copies); once restored, traffic returns to the online model and the state is healthy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

HEALTHY, UNCERTAIN, CORRUPTED = "healthy", "uncertain", "corrupted"


@dataclass(frozen=True)
class StateManagerConfig:
    baseline_share: float = 0.01
    window_steps: int = 10
    margin: float = 0.25
    confirm_steps: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.baseline_share < 0.01 + 1e-12:
            raise ValueError(f"baseline_share must be in (0, 0.01], got {self.baseline_share}")
        if self.window_steps < 1 or self.confirm_steps < 1:
            raise ValueError("window_steps and confirm_steps must be >= 1")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")


@dataclass(frozen=True)
class Action:
    kind: str          # "redirect" (all traffic to the baseline) | "rollback" (restore to `to_step`)
    step: int
    to_step: int = -1


class ModelStateManager:
    def __init__(self, config: StateManagerConfig = StateManagerConfig()):
        self.config = config
        self.state = HEALTHY
        self._online: deque[float] = deque(maxlen=config.window_steps)
        self._baseline: deque[float] = deque(maxlen=config.window_steps)
        self._bad = 0
        self.last_healthy_step = 0
        self.history: list[tuple[int, str]] = [(0, HEALTHY)]

    def _move(self, step: int, state: str) -> None:
        if state != self.state:
            self.state = state
            self.history.append((step, state))

    def observe(self, step: int, online_loss: float, baseline_loss: float) -> list[Action]:
        """Feed one step's losses (each model on its own traffic); returns the actions to take."""
        if self.state == CORRUPTED:
            return []
        self._online.append(online_loss)
        self._baseline.append(baseline_loss)
        if len(self._online) < self.config.window_steps:
            return []   # the baseline's small share needs a full window before its loss means anything
        online = sum(self._online) / len(self._online)
        baseline = sum(self._baseline) / len(self._baseline)
        anomalous = online > baseline * (1 + self.config.margin)
        if not anomalous:
            self._bad = 0
            self._move(step, HEALTHY)
            self.last_healthy_step = step
            return []
        self._bad += 1
        if self._bad <= self.config.confirm_steps:
            self._move(step, UNCERTAIN)
            return []
        self._move(step, CORRUPTED)
        # The window that turned bad may already hold the harmful update: restore to before it.
        to_step = max(0, self.last_healthy_step - self.config.window_steps)
        return [Action("redirect", step), Action("rollback", step, to_step)]

    def restored(self, step: int) -> None:
        """The rollback finished: the online model serves again."""
        self._online.clear()
        self._baseline.clear()
        self._bad = 0
        self._move(step, HEALTHY)
        self.last_healthy_step = step
