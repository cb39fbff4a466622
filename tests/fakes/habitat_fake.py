"""A FAKE of the few habitat-lab objects HabitatRearrangeEnv touches. It is not habitat-lab.

It lets tests run the env wrapper, the teacher and ``main.py`` without habitat-sim. It fakes exactly:

========================  =======================================================================
fake                      stands in for (habitat-lab 0.3.3, the class named in ``REAL_CLASS``)
========================  =======================================================================
FakeHabitatBackend        envs.habitat.backend.HabitatLabBackend (the PDDL YAML it reads, make_env)
FakeRLTaskEnv             habitat.core.environments.RLTaskEnv: reset, step(action dict) ->
                          (obs, reward, done, metrics), seed, close, config.task.success_measure,
                          habitat_env
FakeEnv                   habitat.core.env.Env: task
FakeTask                  habitat.tasks.rearrange.multi_task.pddl_task.PddlTask: pddl_problem, actions
FakePddlProblem           habitat.tasks.rearrange.multi_task.pddl_domain.PddlProblem:
                          get_ordered_actions, get_ordered_entities_list, get_entity,
                          get_possible_actions, parse_predicate, sim_info
FakePddlAction            ...multi_task.pddl_action.PddlAction: name, n_args, compact_str
FakePddlEntity            ...multi_task.rearrange_pddl.PddlEntity: name
FakePredicate             ...multi_task.pddl_predicate.Predicate: name, is_true(sim_info)
FakePddlApplyAction       habitat.tasks.rearrange.actions.pddl_actions.PddlApplyAction: step,
                          was_prev_action_invalid
FakeOracleNavAction       habitat.tasks.rearrange.actions.oracle_nav_action.OracleNavAction: step,
                          skill_done
========================  =======================================================================

Every public member of a fake class exists in its real class with the same signature, except the
fake's own instruments listed in its ``FAKE_ONLY`` (what the tests read back, e.g. ``sent``);
tests/test_habitat_contract.py checks this against the installed habitat-lab. Where the real API raises,
the fake raises the same exception type: stepping before ``reset`` or after the step limit
(AssertionError, as ``Env.step``), an action name the task does not have (AssertionError, as
``EmbodiedTask``), a missing action argument (KeyError), an unknown entity (KeyError from ``get_entity``,
ValueError from ``parse_predicate``), an unknown predicate (KeyError), arguments of the wrong number or
type (ValueError, as ``ensure_entity_lists_match``), ``sim_info`` before ``reset`` (ValueError), a 0 (no
entity) inside the chosen action's block of ``pddl_action`` (ValueError). Like the real actions,
``pddl_apply_action`` ignores a vector with an index below 0 or past the entities (without flagging it
invalid), and ``oracle_nav_action`` an index outside 1..len(entities).

The world is symbolic: the robot is "at" one entity (or nowhere), the object lies at its start, in the
gripper, or at its goal; drawers are open or closed. The PDDL domain below is a small hand-written file in
habitat-lab's format (types, constants, predicates, action parameters), shaped like habitat-lab's
replica_cad domain but with two cabinet push points instead of four, and without pre/postconditions
(the fake world hard-codes them). ``OFFERED`` is what habitat-lab's ``get_possible_actions`` returns
for this domain; it is written out by hand so that the wrapper's own option derivation is checked
against it (and the contract tests check it against the real ``PddlProblem`` reading this domain).
Reward: ``SLACK_REWARD`` per low-level step, ``SUCCESS_REWARD`` on success (rearrange_easy's
``slack_reward`` and ``success_reward``; its reward measure is taken as 0); success ends the episode, as
``end_on_success`` does, without ending habitat's own episode (as with ``must_call_stop: False``).
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

    def apply(self, action: str, args: list[str]) -> bool:
        """Apply a bound PDDL action if its (hard-coded) precondition holds; False if it does not."""
        if action.startswith("nav"):
            self.robot_at = self.position(args[0])
        elif action == "pick" and self.near(args[0]) and self.object_pos != "gripper":
            self.object_pos = "gripper"
        elif action == "place" and self.object_pos == "gripper" and self.near(args[1]):
            self.object_pos = args[1]
        elif action.startswith("open") and self.near(args[0]) and args[0] not in self.opened:
            self.opened.add(args[0])
        elif action.startswith("close") and self.near(args[0]) and args[0] in self.opened:
            self.opened.discard(args[0])
        else:
            return False
        return True


def _type_chain(type_name: str) -> list[str]:
    """``type_name`` and its ancestors in DOMAIN's type hierarchy (habitat-lab's base types under entity_type)."""
    parents = {t: "entity_type" for t in ("movable_entity_type", "static_receptacle_entity_type",
                                           "art_receptacle_entity_type", "goal_entity_type", "robot_entity_type")}
    for parent, children in DOMAIN["types"].items():
        parents.setdefault(parent, "entity_type")
        parents.update({child: parent for child in children})
    chain = [type_name]
    while chain[-1] in parents:
        chain.append(parents[chain[-1]])
    return chain


def _check_args(what: str, param_types: list[str], entities: list["FakePddlEntity"]) -> None:
    """Raise ValueError as habitat-lab's ensure_entity_lists_match does: wrong count or incompatible type."""
    if len(param_types) != len(entities):
        raise ValueError(f"{what}: {len(entities)} arguments for {len(param_types)} parameters")
    for param_type, entity in zip(param_types, entities):
        if param_type not in _type_chain(entity._type):
            raise ValueError(f"{what}: {entity.name} ({entity._type}) is not a {param_type}")


