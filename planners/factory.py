"""Build a teacher from run settings: plan source -> planner -> task family -> :class:`PlanTeacher`.

The only module that knows which task family and which plan source a setting names.
"""
from __future__ import annotations

import logging
from pathlib import Path

from planners.planner import Planner
from planners.sources import RecordedPlanSource
from planners.teacher import PlanTeacher

log = logging.getLogger(__name__)
PLANNERS = ("recorded", "oracle", "adversarial", "llm")


def build_plan_source(config, family: str):
    """The plan source named by ``config.planner`` for a task of ``family`` ("minigrid" or "habitat")."""
    if config.planner == "recorded":
        from utils.config import project_path
        return RecordedPlanSource(config.recorded_table, project_path(config.recorded_plans))
    if config.planner in ("oracle", "adversarial"):
        if family == "habitat":
            if config.planner == "adversarial":
                raise ValueError("--planner adversarial exists for the MiniGrid tasks only")
            from planners.habitat.mediator import HabitatOraclePlanSource
            return HabitatOraclePlanSource()
        from planners.minigrid.scripted import AdversarialPlanSource, OraclePlanSource
        return OraclePlanSource() if config.planner == "oracle" else AdversarialPlanSource()
    if config.planner == "llm":
        return build_llm_source(config)
    raise ValueError(f"unknown planner '{config.planner}'; choose from {', '.join(PLANNERS)}")


def build_family(config):
    """The task family of ``config.task`` (its mediator and skills)."""
    from envs import get_task
    if get_task(config.task).family == "habitat":
        from planners.habitat.family import build_habitat_family
        return build_habitat_family(config.task, config.naming)
    from planners.minigrid.family import MiniGridFamily
    return MiniGridFamily(config.naming or "plain", config.skills)


def build_teacher(config, num_envs: int, seed: int | None, mode: str | None = None) -> PlanTeacher:
    """A teacher for ``num_envs`` envs; ``mode`` defaults to the config's teacher (hard when it is 'none')."""
    from envs import get_task
    mode = mode or (config.teacher if config.teacher in ("hard", "soft") else "hard")
    family = build_family(config)
    source = build_plan_source(config, get_task(config.task).family)
    planner = Planner(source, family.parse, abstract_color_words=config.naming == "colored")
    return PlanTeacher(planner, family, num_envs, mode=mode, hard_sampling=config.hard_sampling,
                       stall_limit=config.stall_limit, seed=seed)


def build_llm_source(config):
    """The live-LLM plan source described by the settings (client, answer cache, recorded fallback).

    No server is contacted here: the first question that the cache cannot answer does (see
    :mod:`planners.llm.source` for what its failures do). With ``llm_offline`` there is no client at all.
    """
    from planners.llm.cache import AnswerCache
    from planners.llm.client import ChatCompletionsClient, LLMConfigError
    from planners.llm.source import LLMPlanSource, system_prompt
    from utils.config import project_path
    cache_path = Path(config.llm_cache) if config.llm_cache else Path(config.logdir) / "llm_cache.sqlite"
    client = None
    if config.llm_offline:
        if not cache_path.is_file():
            raise LLMConfigError(f"--llm_offline replays the answer cache, but there is no cache at {cache_path}; "
                                 f"pass --llm_cache PATH, or fill one with `main.py cache import`")
    else:
        client = ChatCompletionsClient(config.llm_url, config.llm_model, temperature=config.llm_temperature,
                                       timeout=config.llm_timeout, max_retries=config.llm_max_retries,
                                       max_concurrency=config.llm_max_concurrency,
                                       api_key_env=config.llm_api_key_env,
                                       max_answer_chars=config.llm_max_answer_chars)
    fallback = None
    if config.recorded_table and config.recorded_plans:
        try:
            fallback = RecordedPlanSource(config.recorded_table, project_path(config.recorded_plans))
        except ValueError as err:
            log.warning("no recorded plans to fall back on during LLM outages: %s", err)
    return LLMPlanSource(client, AnswerCache(cache_path), system_prompt(config.prompt), n_samples=config.llm_samples,
                         max_reasks=config.llm_max_reasks, model_name=config.llm_model,
                         temperature=config.llm_temperature, task=config.task.lower(), fallback=fallback,
                         on_outage=config.llm_on_outage, outage_budget=config.llm_outage_budget)


def build_training_teacher(config, seed: int) -> PlanTeacher | None:
    """The teacher a training run of ``config`` needs (None for plain PPO)."""
    return build_teacher(config, config.num_envs, seed) if config.teacher != "none" else None
