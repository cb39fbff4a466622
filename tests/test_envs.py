"""Tasks: registration, reset/step, the remembered-map observation, rewards and success."""
import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.vector import EnvBatch
from planners.minigrid.family import MiniGridFamily
from planners.minigrid.mediator import parse_plan
from planners.minigrid.scripted import OraclePlanSource
from planners.planner import Planner
from planners.teacher import PlanTeacher

TASKS = {"SimpleDoorKey": ((4, 10, 10), "plain"), "LavaDoorKey": ((4, 10, 10), "plain"),
         "ColoredDoorKey": ((4, 10, 10), "colored"), "TwoDoor": ((4, 20, 20), "numbered")}


@pytest.mark.parametrize("task", TASKS)
def test_reset_and_step_shapes(task):
    env = envs.make_env(task.upper())  # names are case-insensitive
    obs, info = env.reset(seed=3)
    assert obs.shape == TASKS[task][0] and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert (obs[3] > 0).sum() == 1, "exactly one agent cell"
    obs2, reward, terminated, truncated, info = env.step(1)
    assert obs2.shape == obs.shape and reward == 0.0 and "success" in info
    assert gym.spec(envs.get_task(task).env_id) is not None


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(envs.UnknownTaskError, match="SimpleDoorKey"):
        envs.get_task("NoSuchTask")


def test_same_seed_same_layout():
    a, _ = envs.make_env("SimpleDoorKey").reset(seed=11)
    b, _ = envs.make_env("SimpleDoorKey").reset(seed=11)
    c, _ = envs.make_env("SimpleDoorKey").reset(seed=12)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("task", TASKS)
def test_memory_holds_exactly_what_minigrid_showed(task):
    """Every step, the newly seen cells are MiniGrid's own visible cells and the map keeps them (also after
    pick-ups, drops and doors opening or closing, which change what blocks the view)."""
    env = envs.make_env(task)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ever_seen = env.seen.copy()
    assert ever_seen.sum() >= 3, "the first observation already shows the cells in view"
    for _ in range(600):
        obs, _, terminated, truncated, _ = env.step(int(rng.choice(6, p=[0.25, 0.25, 0.3, 0.05, 0.05, 0.1])))
        ever_seen |= _minigrid_visible(env)
        assert np.array_equal(env.seen, ever_seen)
        world = env.grid.encode()[..., 0]
        seen_objects = obs[0][env.seen]
        agent = tuple(env.agent_pos)
        mask = env.seen.copy()
        mask[agent] = False
        assert np.array_equal(obs[0][mask], world[mask]), "remembered cells show the real objects"
        assert (obs[0][~env.seen] == 0).all() and seen_objects.size
        if terminated or truncated:
            env.reset()
            ever_seen = env.seen.copy()


