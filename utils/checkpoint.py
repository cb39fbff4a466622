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
# Largest sizes a checkpoint's metadata may ask for: the network is built from these numbers before its weights
# are loaded, so a damaged or hostile file must not be able to request gigabytes. They are well above anything
# this project trains (hidden 128, maps up to 25x25, 7 actions).
META_LIMITS = {"hidden_size": 4096, "num_actions": 1024, "frame_stack": 64, "ego_size": 255,
               "map_side": 128, "map_channels": 256, "vector_size": 65536}


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


def check_meta(meta, path: Path) -> None:
    """Refuse metadata of the wrong types or asking for absurd sizes, before any network is built from it."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path} has unusable metadata ({what}): it is damaged or was not "
                               f"written by LLM4Teach; use another one or retrain")

    def whole(value, low: int, high: int | None = None) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool) and value >= low
                and (high is None or value <= high))

    if not isinstance(meta, dict):
        raise bad("meta is not a mapping")
    if not isinstance(meta.get("task"), str):
        raise bad("task is not a name")
    for key in ("iteration", "env_steps"):
        if not whole(meta.get(key), 0):
            raise bad(f"{key} = {meta.get(key)!r}, expected a whole number >= 0")
    if not whole(meta.get("frame_stack", 1), 1, META_LIMITS["frame_stack"]):
        raise bad(f"frame_stack = {meta.get('frame_stack')!r}, expected 1..{META_LIMITS['frame_stack']}")
    model = meta.get("model_config")
    if not isinstance(model, dict):
        raise bad("no model_config")
    shape = model.get("obs_shape")
    if not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3) or not all(whole(d, 1) for d in shape):
        raise bad(f"obs_shape = {shape!r}, expected [size] or [channels, width, height]")
    limits = ([META_LIMITS["vector_size"]] if len(shape) == 1 else
              [META_LIMITS["map_channels"], META_LIMITS["map_side"], META_LIMITS["map_side"]])
    if any(d > limit for d, limit in zip(shape, limits)):
        raise bad(f"obs_shape = {list(shape)} exceeds {limits}")
    checks = {"num_actions": (1, META_LIMITS["num_actions"]), "hidden_size": (1, META_LIMITS["hidden_size"]),
              "ego_size": (0, META_LIMITS["ego_size"]), "architecture": (0, None)}
    for key, (low, high) in checks.items():
        if not whole(model.get(key), low, high):
            raise bad(f"{key} = {model.get(key)!r}, expected a whole number in {low}..{high or 'any'}")
    if not isinstance(model.get("recurrent"), bool):
        raise bad(f"recurrent = {model.get('recurrent')!r}, expected true or false")


def load_weights(module: torch.nn.Module, state: dict, path: Path) -> None:
    """``module.load_state_dict(state)`` with a one-line CheckpointError when the weights do not fit."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"the weights in checkpoint {path} do not fit the network its metadata describes "
                              f"({first[:200]}); it is damaged: use another one or retrain") from None

