"""Run logging: TensorBoard scalars (step axis = env steps) and compact progress lines on stdout."""
from __future__ import annotations

import logging
import sys
from pathlib import Path


def configure_warnings() -> None:
    """Warnings (an LLM outage, a fallback answer) to stderr as one ``LEVEL: message`` line each; called by
    ``main.py`` and by the rollout worker process, whose teacher logs its own."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


class RunLogger:
    """Writes TensorBoard events into ``run_dir`` and prints progress lines prefixed with ``label``."""

    def __init__(self, run_dir: Path, label: str, stream=None, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        self.label = label
        self.stream = stream or sys.stdout

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Log ``{"namespace/name": value}`` at env step ``step``."""
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def line(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=self.stream, flush=True)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
