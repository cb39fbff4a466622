"""The wrong-teacher control (--planner adversarial): its plans are plausible but wrong by construction."""
from itertools import permutations

import pytest

from algos.evaluate import TeacherPolicy, heldout_evaluation
from planners.factory import build_teacher
from planners.minigrid.mediator import parse_plan
from planners.minigrid.scripted import AdversarialPlanSource, OraclePlanSource, Situation
from utils.config import build_config


def _sentences():
    """Every situation the MiniGrid tasks can describe (plain, numbered and coloured names)."""
    worlds = [  # (keys that may be seen, doors that may be seen)
        (["key"], [[], ["door"]]),
        (["key"], [[], ["door1"], ["door1", "door2"]]),
        (["red key", "blue key"], [[], ["blue door"]]),
        (["color1 key", "color2 key"], [[], ["color2 door"]]),  # as the planner abstracts colours
    ]
    for all_keys, door_sets in worlds:
        for doors in door_sets:
            for held in [None, *all_keys]:
                free = [k for k in all_keys if k != held]
                for count in range(len(free) + 1):
                    for keys in permutations(free, count):
                        listed = ", ".join(f"<{n}>" for n in [*keys, *doors]) or "<nothing>"
                        yield f"Agent sees {listed}, holds <{held or 'nothing'}>."


SENTENCES = sorted(set(_sentences()))


@pytest.mark.parametrize("sentence", SENTENCES)
def test_each_plan_is_plausible_but_never_opens_a_door(sentence):
    situation = Situation.read(sentence)
    (plan, probability), = AdversarialPlanSource().plan_distribution(sentence)
    assert probability == 1.0
    options = parse_plan(plan)
    named = {*situation.keys, *situation.doors, situation.held}
    for option in options:  # plausible: known skills, on objects the sentence names
        assert option.skill in ("explore", "go_to", "pick_up", "drop", "open"), plan
        assert option.skill == "explore" or option.target in named, plan
    holding = situation.held
    for option in options:  # wrong: the agent never holds the right key where it opens a door
        if option.skill == "drop":
            holding = None
        elif option.skill == "pick_up":
            holding = option.target
            assert not any(situation.opens(holding, d) for d in situation.doors), f"fetches the right key: {plan}"
            assert situation.doors, f"picks up a key with no door in sight: {plan}"
        elif option.skill == "open":
            assert holding is None or not situation.opens(holding, option.target), f"opens with its key: {plan}"
    if situation.held and (not situation.doors or situation.door_for(situation.held)):
        assert (options[0].skill, options[0].target) == ("drop", situation.held), f"keeps a key that may fit: {plan}"
    oracle = OraclePlanSource.plan(situation)
    if oracle != "explore":
        assert plan != oracle, "wherever acting matters, the adversary's plan is not the correct one"


def test_the_sentences_cover_every_kind_of_wrong_plan():
    plans = " | ".join(AdversarialPlanSource.plan(Situation.read(s)) for s in SENTENCES)
    for wrong in ("drop <key>, go to <door>, open <door>",   # drops the right key before opening
                  "go to <door>, open <door>",                # the door before its key
                  "go to <red key>, pick up <red key>",       # the key that does not fit
                  "go to <door1>, open <door1>"):
        assert wrong in plans


@pytest.mark.parametrize("task", ["SimpleDoorKey", "LavaDoorKey", "ColoredDoorKey", "TwoDoor"])
def test_a_teacher_following_adversarial_plans_never_succeeds(task):
    for skills in ("paper", "safe"):
        config = build_config(task, {"planner": "adversarial", "skills": skills, "teacher": "hard"})
        result = heldout_evaluation(task, TeacherPolicy(build_teacher(config, 6, 0), seed=0), 6)
        assert result["successes"] == 0, f"{task} with {skills} skills"
    oracle = build_config(task, {"planner": "oracle", "skills": "safe", "teacher": "hard"})
    assert heldout_evaluation(task, TeacherPolicy(build_teacher(oracle, 6, 0), seed=0), 6)["successes"] >= 5, \
        "the same layouts are solved with correct plans"
