"""MiniGrid rooms whose observation is the top-down map the agent remembers.

The agent sees a small square in front of it (3x3 by default, with the usual MiniGrid occlusion: walls and
closed doors hide what is behind them). Every cell it has ever seen is kept in a map of the whole grid;
cells never seen stay "unseen". The observation is that map as a ``uint8`` array of shape
``(4, width, height)`` indexed ``obs[channel, x, y]``:

* channel 0: object type (MiniGrid ``OBJECT_TO_IDX``; 0 = unseen),
* channel 1: colour (``COLOR_TO_IDX``),
* channel 2: state (``STATE_TO_IDX``: open/closed/locked doors),
* channel 3: agent direction + 1 at the agent's cell, 0 elsewhere.

At the agent's own cell, channels 0-2 show what the agent carries (or "empty"), so "holds <key>" can be read
from the observation alone. The map is updated incrementally: only the cells in view are copied each step.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from minigrid.core.constants import OBJECT_TO_IDX
from minigrid.core.mission import MissionSpace
from minigrid.minigrid_env import MiniGridEnv

OBJECT_CHANNEL, COLOR_CHANNEL, STATE_CHANNEL, AGENT_CHANNEL = 0, 1, 2, 3
NUM_CHANNELS = 4
EMPTY_CELL = (OBJECT_TO_IDX["empty"], 0, 0)
_DIR_VECTORS = ((1, 0), (0, 1), (-1, 0), (0, -1))
_WALL, _DOOR = OBJECT_TO_IDX["wall"], OBJECT_TO_IDX["door"]


def _view_offsets(view_size: int) -> list[list[list[tuple[int, int]]]]:
    """World offsets of the view cells: ``offsets[direction][depth][lateral]`` = (dx, dy).

    ``depth`` counts rows ahead of the agent (0 = the agent's own row); ``lateral`` runs from the agent's
    left (index 0) to its right (index view_size - 1), the agent being in the middle.
    """
    half = view_size // 2
    offsets = []
    for fx, fy in _DIR_VECTORS:
        rx, ry = -fy, fx  # the agent's right-hand side
        offsets.append([[(fx * depth + rx * lat, fy * depth + ry * lat) for lat in range(-half, half + 1)]
                        for depth in range(view_size)])
    return offsets


def _visible_cells(states: tuple[int, ...], size: int) -> list[int]:
    """Which view cells are visible, given each cell's state (0 off grid, 1 opaque, 2 see-through).

    MiniGrid's occlusion rule, row by row away from the agent: a visible see-through cell makes its lateral
    neighbours visible and, one row further, the three cells ahead of it. Cells are indexed
    ``depth * size + lateral`` as in ``_view_offsets``.
    """
    visible_cells = []
    seeds = {size // 2}
    for depth in range(size):
        row = states[depth * size:(depth + 1) * size]
        visible = {lat for lat in seeds if row[lat]}
        for lat in sorted(visible):
            for step in (-1, 1):
                cur = lat
                while row[cur] == 2 and 0 <= cur + step < size and cur + step not in visible and row[cur + step]:
                    cur += step
                    visible.add(cur)
        visible_cells.extend(depth * size + lat for lat in sorted(visible))
        seeds = {n for lat in visible if row[lat] == 2 for n in (lat - 1, lat, lat + 1) if 0 <= n < size}
        if not seeds:
            break
    return visible_cells


def _sight_of(world: np.ndarray) -> np.ndarray:
    """MiniGrid's ``see_behind`` for encoded cells ``(3, W, H)``: walls and closed or locked doors block
    sight (1), everything else lets it through (2)."""
    objects, states = world[OBJECT_CHANNEL], world[STATE_CHANNEL]
    opaque = (objects == _WALL) | ((objects == _DOOR) & (states != 0))
    return np.where(opaque, 1, 2).astype(np.uint8)


class RememberedMapEnv(MiniGridEnv):
    """Base class: a MiniGrid env with a fixed-size remembered-map observation.

    Subclasses implement ``_gen_grid`` (MiniGrid's layout hook) and ``_is_success`` (whether the task was
    achieved after the last action). Success ends the episode with MiniGrid's reward
    ``1 - 0.9 * steps / max_steps``; running out of steps truncates it with reward 0.
    """

    def __init__(self, width: int, height: int, max_steps: int = 150, agent_view_size: int = 3,
                 mission: str = "open the door", **kwargs):
        self._mission_text = mission
        super().__init__(mission_space=MissionSpace(mission_func=lambda: mission), width=width,
                         height=height, max_steps=max_steps, agent_view_size=agent_view_size, **kwargs)
        self.observation_space = spaces.Box(0, 255, shape=(NUM_CHANNELS, width, height), dtype=np.uint8)
        flat_offsets = np.array([[cell for row in rows for cell in row] for rows in _view_offsets(agent_view_size)])
        self._offset_x, self._offset_y = flat_offsets[..., 0], flat_offsets[..., 1]  # (direction, view cell)
        self._half_view = agent_view_size // 2
        self._visibility: dict[bytes, np.ndarray] = {}  # occlusion pattern -> visible view cells (memoised)
        self._world = np.zeros((3, width, height), dtype=np.uint8)
        # Sight of every cell (0 off the grid, 1 blocks sight, 2 lets it through), padded by the view size so
        # that one fancy index reads the whole view; kept in step with _world.
        self._pad = agent_view_size
        self._sight = np.zeros((width + 2 * self._pad, height + 2 * self._pad), dtype=np.uint8)
        self.memory = np.zeros((3, width, height), dtype=np.uint8)
        self.seen = np.zeros((width, height), dtype=bool)

    # -- task hooks -------------------------------------------------------------------------------------
    def _is_success(self) -> bool:
        raise NotImplementedError

    # -- gymnasium API ----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.memory[:] = 0
        self.seen[:] = False
        return super().reset(seed=seed, options=options)

    def step(self, action):
        changes_front_cell = action in (self.actions.pickup, self.actions.drop, self.actions.toggle)
        front = self.front_pos
        obs, reward, terminated, truncated, info = super().step(action)
        if changes_front_cell:
            self._encode_world_cell(int(front[0]), int(front[1]))
            self._update_memory()
            obs = self._observation()
        success = self._is_success()
        if success:
            reward, terminated = self._reward(), True
        info["success"] = success
        return obs, float(reward), terminated, truncated, info

    # -- observation ------------------------------------------------------------------------------------
    def gen_obs(self):
        """Called by MiniGrid after reset and after every step; returns the remembered map."""
        if self.step_count == 0:
            self._world[:] = self.grid.encode()[..., :3].transpose(2, 0, 1)
            inside = self._sight[self._pad:self._pad + self.width, self._pad:self._pad + self.height]
            inside[:] = _sight_of(self._world)
        self._update_memory()
        return self._observation()

    def _encode_world_cell(self, x: int, y: int) -> None:
        cell = self.grid.get(x, y)
        self._world[:, x, y] = cell.encode() if cell is not None else EMPTY_CELL
        self._sight[x + self._pad, y + self._pad] = _sight_of(self._world[:, x:x + 1, y:y + 1])[0, 0]

    def _update_memory(self) -> None:
        """Copy the cells the agent sees now from the world into the remembered map."""
        ax, ay = self.agent_pos
        offset_x, offset_y = self._offset_x[self.agent_dir], self._offset_y[self.agent_dir]
        pattern = self._sight[offset_x + (ax + self._pad), offset_y + (ay + self._pad)]
        pattern[self._half_view] = 2  # the agent's own cell never blocks its view
        key = pattern.tobytes()
        visible = self._visibility.get(key)
        if visible is None:
            visible = self._visibility[key] = np.array(_visible_cells(tuple(pattern.tolist()), self.agent_view_size))
        xs, ys = offset_x[visible] + ax, offset_y[visible] + ay
        self.memory[:, xs, ys] = self._world[:, xs, ys]
        self.seen[xs, ys] = True

    def _observation(self) -> np.ndarray:
        obs = np.empty((NUM_CHANNELS, self.width, self.height), dtype=np.uint8)
        obs[:3] = self.memory
        obs[AGENT_CHANNEL] = 0
        ax, ay = self.agent_pos
        obs[:3, ax, ay] = self.carrying.encode() if self.carrying is not None else EMPTY_CELL
        obs[AGENT_CHANNEL, ax, ay] = self.agent_dir + 1
        return obs

    # -- helpers for subclasses -------------------------------------------------------------------------
    def _draw_room(self, size_x: int, size_y: int) -> None:
        """Walls around the rectangle (0, 0)-(size_x - 1, size_y - 1); the rest of the grid stays empty."""
        from minigrid.core.grid import Grid
        self.grid = Grid(self.width, self.height)
        self.grid.wall_rect(0, 0, size_x, size_y)

    def _random_wall_cell(self, size_x: int, size_y: int, side: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """A random non-corner cell on wall ``side`` (0 east, 1 south, 2 west, 3 north) and the floor cell
        just inside it."""
        if side in (0, 2):
            y = self._rand_int(1, size_y - 1)
            x = size_x - 1 if side == 0 else 0
            return (x, y), (x - 1 if side == 0 else 1, y)
        x = self._rand_int(1, size_x - 1)
        y = size_y - 1 if side == 1 else 0
        return (x, y), (x, y - 1 if side == 1 else 1)
