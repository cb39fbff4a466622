"""Option skills that behave like the ones published with the paper's code (``--skills paper``).

Written from a reading of how the published skills behave, to reproduce the paper's imperfect teacher
(its LavaDoorKey and TwoDoor teachers fail often). What differs from :mod:`planners.minigrid.safe_skills`:

* ``explore`` is greedy and memoryless: it steps forward while unseen cells lie beyond its view ahead
  (anywhere across the room, within the room's known walls), else turns towards a side (left, then right,
  then behind) that still has unseen cells. It turns away from a key, ball or box right in front of it, but
  walks into lava. No path planning, no frontier.
* ``go to`` plans a shortest sequence of actions (turns count) to the cell next to the object, facing it,
  through known empty cells, open doors **and lava**; never through unseen cells. No path: the no-op
  ``done`` action.
* ``pick up``, ``drop`` and ``open`` emit their action at once, wherever the agent stands and whatever it
  faces (the plan's ``go to`` is what brings the agent there).
* an option whose object is not in sight (or carried), or that names no known skill, emits ``done``.
* a plan runs its first option that still has something to do; ``explore`` and ``go to`` are passed over
  once they are finished, the action skills never are; a plan that runs out emits ``done``.

Each skill returns an action, :data:`FINISHED` (go on with the plan's next option) or :data:`CANNOT_RUN`.
"""
from __future__ import annotations

from collections import OrderedDict, deque

import numpy as np
from minigrid.core.constants import OBJECT_TO_IDX

from envs.remembered_map import OBJECT_CHANNEL, STATE_CHANNEL
from planners.minigrid.mediator import Option, Scene
from planners.minigrid.navigation import DIR_VECTORS, DONE, DROP, FORWARD, LEFT, PICKUP, RIGHT, TOGGLE, UNSEEN

FINISHED = -1
CANNOT_RUN = -2
VIEW_SIZE = 3  # the tasks' view; explore looks beyond it

_WALL, _DOOR, _KEY, _BALL, _BOX = (OBJECT_TO_IDX[n] for n in ("wall", "door", "key", "ball", "box"))
_PASSABLE = tuple(OBJECT_TO_IDX[n] for n in ("empty", "goal", "lava"))
_PORTABLE = (_KEY, _BALL, _BOX)
_UNREACHED = 1 << 30


class PaperSkillContext:
    """One observation plus what the skills compute from it (memoised per option)."""

    def __init__(self, obs: np.ndarray, scene: Scene, paths: "StatePathCache"):
        self.obs, self.scene, self.paths = obs, scene, paths
        self.objects = obs[OBJECT_CHANNEL]
        self.width, self.height = self.objects.shape
        self._results: dict[Option, int] = {}

    def run(self, option: Option) -> int:
        if option not in self._results:
            self._results[option] = SKILLS.get(option.skill, _cannot_run)(self, option.target)
        return self._results[option]

    def cell(self, x: int, y: int) -> int:
        """Object code at (x, y); cells off the grid read as walls."""
        return int(self.objects[x, y]) if 0 <= x < self.width and 0 <= y < self.height else _WALL


def plan_action(plan: tuple[Option, ...], ctx: PaperSkillContext) -> tuple[int, bool]:
    """(action, runnable) for ``plan``: the first option with something to do decides."""
    for option in plan:
        result = ctx.run(option)
        if result == FINISHED:
            continue
        if result == CANNOT_RUN:
            return DONE, False
        return result, True
    return DONE, True


# -- explore --------------------------------------------------------------------------------------------
def room_extent(objects: np.ndarray) -> tuple[int, int]:
    """Exclusive (x, y) extent of the room, read off the walls seen so far; the grid's size until then.

    The room's far walls are found as the first wall (or door) cells, scanning columns then rows inside
    the grid's border, that continue downwards (the east wall) or rightwards (the south wall).
    """
    width, height = objects.shape
    solid = (objects == _WALL) | (objects == _DOOR)
    extent_x, extent_y = width, height
    for flat in np.flatnonzero(solid[1:width - 1, 1:height - 1]):
        i, j = divmod(int(flat), height - 2)
        i, j = i + 1, j + 1
        if extent_x == width and solid[i, j + 1]:
            extent_x = i + 1
        elif extent_y == height and solid[i + 1, j]:
            extent_y = j + 1
        if extent_x != width and extent_y != height:
            break
    return extent_x, extent_y


def _unseen_beyond_view(objects: np.ndarray, extent: tuple[int, int], direction: int, pos: tuple[int, int]) -> bool:
    """Whether the part of the room beyond the view's side edge, towards ``direction``, has unseen cells."""
    (x, y), (extent_x, extent_y), half = pos, extent, VIEW_SIZE // 2
    if direction == 0:
        strip = objects[x + half + 1:extent_x, :extent_y]
    elif direction == 1:
        strip = objects[:extent_x, y + half + 1:extent_y]
    elif direction == 2:
        strip = objects[:max(x - half, 0), :extent_y]
    else:
        strip = objects[:extent_x, :max(y - half, 0)]
    return bool((strip == UNSEEN).any())


