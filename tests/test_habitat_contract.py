"""Contract tests: the Habitat wrapper, its fake and docs/habitat.md against the REAL habitat-lab package.

habitat-lab is installed from PyPI without its dependencies (requirements-habitat-test.txt, part of the
README's test command and of .ci/run). habitat-sim is not (no pip package): the ``habitat_lab`` fixture puts
the stub modules of tests/fakes/habitat_sim_stub.py into ``sys.modules`` for this module only (unless a real
habitat-sim is importable) and removes them, and every habitat module imported here, afterwards.

Everything else is habitat-lab's own code: Hydra composing rearrange_easy through ``habitat.get_config``,
the structured configs, the registry, ``PddlTask`` building its ``PddlProblem`` from the replica_cad domain
and the rearrange_easy task spec, ``get_possible_actions``, ``parse_predicate``, and ``PddlApplyAction`` /
``OracleNavAction`` built from our config entries and decoding what ``HabitatRearrangeEnv`` sends. Not run
here (it needs the simulator): ``RLTaskEnv``, reset/step, the truth of predicates (docs/habitat.md).
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from envs.habitat.backend import HabitatLabBackend
from envs.habitat.env import ORACLE_NAV, PDDL_APPLY, HabitatRearrangeEnv
from envs.habitat.layout import build_layout
from envs.habitat.pddl import PddlDefinition, goal_of, list_options
from envs.habitat.settings import HabitatSettings
from tests.fakes import habitat_fake
from tests.fakes.habitat_sim_stub import stub_modules

# habitat-lab's maps.py calls imageio.imread at import, which imageio 2.38 flags as deprecated
pytestmark = pytest.mark.filterwarnings("ignore:Starting with ImageIO v3:DeprecationWarning")

PROJECT = Path(__file__).resolve().parents[1]
PINS = PROJECT / "requirements-habitat-test.txt"
DOCS = PROJECT / "docs" / "habitat.md"
SIMULATOR_MODULES = ("habitat_sim", "magnum", "corrade")
INSTALL = ".venv/bin/pip install --no-deps -r requirements-habitat-test.txt (the README's test command)"


def _pinned_version() -> str:
    pins = [line.split("==", 1)[1].split()[0] for line in PINS.read_text().splitlines()
            if line.startswith("habitat-lab==")]
    assert len(pins) == 1, f"{PINS.name} pins habitat-lab once"
    return pins[0]


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("habitat-lab")
    except importlib.metadata.PackageNotFoundError:
        return None


def _has_real_simulator() -> bool:
    return importlib.util.find_spec("habitat_sim") is not None


def _drop_habitat_modules() -> None:
    for name in [n for n in sys.modules if n == "habitat" or n.startswith("habitat.")]:
        del sys.modules[name]


def _api_table() -> list[dict[str, str]]:
    """The rows of docs/habitat.md's habitat-lab API table, as {column header: cell}."""
    text = DOCS.read_text()
    match = re.search(r"<!-- habitat-api:start -->\n(.*?)<!-- habitat-api:end -->", text, re.S)
    assert match, "docs/habitat.md lacks the habitat-api markers around its API table"
    lines = [line for line in match.group(1).splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- the real package, with the simulator stubbed -------------------------------------------------------

def test_installed_habitat_lab_is_the_pinned_build_and_needs_the_simulator_to_import():
    """The docs' claims are about the pinned build; and, per row of the API table, no module imports alone."""
    installed = _installed_version()
    assert installed is not None, f"habitat-lab is not installed: {INSTALL}"
    assert installed == _pinned_version()
    conda = (PROJECT / "environment-habitat.yml").read_text()
    assert f"habitat-lab=={installed}" in conda  # the conda route runs the same build
    if _has_real_simulator():
        return  # the "no" column below is about machines without habitat-sim
    rows = _api_table()
    assert rows and all(row["imports without habitat-sim"] == "no" for row in rows)
    modules = {_ticked(row["module"])[0] for row in rows if _ticked(row["module"])}
    try:
        for module in sorted(modules):
            _drop_habitat_modules()
            with pytest.raises(ModuleNotFoundError) as missing:
                importlib.import_module(module)
            assert missing.value.name in SIMULATOR_MODULES, (module, missing.value)
    finally:
        _drop_habitat_modules()


@pytest.fixture(scope="module")
def habitat_lab():
    """``import habitat`` with the simulator stub in sys.modules; stub and habitat modules are removed afterwards."""
    if _installed_version() is None:
        pytest.fail(f"habitat-lab is not installed: {INSTALL}")
    _drop_habitat_modules()
    with pytest.MonkeyPatch.context() as patch:
        if not _has_real_simulator():
            for name, module in stub_modules().items():
                patch.setitem(sys.modules, name, module)
        try:
            yield importlib.import_module("habitat")
        finally:
            _drop_habitat_modules()


@pytest.fixture(scope="module")
def settings():
    return HabitatSettings.from_kwargs(nav_mode="oracle_nav")  # both oracle actions in the config


@pytest.fixture(scope="module")
def backend(habitat_lab):
    return HabitatLabBackend()


@pytest.fixture(scope="module")
def config(backend, settings):
    """Our composed config: rearrange_easy plus the backend's actions and measure change."""
    return backend.config(settings)


@pytest.fixture(scope="module")
def plain_config(habitat_lab, settings):
    """rearrange_easy as habitat-lab composes it, without our changes."""
    return habitat_lab.get_config(settings.habitat_config, overrides=list(settings.overrides))


@pytest.fixture(scope="module")
def problem(config):
    """The PddlProblem that habitat-lab's own PddlTask builds from our config (its constructor then stops at
    the simulator and dataset, which are not here)."""
    from habitat.tasks.rearrange.multi_task.pddl_task import PddlTask
    task = PddlTask.__new__(PddlTask)
    with pytest.raises(AttributeError):
        task.__init__(config=config.habitat.task, sim=None, dataset=None)
    return task.pddl_problem


@pytest.fixture(scope="module")
def definition(backend, settings):
    """Our reading of the same two YAML files (envs/habitat/pddl.py)."""
    return PddlDefinition.from_yaml(*backend.pddl_definition(settings))


def _leaves(node, prefix="") -> dict:
    from omegaconf import OmegaConf
    container = OmegaConf.to_container(node, resolve=False) if prefix == "" else node
    out = {}
    for key, value in container.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, path + "."))
        else:
            out[path] = value
    return out