class FakePddlEntity:
    def __init__(self, name: str, type_name: str):
        self.name, self._type = name, type_name


class FakePddlAction:
    """An action of DOMAIN, unbound (``get_ordered_actions``) or bound to entities (``get_possible_actions``)."""

    def __init__(self, name: str, param_types: list[str], args: list[FakePddlEntity] | None = None):
        self._name, self._param_types, self._args = name, param_types, args
        if args is not None:
            _check_args(name, param_types, args)

    @property
    def name(self) -> str:
        return self._name

    @property
    def n_args(self) -> int:
        return len(self._param_types)

    @property
    def compact_str(self) -> str:
        return f"{self._name}({','.join(e.name for e in self._args)})"


class FakePredicate:
    def __init__(self, name: str, args: tuple[str, ...]):
        self._name, self._args = name, args

    @property
    def name(self) -> str:
        return self._name

    def is_true(self, sim_info: FakeWorld) -> bool:
        return sim_info.truth(self._name, self._args)


class FakePddlProblem:
    def __init__(self, world: FakeWorld):
        self._world, self._bound = world, False
        declared = TASK_SPEC["objects"] + DOMAIN["constants"]
        self._entities = {o["name"]: FakePddlEntity(o["name"], o["expr_type"]) for o in declared}
        self._actions = {a["name"]: [p["expr_type"] for p in a["parameters"]] for a in DOMAIN["actions"]}
        self._predicates = {p["name"]: [a["expr_type"] for a in p["args"]] for p in DOMAIN["predicates"]}

    def get_ordered_actions(self):
        return [FakePddlAction(name, types) for name, types in sorted(self._actions.items())]

    def get_ordered_entities_list(self):
        return [self._entities[name] for name in sorted(self._entities)]

    def get_entity(self, k: str):
        return self._entities[k]  # KeyError for an unknown name, as habitat-lab

    def get_possible_actions(self, filter_entities=None, allowed_action_names=None, restricted_action_names=None,
                             true_preds=None):
        if true_preds is not None:
            raise NotImplementedError("the fake has no preconditions to check true_preds against")
        wanted = [e.name for e in filter_entities or ()]
        found = []
        for compact in OFFERED:
            name, _, rest = compact.partition("(")
            args = rest.rstrip(")").split(",")
            if allowed_action_names is not None and name not in allowed_action_names:
                continue
            if name in (restricted_action_names or ()) or not all(w in args for w in wanted):
                continue
            found.append(FakePddlAction(name, self._actions[name], [self._entities[a] for a in args]))
        return found

    def parse_predicate(self, pred_str: str, existing_entities=None):
        name, _, rest = pred_str.partition("(")
        arg_names = [a.strip() for a in rest.rstrip(")").split(",") if a.strip()]
        param_types = self._predicates[name]  # KeyError for an unknown predicate, as habitat-lab
        known = {**(existing_entities or {}), **self._entities}
        missing = [a for a in arg_names if a not in known]
        if missing:
            raise ValueError(f"Could not find entity {missing[0]} in predicate `{pred_str}`")
        _check_args(pred_str, param_types, [known[a] for a in arg_names])
        return FakePredicate(name, tuple(arg_names))

    @property
    def sim_info(self) -> FakeWorld:
        if not self._bound:
            raise ValueError("Need to first bind to simulator instance.")  # as habitat-lab before reset
        return self._world


