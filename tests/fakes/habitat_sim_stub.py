"""A STUB of the compiled simulator side of Habitat, so that the real habitat-lab imports. It is not habitat-sim.

habitat-lab (pure Python, installed from PyPI by requirements-habitat-test.txt) imports habitat-sim's Python
bindings, ``magnum`` and ``corrade`` at module level, even in modules that never touch a simulator (``import
habitat`` alone reaches ``habitat_sim.Simulator`` through ``habitat.datasets``). habitat-sim has no pip package,
so the contract tests (tests/test_habitat_contract.py) put the modules built here into ``sys.modules`` for
their duration (a fixture there installs and removes them) and then import the real habitat-lab.

What is stubbed: exactly the names below, the ones habitat-lab 0.3.320260507 reads *at import time* of the
modules the contract tests import (class bases, decorators and default argument values). Each name is an
empty placeholder class: it can be subclassed, called (returning an instance that does nothing) and used as
a default value. Nothing here simulates anything: any habitat-lab code path that would call into the
simulator (building ``RLTaskEnv``, ``RearrangeSim``, evaluating a predicate) is not exercised by the tests,
and docs/habitat.md says which symbols that leaves unverified. A name habitat-lab reads that is not listed
raises AttributeError (so a new habitat-lab build that needs more shows up as a failing test, not as a
silently growing stub). ``habitat_sim.utils.profiling_utils`` is left out on purpose: habitat-lab imports
it inside ``try/except ImportError`` and runs without it.
"""
from __future__ import annotations

import importlib.machinery
import logging
import types

# module -> names read at import time; "A.b" is attribute b of placeholder A.
SIMULATOR_NAMES: dict[str, tuple[str, ...]] = {
    "habitat_sim": ("AgentState", "CameraSensorSpec", "Configuration", "EquirectangularSensorSpec",
                    "FisheyeSensorDoubleSphereSpec", "ReplayRenderer", "ReplayRendererConfiguration", "RigidState",
                    "SensorType", "SensorType.COLOR", "SensorType.DEPTH", "SensorType.SEMANTIC", "Simulator"),
    "habitat_sim._ext": (),
    "habitat_sim._ext.habitat_sim_bindings": ("Configuration",),
    "habitat_sim.agent": (),
    "habitat_sim.agent.agent": ("AgentState", "SixDOFPose"),
    "habitat_sim.gfx": ("DebugLineRender",),
    "habitat_sim.logging": (),  # + logger, a standard logging.Logger
    "habitat_sim.metadata": ("MetadataMediator",),
    "habitat_sim.nav": ("NavMeshSettings", "PathFinder"),
    "habitat_sim.physics": ("ArticulatedObjectManager", "CollisionGroupHelper", "CollisionGroups",
                            "JointMotorSettings", "ManagedArticulatedObject", "ManagedBulletArticulatedObject",
                            "ManagedRigidObject", "MotionType", "RaycastResults", "RigidConstraintSettings",
                            "RigidConstraintType", "RigidObjectManager", "VelocityControl"),
    "habitat_sim.scene": ("SemanticRegion",),
    "habitat_sim.sensor": ("CameraSensor", "SensorSpec"),
    "habitat_sim.sim": ("SimulatorBackend",),
    "habitat_sim.simulator": ("Simulator",),
    "habitat_sim.utils": (),
    "habitat_sim.utils.common": ("orthonormalize_rotation_shear", "quat_from_magnum"),
    "magnum": ("Color4", "Matrix3", "Matrix4", "Matrix4.identity_init", "MutableImageView2D", "Quaternion",
               "Range2D", "Range3D", "Vector2", "Vector3", "Vector3.zero_init"),
    "magnum.trade": ("ImporterManager", "MeshData"),
    "corrade": (),
}


class Placeholder:
    """Stands for one class, enum or function of the compiled simulator; does nothing."""

    def __init__(self, *args, **kwargs):
        pass


def _placeholder(module: str, qualname: str) -> type:
    return type(qualname.rpartition(".")[2], (Placeholder,), {"__module__": module, "__qualname__": qualname})


def stub_modules() -> dict[str, types.ModuleType]:
    """New stub modules, by name (parents before children; each child is also an attribute of its parent)."""
    modules: dict[str, types.ModuleType] = {}
    for name in sorted(SIMULATOR_NAMES):  # a parent sorts before its children
        module = types.ModuleType(name, "stub (tests/fakes/habitat_sim_stub.py), not the compiled simulator")
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []  # a package without a finder: importing an unlisted submodule fails
        for qualname in SIMULATOR_NAMES[name]:
            owner_name, _, attribute = qualname.rpartition(".")
            owner = getattr(module, owner_name) if owner_name else module
            setattr(owner, attribute, _placeholder(name, qualname))
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
        modules[name] = module
    modules["habitat_sim.logging"].logger = logging.getLogger("habitat_sim")
    return modules