def test_config_keys_we_set_are_fields_of_the_real_structured_configs(habitat_lab, config, plain_config):
    """Each key the backend adds or changes is a field of the real structured configs (a misspelt one would
    already fail in the ``config`` fixture: typed nodes refuse unknown keys even inside read_write), and the
    actions it adds are exactly the ones the env sends, each a registered task action."""
    from omegaconf import OmegaConf
    ours, base = _leaves(config), _leaves(plain_config)
    assert set(base) <= set(ours), "the backend removed config keys"
    changed = sorted(k for k in base if ours[k] != base[k])
    added = sorted(set(ours) - set(base))
    assert changed and added
    for key in changed:
        parent, _, name = key.rpartition(".")
        node_type = OmegaConf.get_type(OmegaConf.select(config, parent))
        assert dataclasses.is_dataclass(node_type) and name in {f.name for f in dataclasses.fields(node_type)}, key
    prefix = "habitat.task.actions."
    assert all(k.startswith(prefix) for k in added), added
    new_actions = {k[len(prefix):].split(".")[0] for k in added}
    assert new_actions == {PDDL_APPLY, ORACLE_NAV}  # exactly the task actions the env sends
    for name in new_actions:
        node = config.habitat.task.actions[name]
        node_type = OmegaConf.get_type(node)
        assert node_type.__module__ == "habitat.config.default_structured_configs"
        fields = {k[len(prefix) + len(name) + 1:].split(".")[0] for k in added if k.startswith(f"{prefix}{name}.")}
        assert fields == {f.name for f in dataclasses.fields(node_type)}
        assert habitat_lab.registry.get_task_action(node.type) is not None, node.type