class FakePddlApplyAction:
    """Applies the option a ``pddl_action`` vector encodes, if the fake world's precondition holds."""

    def __init__(self, task: "FakeTask"):
        self._task, self._invalid = task, False

    @property
    def was_prev_action_invalid(self) -> bool:
        return self._invalid

    def step(self, *args, **kwargs):
        vector = np.asarray(kwargs["pddl_action"])
        self._invalid = False
        problem = self._task.pddl_problem
        entities = problem.get_ordered_entities_list()
        if any(a < 0 or a > len(entities) for a in vector):
            return  # habitat-lab ignores it (and does not flag it invalid)
        start = 0
        for action in problem.get_ordered_actions():
            block = vector[start:start + action.n_args]
            start += action.n_args
            if block.sum() <= 0:
                continue
            if any(int(i) - 1 < 0 for i in block):
                raise ValueError(f"Got invalid action value < 0 in {block} with action {action.name}")
            bound = FakePddlAction(action.name, problem._actions[action.name], [entities[int(i) - 1] for i in block])
            if not problem.sim_info.apply(bound.name, [e.name for e in bound._args]):
                self._invalid = True


class FakeOracleNavAction:
    """Arrives after ``steps_to_arrive`` low-level steps towards the same target."""

    FAKE_ONLY = ("steps_to_arrive",)
    steps_to_arrive = 3

    def __init__(self, task: "FakeTask"):
        self._task = task
        self.skill_done, self._target, self._progress = False, None, 0

    def step(self, *args, **kwargs):
        self.skill_done = False
        index = np.asarray(kwargs["oracle_nav_action"])
        entities = self._task.pddl_problem.get_ordered_entities_list()
        if index <= 0 or index > len(entities):
            return  # habitat-lab ignores an index outside the entities
        target = entities[int(index[0]) - 1].name
        self._progress = self._progress + 1 if self._target == target else 1
        self._target = target
        world = self._task.pddl_problem.sim_info  # before reset: ValueError, as habitat-lab
        self.skill_done = self._progress >= self.steps_to_arrive
        if self.skill_done:
            world.robot_at = world.position(target)
            self._target, self._progress = None, 0


class FakeTask:
    def __init__(self, world: FakeWorld):
        self.pddl_problem = FakePddlProblem(world)
        self.actions = {"pddl_apply_action": FakePddlApplyAction(self), "oracle_nav_action": FakeOracleNavAction(self)}


class FakeEnv:
    def __init__(self, task: FakeTask):
        self._task = task

    @property
    def task(self) -> FakeTask:
        return self._task


