"""Where the habitat-lab objects come from: the real library, or an injected stand-in.

A *backend* has two methods:

* ``pddl_definition(settings) -> (domain, task_spec)``: the parsed PDDL YAML files of the task.
* ``make_env(settings)``: an object that behaves like ``habitat.core.environments.RLTaskEnv`` (see
  :class:`envs.habitat.env.HabitatRearrangeEnv` for the few members it uses).

:class:`HabitatLabBackend` is the real one; it imports habitat only inside its methods and turns a failed
import into :class:`envs.registry.TaskUnavailableError` with the install route. Tests inject a fake
(``tests/fakes/habitat_fake.py``) either directly (``HabitatRearrangeEnv(backend=...)``) or, for a whole
``main.py`` run, through the environment variable ``LLM4TEACH_HABITAT_BACKEND=module:attribute`` (the
attribute is called without arguments to make the backend).
"""
from __future__ import annotations

import importlib
import os
import os.path as osp

import yaml

from envs.registry import TaskUnavailableError

BACKEND_ENV_VAR = "LLM4TEACH_HABITAT_BACKEND"
INSTALL_ROUTE = ("conda env create -f environment-habitat.yml && conda activate llm4teach-habitat, "
                 "then download the data (docs/habitat.md)")


def import_habitat():
    """``import habitat``, or TaskUnavailableError in one line saying what is missing and how to install it.

    habitat-sim is imported first: ``import habitat`` needs it anyway (habitat-lab imports the simulator's
    bindings at module level), but without it would first import gym, which prints a notice on stderr
    before the import fails (habitat-lab from pip without habitat-sim), breaking the one-line message.
    """
    try:
        importlib.import_module("habitat_sim")
        return importlib.import_module("habitat")
    except (ImportError, OSError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise TaskUnavailableError(f"Habitat tasks need habitat-sim and habitat-lab, which cannot be imported "
                                   f"here ({reason}); install them with: {INSTALL_ROUTE}") from None


class HabitatLabBackend:
    """The real habitat-lab: composes the config and builds ``RLTaskEnv``."""

    name = "habitat-lab"

    def __init__(self):
        self._configs: dict = {}

    def config(self, settings):
        """The composed habitat config with the oracle actions the options need (cached per settings)."""
        if settings not in self._configs:
            habitat = import_habitat()
            from habitat.config import read_write
            from habitat.config.default_structured_configs import OracleNavActionConfig, PddlApplyActionConfig
            config = habitat.get_config(settings.habitat_config, overrides=list(settings.overrides))
            with read_write(config):
                task = config.habitat.task
                task.actions["pddl_apply_action"] = PddlApplyActionConfig()
                if settings.nav_mode == "oracle_nav":
                    task.actions["oracle_nav_action"] = OracleNavActionConfig()
                if "pddl_success" in task.measurements:
                    # Success = the PDDL goal holds; the student has no stop option (habitat-lab's own
                    # hab3_bench configs set this too).
                    task.measurements.pddl_success.must_call_stop = False
            self._configs[settings] = config
        return self._configs[settings]

    def pddl_definition(self, settings) -> tuple[dict, dict]:
        """The domain and task-spec YAML the task's ``PddlProblem`` reads, found the way habitat-lab finds them."""
        task = self.config(settings).habitat.task
        from habitat.config.default import get_full_habitat_config_path
        from habitat.tasks.rearrange.multi_task import pddl_domain
        domain_path = task.pddl_domain_def
        if not osp.isabs(domain_path):
            domain_path = osp.join(osp.dirname(pddl_domain.__file__), "domain_configs", domain_path)
        if "." not in osp.basename(domain_path):
            domain_path += ".yaml"
        spec_path = osp.join(task.task_spec_base_path, task.task_spec + ".yaml")
        return _read_yaml(get_full_habitat_config_path(domain_path)), _read_yaml(get_full_habitat_config_path(spec_path))

    def make_env(self, settings):
        """A habitat-lab ``RLTaskEnv`` (reward, done and metrics from the task's own measures)."""
        from habitat.core.environments import RLTaskEnv
        return RLTaskEnv(config=self.config(settings))


def _read_yaml(path: str) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def resolve_backend(backend=None):
    """``backend`` if given (an object, or ``"module:attribute"``), else $LLM4TEACH_HABITAT_BACKEND, else the real one."""
    spec = backend if backend is not None else (os.environ.get(BACKEND_ENV_VAR) or None)
    if spec is None:
        return HabitatLabBackend()
    if not isinstance(spec, str):
        return spec
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"a Habitat backend is given as 'module:attribute', got '{spec}'")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot load the Habitat backend '{spec}': {err}") from None
    return factory()