def test_overrides_go_through_hydra(backend, plain_config):
    """docs/habitat.md's validation-split override is a real key; an unknown key is refused, not added."""
    val = backend.config(HabitatSettings.from_kwargs(overrides=["habitat.dataset.split=val"]))
    assert val.habitat.dataset.split == "val" != plain_config.habitat.dataset.split
    with pytest.raises(Exception, match="no_such_key"):
        backend.config(HabitatSettings.from_kwargs(overrides=["habitat.no_such_key=1"]))


def test_measures_the_env_and_the_fake_rely_on(habitat_lab, config):
    task = config.habitat.task
    uuid_of = {key: getattr(habitat_lab.registry.get_measure(m.type), "cls_uuid", None)
               for key, m in task.measurements.items()}
    assert task.success_measure in uuid_of.values() and task.reward_measure in uuid_of.values()
    success_key = next(k for k, uuid in uuid_of.items() if uuid == task.success_measure)
    assert task.measurements[success_key].must_call_stop is False  # the backend's change hit the success measure
    fake = habitat_fake.FakeRLTaskEnv
    assert fake().config.task.success_measure == task.success_measure
    assert (fake.SLACK_REWARD, fake.SUCCESS_REWARD) == (task.slack_reward, task.success_reward)
    assert task.end_on_success  # the fake ends an episode on success


# --- the PDDL definition ---------------------------------------------------------------------------------

def test_our_pddl_reading_matches_habitat_labs(problem, definition):
    """Same entities in the same order (pddl_apply_action indexes into it), same types and hierarchy."""
    real = problem.get_ordered_entities_list()
    assert [e.name for e in definition.entities] == [e.name for e in real]
    for ours, theirs in zip(definition.entities, real):
        assert ours.type == theirs.expr_type.name
        for type_name, expr_type in problem.expr_types.items():
            assert definition.is_subtype(ours.type, type_name) == theirs.expr_type.is_subtype_of(expr_type), \
                (ours.name, type_name)
    assert sorted(definition.actions) == [a.name for a in problem.get_ordered_actions()]
    for action in problem.get_ordered_actions():
        assert [t for _, t in definition.actions[action.name].params] == [p.expr_type.name for p in action.params]


def test_options_are_among_what_get_possible_actions_offers(problem, definition, settings):
    robot = problem.get_entity(settings.robot)
    offered = {a.compact_str: a for a in problem.get_possible_actions(
        filter_entities=[robot], allowed_action_names=list(settings.allowed_actions))}
    ours = [o.compact for o in list_options(definition, settings.allowed_actions, settings.robot)]
    assert len(ours) == len(set(ours)) and set(ours) <= set(offered)
    for left_out in set(offered) - set(ours):  # only an object placed on another object's goal
        action = offered[left_out]
        obj, goal = (e.name for e in action.param_values[:2])
        assert action.name == "place" and goal != goal_of(definition, obj), left_out
    assert {a.compact_str for a in problem.solution} <= set(ours)  # the task's own solution is made of options


def test_observation_predicates_parse_in_habitat_lab(problem, definition, settings):
    layout = build_layout(definition, settings.allowed_actions, settings.robot)
    for slot in layout.slots:
        assert problem.parse_predicate(slot.predicate).compact_str == slot.predicate


# --- the env wrapper on real habitat-lab parts -----------------------------------------------------------

class _NoSimulator(Exception):
    """Raised where habitat-lab asks the simulator something."""


class _PositionsFromSimulator:
    """The real PddlProblem for OracleNavAction, except that its ``sim_info`` (the simulator's side of PDDL)
    records which entity's position is asked, then raises: there is no simulator to answer."""

    def __init__(self, problem):
        self._problem, self.asked = problem, []

    def __getattr__(self, name):
        return getattr(self._problem, name)

    @property
    def sim_info(self):
        return self

    def get_entity_pos(self, entity):
        self.asked.append(entity.name)
        raise _NoSimulator(entity.name)