def explore(ctx: PaperSkillContext, _target=None) -> int:
    """Greedy exploration (see the module docstring); FINISHED when no unseen cell is left to look at."""
    (x, y), heading = ctx.scene.agent_pos, ctx.scene.agent_dir
    dx, dy = DIR_VECTORS[heading]
    if ctx.cell(x + dx, y + dy) in _PORTABLE:  # step around an object ahead
        lx, ly = DIR_VECTORS[(heading - 1) % 4]
        return RIGHT if ctx.cell(x + lx, y + ly) in (_WALL, _DOOR) + _PORTABLE else LEFT
    extent = room_extent(ctx.objects)
    for turn, action in ((0, FORWARD), (3, LEFT), (1, RIGHT)):
        if _unseen_beyond_view(ctx.objects, extent, (heading + turn) % 4, (x, y)):
            return action
    if _unseen_beyond_view(ctx.objects, extent, (heading + 2) % 4, (x + dx, y + dy)):
        return LEFT
    return FINISHED


# -- go to ----------------------------------------------------------------------------------------------
def passable_mask(obs: np.ndarray, agent_pos: tuple[int, int]) -> np.ndarray:
    """Cells go-to may enter: known empty cells, goals, lava and open doors (the agent's own cell too)."""
    objects = obs[OBJECT_CHANNEL]
    mask = np.isin(objects, _PASSABLE) | ((objects == _DOOR) & (obs[STATE_CHANNEL] == 0))
    mask[agent_pos] = True  # the agent stands on floor even when the map shows what it carries there
    return mask


def _facing_states(target: tuple[int, int], width: int, height: int) -> list[tuple[int, int, int]]:
    """(x, y, heading) of the agent next to ``target`` and facing it."""
    tx, ty = target
    states = []
    for heading, (dx, dy) in enumerate(DIR_VECTORS):
        x, y = tx - dx, ty - dy
        if 0 <= x < width and 0 <= y < height:
            states.append((x, y, heading))
    return states


def action_distances(passable: np.ndarray, target: tuple[int, int]) -> list[int]:
    """Fewest actions (turns and steps) from every (x, y, heading) to a state facing ``target``.

    A backward breadth-first search; state (x, y, h) has flat index ``(x * height + y) * 4 + h``.
    """
    width, height = passable.shape
    walk = passable.ravel().tolist()
    dist = [_UNREACHED] * (width * height * 4)
    queue = deque()
    for x, y, heading in _facing_states(target, width, height):
        if walk[x * height + y]:
            state = (x * height + y) * 4 + heading
            dist[state] = 0
            queue.append(state)
    steps = [dx * height + dy for dx, dy in DIR_VECTORS]
    while queue:
        state = queue.popleft()
        cell, heading = divmod(state, 4)
        nxt = dist[state] + 1
        # Turning into this heading from either neighbour heading.
        for other in (cell * 4 + (heading + 1) % 4, cell * 4 + (heading - 1) % 4):
            if dist[other] == _UNREACHED:
                dist[other] = nxt
                queue.append(other)
        # Stepping forward into this cell from the cell behind it.
        behind = cell - steps[heading]
        x, y = divmod(cell, height)
        bx, by = x - DIR_VECTORS[heading][0], y - DIR_VECTORS[heading][1]
        if 0 <= bx < width and 0 <= by < height and walk[behind]:
            other = behind * 4 + heading
            if dist[other] == _UNREACHED:
                dist[other] = nxt
                queue.append(other)
    return dist


class StatePathCache:
    """A bounded LRU of :func:`action_distances` keyed by (passable map, target)."""

    def __init__(self, max_entries: int = 2048):
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()

    def get(self, passable: np.ndarray, target: tuple[int, int]) -> list[int]:
        key = (passable.tobytes(), passable.shape, target)
        dist = self._entries.get(key)
        if dist is None:
            dist = self._entries[key] = action_distances(passable, target)
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return dist


def go_to(ctx: PaperSkillContext, target: str) -> int:
    """Turn or step along a shortest action sequence to face ``target``; FINISHED when facing it."""
    scene = ctx.scene
    if target not in scene.objects:
        return CANNOT_RUN
    (x, y), heading = scene.agent_pos, scene.agent_dir
    goal = scene.objects[target]
    if (x, y, heading) in _facing_states(goal, ctx.width, ctx.height):
        return FINISHED
    passable = passable_mask(ctx.obs, scene.agent_pos)
    dist = ctx.paths.get(passable, goal)
    height = ctx.height
    here = dist[(x * height + y) * 4 + heading]
    if here >= _UNREACHED:
        return CANNOT_RUN
    dx, dy = DIR_VECTORS[heading]
    fx, fy = x + dx, y + dy
    if 0 <= fx < ctx.width and 0 <= fy < height and passable[fx, fy] and dist[(fx * height + fy) * 4 + heading] == here - 1:
        return FORWARD
    cell = x * height + y
    return LEFT if dist[cell * 4 + (heading - 1) % 4] == here - 1 else RIGHT


# -- the action skills ----------------------------------------------------------------------------------
def _known(ctx: PaperSkillContext, target: str) -> bool:
    return target in ctx.scene.objects or target == ctx.scene.carrying


def pick_up(ctx: PaperSkillContext, target: str) -> int:
    return PICKUP if _known(ctx, target) else CANNOT_RUN


def drop(ctx: PaperSkillContext, target: str) -> int:
    return DROP if _known(ctx, target) else CANNOT_RUN


def open_door(ctx: PaperSkillContext, target: str) -> int:
    return TOGGLE if _known(ctx, target) else CANNOT_RUN


def _cannot_run(ctx: PaperSkillContext, target) -> int:
    return CANNOT_RUN


SKILLS = {"explore": explore, "go_to": go_to, "pick_up": pick_up, "drop": drop, "open": open_door}
