"""Option skills: go-to reaches its target without entering lava; explore sees the whole room."""
import pytest
from conftest import DOOR, KEY, LAVA, room_obs

import envs
from planners.minigrid.mediator import Option, describe
from planners.minigrid.safe_skills import INVALID, SkillContext, drop, explore, go_to, pick_up
from planners.minigrid.navigation import DONE, DROP, FORWARD, LEFT, PICKUP, RIGHT, DistanceFieldCache

DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))


def walk(obs, advise, max_steps=100, through_lava=False):
    """Apply the moves ``advise(obs, scene)`` gives (None: finished) to a hand-made observation; returns
    (final observation, visited cells, final scene). The contents of the agent's cell travel with it, and
    walking into lava fails the test, unless ``through_lava``: then cells keep what they hold."""
    obs = obs.copy()
    visited = []
    for _ in range(max_steps):
        scene = describe(obs)
        action = advise(obs, scene)
        if action is None:
            return obs, visited, scene
        assert action in (LEFT, RIGHT, FORWARD), f"unexpected action {action}"
        (x, y), d = scene.agent_pos, scene.agent_dir
        obs[3, x, y] = 0
        if action == FORWARD:
            nx, ny = x + DIRS[d][0], y + DIRS[d][1]
            if not through_lava:
                assert obs[0, nx, ny] not in (LAVA,), "walked into lava"
                carried = obs[:3, x, y].copy()
                obs[:3, x, y] = (1, 0, 0)
                obs[:3, nx, ny] = carried
            x, y = nx, ny
            visited.append((x, y))
        else:
            d = (d + (1 if action == RIGHT else -1)) % 4
        obs[3, x, y] = d + 1
    raise AssertionError("skill did not finish")


def simulate(obs, skill, target=None, max_steps=100):
    """Apply a safe skill until it reports done; returns (final observation, visited cells, final scene)."""
    paths = DistanceFieldCache()
    return walk(obs, lambda now, scene: skill(SkillContext(now, scene, paths), target), max_steps)


def test_go_to_reaches_and_faces_the_target():
    obs = room_obs(9, 9, agent=(1, 1), direction=0, objects=[(KEY, "yellow", (6, 6), 0)])
    final, _, scene = simulate(obs, go_to, "key")
    (x, y), d = scene.agent_pos, scene.agent_dir
    assert (x + DIRS[d][0], y + DIRS[d][1]) == (6, 6)


def test_go_to_takes_a_shortest_path_around_lava():
    # A lava wall with one gap between the agent and the key.
    lava = [(4, y, ) for y in range(1, 8) if y != 6]
    obs = room_obs(9, 9, agent=(2, 2), direction=0, objects=[(KEY, "yellow", (6, 2), 0)] +
                   [(LAVA, "red", cell, 0) for cell in lava])
    final, visited, scene = simulate(obs, go_to, "key")
    assert not set(visited) & set(lava)
    assert (4, 6) in visited, "the only gap is used"
    # 2->... shortest: down 4 rows, through the gap, up 4 rows: 2 + 4 + 2 + 4 - 1 moves forward at most
    assert len(visited) <= 11


def test_go_to_unseen_object_is_invalid_and_carried_object_is_done():
    obs = room_obs(7, 7, agent=(2, 2))
    ctx = SkillContext(obs, describe(obs), DistanceFieldCache())
    assert go_to(ctx, "key") == INVALID
    obs = room_obs(7, 7, agent=(2, 2), carrying=(KEY, "yellow"))
    ctx = SkillContext(obs, describe(obs), DistanceFieldCache())
    assert go_to(ctx, "key") is None


def test_pick_up_and_drop():
    obs = room_obs(7, 7, agent=(2, 2), direction=0, objects=[(KEY, "yellow", (3, 2), 0)])
    assert pick_up(SkillContext(obs, describe(obs), DistanceFieldCache()), "key") == PICKUP
    held = room_obs(7, 7, agent=(2, 2), direction=0, carrying=(KEY, "yellow"), objects=[(KEY, "red", (4, 4), 0)])
    ctx = SkillContext(held, describe(held, "colored"), DistanceFieldCache())
    assert pick_up(ctx, "red key") == INVALID, "hands are full"
    assert drop(ctx, "yellow key") == DROP
    assert drop(ctx, "red key") is None, "not holding it: nothing to do"


