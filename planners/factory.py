"""Build a teacher from a run configuration: plan source -> planner -> teacher."""
from __future__ import annotations

from planners.planner import Planner
from planners.sources import OraclePlanSource, RecordedPlanSource
from planners.teacher import Teacher


def build_plan_source(config):
    """The plan source named by ``config.planner``."""
    if config.planner == "recorded":
        from utils.config import project_path
        return RecordedPlanSource(config.recorded_table, project_path(config.recorded_plans))
    if config.planner == "oracle":
        from envs import get_task
        if get_task(config.task).family == "habitat":
            from planners.habitat_mediator import HabitatOraclePlanSource
            return HabitatOraclePlanSource()
        return OraclePlanSource()
    if config.planner == "llm":
        from planners.llm_source import build_llm_source
        return build_llm_source(config)
    raise ValueError(f"unknown planner '{config.planner}'")


def build_teacher(config, num_envs: int, seed: int | None, mode: str | None = None) -> Teacher:
    """A teacher for ``num_envs`` envs; ``mode`` defaults to the config's teacher (hard when it is 'none')."""
    mode = mode or (config.teacher if config.teacher in ("hard", "soft") else "hard")
    from envs import get_task
    if get_task(config.task).family == "habitat":
        from planners.habitat_teacher import build_habitat_teacher
        return build_habitat_teacher(config, build_plan_source(config), num_envs, mode, seed)
    planner = Planner(build_plan_source(config), abstract_color_words=config.naming == "colored")
    return Teacher(planner, config.naming, num_envs, mode=mode, seed=seed)
