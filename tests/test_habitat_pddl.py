"""Habitat option list and observation layout, derived from a PDDL definition (no simulator needed)."""
import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from envs.habitat.layout import build_layout
from envs.habitat.pddl import PddlDefinition, PddlError, list_options
from envs.habitat.settings import DEFAULT_ACTIONS, HabitatSettings
from tests.fakes.habitat_fake import DOMAIN, TASK_SPEC

OBJ, GOAL, ROBOT = "goal0|0", "TARGET_goal0|0", "robot_0"


def definition(domain=DOMAIN, spec=TASK_SPEC):
    return PddlDefinition.from_yaml(copy.deepcopy(domain), copy.deepcopy(spec))


def test_types_follow_habitat_hierarchy_with_reparenting():
    d = definition()
    # obj_type re-parents the simulator's movable and goal types; static_obj_type sits above it.
    assert d.is_subtype("movable_entity_type", "obj_type")
    assert d.is_subtype("goal_entity_type", "static_obj_type")
    assert d.is_subtype("cab_type", "art_receptacle_entity_type")
    assert not d.is_subtype("robot_entity_type", "static_obj_type")
    assert [e.name for e in d.entities] == sorted(e.name for e in d.entities)


def test_option_list_for_the_default_actions():
    options = [o.compact for o in list_options(definition(), DEFAULT_ACTIONS, ROBOT)]
    assert options == [
        f"nav({GOAL},{ROBOT})", f"nav({OBJ},{ROBOT})", f"pick({OBJ},{ROBOT})", f"place({OBJ},{GOAL},{ROBOT})",
        f"nav_to_receptacle_by_name(cab_push_point_1,{ROBOT})", f"nav_to_receptacle_by_name(cab_push_point_2,{ROBOT})",
        f"nav_to_receptacle_by_name(fridge_push_point,{ROBOT})",
        f"open_cab_by_name(cab_push_point_1,{ROBOT})", f"open_cab_by_name(cab_push_point_2,{ROBOT})",
        f"close_cab_by_name(cab_push_point_1,{ROBOT})", f"close_cab_by_name(cab_push_point_2,{ROBOT})",
        f"open_fridge_by_name(fridge_push_point,{ROBOT})", f"close_fridge_by_name(fridge_push_point,{ROBOT})"]


def test_place_pairs_each_object_with_its_own_goal_only():
    spec = copy.deepcopy(TASK_SPEC)
    spec["objects"] += [{"name": "goal1|1", "expr_type": "movable_entity_type"},
                        {"name": "TARGET_goal1|1", "expr_type": "goal_entity_type"}]
    places = [o.args for o in list_options(definition(spec=spec), ("place",), ROBOT)]
    assert places == [("goal0|0", "TARGET_goal0|0", ROBOT), ("goal1|1", "TARGET_goal1|1", ROBOT)]


def test_robot_parameters_take_only_the_chosen_robot():
    spec = copy.deepcopy(TASK_SPEC)
    spec["objects"].append({"name": "robot_1", "expr_type": "robot_entity_type"})
    assert {o.args[-1] for o in list_options(definition(spec=spec), ("nav", "pick"), "robot_1")} == {"robot_1"}


def test_unknown_action_or_robot_is_a_clear_error():
    with pytest.raises(PddlError, match="no action.*teleport"):
        list_options(definition(), ("nav", "teleport"), ROBOT)
    with pytest.raises(PddlError, match="robot 'robot_9'"):
        list_options(definition(), ("nav",), "robot_9")


def test_malformed_definition_is_a_clear_error():
    broken = copy.deepcopy(DOMAIN)
    broken["actions"][0]["parameters"][0]["expr_type"] = "no_such_type"
    with pytest.raises(PddlError, match="undeclared types: no_such_type"):
        definition(domain=broken)
    with pytest.raises(PddlError, match="format"):
        PddlDefinition.from_yaml({"actions": [{"parameters": []}]}, {})


def test_layout_slots_and_encoding_round_trip():
    layout = build_layout(definition(), DEFAULT_ACTIONS, ROBOT)
    kinds = [s.kind for s in layout.slots]
    assert kinds == ["near"] * 5 + ["holding", "at_goal"] + ["inside"] * 3 + ["open"] * 3
    assert layout.slots[0].predicate == f"robot_at({OBJ},{ROBOT})"
    assert layout.slots[6].predicate == f"object_at({OBJ},{GOAL})"
    assert layout.slots[-1].predicate == "opened_fridge(fridge_push_point)"
    true = {f"robot_at({GOAL},{ROBOT})", f"holding({OBJ},{ROBOT})", "opened_cab(cab_push_point_2)"}
    obs = layout.encode(lambda predicate: predicate in true)
    assert obs.dtype == np.float32 and obs.shape == (13,)
    state = layout.decode(obs)
    assert state.near == {GOAL} and state.holding == OBJ and state.open == {"cab_push_point_2"}
    assert not state.at_goal and not state.inside
    with pytest.raises(ValueError, match="13 entries"):
        layout.decode(np.zeros(5))


def test_layout_needs_robot_at_and_holding():
    domain = copy.deepcopy(DOMAIN)
    domain["predicates"] = [p for p in domain["predicates"] if p["name"] != "holding"]
    with pytest.raises(PddlError, match="holding"):
        build_layout(definition(domain=domain), DEFAULT_ACTIONS, ROBOT)


def test_settings_reject_unknown_names_and_bad_values():
    assert HabitatSettings.from_kwargs(allowed_actions=["nav"]).allowed_actions == ("nav",)
    with pytest.raises(ValueError, match="unknown Habitat setting.*colour"):
        HabitatSettings.from_kwargs(colour="red")
    with pytest.raises(ValueError, match="nav_mode"):
        HabitatSettings.from_kwargs(nav_mode="fly")


def _installed_habitat_lab() -> Path | None:
    """habitat-lab's package folder, found without importing it (importing needs habitat-sim)."""
    spec = importlib.util.find_spec("habitat")
    return Path(spec.origin).parent if spec and spec.origin else None


def test_real_rearrange_easy_definition():
    """habitat-lab's own replica_cad + rearrange_easy files (installed without habitat-sim by the README's test
    command; tests/test_habitat_contract.py compares the result with habitat-lab's own parser)."""
    root = _installed_habitat_lab()
    assert root is not None, "habitat-lab is not installed: pip install --no-deps -r requirements-habitat-test.txt"
    domain = yaml.safe_load((root / "tasks/rearrange/multi_task/domain_configs/replica_cad.yaml").read_text())
    spec = yaml.safe_load((root / "config/habitat/task/rearrange/pddl/rearrange_easy.yaml").read_text())
    layout = build_layout(PddlDefinition.from_yaml(domain, spec), DEFAULT_ACTIONS, ROBOT)
    assert len(layout.options) == 19 and layout.size == 19
    compact = [o.compact for o in layout.options]
    for step in spec["solution"]:  # the task's own solution is made of options
        assert step.replace(" ", "") in compact