def test_distance_fields_are_cached():
    obs = room_obs(9, 9, agent=(1, 1), objects=[(DOOR, "red", (8, 4), 2)])
    paths = DistanceFieldCache()
    for _ in range(3):
        go_to(SkillContext(obs, describe(obs), paths), "door")
    assert paths.misses == 1 and paths.hits == 2


@pytest.mark.parametrize("task,seed", [("SimpleDoorKey", 0), ("LavaDoorKey", 1), ("ColoredDoorKey", 2),
                                       ("TwoDoor", 3)])
def test_explore_eventually_sees_the_whole_room(task, seed):
    env = envs.make_env(task, max_steps=2000)
    obs, _ = env.reset(seed=seed)
    paths = DistanceFieldCache()
    for step in range(2000):
        action = explore(SkillContext(obs, describe(obs), paths))
        if action is None:
            break
        obs, _, terminated, _, _ = env.step(action)
        assert not terminated, "explore never walks into lava"
    else:
        raise AssertionError("explore never finished")
    inside = _room_cells(env)
    unseen_inside = [c for c in inside if not env.seen[c] and c != tuple(env.agent_pos)]
    assert not unseen_inside, f"explore left {unseen_inside} unseen after {step} steps"


def _room_cells(env):
    """Cells inside the agent's room: flood fill through everything but walls and doors."""
    start = tuple(int(v) for v in env.agent_pos)
    inside, frontier = {start}, [start]
    while frontier:
        x, y = frontier.pop()
        for dx, dy in DIRS:
            cell = (x + dx, y + dy)
            obj = env.grid.get(*cell)
            if cell not in inside and (obj is None or obj.type not in ("wall", "door")):
                inside.add(cell)
                frontier.append(cell)
    return inside


def test_option_results_are_memoised_per_observation():
    obs = room_obs(7, 7, agent=(2, 2), direction=0, objects=[(KEY, "yellow", (3, 2), 0)])
    ctx = SkillContext(obs, describe(obs), DistanceFieldCache())
    option = Option("pick_up", "key")
    assert ctx.run(option) == PICKUP and ctx.run(option) == PICKUP
    assert ctx.run(Option("unknown", "use key")) == INVALID
    assert DONE == 6


def test_advice_does_not_depend_on_the_compass_heading():
    """Symmetric situations (two equally short ways) get the same egocentric advice from every heading."""
    import numpy as np
    # Lava straight ahead with the key behind it, and two unseen cells symmetric on both sides.
    base = room_obs(9, 9, agent=(4, 4), direction=0, objects=[(KEY, "red", (6, 4), 0), (LAVA, "red", (5, 4), 0)],
                    unseen=[(4, 2), (4, 6)])
    advice = []
    for turns in range(4):
        # np.rot90 on [x, y] arrays sends (dx, dy) to (-dy, dx): east becomes south, so the heading turns
        # clockwise with the map (direction index + 1 per quarter turn); the agent stays at the centre.
        obs = np.ascontiguousarray(np.stack([np.rot90(base[c], turns) for c in range(4)]))
        obs[3, 4, 4] = turns % 4 + 1
        scene = describe(obs)
        advice.append((go_to(SkillContext(obs, scene, DistanceFieldCache()), "key"),
                       explore(SkillContext(obs, scene, DistanceFieldCache()))))
    assert len(set(advice)) == 1, advice
    assert advice[0] == (RIGHT, RIGHT), "ties go to the agent's right"


def paper_walk(obs, target):
    """Apply the paper skill set's go-to until it is finished; returns the visited cells (lava allowed)."""
    from planners.minigrid import paper_skills
    paths = paper_skills.StatePathCache()

    def advise(now, scene):
        action = paper_skills.go_to(paper_skills.PaperSkillContext(now, scene, paths), target)
        return None if action == paper_skills.FINISHED else action
    return walk(obs, advise, through_lava=True)[1]


def test_paper_go_to_crosses_lava_when_that_is_shorter_and_safe_never_does():
    lava = [(4, y) for y in range(1, 8) if y != 6]  # a lava wall with one gap, far from the straight line
    obs = room_obs(9, 9, agent=(2, 2), direction=0, objects=[(KEY, "yellow", (6, 2), 0)] +
                   [(LAVA, "red", cell, 0) for cell in lava])
    paper = paper_walk(obs, "key")
    assert (4, 2) in paper and len(paper) == 3, "the published go-to walks straight through the lava"
    _, safe, _ = simulate(obs, go_to, "key")
    assert not set(safe) & set(lava) and len(safe) > len(paper)
