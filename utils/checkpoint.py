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


def check_compatible(meta: dict, task: str, obs_shape: tuple, num_actions: int, path: Path) -> None:
    """Refuse a checkpoint made for another task or observation/action shape."""
    if meta.get("task", "").lower() != task.lower():
        raise CheckpointError(f"checkpoint {path} was trained on {meta.get('task')}, not {task}: "
                              f"pass --task {meta.get('task')} or another --loaddir")
    model = meta.get("model_config", {})
    from algos.model import ARCHITECTURE_VERSION
    if model.get("architecture") != ARCHITECTURE_VERSION:
        raise CheckpointError(f"checkpoint {path} was made by another version of the student network "
                              f"(architecture {model.get('architecture')}, this code has {ARCHITECTURE_VERSION}); "
                              f"retrain it with this version")
    if tuple(model.get("obs_shape", ())) != tuple(obs_shape) or model.get("num_actions") != num_actions:
        raise CheckpointError(f"checkpoint {path} expects observations {model.get('obs_shape')} and "
                              f"{model.get('num_actions')} actions, this run has {list(obs_shape)} and "
                              f"{num_actions} (different --frame_stack?)")