class _SimlessHabitat:
    """What HabitatRearrangeEnv reads from ``RLTaskEnv``, made of the real parts that need no simulator.

    RLTaskEnv and PddlTask cannot be built without the simulator, so this holds: the config (``RLEnv.config``
    is the ``habitat`` node), the real PddlProblem as the task's ``pddl_problem``, and the real task actions
    built from our config entries the way ``EmbodiedTask._init_entities`` builds them, with a stand-in
    simulator of one agent. ``step`` dispatches like ``EmbodiedTask._step_single_action``.
    """

    def __init__(self, habitat_lab, config, problem):
        self.config = config.habitat
        self.positions = _PositionsFromSimulator(problem)
        sim = SimpleNamespace(agents_mgr=[None])
        actions = {}
        for name, action_config in config.habitat.task.actions.items():
            if name in (PDDL_APPLY, ORACLE_NAV):
                task = SimpleNamespace(pddl_problem=self.positions if name == ORACLE_NAV else problem)
                actions[name] = habitat_lab.registry.get_task_action(action_config.type)(
                    sim=sim, config=action_config, dataset=None, task=task, name=name)
        self.habitat_env = SimpleNamespace(task=SimpleNamespace(pddl_problem=problem, actions=actions))

    def step(self, action):
        task = self.habitat_env.task
        task.actions[action["action"]].step(**action["action_args"], task=task)
        raise AssertionError("habitat-lab's action returned without asking the simulator")


@pytest.fixture(scope="module")
def simless_env(habitat_lab, backend, config, problem, settings):
    class Backend:
        def pddl_definition(self, s):
            return backend.pddl_definition(s)

        def make_env(self, s):
            return _SimlessHabitat(habitat_lab, config, problem)

    env = HabitatRearrangeEnv(backend=Backend(), **dataclasses.asdict(settings))  # checks options, parses slots
    env._needs_reset = False  # reset needs the simulator (the predicates' truth); sending an option does not
    return env


def test_every_option_is_sent_in_the_form_habitat_labs_actions_decode(simless_env):
    """pddl_apply_action decodes the env's vector into exactly that option (then needs the simulator);
    oracle_nav_action looks up exactly the option's target."""
    actions = simless_env._habitat.habitat_env.task.actions
    apply_space = actions[PDDL_APPLY].action_space.spaces
    nav_space = actions[ORACLE_NAV].action_space.spaces
    for index, option in enumerate(simless_env.layout.options):
        if option.action.startswith("nav"):
            asked = simless_env._habitat.positions.asked
            asked.clear()
            with pytest.raises(_NoSimulator):
                simless_env.step(index)
            assert asked == [option.args[0]], option.compact
        else:
            vector = simless_env.apply_vector(option)
            assert [(k, v.shape) for k, v in apply_space.items()] == [("pddl_action", vector.shape)]
            with pytest.raises(ValueError, match="bind to simulator"):
                simless_env.step(index)
            # habitat-lab keeps the action it decoded (and would apply) in _prev_action
            assert actions[PDDL_APPLY]._prev_action.compact_str == option.compact
    assert [(k, v.shape) for k, v in nav_space.items()] == [("oracle_nav_action", (1,))]


# --- the fake against the real classes -------------------------------------------------------------------

def _fake_instances() -> dict[str, object]:
    backend = habitat_fake.FakeHabitatBackend()
    env = backend.make_env(HabitatSettings())
    env.reset()
    task = env.habitat_env.task
    problem = task.pddl_problem
    objects = [backend, env, env.habitat_env, task, problem, problem.get_ordered_actions()[0],
               problem.get_ordered_entities_list()[0], problem.parse_predicate("holding(goal0|0,robot_0)"),
               task.actions[PDDL_APPLY], task.actions[ORACLE_NAV]]
    return {type(o).__name__: o for o in objects}


def _real_class(spec: str) -> type:
    module, _, qualname = spec.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _assigned_on_self(cls: type, name: str) -> bool:
    """Whether ``name`` is a dataclass field of ``cls`` or assigned as ``self.<name>`` in a method of its MRO."""
    if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
        return True
    for klass in cls.__mro__:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue  # builtins and stubs have no source
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in (t for top in targets for t in ast.walk(top)):  # also `self.a, self.b = ...`
                if isinstance(target, ast.Attribute) and target.attr == name and \
                        isinstance(target.value, ast.Name) and target.value.id == "self":
                    return True
    return False


