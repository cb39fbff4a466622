"""What a rollout reports, and how one is stopped: shared by the collector, the rollout worker and the trainer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from envs.vector import FinishedEpisode

if TYPE_CHECKING:
    from planners.teacher import TeacherStats


class TrainingInterrupted(Exception):
    """A stop was requested (Ctrl-C, SIGTERM): the rollout was abandoned mid-way."""


class StopFlag:
    """Set by a signal handler; the rollout checks it after every env step."""

    def __init__(self):
        self.requested = False
        self.signal_name = ""

    def request(self, signal_name: str = "stop") -> None:
        self.requested, self.signal_name = True, signal_name


@dataclass
class RolloutStats:
    """What happened during one rollout."""

    episodes: list[FinishedEpisode] = field(default_factory=list)
    teacher_seconds: float = 0.0  # wall time of the teacher's action_probs calls
    total_seconds: float = 0.0
    agreement: float | None = None  # how often the student's action was the teacher's most likely one
    teacher: TeacherStats | None = None  # the teacher's counters when the rollout ended (None: no teacher)
