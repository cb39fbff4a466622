"""Checkpoints: ``{"model": state_dict, "optimizer": state_dict, "meta": {...JSON-able...}}``.

Written atomically (temporary file in the same folder, then rename), loaded with ``weights_only=True``:
a checkpoint is data, never code.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or made for something else."""


def save_checkpoint(path: Path, model_state: dict, optimizer_state: dict | None, meta: dict,
                    extra: dict | None = None) -> None:
    """Write the checkpoint to ``path`` atomically; ``extra`` holds resume state (tensors and plain data)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model_state, "optimizer": optimizer_state,
               "meta": {**meta, "format_version": FORMAT_VERSION}, "extra": extra or {}}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`; clear errors for missing or damaged files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: check --loaddir/--loadmodel (train first?)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint ({type(err).__name__}); "
                              f"use another one or retrain") from None
    if not isinstance(payload, dict) or "model" not in payload or "meta" not in payload:
        raise CheckpointError(f"{path} is not an LLM4Teach checkpoint (no model/meta entries)")
    return payload
