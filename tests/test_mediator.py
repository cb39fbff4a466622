"""Mediator sentences, plan parsing, colour abstraction, and agreement with the recorded Vicuna answers."""
import json

import numpy as np
import pytest
from conftest import DOOR, KEY, room_obs

import envs
from planners.minigrid.mediator import Option, describe, parse_plan
from planners.planner import abstract_colors, restore_colors
from planners.sources import RECORDED_PLANS_PATH, RecordedPlanSource


def test_sentences_plain():
    assert describe(room_obs()).sentence == "Agent sees <nothing>, holds <nothing>."
    obs = room_obs(objects=[(DOOR, "red", (6, 3), 2), (KEY, "red", (4, 4), 0)])
    scene = describe(obs)
    assert scene.sentence == "Agent sees <key>, <door>, holds <nothing>."
    assert scene.objects == {"key": (4, 4), "door": (6, 3)}
    held = describe(room_obs(carrying=(KEY, "red"), objects=[(DOOR, "red", (6, 3), 2)]))
    assert held.sentence == "Agent sees <door>, holds <key>." and held.carrying == "key"


def test_sentences_colored_and_numbered():
    obs = room_obs(carrying=(KEY, "blue"), objects=[(KEY, "red", (4, 4), 0), (DOOR, "red", (6, 3), 2)])
    assert describe(obs, "colored").sentence == "Agent sees <red key>, <red door>, holds <blue key>."
    obs = room_obs(objects=[(DOOR, "red", (6, 3), 2), (DOOR, "red", (0, 2), 2), (KEY, "red", (3, 3), 0)])
    scene = describe(obs, "numbered")
    assert scene.sentence == "Agent sees <key>, <door1>, <door2>, holds <nothing>."
    assert scene.objects["door1"] == (0, 2) and scene.objects["door2"] == (6, 3), "doors numbered in x order"


def test_describe_rejects_an_observation_without_agent():
    obs = room_obs()
    obs[3] = 0
    with pytest.raises(ValueError, match="exactly one agent"):
        describe(obs)


@pytest.mark.parametrize("text,expected", [
    ("go to <key>, pick up <key>", (Option("go_to", "key"), Option("pick_up", "key"))),
    ("explore, go to <door>, open <door> with <key>",
     (Option("explore", None), Option("go_to", "door"), Option("open", "door"))),
    ("drop <color2 key>, go to <color1 key>", (Option("drop", "color2 key"), Option("go_to", "color1 key"))),
    (" Pick up <key>", (Option("pick_up", "key"),)),
    ("go to east", (Option("unknown", "go to east"),)),
    ("go to <door>, pick up <handle>, use <key>",
     (Option("go_to", "door"), Option("pick_up", "handle"), Option("unknown", "key"))),
])
def test_parse_plan(text, expected):
    assert parse_plan(text) == expected


def test_colour_abstraction_round_trip():
    text, colors = abstract_colors("Agent sees <red key>, <blue key>, <blue door>, holds <nothing>.")
    assert text == "Agent sees <color1 key>, <color2 key>, <color2 door>, holds <nothing>."
    assert colors == ["red", "blue"]
    assert restore_colors("go to <color2 key>, pick up <color2 key>", colors) == "go to <blue key>, pick up <blue key>"


def test_every_recorded_sentence_is_one_the_mediator_can_produce():
    data = json.loads(RECORDED_PLANS_PATH.read_text())
    assert set(data) == {"simpledoorkey", "coloreddoorkey", "twodoor"}
    for table in data:
        for sentence in RecordedPlanSource(table).sentences():
            assert sentence.startswith("Agent sees <") and sentence.endswith(">.") and ", holds <" in sentence


@pytest.mark.parametrize("task,naming,table", [("SimpleDoorKey", "plain", "simpledoorkey"),
                                               ("ColoredDoorKey", "colored", "coloreddoorkey"),
                                               ("TwoDoor", "numbered", "twodoor")])
def test_sentences_met_while_exploring_are_mostly_in_the_recorded_table(task, naming, table):
    """The mediator speaks the recorded answers' language: the common situations are all covered."""
    source = RecordedPlanSource(table)
    rng = np.random.default_rng(0)
    met = {}
    for seed in range(5):
        env = envs.make_env(task)
        obs, _ = env.reset(seed=seed)
        for _ in range(150):
            sentence = describe(obs, naming).sentence
            if naming == "colored":
                sentence = abstract_colors(sentence)[0]
            met[sentence] = met.get(sentence, 0) + 1
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
            if terminated or truncated:
                break
    answered = sum(count for sentence, count in met.items() if source.plan_distribution(sentence))
    assert answered / sum(met.values()) > 0.9, {s: c for s, c in met.items() if not source.plan_distribution(s)}
