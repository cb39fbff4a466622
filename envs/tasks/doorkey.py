"""Door-and-key rooms: SimpleDoorKey, LavaDoorKey and ColoredDoorKey.

One rectangular room of random size (``min_room_size``..``max_room_size`` cells per side, walls included)
in the top-left corner of a ``max_room_size`` square grid. A locked door sits on a random wall; its key lies
somewhere inside. The task is solved when the door is opened (toggle while holding the matching key).
"""
from __future__ import annotations

from collections import deque

from minigrid.core.constants import COLOR_NAMES
from minigrid.core.world_object import Door, Key, Lava

from envs.registry import register_task
from envs.remembered_map import RememberedMapEnv


class DoorKeyRoomEnv(RememberedMapEnv):
    """A room with one locked door and its key; optional lava cells and a distractor key of another colour.

    Args:
        min_room_size, max_room_size: room side length range, walls included.
        num_lava: lava cells placed inside (never in front of the door; the layout stays solvable).
        num_distractor_keys: extra keys whose colour differs from the door's.
        door_color: the door's (and its key's) colour; random when None.
        distractor_color: the extra keys' colour; a random other colour when None.
        max_steps: episode length limit.
        agent_view_size: side of the square the agent sees (odd).
    """

    def __init__(self, min_room_size: int = 5, max_room_size: int = 10, num_lava: int = 0,
                 num_distractor_keys: int = 0, door_color: str | None = None, distractor_color: str | None = None,
                 max_steps: int = 150, agent_view_size: int = 3, **kwargs):
        if door_color is not None and door_color == distractor_color:
            raise ValueError("the distractor keys must not have the door's colour")
        self.door_color, self.distractor_color = door_color, distractor_color
        self.min_room_size = min_room_size
        self.max_room_size = max_room_size
        self.num_lava = num_lava
        self.num_distractor_keys = num_distractor_keys
        self.door: Door | None = None
        super().__init__(width=max_room_size, height=max_room_size, max_steps=max_steps,
                         agent_view_size=agent_view_size, **kwargs)

    def _gen_grid(self, width: int, height: int) -> None:
        while True:
            size_x = self._rand_int(self.min_room_size, self.max_room_size + 1)
            size_y = self._rand_int(self.min_room_size, self.max_room_size + 1)
            self._draw_room(size_x, size_y)
            door_pos, door_front = self._random_wall_cell(size_x, size_y, self._rand_int(0, 4))
            door_color = self.door_color or self._rand_elem(COLOR_NAMES)
            self.door = Door(door_color, is_locked=True)
            self.grid.set(*door_pos, self.door)

            def keep_door_front_free(_env, pos):
                return tuple(pos) == door_front

            self.place_agent((0, 0), (size_x, size_y), rand_dir=True)
            self.place_obj(Key(door_color), (0, 0), (size_x, size_y), reject_fn=keep_door_front_free)
            other_colors = [c for c in COLOR_NAMES if c != door_color]
            for _ in range(self.num_distractor_keys):
                color = self.distractor_color or self._rand_elem(other_colors)
                self.place_obj(Key(color), (0, 0), (size_x, size_y), reject_fn=keep_door_front_free)
            for _ in range(self.num_lava):
                self.place_obj(Lava(), (0, 0), (size_x, size_y), reject_fn=keep_door_front_free)
            if self._solvable(door_front):
                return

    def _solvable(self, door_front: tuple[int, int]) -> bool:
        """Every key and the door's front cell can be reached (or faced) without stepping on lava."""
        start = tuple(self.agent_pos)
        reached = {start}
        queue = deque([start])
        keys_adjacent = set()
        while queue:
            x, y = queue.popleft()
            for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                cell = self.grid.get(nx, ny)
                if cell is not None and cell.type == "key":
                    keys_adjacent.add((nx, ny))
                if (nx, ny) not in reached and cell is None:
                    reached.add((nx, ny))
                    queue.append((nx, ny))
        num_keys = 1 + self.num_distractor_keys
        return door_front in reached and len(keys_adjacent) == num_keys

    def _is_success(self) -> bool:
        return self.door.is_open


register_task("SimpleDoorKey", "envs.tasks.doorkey:DoorKeyRoomEnv")
register_task("LavaDoorKey", "envs.tasks.doorkey:DoorKeyRoomEnv", num_lava=1)
# As in the paper's environment: a blue door, its blue key and a red key that does not open it.
register_task("ColoredDoorKey", "envs.tasks.doorkey:DoorKeyRoomEnv", num_distractor_keys=1, door_color="blue",
              distractor_color="red")
# Harder variant (not in the paper): random colours, so the student must match key and door colours.
register_task("ColoredDoorKeyRandom", "envs.tasks.doorkey:DoorKeyRoomEnv", num_distractor_keys=1)
