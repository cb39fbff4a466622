"""HabitatRearrange: habitat-lab's rearrange_easy (navigate to an object, pick it, navigate to its goal,
place it) with the Fetch robot in ReplicaCAD, played one option at a time.

Needs habitat-sim and habitat-lab (see docs/habitat.md); nothing is imported here, so the task is listed
everywhere and only building it asks for habitat. The kwargs are
:class:`envs.habitat.settings.HabitatSettings` fields; unset ones take their defaults there.
"""
from envs.registry import register_task

register_task("HabitatRearrange", "envs.habitat.env:HabitatRearrangeEnv", family="habitat",
              habitat_config="benchmark/rearrange/multi_task/rearrange_easy.yaml", max_options=12)
