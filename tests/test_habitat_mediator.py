"""Habitat mediator: sentences from observation vectors, plan parsing to option ids, the scripted oracle."""
import numpy as np
import pytest

from envs.habitat.settings import HabitatSettings, load_layout
from planners.habitat.mediator import EntityNames, HabitatOraclePlanSource, describe, parse_habitat_plan
from planners.planner import Planner
from tests.fakes.habitat_fake import FakeHabitatBackend

OBJ, GOAL, CAB1, CAB2, FRIDGE = "goal0|0", "TARGET_goal0|0", "cab_push_point_1", "cab_push_point_2", "fridge_push_point"


@pytest.fixture(scope="module")
def layout():
    return load_layout(HabitatSettings(), FakeHabitatBackend())


@pytest.fixture(scope="module")
def names(layout):
    return EntityNames(layout)


def obs_for(layout, near=(), holding=None, at_goal=(), inside=(), opened=()):
    """An observation vector with the given predicates true."""
    obs = np.zeros(layout.size, dtype=np.float32)
    for i, slot in enumerate(layout.slots):
        obs[i] = {"near": slot.args[0] in near, "holding": slot.args[0] == holding,
                  "at_goal": slot.args[0] in at_goal, "inside": slot.args in inside,
                  "open": slot.args[0] in opened}[slot.kind]
    return obs


def test_plain_names_both_ways(names):
    assert [names.display(e) for e in (OBJ, GOAL, CAB1, CAB2, FRIDGE)] == [
        "object", "goal", "cabinet1", "cabinet2", "fridge"]
    assert names.resolve(" Closed  Cabinet2 ") == CAB2
    assert names.resolve("open fridge") == FRIDGE
    assert names.resolve("table") is None


@pytest.mark.parametrize("state, sentence", [
    ({}, "Robot sees <nothing>, holds <nothing>."),
    ({"near": (OBJ,)}, "Robot sees <object>, holds <nothing>."),
    ({"near": (OBJ, GOAL)}, "Robot sees <object>, <goal>, holds <nothing>."),
    ({"near": (OBJ,), "holding": OBJ}, "Robot sees <nothing>, holds <object>."),      # held: not "seen"
    ({"near": (OBJ, GOAL), "holding": OBJ}, "Robot sees <goal>, holds <object>."),
    ({"near": (CAB1,)}, "Robot sees <nothing>, holds <nothing>."),                   # empty receptacle: not told
    ({"near": (OBJ, CAB2), "inside": ((OBJ, CAB2),)}, "Robot sees <object>, <closed cabinet2>, holds <nothing>."),
    ({"near": (OBJ, FRIDGE), "inside": ((OBJ, FRIDGE),), "opened": (FRIDGE,)},
     "Robot sees <object>, <open fridge>, holds <nothing>."),
])
def test_sentences(layout, names, state, sentence):
    scene = describe(obs_for(layout, **state), layout, names)
    assert scene.sentence == sentence


def option_names(steps, layout):
    return [layout.options[s.option].compact if s.option is not None else f"unknown: {s.target}" for s in steps]


def test_parse_full_plan_to_option_ids(layout, names):
    steps = parse_habitat_plan("Navigate to <object>, pick up <object>, go to <goal>, place <object> on <goal>",
                               layout, names)
    assert option_names(steps, layout) == ["nav(goal0|0,robot_0)", "pick(goal0|0,robot_0)",
                                           "nav(TARGET_goal0|0,robot_0)", "place(goal0|0,TARGET_goal0|0,robot_0)"]
    assert [s.skill for s in steps] == ["navigate", "pick", "navigate", "place"]


def test_parse_receptacles_and_place_shorthands(layout, names):
    steps = parse_habitat_plan("go to <closed cabinet2>, open <cabinet2>, close <fridge>, drop <object>, "
                               "put it on <goal>", layout, names)
    assert option_names(steps, layout) == [
        "nav_to_receptacle_by_name(cab_push_point_2,robot_0)", "open_cab_by_name(cab_push_point_2,robot_0)",
        "close_fridge_by_name(fridge_push_point,robot_0)", "place(goal0|0,TARGET_goal0|0,robot_0)",
        "place(goal0|0,TARGET_goal0|0,robot_0)"]


def test_unmappable_steps_become_unknown(layout, names):
    steps = parse_habitat_plan("explore the room, pick <goal>, go to <table>, open <object>, fly to <goal>, "
                               "place <object> in <cabinet1>", layout, names)
    assert [s.skill for s in steps] == ["unknown"] * 6
    assert steps[2].target == "go to <table>"


def test_planner_with_habitat_parser_counts_unknown_steps(layout, names):
    class Source:
        def plan_distribution(self, sentence):
            return [("navigate to <object>, pick <object>", 0.75), ("dance <object>", 0.25)]

    planner = Planner(Source(), parse=lambda text: parse_habitat_plan(text, layout, names))
    plans = planner.plans_for("Robot sees <nothing>, holds <nothing>.")
    assert [p for _, p in plans] == [0.75, 0.25]
    assert planner.unknown_options == {"dance <object>": 1}


@pytest.mark.parametrize("sentence, plan", [
    ("Robot sees <nothing>, holds <nothing>.",
     "navigate to <object>, pick <object>, navigate to <goal>, place <object> on <goal>"),
    ("Robot sees <goal>, holds <object>.", "navigate to <goal>, place <object> on <goal>"),
    ("Robot sees <object>, <closed cabinet2>, holds <nothing>.",
     "open <cabinet2>, navigate to <object>, pick <object>, navigate to <goal>, place <object> on <goal>"),
])
def test_oracle_plans(sentence, plan):
    assert HabitatOraclePlanSource().plan_distribution(sentence) == [(plan, 1.0)]


def test_oracle_has_no_answer_for_other_sentences():
    assert HabitatOraclePlanSource().plan_distribution("Agent sees <key>, holds <nothing>.") is None


def test_oracle_plans_parse_completely(layout, names):
    oracle = HabitatOraclePlanSource()
    for sentence in ("Robot sees <nothing>, holds <nothing>.", "Robot sees <nothing>, holds <object>.",
                     "Robot sees <object>, <closed fridge>, holds <nothing>."):
        (plan, _), = oracle.plan_distribution(sentence)
        assert all(step.option is not None for step in parse_habitat_plan(plan, layout, names))


def test_several_objects_are_numbered_with_matching_goals():
    import copy

    from envs.habitat.layout import build_layout
    from envs.habitat.pddl import PddlDefinition
    from envs.habitat.settings import DEFAULT_ACTIONS
    from tests.fakes.habitat_fake import DOMAIN, TASK_SPEC
    spec = copy.deepcopy(TASK_SPEC)
    spec["objects"] += [{"name": "goal1|1", "expr_type": "movable_entity_type"},
                        {"name": "TARGET_goal1|1", "expr_type": "goal_entity_type"}]
    layout = build_layout(PddlDefinition.from_yaml(copy.deepcopy(DOMAIN), spec), DEFAULT_ACTIONS, "robot_0")
    names = EntityNames(layout)
    assert [names.display(e) for e in ("goal0|0", "TARGET_goal0|0", "goal1|1", "TARGET_goal1|1")] == [
        "object1", "goal1", "object2", "goal2"]
    (place,) = parse_habitat_plan("place <object2>", layout, names)
    assert layout.options[place.option].compact == "place(goal1|1,TARGET_goal1|1,robot_0)"
    assert describe(obs_for(layout, near=("TARGET_goal1|1",), holding="goal0|0"), layout, names).sentence == \
        "Robot sees <goal2>, holds <object1>."
