"""Teacher distributions: always sum to 1; soft mixes plans, hard commits to one per sentence."""
import numpy as np
import pytest
from conftest import DOOR, KEY, room_obs

import envs
from envs.vector import EnvBatch
from planners.planner import Planner
from planners.skills.navigation import FORWARD, LEFT, PICKUP, RIGHT
from planners.sources import OraclePlanSource, RecordedPlanSource
from planners.teacher import Teacher, no_advice

TASKS = {"SimpleDoorKey": ("plain", "simpledoorkey"), "LavaDoorKey": ("plain", "simpledoorkey"),
         "ColoredDoorKey": ("colored", "coloreddoorkey"), "TwoDoor": ("numbered", "twodoor")}


class FixedSource:
    """A plan source with a fixed answer for every sentence (a test double)."""

    name = "fixed"

    def __init__(self, plans):
        self.plans = plans
        self.asked = []

    def plan_distribution(self, sentence):
        self.asked.append(sentence)
        return self.plans


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_distributions_sum_to_one_on_real_rollouts(task, mode):
    naming, table = TASKS[task]
    teacher = Teacher(Planner(RecordedPlanSource(table), naming == "colored"), naming, 4, mode=mode, seed=0)
    batch = EnvBatch([envs.make_env(task) for _ in range(4)], seed=1)
    rng = np.random.default_rng(0)
    obs = batch.obs.copy()
    for _ in range(150):
        probs = teacher.action_probs(obs)
        assert probs.shape == (4, 7) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        assert (probs >= 0).all()
        if mode == "hard":
            assert ((probs == 1.0).sum(1) + (np.isclose(probs, 1 / 3).sum(1) == 3)).all(), "one-hot or no advice"
        actions = [rng.choice(7, p=p / p.sum()) if rng.random() < 0.8 else rng.integers(0, 7) for p in probs]
        obs, _, _, finished = batch.step(np.array(actions))
        for episode in finished:
            teacher.reset(episode.env_index)


def test_soft_mixes_plans_by_probability_and_hard_picks_one():
    # Key straight ahead but not adjacent: "go to" says forward, "pick up" (approaching) too; explore turns.
    obs = room_obs(9, 9, agent=(2, 4), direction=0, objects=[(KEY, "red", (3, 4), 0)], unseen=[(1, 4)])
    plans = [("pick up <key>", 0.7), ("explore", 0.3)]
    soft = Teacher(Planner(FixedSource(plans)), "plain", 1, mode="soft").action_probs(obs[None])[0]
    assert soft[PICKUP] == pytest.approx(0.7) and soft[[LEFT, RIGHT]].sum() == pytest.approx(0.3)
    picks = []
    for seed in range(200):
        hard = Teacher(Planner(FixedSource(plans)), "plain", 1, mode="hard", seed=seed).action_probs(obs[None])[0]
        assert sorted(hard.tolist())[-1] == 1.0
        picks.append(hard[PICKUP] == 1.0)
    assert 0.6 < np.mean(picks) < 0.8, "the hard teacher samples plans with their probabilities"


def test_hard_teacher_keeps_its_plan_until_the_sentence_changes():
    obs = room_obs(9, 9, agent=(2, 4), direction=0, objects=[(KEY, "red", (6, 4), 0)], unseen=[(1, 4)])
    teacher = Teacher(Planner(FixedSource([("go to <key>", 0.5), ("explore", 0.5)])), "plain", 1, mode="hard",
                      seed=3)
    first = teacher.action_probs(obs[None])[0].argmax()
    assert all(teacher.action_probs(obs[None])[0].argmax() == first for _ in range(20))
    teacher.reset(0)  # a new episode forgets the commitment
    assert teacher._committed[0] is None


def test_unanswered_sentence_falls_back_to_explore_and_is_counted():
    obs = room_obs(9, 9, agent=(2, 4), direction=0, objects=[(KEY, "red", (6, 4), 0), (DOOR, "red", (8, 2), 2)])
    recorded = RecordedPlanSource("twodoor")  # knows "<door1>", never "<door>"
    teacher = Teacher(Planner(recorded), "plain", 1, mode="hard")
    probs = teacher.action_probs(obs[None])[0]
    assert probs.sum() == pytest.approx(1.0)
    teacher.action_probs(obs[None])  # same decision: the committed plan is reused
    teacher.reset(0)
    teacher.action_probs(obs[None])  # a new episode: a new decision that falls back again
    assert teacher.planner.unanswered_sentences == {"Agent sees <key>, <door>, holds <nothing>.": 2}
    assert teacher.planner.fallback_count == 2


def test_invalid_option_explores_and_nothing_left_gives_no_advice():
    seen_all = room_obs(7, 7, agent=(2, 2), direction=0)
    teacher = Teacher(Planner(FixedSource([("go to <door>, open <door>", 1.0)])), "plain", 1, mode="soft")
    np.testing.assert_allclose(teacher.action_probs(seen_all[None])[0], no_advice())
    unexplored = room_obs(7, 7, agent=(2, 2), direction=0, unseen=[(4, 4)])
    probs = teacher.action_probs(unexplored[None])[0]
    assert probs.max() == 1.0 and probs.argmax() in (LEFT, RIGHT, FORWARD)


def test_oracle_teacher_solves_every_colored_layout():
    env = envs.make_env("ColoredDoorKey")
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        teacher = Teacher(Planner(OraclePlanSource(), True), "colored", 1, mode="hard")
        for _ in range(env.max_steps):
            obs, _, terminated, truncated, info = env.step(int(teacher.action_probs(obs[None])[0].argmax()))
            if terminated or truncated:
                break
        assert info["success"], f"seed {seed}"
