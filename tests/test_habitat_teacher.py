"""The Habitat teacher: distributions over the task's options from plan distributions."""
import numpy as np
import pytest

from envs.habitat.settings import HabitatSettings, load_layout
from planners.habitat.mediator import EntityNames
from planners.habitat.family import HabitatFamily
from planners.planner import Planner
from planners.teacher import PlanTeacher
from tests.fakes.habitat_fake import FakeHabitatBackend
from tests.test_habitat_mediator import obs_for

OBJ, GOAL = "goal0|0", "TARGET_goal0|0"
NAV_GOAL, NAV_OBJ, PICK, PLACE = 0, 1, 2, 3   # option ids of the fake task (see test_habitat_pddl)
START = "Robot sees <nothing>, holds <nothing>."


class TableSource:
    """Answers from a dict sentence -> [(plan, probability)]; None for other sentences."""

    def __init__(self, table):
        self.table = table

    def plan_distribution(self, sentence):
        return self.table.get(sentence)


@pytest.fixture(scope="module")
def layout():
    return load_layout(HabitatSettings(), FakeHabitatBackend())


def make_teacher(layout, table, mode="soft", num_envs=2, seed=0, hard_sampling="commit"):
    family = HabitatFamily(layout, EntityNames(layout))
    return PlanTeacher(Planner(TableSource(table), family.parse), family, num_envs, mode=mode,
                       hard_sampling=hard_sampling, seed=seed)


def test_soft_mixes_the_next_option_of_every_plan(layout):
    teacher = make_teacher(layout, {START: [("navigate to <object>, pick <object>", 0.7),
                                            ("navigate to <goal>", 0.2), ("sing", 0.1)]})
    probs = teacher.action_probs(np.stack([obs_for(layout)] * 2))
    assert probs.shape == (2, 13) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    uniform = 0.1 / 13  # the unknown plan gives no advice: spread over all options
    assert probs[0, NAV_OBJ] == pytest.approx(0.7 + uniform)
    assert probs[0, NAV_GOAL] == pytest.approx(0.2 + uniform)
    assert probs[0, PICK] == pytest.approx(uniform)
    assert teacher.steps == 2


def test_achieved_steps_are_skipped(layout):
    full = "navigate to <object>, pick <object>, navigate to <goal>, place <object> on <goal>"
    teacher = make_teacher(layout, {"Robot sees <object>, holds <nothing>.": [(full, 1.0)],
                                    "Robot sees <nothing>, holds <object>.": [(full, 1.0)],
                                    "Robot sees <goal>, holds <object>.": [(full, 1.0)]})
    obs = np.stack([obs_for(layout, near=(OBJ,)), obs_for(layout, near=(OBJ,), holding=OBJ),
                    obs_for(layout, near=(OBJ, GOAL), holding=OBJ)])
    assert teacher.action_probs(obs).argmax(1).tolist() == [PICK, NAV_GOAL, PLACE]


def test_plan_with_nothing_left_gives_uniform_advice(layout):
    teacher = make_teacher(layout, {"Robot sees <goal>, holds <object>.": [("navigate to <goal>", 1.0)]})
    probs = teacher.action_probs(obs_for(layout, near=(OBJ, GOAL), holding=OBJ)[None])
    np.testing.assert_allclose(probs[0], np.full(13, 1 / 13), rtol=1e-6)


def test_unanswered_sentence_falls_back_and_is_counted(layout):
    teacher = make_teacher(layout, {})
    probs = teacher.action_probs(np.stack([obs_for(layout)] * 3))
    np.testing.assert_allclose(probs, np.full((3, 13), 1 / 13), rtol=1e-6)
    assert teacher.planner.fallback_count == 3  # every meeting of the unanswered sentence counts


def test_hard_commits_to_one_plan_until_the_sentence_changes(layout):
    table = {START: [("navigate to <object>", 0.5), ("navigate to <goal>", 0.5)]}
    teacher = make_teacher(layout, table, mode="hard", num_envs=1, seed=3)
    first = teacher.action_probs(obs_for(layout)[None])[0]
    assert sorted(first.tolist())[-1] == 1.0 and first.sum() == 1.0
    for _ in range(5):  # same sentence: same plan
        np.testing.assert_array_equal(teacher.action_probs(obs_for(layout)[None])[0], first)
    chosen = set()
    for _ in range(40):  # a new episode samples again: both plans appear
        teacher.reset(0)
        chosen.add(int(teacher.action_probs(obs_for(layout)[None])[0].argmax()))
    assert chosen == {NAV_OBJ, NAV_GOAL}


def test_bad_observation_shape_and_mode_are_clear_errors(layout):
    teacher = make_teacher(layout, {})
    with pytest.raises(ValueError, match=r"shape \(N, 13\)"):
        teacher.action_probs(np.zeros((2, 7)))
    with pytest.raises(ValueError, match="teacher mode"):
        make_teacher(layout, {}, mode="medium")


def test_build_teacher_uses_the_registered_habitat_task(monkeypatch):
    from planners.factory import build_teacher
    from utils.config import build_config
    monkeypatch.setenv("LLM4TEACH_HABITAT_BACKEND", "tests.fakes.habitat_fake:FakeHabitatBackend")
    config = build_config("HabitatRearrange", {"planner": "oracle", "teacher": "soft"})
    teacher = build_teacher(config, num_envs=1, seed=0)
    assert teacher.mode == "soft" and teacher.stats().fallbacks == 0
    assert isinstance(teacher.family, HabitatFamily)
    probs = teacher.action_probs(obs_for(teacher.family.layout)[None])
    assert probs[0].argmax() == NAV_OBJ and probs[0].max() == 1.0
