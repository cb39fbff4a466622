"""Checkpoints: ``{"model": state_dict, "optimizer": state_dict, "meta": {...JSON-able...}}``.

Written atomically (temporary file in the same folder, then rename), loaded with ``weights_only=True``:
a checkpoint is data, never code.
"""
from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

import torch

FORMAT_VERSION = 1
TEMP_SUFFIX = ".tmp"  # save_checkpoint writes <name>.<random>.tmp, then renames it to <name>
# Largest frame stack a checkpoint may ask for (the student's own sizes are checked by algos/student.py).
MAX_FRAME_STACK = 64


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or made for something else."""


def save_checkpoint(path: Path, model_state: dict, optimizer_state: dict | None, meta: dict,
                    extra: dict | None = None) -> None:
    """Write the checkpoint to ``path`` atomically; ``extra`` holds resume state (tensors and plain data)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model_state, "optimizer": optimizer_state,
               "meta": {**meta, "format_version": FORMAT_VERSION}, "extra": extra or {}}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=TEMP_SUFFIX, dir=path.parent)
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


def remove_temp_files(folder: Path, name: str) -> list[Path]:
    """Delete the unfinished files a killed :func:`save_checkpoint` of ``folder/name`` left; returns them.

    Only safe while no process is saving into ``folder`` (the caller holds the run folder's lock).
    """
    removed = []
    for leftover in Path(folder).glob(f"{glob.escape(name)}.*{TEMP_SUFFIX}"):
        if leftover.is_file() and not leftover.is_symlink():
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


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
    if not isinstance(payload["model"], dict):
        raise CheckpointError(f"{path} is not an LLM4Teach checkpoint (its model entry is not a state dict)")
    check_meta(payload["meta"], path)
    return payload


def unusable_meta(path: Path, what: str) -> CheckpointError:
    """The error for a checkpoint whose metadata cannot be used (``what``: which field, and why)."""
    return CheckpointError(f"checkpoint {path} has unusable metadata ({what}): it is damaged or was not "
                           f"written by LLM4Teach; use another one or retrain")


def whole_number(value, low: int, high: int | None = None) -> bool:
    """Whether ``value`` is an int (not a bool) in ``low..high`` (no upper bound when ``high`` is None)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def check_meta(meta, path: Path) -> None:
    """Refuse metadata of the wrong types or asking for absurd sizes, before any network is built from it.

    The student's own description (``model_config``) is only required to be a mapping here; what it may hold
    is checked by the student's builder (``algos.student.check_config``)."""
    if not isinstance(meta, dict):
        raise unusable_meta(path, "meta is not a mapping")
    if not isinstance(meta.get("task"), str):
        raise unusable_meta(path, "task is not a name")
    for key in ("iteration", "env_steps"):
        if not whole_number(meta.get(key), 0):
            raise unusable_meta(path, f"{key} = {meta.get(key)!r}, expected a whole number >= 0")
    if not whole_number(meta.get("frame_stack", 1), 1, MAX_FRAME_STACK):
        raise unusable_meta(path, f"frame_stack = {meta.get('frame_stack')!r}, expected 1..{MAX_FRAME_STACK}")
    if not isinstance(meta.get("model_config"), dict):
        raise unusable_meta(path, "no model_config")


def load_weights(module: torch.nn.Module, state: dict, path: Path) -> None:
    """``module.load_state_dict(state)`` with a one-line CheckpointError when the weights do not fit."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"the weights in checkpoint {path} do not fit the network its metadata describes "
                              f"({first[:200]}); it is damaged: use another one or retrain") from None

