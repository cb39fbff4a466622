"""The distillation coefficient's schedule: start high, decay linearly per update to a floor, then switch off."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DistillationSchedule:
    """``coef(u) = max(floor, initial - decay * u)`` for update ``u < off_after``, and 0 from ``off_after`` on.

    ``off_after = 0`` disables distillation entirely (plain PPO).
    """

    initial: float = 1.0
    decay: float = 0.02
    floor: float = 0.05
    off_after: int = 100

    def __post_init__(self):
        if self.initial < 0 or self.decay < 0 or self.floor < 0 or self.off_after < 0:
            raise ValueError(f"distillation schedule values must be >= 0: {self}")

    def coef(self, update: int) -> float:
        if update >= self.off_after:
            return 0.0
        return max(self.floor, self.initial - self.decay * update)