class FakeRLTaskEnv:
    """Records what the wrapper sends: ``sent`` (action dicts), ``seeds``, ``closed``."""

    FAKE_ONLY = ("world", "sent", "seeds", "closed", "max_episode_steps", "SLACK_REWARD", "SUCCESS_REWARD")
    max_episode_steps = 100
    SLACK_REWARD, SUCCESS_REWARD = -0.01, 100.0

    def __init__(self):
        self.world = FakeWorld()
        self._env = FakeEnv(FakeTask(self.world))
        self._config = SimpleNamespace(task=SimpleNamespace(success_measure="pddl_success"))
        self.sent: list[dict] = []
        self.seeds: list[int] = []
        self.closed = False
        self._steps, self._started, self._over = 0, False, False

    @property
    def config(self):
        return self._config

    @property
    def habitat_env(self) -> FakeEnv:
        return self._env

    def seed(self, seed=None) -> None:
        self.seeds.append(seed)

    def reset(self, *args, return_info=False, **kwargs):
        self.world.__init__()
        self._env.task.pddl_problem._bound = True
        self._steps, self._started, self._over = 0, True, False
        return ({}, self._metrics()) if return_info else {}

    def step(self, *args, **kwargs):
        return self._env_step(*args, **kwargs)

    def close(self) -> None:
        self.closed = True

    def _env_step(self, action, **kwargs):
        """``habitat.core.env.Env.step``'s checks, the task action's step, then ``RLTaskEnv``'s reward and done."""
        assert self._started, "Cannot call step before calling reset"
        assert not self._over, "Episode over, call reset before calling step"
        if isinstance(action, (str, int, np.integer)):
            action = {"action": action}
        self.sent.append(copy.deepcopy(action))
        actions = self._env.task.actions
        assert action["action"] in actions, f"Can't find '{action['action']}' action in {actions.keys()}."
        actions[action["action"]].step(**(action.get("action_args") or {}), task=self._env.task)
        self._steps += 1
        self._over = self._steps >= self.max_episode_steps
        success = self.world.success
        reward = self.SLACK_REWARD + (self.SUCCESS_REWARD if success else 0.0)
        return {}, reward, self._over or success, self._metrics()

    def _metrics(self) -> dict:
        return {"pddl_success": self.world.success, "num_steps": self._steps, "stage": {"0": 1.0}}


class FakeHabitatBackend:
    """Backend handing out the fake domain and fake envs; ``envs`` lists every env it made."""

    FAKE_ONLY = ("envs",)
    name = "fake"

    def __init__(self):
        self.envs: list[FakeRLTaskEnv] = []

    def pddl_definition(self, settings) -> tuple[dict, dict]:
        return copy.deepcopy(DOMAIN), copy.deepcopy(TASK_SPEC)

    def make_env(self, settings) -> FakeRLTaskEnv:
        env = FakeRLTaskEnv()
        self.envs.append(env)
        return env


# Each fake class -> the class it stands in for ("module:qualified name"), checked by tests/test_habitat_contract.py.
REAL_CLASS = {
    "FakeHabitatBackend": "envs.habitat.backend:HabitatLabBackend",
    "FakeRLTaskEnv": "habitat.core.environments:RLTaskEnv",
    "FakeEnv": "habitat.core.env:Env",
    "FakeTask": "habitat.tasks.rearrange.multi_task.pddl_task:PddlTask",
    "FakePddlProblem": "habitat.tasks.rearrange.multi_task.pddl_domain:PddlProblem",
    "FakePddlAction": "habitat.tasks.rearrange.multi_task.pddl_action:PddlAction",
    "FakePddlEntity": "habitat.tasks.rearrange.multi_task.rearrange_pddl:PddlEntity",
    "FakePredicate": "habitat.tasks.rearrange.multi_task.pddl_predicate:Predicate",
    "FakePddlApplyAction": "habitat.tasks.rearrange.actions.pddl_actions:PddlApplyAction",
    "FakeOracleNavAction": "habitat.tasks.rearrange.actions.oracle_nav_action:OracleNavAction",
}
