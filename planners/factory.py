"""Build a teacher from run settings: plan source -> planner -> task family -> :class:`PlanTeacher`.

The only module that knows which task family and which plan source a setting names.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

from planners.planner import Planner
from planners.sources import RecordedPlanSource
from planners.teacher import PlanTeacher

log = logging.getLogger(__name__)
PLANNERS = ("recorded", "oracle", "adversarial", "llm")


def build_plan_source(config, family: str):
    """The plan source named by ``config.teacher.planner`` for a task of ``family`` ("minigrid" or "habitat")."""
    if config.teacher.planner == "recorded":
        from utils.config import project_path
        return RecordedPlanSource(config.teacher.recorded_table, project_path(config.teacher.recorded_plans))
    if config.teacher.planner in ("oracle", "adversarial"):
        if family == "habitat":
            if config.teacher.planner == "adversarial":
                raise ValueError("--planner adversarial exists for the MiniGrid tasks only")
            from planners.habitat.mediator import HabitatOraclePlanSource
            return HabitatOraclePlanSource()
        from planners.minigrid.scripted import AdversarialPlanSource, OraclePlanSource
        return OraclePlanSource() if config.teacher.planner == "oracle" else AdversarialPlanSource()
    if config.teacher.planner == "llm":
        return build_llm_source(config)
    raise ValueError(f"unknown planner '{config.teacher.planner}'; choose from {', '.join(PLANNERS)}")


def build_family(config):
    """The task family of ``config.run.task`` (its mediator and skills)."""
    from envs import get_task
    if get_task(config.run.task).family == "habitat":
        from planners.habitat.family import build_habitat_family
        return build_habitat_family(config.run.task, config.teacher.naming)
    from planners.minigrid.family import MiniGridFamily
    return MiniGridFamily(config.teacher.naming or "plain", config.teacher.skills)


def build_teacher(config, num_envs: int, seed: int | None, mode: str | None = None) -> PlanTeacher:
    """A teacher for ``num_envs`` envs; ``mode`` defaults to the config's teacher (hard when it is 'none')."""
    from envs import get_task
    mode = mode or (config.teacher.mode if config.teacher.mode in ("hard", "soft") else "hard")
    family = build_family(config)
    source = build_plan_source(config, get_task(config.run.task).family)
    planner = Planner(source, family.parse, abstract_color_words=config.teacher.naming == "colored")
    return PlanTeacher(planner, family, num_envs, mode=mode, hard_sampling=config.teacher.hard_sampling,
                       stall_limit=config.teacher.stall_limit, seed=seed)


def build_llm_source(config):
    """The live-LLM plan source described by the settings (client, answer cache, recorded fallback).

    No server is contacted here: the first question that the cache cannot answer does (see
    :mod:`planners.llm.source` for what its failures do). With ``llm_offline`` there is no client at all.
    """
    from planners.llm.cache import AnswerCache
    from planners.llm.client import API_DEFAULT_MAX_TOKENS, LLMConfigError, build_client
    from planners.llm.source import LLMPlanSource
    from utils.config import project_path
    prompt = llm_prompt(config)
    cache_path = Path(config.llm.cache) if config.llm.cache else Path(config.run.logdir) / "llm_cache.sqlite"
    client = None
    if config.llm.offline:
        if not cache_path.is_file():
            raise LLMConfigError(f"--llm_offline replays the answer cache, but there is no cache at {cache_path}; "
                                 f"pass --llm_cache PATH, or fill one with `main.py cache import`")
    else:
        client = build_client(config.llm.api, config.llm.url, config.llm.model, stop=prompt.stop,
                              temperature=config.llm.temperature, timeout=config.llm.timeout,
                              max_retries=config.llm.max_retries, max_concurrency=config.llm.max_concurrency,
                              max_tokens=config.llm.max_tokens or API_DEFAULT_MAX_TOKENS[config.llm.api],
                              api_key_env=config.llm.api_key_env, max_answer_chars=config.llm.max_answer_chars)
    fallback = None
    if config.teacher.recorded_table and config.teacher.recorded_plans:
        try:
            fallback = RecordedPlanSource(config.teacher.recorded_table, project_path(config.teacher.recorded_plans))
        except ValueError as err:
            log.warning("no recorded plans to fall back on during LLM outages: %s", err)
    return LLMPlanSource(client, AnswerCache(cache_path), prompt, n_samples=config.llm.samples,
                         max_reasks=config.llm.max_reasks, model_name=config.llm.model,
                         temperature=config.llm.temperature, task=config.run.task.lower(), fallback=fallback,
                         on_outage=config.llm.on_outage, outage_budget=config.llm.outage_budget, seed=config.llm.seed)


def llm_prompt(config):
    """The prompt form of ``config.llm.api`` for the task (a task config without one is a ConfigError)."""
    from planners.llm.prompts import prompt_for
    from utils.config import ConfigError
    try:
        return prompt_for(config.llm.api, config.llm.prompt)
    except ValueError as err:
        raise ConfigError(f"{config.run.task}: {err}") from None


def build_training_teacher(config, seed: int) -> PlanTeacher | None:
    """The teacher a training run of ``config`` needs (None for plain PPO)."""
    return build_teacher(config, config.env.num_envs, seed) if config.teacher.mode != "none" else None


def training_teacher_factory(config, seed: int):
    """A picklable recipe for :func:`build_training_teacher` (a rollout worker process calls it)."""
    return functools.partial(build_training_teacher, config, seed)
