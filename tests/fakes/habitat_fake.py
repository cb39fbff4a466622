"""A FAKE of the few habitat-lab objects HabitatRearrangeEnv touches. It is not habitat-lab.

It lets tests run the env wrapper, the teacher and ``main.py`` without habitat-sim. It fakes exactly:

========================  =======================================================================
fake                      stands in for (habitat-lab 0.3.3)
========================  =======================================================================
FakeHabitatBackend        envs.habitat.backend.HabitatLabBackend (the PDDL YAML it reads, make_env)
FakeRLTaskEnv             habitat.core.environments.RLTaskEnv: reset, step(action dict) ->
                          (obs, reward, done, metrics), seed, close, config.task.success_measure,
                          habitat_env.task
FakeTask                  habitat.tasks.rearrange.multi_task.pddl_task.PddlTask: pddl_problem, actions
FakePddlProblem           habitat.tasks.rearrange.multi_task.pddl_domain.PddlProblem:
                          get_ordered_actions, get_ordered_entities_list, get_entity,
                          get_possible_actions, parse_predicate, sim_info
FakePredicate             ...pddl_predicate.Predicate.is_true(sim_info)
FakePddlApplyAction       habitat.tasks.rearrange.actions.pddl_actions.PddlApplyAction
FakeOracleNavAction       habitat.tasks.rearrange.actions.oracle_nav_action.OracleNavAction
========================  =======================================================================

The world is symbolic: the robot is "at" one entity (or nowhere), the object lies at its start, in the
gripper, or at its goal; drawers are open or closed. The PDDL domain below is a small hand-written file in
habitat-lab's format (types, constants, predicates, action parameters), shaped like habitat-lab's
replica_cad domain but with two cabinet push points instead of four, and without pre/postconditions
(the fake world hard-codes them). ``OFFERED`` is what habitat-lab's ``get_possible_actions`` returns
for this domain; it is written out by hand so that the wrapper's own option derivation is checked
against it. Reward: -0.01 per low-level step, +100 on success (as habitat-lab's slack and success
rewards); success ends the episode, as ``end_on_success`` does.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np

ROBOT, OBJECT, GOAL = "robot_0", "goal0|0", "TARGET_goal0|0"
CABINETS, FRIDGE = ("cab_push_point_1", "cab_push_point_2"), "fridge_push_point"


def _pred(name, *args):
    return {"name": name, "args": [{"name": f"a{i}", "expr_type": t} for i, t in enumerate(args)]}


def _action(name, *params):
    return {"name": name, "parameters": [{"name": p, "expr_type": t} for p, t in params]}


DOMAIN = {
    "types": {"static_obj_type": ["art_receptacle_entity_type", "obj_type"],
              "obj_type": ["movable_entity_type", "goal_entity_type"],
              "art_receptacle_entity_type": ["cab_type", "fridge_type"]},
    "constants": [{"name": CABINETS[0], "expr_type": "cab_type"}, {"name": CABINETS[1], "expr_type": "cab_type"},
                  {"name": FRIDGE, "expr_type": "fridge_type"}],
    "predicates": [_pred("holding", "movable_entity_type", "robot_entity_type"),
                   _pred("not_holding", "robot_entity_type"),
                   _pred("in", "obj_type", "art_receptacle_entity_type"),
                   _pred("robot_at", "static_obj_type", "robot_entity_type"),
                   _pred("object_at", "movable_entity_type", "static_obj_type"),
                   _pred("opened_cab", "cab_type"), _pred("closed_cab", "cab_type"),
                   _pred("opened_fridge", "fridge_type"), _pred("closed_fridge", "fridge_type")],
    "actions": [_action("nav", ("obj", "obj_type"), ("robot", "robot_entity_type")),
                _action("nav_to_receptacle", ("marker", "art_receptacle_entity_type"), ("obj", "obj_type"),
                        ("robot", "robot_entity_type")),
                _action("pick", ("obj", "movable_entity_type"), ("robot", "robot_entity_type")),
                _action("place", ("place_obj", "movable_entity_type"), ("obj", "goal_entity_type"),
                        ("robot", "robot_entity_type")),
                _action("nav_to_receptacle_by_name", ("marker", "art_receptacle_entity_type"),
                        ("robot", "robot_entity_type")),
                _action("open_cab_by_name", ("marker", "cab_type"), ("robot", "robot_entity_type")),
                _action("close_cab_by_name", ("marker", "cab_type"), ("robot", "robot_entity_type")),
                _action("open_fridge_by_name", ("fridge_id", "fridge_type"), ("robot", "robot_entity_type")),
                _action("close_fridge_by_name", ("fridge_id", "fridge_type"), ("robot", "robot_entity_type"))],
}
TASK_SPEC = {"objects": [{"name": OBJECT, "expr_type": "movable_entity_type"},
                         {"name": GOAL, "expr_type": "goal_entity_type"},
                         {"name": ROBOT, "expr_type": "robot_entity_type"}]}
OFFERED = [f"nav({GOAL},{ROBOT})", f"nav({OBJECT},{ROBOT})", f"pick({OBJECT},{ROBOT})",
           f"place({OBJECT},{GOAL},{ROBOT})",
           *(f"nav_to_receptacle({r},{o},{ROBOT})" for r in (*CABINETS, FRIDGE) for o in (GOAL, OBJECT)),
           *(f"nav_to_receptacle_by_name({r},{ROBOT})" for r in (*CABINETS, FRIDGE)),
           *(f"{verb}_cab_by_name({c},{ROBOT})" for verb in ("open", "close") for c in CABINETS),
           f"open_fridge_by_name({FRIDGE},{ROBOT})", f"close_fridge_by_name({FRIDGE},{ROBOT})"]


class FakeWorld:
    """The symbolic state the fake predicates read."""

    def __init__(self):
        self.robot_at: str | None = None
        self.object_pos = OBJECT          # OBJECT (its start), "gripper", or GOAL
        self.opened: set[str] = set()

    def position(self, entity: str) -> str:
        return self.object_pos if entity == OBJECT else entity

    def near(self, entity: str) -> bool:
        return (entity == OBJECT and self.object_pos == "gripper") or self.robot_at == self.position(entity)

    def truth(self, name: str, args: tuple[str, ...]) -> bool:
        if name == "robot_at":
            return self.near(args[0])
        if name == "holding":
            return args[0] == OBJECT and self.object_pos == "gripper"
        if name == "object_at":
            return self.object_pos == args[1]
        if name.startswith("opened_"):
            return args[0] in self.opened
        return False  # "in": the fake object never starts inside a receptacle

    @property
    def success(self) -> bool:
        return self.object_pos == GOAL


class FakePredicate:
    def __init__(self, name: str, args: tuple[str, ...]):
        self.name, self.args = name, args

    def is_true(self, sim_info: FakeWorld) -> bool:
        return sim_info.truth(self.name, self.args)


class FakePddlProblem:
    def __init__(self, world: FakeWorld):
        self._world, self._bound = world, False
        names = [o["name"] for o in TASK_SPEC["objects"]] + [c["name"] for c in DOMAIN["constants"]]
        self._entities = [SimpleNamespace(name=n) for n in sorted(names)]
        self._actions = sorted((SimpleNamespace(name=a["name"], n_args=len(a["parameters"]))
                                for a in DOMAIN["actions"]), key=lambda a: a.name)

    def get_ordered_actions(self):
        return list(self._actions)

    def get_ordered_entities_list(self):
        return list(self._entities)

    def get_entity(self, name: str):
        return next(e for e in self._entities if e.name == name)

    def get_possible_actions(self, filter_entities=None, allowed_action_names=None, **_):
        keep = [c for c in OFFERED if allowed_action_names is None or c.split("(")[0] in allowed_action_names]
        return [SimpleNamespace(compact_str=c) for c in keep
                if all(e.name in c[c.index("("):] for e in filter_entities or ())]

    def parse_predicate(self, text: str) -> FakePredicate:
        name, _, rest = text.partition("(")
        return FakePredicate(name, tuple(rest.rstrip(")").split(",")))

    @property
    def sim_info(self) -> FakeWorld:
        if not self._bound:
            raise ValueError("Need to first bind to simulator instance.")  # as habitat-lab before reset
        return self._world


class FakePddlApplyAction:
    was_prev_action_invalid = False


class FakeOracleNavAction:
    """Arrives after ``steps_to_arrive`` low-level steps towards the same target."""

    steps_to_arrive = 3

    def __init__(self):
        self.skill_done, self.target, self.progress = False, None, 0


class FakeTask:
    def __init__(self, world: FakeWorld):
        self.pddl_problem = FakePddlProblem(world)
        self.actions = {"pddl_apply_action": FakePddlApplyAction(), "oracle_nav_action": FakeOracleNavAction()}


class FakeRLTaskEnv:
    """Records what the wrapper sends: ``sent`` (action dicts), ``seeds``, ``closed``."""

    max_episode_steps = 100

    def __init__(self):
        self.world = FakeWorld()
        self.task = FakeTask(self.world)
        self.habitat_env = SimpleNamespace(task=self.task)
        self.config = SimpleNamespace(task=SimpleNamespace(success_measure="pddl_success"))
        self.sent: list[dict] = []
        self.seeds: list[int] = []
        self.closed = False
        self._steps = 0

    def seed(self, seed: int) -> None:
        self.seeds.append(seed)

    def reset(self) -> dict:
        self.world.__init__()
        self.task.pddl_problem._bound = True
        self._steps = 0
        return {}

    def step(self, action: dict):
        self.sent.append(copy.deepcopy(action))
        self._steps += 1
        if action["action"] == "pddl_apply_action":
            self._apply(np.asarray(action["action_args"]["pddl_action"]))
        elif action["action"] == "oracle_nav_action":
            self._drive(int(np.asarray(action["action_args"]["oracle_nav_action"])[0]))
        else:
            raise KeyError(f"Can't find '{action['action']}' action")
        success = self.world.success
        reward = -0.01 + (100.0 if success else 0.0)
        done = success or self._steps >= self.max_episode_steps
        return {}, reward, done, {"pddl_success": success, "num_steps": self._steps, "stage": {"0": 1.0}}

    def close(self) -> None:
        self.closed = True

    def _apply(self, vector: np.ndarray) -> None:
        problem, world = self.task.pddl_problem, self.world
        start, chosen = 0, None
        for action in problem.get_ordered_actions():
            block = vector[start:start + action.n_args]
            if block.sum() > 0:
                chosen = (action.name, [problem.get_ordered_entities_list()[int(i) - 1].name for i in block])
            start += action.n_args
        name, args = chosen
        valid = True
        if name.startswith("nav"):
            world.robot_at = world.position(args[0])
        elif name == "pick" and world.near(args[0]) and world.object_pos != "gripper":
            world.object_pos = "gripper"
        elif name == "place" and world.object_pos == "gripper" and world.near(args[1]):
            world.object_pos = args[1]
        elif name.startswith("open") and world.near(args[0]) and args[0] not in world.opened:
            world.opened.add(args[0])
        elif name.startswith("close") and world.near(args[0]) and args[0] in world.opened:
            world.opened.discard(args[0])
        else:
            valid = False
        self.task.actions["pddl_apply_action"].was_prev_action_invalid = not valid

    def _drive(self, index: int) -> None:
        nav = self.task.actions["oracle_nav_action"]
        target = self.task.pddl_problem.get_ordered_entities_list()[index - 1].name
        nav.progress = nav.progress + 1 if nav.target == target else 1
        nav.target = target
        nav.skill_done = nav.progress >= nav.steps_to_arrive
        if nav.skill_done:
            self.world.robot_at = self.world.position(target)
            nav.target, nav.progress = None, 0


class FakeHabitatBackend:
    """Backend handing out the fake domain and fake envs; ``envs`` lists every env it made."""

    name = "fake"

    def __init__(self):
        self.envs: list[FakeRLTaskEnv] = []

    def pddl_definition(self, settings) -> tuple[dict, dict]:
        return copy.deepcopy(DOMAIN), copy.deepcopy(TASK_SPEC)

    def make_env(self, settings) -> FakeRLTaskEnv:
        env = FakeRLTaskEnv()
        self.envs.append(env)
        return env
