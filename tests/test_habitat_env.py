"""HabitatRearrangeEnv's logic, run against the fake habitat-lab objects in tests/fakes/habitat_fake.py."""
import numpy as np
import pytest

import envs
from envs.habitat.env import HabitatLayoutError, HabitatRearrangeEnv
from envs.registry import TaskUnavailableError
from tests.fakes.habitat_fake import OFFERED, FakeHabitatBackend

NAV_GOAL, NAV_OBJ, PICK, PLACE, NAV_CAB1, OPEN_CAB1 = 0, 1, 2, 3, 4, 7
NEAR_OBJ, NEAR_GOAL, NEAR_CAB1, HOLDING, AT_GOAL, OPEN_CAB1_SLOT = 0, 1, 2, 5, 6, 10


def make(**settings):
    backend = FakeHabitatBackend()
    env = HabitatRearrangeEnv(backend=backend, **settings)
    return env, backend.envs[-1]


def test_spaces_follow_the_layout():
    env, _ = make()
    assert env.action_space.n == 13
    assert env.observation_space.shape == (13,) and env.observation_space.dtype == np.float32
    assert not hasattr(env, "seen")  # would make evaluation draw MiniGrid maps


def test_reset_seeds_habitat_and_observes_predicates():
    env, habitat = make()
    obs, info = env.reset(seed=7)
    assert habitat.seeds == [7] and info == {"success": False}
    np.testing.assert_array_equal(obs, np.zeros(13, dtype=np.float32))
    env.reset()
    assert habitat.seeds == [7]  # no seed: the episode iterator just moves on


def test_option_is_sent_as_pddl_apply_vector():
    env, habitat = make()
    env.reset(seed=0)
    env.step(PLACE)
    sent = habitat.sent[-1]
    assert sent["action"] == "pddl_apply_action"
    vector = sent["action_args"]["pddl_action"]
    # Blocks by action name: close_cab(2) close_fridge(2) nav(2) nav_to_receptacle(3) nav_to_receptacle_by_name(2)
    # open_cab(2) open_fridge(2) pick(2) place(3) -> place starts at 17; entities by name, 1-based:
    # TARGET_goal0|0=1, cab_push_point_1=2, cab_push_point_2=3, fridge_push_point=4, goal0|0=5, robot_0=6.
    expected = np.zeros(20, dtype=np.float32)
    expected[17:20] = [5, 1, 6]
    np.testing.assert_array_equal(vector, expected)


def test_solving_the_task_terminates_with_success_and_scaled_reward():
    env, _ = make()
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(NAV_OBJ)
    assert obs[NEAR_OBJ] == 1 and reward == pytest.approx(-0.0001) and not terminated
    assert info["option"] == "nav(goal0|0,robot_0)" and info["option_valid"]
    obs, *_ = env.step(PICK)
    assert obs[HOLDING] == 1
    obs, *_ = env.step(NAV_GOAL)
    assert obs[NEAR_GOAL] == 1
    obs, reward, terminated, truncated, info = env.step(PLACE)
    assert obs[AT_GOAL] == 1 and obs[HOLDING] == 0
    assert terminated and not truncated and info["success"] is True
    assert reward == pytest.approx((100 - 0.01) * 0.01)
    assert info["metrics"] == {"pddl_success": 1.0, "num_steps": 4.0}  # non-scalar metrics are left out
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(NAV_OBJ)


def test_failed_precondition_is_reported_and_changes_nothing():
    env, _ = make()
    before, _ = env.reset(seed=0)
    obs, _, terminated, _, info = env.step(PICK)  # not next to the object
    assert not info["option_valid"] and not info["success"] and not terminated
    np.testing.assert_array_equal(obs, before)
    env.step(NAV_CAB1)
    obs, *_ = env.step(OPEN_CAB1)
    assert obs[NEAR_CAB1] == 1 and obs[OPEN_CAB1_SLOT] == 1


def test_episode_is_truncated_after_max_options():
    env, _ = make(max_options=3)
    env.reset(seed=0)
    flags = [env.step(NAV_CAB1)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    env.reset()
    assert env.step(NAV_CAB1)[3] is False  # the budget starts again


def test_out_of_range_option_is_rejected():
    env, _ = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out of range"):
        env.step(13)


def test_oracle_nav_drives_until_the_action_is_done():
    env, habitat = make(nav_mode="oracle_nav", nav_max_steps=10)
    env.reset(seed=0)
    obs, reward, _, _, info = env.step(NAV_OBJ)
    assert [a["action"] for a in habitat.sent] == ["oracle_nav_action"] * 3
    np.testing.assert_array_equal(habitat.sent[0]["action_args"]["oracle_nav_action"], [5.0])  # goal0|0, 1-based
    assert obs[NEAR_OBJ] == 1 and info["option_valid"] and reward == pytest.approx(-0.03 * 0.01)
    env.step(PICK)  # manipulation options still use pddl_apply_action
    assert habitat.sent[-1]["action"] == "pddl_apply_action"


def test_oracle_nav_gives_up_after_nav_max_steps():
    env, habitat = make(nav_mode="oracle_nav", nav_max_steps=2)
    env.reset(seed=0)
    obs, _, _, _, info = env.step(NAV_GOAL)
    assert len(habitat.sent) == 2 and not info["option_valid"] and obs[NEAR_GOAL] == 0


def test_options_unknown_to_habitat_are_a_clear_error(monkeypatch):
    monkeypatch.setattr("tests.fakes.habitat_fake.OFFERED", [c for c in OFFERED if not c.startswith("pick")])
    with pytest.raises(HabitatLayoutError, match=r"pick\(goal0\|0,robot_0\)"):
        make()


def test_close_closes_habitat():
    env, habitat = make()
    env.close()
    assert habitat.closed


def test_registered_task_builds_through_gym_make_with_the_backend_variable(monkeypatch):
    monkeypatch.setenv("LLM4TEACH_HABITAT_BACKEND", "tests.fakes.habitat_fake:FakeHabitatBackend")
    env = envs.make_env("habitatrearrange")
    assert isinstance(env, HabitatRearrangeEnv) and env.settings.max_options == 12
    assert envs.get_task("HabitatRearrange").family == "habitat"


def test_without_habitat_the_task_says_how_to_install_it(monkeypatch):
    monkeypatch.delenv("LLM4TEACH_HABITAT_BACKEND", raising=False)
    monkeypatch.setitem(__import__("sys").modules, "habitat", None)  # make `import habitat` fail here
    with pytest.raises(TaskUnavailableError) as caught:
        envs.make_env("HabitatRearrange")
    message = str(caught.value)
    assert "\n" not in message and "habitat-sim" in message and "environment-habitat.yml" in message


def test_bad_backend_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="module:attribute"):
        HabitatRearrangeEnv(backend="no_colon")
    with pytest.raises(ValueError, match="cannot load the Habitat backend"):
        HabitatRearrangeEnv(backend="tests.fakes.habitat_fake:Nope")