def _member(cls: type, name: str):
    """(kind, object) of ``cls.name``: 'method', 'property', 'data' (class or instance attribute) or None."""
    try:
        found = inspect.getattr_static(cls, name)
    except AttributeError:
        return ("data", None) if _assigned_on_self(cls, name) else (None, None)
    if isinstance(found, property):
        return "property", found
    if isinstance(found, (staticmethod, classmethod)):
        return "method", found.__func__
    return ("method", found) if inspect.isfunction(found) else ("data", found)


def _parameters(function) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_fake_has_the_real_classes_members_and_signatures(habitat_lab):
    instances = _fake_instances()
    assert set(instances) == set(habitat_fake.REAL_CLASS)
    for fake_name, instance in instances.items():
        real = _real_class(habitat_fake.REAL_CLASS[fake_name])
        fake = type(instance)
        skip = set(getattr(fake, "FAKE_ONLY", ())) | {"FAKE_ONLY"}
        public = sorted(n for n in dir(instance) if not n.startswith("_") and n not in skip)
        assert public, fake_name
        for name in public:
            real_kind, real_obj = _member(real, name)
            fake_kind, fake_obj = _member(fake, name)
            fake_kind = fake_kind or "data"  # set in the fake's __init__
            where = f"{fake_name}.{name} vs {real.__module__}.{real.__qualname__}"
            assert real_kind is not None, f"{where}: not in the real class"
            if fake_kind == "method" or real_kind == "method":
                assert fake_kind == real_kind == "method", f"{where}: {fake_kind} vs {real_kind}"
                assert _parameters(fake_obj) == _parameters(real_obj), f"{where}: signatures differ"


def test_the_fake_env_refuses_steps_where_env_step_asserts(habitat_lab):
    """The fake's AssertionErrors are habitat-lab's Env.step assertions (an env wrapper never sees them)."""
    from habitat.core.env import Env
    env_step = inspect.getsource(Env.step)
    fake = habitat_fake.FakeRLTaskEnv()
    fake.max_episode_steps = 1
    nothing = {"action": PDDL_APPLY, "action_args": {"pddl_action": np.zeros(20)}}
    with pytest.raises(AssertionError) as before_reset:
        fake.step(nothing)
    fake.reset()
    assert fake.step(nothing)[2] is True  # the step limit
    with pytest.raises(AssertionError) as after_the_end:
        fake.step(nothing)
    for raised in (before_reset, after_the_end):
        assert f'"{raised.value}"' in env_step
    fake.reset()
    with pytest.raises(AssertionError, match="Can't find 'no_such_action' action"):
        fake.step({"action": "no_such_action"})
    with pytest.raises(KeyError):  # the action's own argument is missing
        fake.step({"action": PDDL_APPLY, "action_args": {}})


def _write_fake_domain(tmp_path: Path) -> tuple[str, str]:
    """The fake's DOMAIN and TASK_SPEC as YAML files habitat-lab reads (empty pre/postconditions and goal)."""
    domain = copy.deepcopy(habitat_fake.DOMAIN)
    for action in domain["actions"]:
        action.update(precondition=None, postcondition=[])
    spec = {**copy.deepcopy(habitat_fake.TASK_SPEC), "goal": None, "stage_goals": {}}
    paths = tmp_path / "fake_domain.yaml", tmp_path / "fake_task.yaml"
    for path, content in zip(paths, (domain, spec)):
        path.write_text(yaml.safe_dump(content))
    return str(paths[0]), str(paths[1])


