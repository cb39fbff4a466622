"""TwoDoor: a large room with two locked doors on opposite walls and one key near the centre.

Opening either door solves the task. With a 3x3 view, most of the 150 steps go into finding things, which
is what makes this task hard for a teacher whose only search skill is "explore".
"""
from __future__ import annotations

from minigrid.core.constants import COLOR_NAMES
from minigrid.core.world_object import Door, Key

from envs.registry import register_task
from envs.remembered_map import RememberedMapEnv


class TwoDoorEnv(RememberedMapEnv):
    """A ``room_size`` square room; doors on east+west or north+south walls; the key in the central 2x2."""

    def __init__(self, room_size: int = 20, max_steps: int = 150, agent_view_size: int = 3, **kwargs):
        self.room_size = room_size
        self.doors: list[Door] = []
        super().__init__(width=room_size, height=room_size, max_steps=max_steps,
                         agent_view_size=agent_view_size, **kwargs)

    def _gen_grid(self, width: int, height: int) -> None:
        size = self.room_size
        self._draw_room(size, size)
        color = self._rand_elem(COLOR_NAMES)
        first_side = self._rand_int(0, 2)  # 0: east + west, 1: south + north
        self.doors = []
        for side in (first_side, first_side + 2):
            door_pos, _ = self._random_wall_cell(size, size, side)
            door = Door(color, is_locked=True)
            self.grid.set(*door_pos, door)
            self.doors.append(door)
        self.place_obj(Key(color), (size // 2 - 1, size // 2 - 1), (2, 2))
        self.place_agent((0, 0), (size, size), rand_dir=True)

    def _is_success(self) -> bool:
        return any(door.is_open for door in self.doors)


register_task("TwoDoor", "envs.tasks.twodoor:TwoDoorEnv")
