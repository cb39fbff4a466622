"""The teacher's counters: typed (TeacherStats, LLMCounters), one name and one meaning each, logged and
summarised under that name.

The planner's ``fallbacks`` (meetings of a sentence its plan source had no answer for) and the LLM source's
``unparsed_answers`` (answers with no readable plan) are different counters; they once shared the name
``fallbacks``, the source's overwriting the planner's in the teacher's stats.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, fields

import numpy as np
import pytest
from conftest import KEY, room_obs

from algos.trainer import Trainer
from planners.llm.cache import AnswerCache
from planners.llm.source import LLMPlanSource
from planners.minigrid.family import MiniGridFamily
from planners.planner import Planner
from planners.teacher import LLMCounters, PlanTeacher, TeacherStats
from utils.config import build_config

OWN_FIELDS = {f.name for f in fields(TeacherStats)} - {"llm"}
LLM_FIELDS = {f.name for f in fields(LLMCounters)}


class HalfReadableClient:
    """An LLM client without HTTP whose every other answer has no plan in it (not re-asked: max_reasks 0)."""

    model, temperature = "stub", 0.7

    def complete(self, query, n, timeout=None):
        return ["Action: {go to <key>, pick up <key>}" if i % 2 == 0 else "I cannot tell." for i in range(n)]

    def close(self):
        pass


def llm_teacher(cache_path, num_envs: int = 1) -> PlanTeacher:
    source = LLMPlanSource(HalfReadableClient(), AnswerCache(cache_path), "prompt", n_samples=2, max_reasks=0,
                           task="simpledoorkey")
    family = MiniGridFamily()
    return PlanTeacher(Planner(source, family.parse), family, num_envs=num_envs)


def test_no_counter_is_named_twice():
    assert OWN_FIELDS & LLM_FIELDS == set()
    stats = TeacherStats(fallbacks=1, replans=2, llm=LLMCounters(*range(len(LLM_FIELDS))))
    assert set(stats.flat()) == OWN_FIELDS | LLM_FIELDS and len(stats.flat()) == len(OWN_FIELDS) + len(LLM_FIELDS)


def test_a_clash_of_names_is_refused_not_merged():
    @dataclass(frozen=True)
    class ClashingCounters:
        llm_calls: int
        fallbacks: int

    stats = TeacherStats(fallbacks=1, replans=0, llm=ClashingCounters(3, 4))
    with pytest.raises(ValueError, match="fallbacks"):
        stats.flat()


def test_the_llm_source_reports_exactly_the_llm_counters(tmp_path):
    source = LLMPlanSource(HalfReadableClient(), AnswerCache(tmp_path / "c.sqlite"), "prompt", n_samples=2,
                           task="simpledoorkey")
    try:
        assert set(source.counters()) == LLM_FIELDS
    finally:
        source.close()


def test_unparsed_answers_are_counted_apart_from_the_planners_fallbacks(tmp_path):
    teacher = llm_teacher(tmp_path / "c.sqlite")
    try:
        obs = room_obs(objects=[(KEY, "yellow", (4, 4), 0)])
        probs = teacher.action_probs(obs[None])
        assert np.allclose(probs.sum(-1), 1.0)
        stats = teacher.stats()
    finally:
        teacher.close()
    assert stats.llm.unparsed_answers == 1, "one of the two answers had no plan"
    assert stats.fallbacks == 0, "the planner got an answer for the sentence it met"
    assert stats.flat()["fallbacks"] == 0 and stats.flat()["unparsed_answers"] == 1


def make_teacher(cache_path):
    """A teacher factory for a one-process run (lag 0: nothing to pickle)."""
    return lambda: llm_teacher(cache_path, num_envs=2)


def test_training_logs_and_summarises_each_counter_under_its_own_name(tmp_path, monkeypatch):
    logged = {}
    import utils.logger
    real = utils.logger.RunLogger.scalars

    def remember(self, scalars, step):
        logged.update(scalars)
        return real(self, scalars, step)
    monkeypatch.setattr(utils.logger.RunLogger, "scalars", remember)
    config = build_config("SimpleDoorKey", {"num_envs": 2, "num_steps": 8, "n_itr": 1, "eval_interval": 0,
                                            "final_eval_episodes": 0, "planner": "llm", "torch_threads": 1})
    trainer = Trainer(config, 0, tmp_path / "run", teacher_factory=make_teacher(tmp_path / "c.sqlite"),
                      stream=io.StringIO())
    result = trainer.run()
    teacher_names = {name.split("/", 1)[1] for name in logged if name.startswith("teacher/")}
    assert OWN_FIELDS | LLM_FIELDS <= teacher_names
    assert logged["teacher/unparsed_answers"] >= 1 and logged["teacher/fallbacks"] == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["teacher_fallbacks"] == 0 and summary["llm"]["unparsed_answers"] == result.llm["unparsed_answers"]
    assert summary["llm"]["unparsed_answers"] >= 1 and LLM_FIELDS <= set(summary["llm"])