def _minigrid_visible(env) -> np.ndarray:
    """The cells MiniGrid itself says the agent sees now, as a (width, height) mask."""
    _, vis = env.gen_obs_grid()
    f, r, size = np.array(env.dir_vec), np.array(env.right_vec), env.agent_view_size
    top_left = np.array(env.agent_pos) + f * (size - 1) - r * (size // 2)
    visible = np.zeros_like(env.seen)
    for j in range(size):
        for i in range(size):
            x, y = top_left - f * j + r * i
            if vis[i, j] and 0 <= x < env.width and 0 <= y < env.height:
                visible[x, y] = True
    return visible


def test_view_follows_a_door_that_changes_mid_episode():
    """In these tasks opening a door ends the episode, but a cell that changes (as a toggle changes it)
    must change what the agent can see through it from then on."""
    from minigrid.core.world_object import Door, Wall
    env = envs.make_env("SimpleDoorKey")
    env.reset(seed=3)
    front = np.array(env.front_pos)
    door = Door("yellow", is_open=False, is_locked=True)
    for side in (-1, 0, 1):  # a door in a wall across the agent's view
        cell = tuple(int(v) for v in front + side * np.array(env.right_vec))
        env.grid.set(*cell, door if side == 0 else Wall())
        env._encode_world_cell(*cell)
    env.seen[:] = False
    env._update_memory()
    closed = env.seen.copy()
    assert np.array_equal(closed, _minigrid_visible(env)), "a locked door hides the cells behind it"
    door.is_open, door.is_locked = True, False
    env._encode_world_cell(*(int(v) for v in front))
    env._update_memory()
    assert np.array_equal(env.seen, closed | _minigrid_visible(env))
    assert env.seen.sum() > closed.sum(), "the open door lets the agent see past it"


def _solve_with_oracle(task, seed):
    env = envs.make_env(task)
    obs, _ = env.reset(seed=seed)
    teacher = PlanTeacher(Planner(OraclePlanSource(), parse_plan, abstract_color_words=TASKS[task][1] == "colored"),
                          MiniGridFamily(TASKS[task][1], skills="safe"), 1, mode="hard", seed=0)
    for step in range(1, env.max_steps + 1):
        action = int(teacher.action_probs(obs[None])[0].argmax())
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return env, step, reward, terminated, info
    raise AssertionError("episode did not end")


@pytest.mark.parametrize("task", ["SimpleDoorKey", "LavaDoorKey", "ColoredDoorKey"])
def test_opening_the_door_succeeds_with_time_discounted_reward(task):
    env, steps, reward, terminated, info = _solve_with_oracle(task, seed=5)
    assert terminated and info["success"] and env.door.is_open
    assert reward == pytest.approx(1 - 0.9 * steps / env.max_steps)


def test_two_door_either_door_succeeds():
    outcomes = [_solve_with_oracle("TwoDoor", seed) for seed in range(6)]
    successes = [o for o in outcomes if o[4]["success"]]
    assert successes, "the oracle teacher opens a door in at least one of six TwoDoor layouts"
    for env, steps, reward, terminated, info in successes:
        assert sum(door.is_open for door in env.doors) == 1
        assert reward == pytest.approx(1 - 0.9 * steps / env.max_steps)


def test_time_limit_truncates_with_zero_reward():
    env = envs.make_env("SimpleDoorKey", max_steps=5)
    env.reset(seed=0)
    results = [env.step(0) for _ in range(5)]
    assert [r[3] for r in results] == [False] * 4 + [True]
    assert all(r[1] == 0 for r in results) and not results[-1][4]["success"]


def test_lava_ends_the_episode_without_reward():
    env = envs.make_env("LavaDoorKey")
    env.reset(seed=0)
    lava = [(x, y) for x in range(env.width) for y in range(env.height)
            if env.grid.get(x, y) is not None and env.grid.get(x, y).type == "lava"]
    assert len(lava) == 1
    x, y = lava[0]
    for (dx, dy), direction in (((-1, 0), 0), ((1, 0), 2), ((0, -1), 1), ((0, 1), 3)):
        if env.grid.get(x + dx, y + dy) is None:
            env.agent_pos, env.agent_dir = (x + dx, y + dy), direction
            break
    _, reward, terminated, _, info = env.step(2)
    assert terminated and reward == 0 and not info["success"]


def test_colored_door_needs_the_matching_key():
    env = envs.make_env("ColoredDoorKey")
    env.reset(seed=2)
    keys = [env.grid.get(x, y) for x in range(env.width) for y in range(env.height)
            if env.grid.get(x, y) is not None and env.grid.get(x, y).type == "key"]
    assert len(keys) == 2 and len({k.color for k in keys}) == 2
    wrong = next(k for k in keys if k.color != env.door.color)
    env.carrying = wrong
    door_x, door_y = next((x, y) for x in range(env.width) for y in range(env.height)
                          if env.grid.get(x, y) is env.door)
    env.grid.set(*wrong.cur_pos, None)
    for (dx, dy), direction in (((-1, 0), 0), ((1, 0), 2), ((0, -1), 1), ((0, 1), 3)):
        cell = (door_x + dx, door_y + dy)
        if 0 <= cell[0] < env.width and 0 <= cell[1] < env.height and env.grid.get(*cell) is None:
            env.agent_pos, env.agent_dir = cell, direction
            break
    _, reward, terminated, _, info = env.step(5)
    assert not terminated and not info["success"] and env.door.is_locked


def test_env_batch_autoresets_and_reports_episodes():
    batch = EnvBatch([envs.make_env("SimpleDoorKey", max_steps=4) for _ in range(3)], seed=0, frame_stack=2)
    assert batch.obs.shape == (3, 8, 10, 10)
    assert np.array_equal(batch.obs[:, :4], batch.obs[:, 4:]), "a new episode fills every frame slot"
    finished = []
    for _ in range(4):
        obs, rewards, dones, episodes = batch.step(np.zeros(3, dtype=np.int64))
        finished += episodes
    assert dones.all() and len(finished) == 3 and all(e.length == 4 for e in finished)
    assert obs.shape == (3, 8, 10, 10)
