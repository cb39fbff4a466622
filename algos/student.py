"""The one place that knows which network the student is: build it, rebuild it from a checkpoint, check a
checkpoint's description of it.

To try another network, change this file: :func:`build_student` (what is built from the settings),
:func:`rebuild_student` and :data:`CONFIG_LIMITS` (what a checkpoint's ``model_config`` holds and may ask
for) and :func:`network_settings` (what must match to resume). Everything else in ``algos/`` (trainer,
rollout worker, evaluation, ONNX export) and ``bench/latency.py`` gets its student from here and uses only
the interface below:

* ``forward(obs_or_prepared, state=None, episode_starts=None) -> (logits, values, state)``;
* ``prepare(obs) -> tuple of tensors``: the parameter-free input work, done once per rollout by PPO;
* ``initial_state(batch, device)`` (None for a feed-forward net), ``recurrent``, ``hidden_size`` (the
  width of the recurrent state, for the ONNX export);
* ``config() -> dict``: JSON-able, stored in checkpoints as ``model_config`` and read by
  :func:`rebuild_student`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from algos.model import ARCHITECTURE_VERSION, ActorCritic
from utils.checkpoint import CheckpointError, load_checkpoint, unusable_meta, whole_number
from utils.config import StudentSettings

# Largest sizes a checkpoint's model_config may ask for: the network is built from these numbers before its
# weights are loaded, so a damaged or hostile file must not be able to request gigabytes. They are well above
# anything this project trains (hidden 128, maps up to 25x25, 7 actions).
CONFIG_LIMITS = {"hidden_size": 4096, "num_actions": 1024, "ego_size": 255, "map_side": 128, "map_channels": 256,
                 "vector_size": 65536}


def build_student(settings: StudentSettings, obs_shape: tuple[int, ...], num_actions: int) -> ActorCritic:
    """A freshly initialised student for observations of ``obs_shape`` and ``num_actions`` actions."""
    return ActorCritic(tuple(obs_shape), num_actions, settings.hidden_size, settings.recurrent, settings.ego_size)


def rebuild_student(model_config: dict) -> ActorCritic:
    """A fresh network of the shape a checkpoint's ``model_config`` describes (checked by :func:`check_config`)."""
    settings = StudentSettings(recurrent=model_config["recurrent"], hidden_size=model_config["hidden_size"],
                               ego_size=model_config["ego_size"])
    return build_student(settings, tuple(model_config["obs_shape"]), model_config["num_actions"])


def network_settings(settings: StudentSettings, obs_shape: tuple[int, ...]) -> dict:
    """The part of ``model_config`` the settings decide (a resumed run must ask for the same)."""
    return {"hidden_size": settings.hidden_size, "recurrent": settings.recurrent,
            "ego_size": settings.ego_size if len(obs_shape) == 3 else 0}


def device_of(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters live."""
    return next(model.parameters()).device


def check_config(model_config, path: Path) -> None:
    """Refuse a ``model_config`` of the wrong types or asking for absurd sizes, before anything is built."""
    if not isinstance(model_config, dict):
        raise unusable_meta(path, "no model_config")
    shape = model_config.get("obs_shape")
    if (not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3)
            or not all(whole_number(d, 1) for d in shape)):
        raise unusable_meta(path, f"obs_shape = {shape!r}, expected [size] or [channels, width, height]")
    limits = ([CONFIG_LIMITS["vector_size"]] if len(shape) == 1 else
              [CONFIG_LIMITS["map_channels"], CONFIG_LIMITS["map_side"], CONFIG_LIMITS["map_side"]])
    if any(d > limit for d, limit in zip(shape, limits)):
        raise unusable_meta(path, f"obs_shape = {list(shape)} exceeds {limits}")
    checks = {"num_actions": (1, CONFIG_LIMITS["num_actions"]), "hidden_size": (1, CONFIG_LIMITS["hidden_size"]),
              "ego_size": (0, CONFIG_LIMITS["ego_size"]), "architecture": (0, None)}
    for key, (low, high) in checks.items():
        if not whole_number(model_config.get(key), low, high):
            raise unusable_meta(path, f"{key} = {model_config.get(key)!r}, expected a whole number in "
                                      f"{low}..{high or 'any'}")
    if not isinstance(model_config.get("recurrent"), bool):
        raise unusable_meta(path, f"recurrent = {model_config.get('recurrent')!r}, expected true or false")


def check_compatible(meta: dict, task: str, obs_shape: tuple, num_actions: int, path: Path,
                     settings: StudentSettings | None = None) -> None:
    """Refuse a checkpoint made for another task, another version of the network or another observation /
    action shape; with ``settings`` (resuming), also one whose network the settings would build differently."""
    if meta.get("task", "").lower() != task.lower():
        raise CheckpointError(f"checkpoint {path} was trained on {meta.get('task')}, not {task}: "
                              f"pass --task {meta.get('task')} or another --loaddir")
    model = meta.get("model_config", {})
    if model.get("architecture") != ARCHITECTURE_VERSION:
        raise CheckpointError(f"checkpoint {path} was made by another version of the student network "
                              f"(architecture {model.get('architecture')}, this code has {ARCHITECTURE_VERSION}); "
                              f"retrain it with this version")
    if tuple(model.get("obs_shape", ())) != tuple(obs_shape) or model.get("num_actions") != num_actions:
        raise CheckpointError(f"checkpoint {path} expects observations {model.get('obs_shape')} and "
                              f"{model.get('num_actions')} actions, this run has {list(obs_shape)} and "
                              f"{num_actions} (different --frame_stack?)")
    if settings is not None:
        wanted = network_settings(settings, obs_shape)
        different = {k: (model.get(k), v) for k, v in wanted.items() if model.get(k) != v}
        if different:
            raise CheckpointError(f"{path} was made with a different network (saved vs now: {different}); "
                                  f"resume with the original settings")


def read_checkpoint(path: Path) -> dict:
    """A checkpoint (:func:`utils.checkpoint.load_checkpoint`) whose ``model_config`` passed :func:`check_config`."""
    payload = load_checkpoint(path)
    check_config(payload["meta"].get("model_config"), path)
    return payload
