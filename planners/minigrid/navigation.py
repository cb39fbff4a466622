"""Grid navigation for the option skills: which cells can be walked, shortest paths, turning.

Cells are addressed by flat index ``x * height + y`` (the observation's ``[x, y]`` order). Breadth-first
search runs on plain Python lists, which beats numpy for grids this small; distance fields towards a target
are cached by (walkable map, goal cells), so an agent walking to a key computes its path once, not per step.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from functools import lru_cache

import numpy as np
from minigrid.core.constants import OBJECT_TO_IDX

from envs.remembered_map import OBJECT_CHANNEL, STATE_CHANNEL

LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
DIR_VECTORS = ((1, 0), (0, 1), (-1, 0), (0, -1))
UNSEEN, EMPTY, FLOOR, DOOR, GOAL = (OBJECT_TO_IDX[n] for n in ("unseen", "empty", "floor", "door", "goal"))
UNREACHABLE = 1 << 30


@lru_cache(maxsize=16)
def neighbour_table(width: int, height: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """For each flat cell, its in-grid 4-neighbours as (flat index, direction from the cell to it)."""
    table = []
    for x in range(width):
        for y in range(height):
            table.append(tuple(((x + dx) * height + (y + dy), d) for d, (dx, dy) in enumerate(DIR_VECTORS)
                               if 0 <= x + dx < width and 0 <= y + dy < height))
    return tuple(table)


# Preference among equally good moves, by direction relative to the agent: ahead, right, left, behind.
# Ties are broken in the agent's own frame, never by compass direction, so the same situation seen from
# another heading gets the same advice (an egocentric student can then imitate it exactly).
RELATIVE_PREFERENCE = {0: 0, 1: 1, 3: 2, 2: 3}


@lru_cache(maxsize=64)
def heading_neighbour_table(width: int, height: int, agent_dir: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """:func:`neighbour_table` with each cell's neighbours ordered ahead, right, left, behind for ``agent_dir``."""
    return tuple(tuple(sorted(cell, key=lambda n: RELATIVE_PREFERENCE[(n[1] - agent_dir) % 4]))
                 for cell in neighbour_table(width, height))


def walkable_mask(obs: np.ndarray, agent_pos: tuple[int, int], include_unseen: bool = False) -> np.ndarray:
    """Cells the agent may step on: known empty floor, goals and open doors (never lava, walls, objects).

    With ``include_unseen`` unseen cells count as walkable too; this is safe because the cell in front of
    the agent is always in view, so an unseen cell is seen (and avoided if it is lava) before it is entered.
    """
    objects = obs[OBJECT_CHANNEL]
    mask = (objects == EMPTY) | (objects == FLOOR) | (objects == GOAL) | ((objects == DOOR) & (obs[STATE_CHANNEL] == 0))
    if include_unseen:
        mask |= objects == UNSEEN
    mask[agent_pos] = True
    return mask


def distance_field(walkable: list[bool], goals: list[int], width: int, height: int) -> list[int]:
    """Number of moves from every cell to the nearest goal cell through walkable cells (BFS)."""
    neighbours = neighbour_table(width, height)
    dist = [UNREACHABLE] * (width * height)
    queue = deque()
    for g in goals:
        if walkable[g]:
            dist[g] = 0
            queue.append(g)
    while queue:
        cell = queue.popleft()
        next_dist = dist[cell] + 1
        for other, _ in neighbours[cell]:
            if walkable[other] and dist[other] == UNREACHABLE:
                dist[other] = next_dist
                queue.append(other)
    return dist


def turn_towards(agent_dir: int, wanted_dir: int) -> int | None:
    """The turn that brings ``agent_dir`` closer to ``wanted_dir`` (left when it is behind); None if facing it."""
    diff = (wanted_dir - agent_dir) % 4
    if diff == 0:
        return None
    return RIGHT if diff == 1 else LEFT


def step_along(dist: list[int], pos: tuple[int, int], agent_dir: int, width: int, height: int) -> int | None:
    """First action of a shortest path down ``dist`` from ``pos``; None if unreachable or already at a goal.

    Among equally short continuations: ahead, then right, then left, then behind.
    """
    cell = pos[0] * height + pos[1]
    here = dist[cell]
    if here == 0 or here >= UNREACHABLE:
        return None
    for other, direction in heading_neighbour_table(width, height, agent_dir)[cell]:
        if dist[other] == here - 1:
            return FORWARD if direction == agent_dir else turn_towards(agent_dir, direction)
    return None


class DistanceFieldCache:
    """A bounded LRU of distance fields keyed by (walkable map bytes, goal cells)."""

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, walkable: np.ndarray, goals: tuple[int, ...]) -> list[int]:
        key = (walkable.tobytes(), walkable.shape, goals)
        field = self._entries.get(key)
        if field is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return field
        self.misses += 1
        width, height = walkable.shape
        field = distance_field(walkable.ravel().tolist(), list(goals), width, height)
        self._entries[key] = field
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return field


def nearest_frontier_step(walkable: np.ndarray, frontier: np.ndarray, pos: tuple[int, int],
                          agent_dir: int) -> tuple[int, int | None]:
    """BFS from the agent to the nearest frontier cell; returns (distance, first move direction or None).

    A frontier cell is a walkable cell next to an unseen one. Neighbours are expanded ahead, right, left,
    behind (relative to the agent), so ties between equally near frontiers and equally short paths are
    broken the same way whatever the agent's compass heading. Distance is UNREACHABLE when no frontier cell
    can be reached.
    """
    width, height = walkable.shape
    neighbours = heading_neighbour_table(width, height, agent_dir)
    walk = walkable.ravel().tolist()
    front = frontier.ravel().tolist()
    start = pos[0] * height + pos[1]
    if front[start]:
        return 0, None
    first_move = {start: None}
    queue = deque([(start, 0)])
    while queue:
        cell, dist = queue.popleft()
        for other, direction in neighbours[cell]:
            if other in first_move or not walk[other]:
                continue
            first_move[other] = direction if cell == start else first_move[cell]
            if front[other]:
                return dist + 1, first_move[other]
            queue.append((other, dist + 1))
    return UNREACHABLE, None