def test_the_fakes_pddl_answers_and_errors_are_habitat_labs(habitat_lab, tmp_path):
    """The real PddlProblem and PddlApplyAction reading the fake's own domain: same answers, same exceptions."""
    from habitat.tasks.rearrange.actions.pddl_actions import PddlApplyAction
    from habitat.tasks.rearrange.multi_task.pddl_domain import PddlProblem
    real = PddlProblem(*_write_fake_domain(tmp_path))
    fake_env = habitat_fake.FakeRLTaskEnv()  # not reset yet, as `real` is not bound to a simulator
    fake = fake_env.habitat_env.task.pddl_problem
    assert [e.name for e in fake.get_ordered_entities_list()] == [e.name for e in real.get_ordered_entities_list()]
    assert [(a.name, a.n_args) for a in fake.get_ordered_actions()] == \
           [(a.name, a.n_args) for a in real.get_ordered_actions()]
    for problem in (real, fake):
        robot = problem.get_entity(habitat_fake.ROBOT)
        assert sorted(a.compact_str for a in problem.get_possible_actions(filter_entities=[robot])) == \
               sorted(habitat_fake.OFFERED), problem
        assert [a.compact_str for a in problem.get_possible_actions(allowed_action_names=["pick"])] == \
               [f"pick({habitat_fake.OBJECT},{habitat_fake.ROBOT})"]

    def outcome(call):
        try:
            call()
        except Exception as err:  # noqa: BLE001 - the type is what is compared
            return type(err)
        return None

    calls = {
        "unknown entity": lambda p: p.get_entity("no_such_entity"),
        "unknown predicate": lambda p: p.parse_predicate("no_such_predicate(goal0|0)"),
        "unknown argument": lambda p: p.parse_predicate("holding(no_such_entity,robot_0)"),
        "wrong argument types": lambda p: p.parse_predicate("holding(robot_0,goal0|0)"),
        "wrong argument count": lambda p: p.parse_predicate("holding(goal0|0)"),
        "sim_info before reset": lambda p: p.sim_info,
        "a good predicate": lambda p: p.parse_predicate("robot_at(cab_push_point_1,robot_0)"),
    }
    for what, call in calls.items():
        assert outcome(lambda: call(real)) == outcome(lambda: call(fake)), what
    assert outcome(lambda: calls["unknown entity"](fake)) is KeyError

    real_apply = PddlApplyAction(sim=SimpleNamespace(agents_mgr=[None]), config=None, dataset=None,
                                 task=SimpleNamespace(pddl_problem=real), name=PDDL_APPLY)
    fake_apply = fake_env.habitat_env.task.actions[PDDL_APPLY]
    fake_env.reset()  # the fake world is there; the vectors below make the real action stop before the simulator
    size = sum(a.n_args for a in real.get_ordered_actions())
    ordered = real.get_ordered_actions()
    start = {a.name: sum(b.n_args for b in ordered[:i]) for i, a in enumerate(ordered)}
    entities = [e.name for e in real.get_ordered_entities_list()]
    past_the_end, zero_in_block = np.zeros(size), np.zeros(size)
    past_the_end[start["pick"]:start["pick"] + 2] = [len(entities) + 1, 1]
    zero_in_block[start["pick"]] = entities.index(habitat_fake.OBJECT) + 1
    for vector, expected in ((past_the_end, None), (zero_in_block, ValueError), (np.zeros(size), None)):
        for action in (real_apply, fake_apply):
            assert outcome(lambda: action.step(pddl_action=vector)) is expected, (action, vector)
            assert action.was_prev_action_invalid is False


# --- docs/habitat.md -------------------------------------------------------------------------------------

def test_every_symbol_in_the_docs_api_table_resolves_in_the_real_package(habitat_lab, plain_config):
    from omegaconf import OmegaConf
    rows = _api_table()
    assert rows
    checked = set()
    for row in rows:
        names = _ticked(row["names"])
        assert names, row
        module = _ticked(row["module"])
        if not module:  # config keys of the composed rearrange_easy config
            assert row["module"] == "composed config", row
            for key in names:
                parent, _, field = key.rpartition(".")
                node = OmegaConf.select(plain_config, parent)
                assert node is not None and field in node, key
                assert field in {f.name for f in dataclasses.fields(OmegaConf.get_type(node))}, key
            continue
        for name in names:
            obj = importlib.import_module(module[0])
            *owners, last = name.split(".")
            for part in owners:
                obj = getattr(obj, part)
            if inspect.ismodule(obj):
                assert hasattr(obj, last), f"{module[0]}.{name}"
            else:
                assert _member(obj, last)[0] is not None, f"{module[0]}.{name}"
            checked.add(f"{module[0]}:{'.'.join(owners) or last}")
    # every habitat-lab class the fake stands in for is in the table
    faked = {spec for spec in habitat_fake.REAL_CLASS.values() if spec.startswith("habitat.")}
    assert faked <= checked, sorted(faked - checked)
