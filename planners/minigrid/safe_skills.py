"""Option skills for the MiniGrid rooms: explore, go to, pick up, drop, open.

Each skill looks at the current observation only (no hidden state) and answers with one of:

* a primitive action (``LEFT`` .. ``DONE`` from :mod:`navigation`),
* ``None``: the option's goal already holds, the plan moves on to its next option,
* ``INVALID``: the option cannot be carried out here (its object was never seen, hands are full, no path).

Pick up and open approach their object first, so ``pick up <key>`` alone works as an LLM would mean it.
"""
from __future__ import annotations

import numpy as np

from envs.remembered_map import OBJECT_CHANNEL
from planners.minigrid.mediator import Option, Scene, door_is_open
from planners.minigrid.navigation import (DIR_VECTORS, DROP, EMPTY, FORWARD, PICKUP, RELATIVE_PREFERENCE, TOGGLE,
                                        UNREACHABLE, UNSEEN, DistanceFieldCache, nearest_frontier_step,
                                        step_along, turn_towards, walkable_mask)

INVALID = -1


class SkillContext:
    """One observation plus the lazily computed maps the skills share while it is current."""

    def __init__(self, obs: np.ndarray, scene: Scene, paths: DistanceFieldCache):
        self.obs = obs
        self.scene = scene
        self.paths = paths
        self.width, self.height = obs.shape[1:]
        self._walkable: dict[bool, np.ndarray] = {}
        self._results: dict[Option, int | None] = {}

    def walkable(self, include_unseen: bool = False) -> np.ndarray:
        if include_unseen not in self._walkable:
            self._walkable[include_unseen] = walkable_mask(self.obs, self.scene.agent_pos, include_unseen)
        return self._walkable[include_unseen]

    def run(self, option: Option) -> int | None:
        """Result of ``option`` here (memoised: several plans of a soft teacher share options)."""
        if option not in self._results:
            self._results[option] = SKILLS.get(option.skill, _unknown)(self, option.target)
        return self._results[option]


def explore(ctx: SkillContext, _target=None) -> int | None:
    """Walk to the nearest cell next to an unseen one and look at it; None once nothing reachable is unseen."""
    unseen = ctx.obs[OBJECT_CHANNEL] == UNSEEN
    next_to_unseen = np.zeros_like(unseen)
    next_to_unseen[:-1] |= unseen[1:]
    next_to_unseen[1:] |= unseen[:-1]
    next_to_unseen[:, :-1] |= unseen[:, 1:]
    next_to_unseen[:, 1:] |= unseen[:, :-1]
    walkable = ctx.walkable()
    frontier = walkable & next_to_unseen
    if not frontier.any():
        return None
    pos, agent_dir = ctx.scene.agent_pos, ctx.scene.agent_dir
    dist, move = nearest_frontier_step(walkable, frontier, pos, agent_dir)
    if dist >= UNREACHABLE:
        return None
    if dist > 0:
        return FORWARD if move == agent_dir else turn_towards(agent_dir, move)
    # Standing on the frontier: turn to the unseen neighbour (sideways before behind).
    x, y = pos
    unseen_dirs = [d for d, (dx, dy) in enumerate(DIR_VECTORS)
                   if 0 <= x + dx < ctx.width and 0 <= y + dy < ctx.height and unseen[x + dx, y + dy]]
    unseen_dirs.sort(key=lambda d: RELATIVE_PREFERENCE[(d - agent_dir) % 4])
    return turn_towards(agent_dir, unseen_dirs[0])


def go_to(ctx: SkillContext, target: str) -> int | None:
    """Walk next to ``target`` and face it, by a shortest path that never enters lava."""
    scene = ctx.scene
    if target == scene.carrying:
        return None
    if target not in scene.objects:
        return INVALID
    tx, ty = scene.objects[target]
    x, y = scene.agent_pos
    dx, dy = DIR_VECTORS[scene.agent_dir]
    if (x + dx, y + dy) == (tx, ty):
        return None
    for include_unseen in (False, True):
        walkable = ctx.walkable(include_unseen)
        goals = tuple((tx + gx) * ctx.height + ty + gy for gx, gy in DIR_VECTORS
                      if 0 <= tx + gx < ctx.width and 0 <= ty + gy < ctx.height and walkable[tx + gx, ty + gy])
        dist = ctx.paths.get(walkable, goals)
        here = dist[x * ctx.height + y]
        if here == 0:
            facing = next(d for d, (gx, gy) in enumerate(DIR_VECTORS) if (x + gx, y + gy) == (tx, ty))
            return turn_towards(scene.agent_dir, facing)
        if here < UNREACHABLE:
            return step_along(dist, scene.agent_pos, scene.agent_dir, ctx.width, ctx.height)
    return INVALID


def _facing(ctx: SkillContext, target: str) -> bool:
    x, y = ctx.scene.agent_pos
    dx, dy = DIR_VECTORS[ctx.scene.agent_dir]
    return ctx.scene.objects.get(target) == (x + dx, y + dy)


def pick_up(ctx: SkillContext, target: str) -> int | None:
    """Approach ``target`` and pick it up; invalid while holding something else."""
    scene = ctx.scene
    if target == scene.carrying:
        return None
    if target not in scene.objects or scene.carrying is not None:
        return INVALID
    return PICKUP if _facing(ctx, target) else go_to(ctx, target)


def drop(ctx: SkillContext, target: str) -> int | None:
    """Put the carried ``target`` down on the free cell ahead, turning until there is one."""
    scene = ctx.scene
    if target != scene.carrying:
        return None
    x, y = scene.agent_pos
    dx, dy = DIR_VECTORS[scene.agent_dir]
    fx, fy = x + dx, y + dy
    if 0 <= fx < ctx.width and 0 <= fy < ctx.height and ctx.obs[OBJECT_CHANNEL, fx, fy] == EMPTY:
        return DROP
    return turn_towards(scene.agent_dir, (scene.agent_dir + 1) % 4)


def open_door(ctx: SkillContext, target: str) -> int | None:
    """Approach the door ``target`` and toggle it; done once the map shows it open."""
    scene = ctx.scene
    if target not in scene.objects or not target.split()[-1].startswith("door"):
        return INVALID
    if door_is_open(ctx.obs, scene.objects[target]):
        return None
    return TOGGLE if _facing(ctx, target) else go_to(ctx, target)


def _unknown(ctx: SkillContext, target) -> int:
    return INVALID


SKILLS = {"explore": explore, "go_to": go_to, "pick_up": pick_up, "drop": drop, "open": open_door}
