"""The LLM answer cache is committed on every write and closed by whoever owns it.

An SQLite connection left open keeps the cache's write-ahead log (``<cache>-wal``) beside the file; when the
connection is finally garbage-collected, possibly during a later run in the same process, the log is written
back into the file. That made the suite order-dependent (issue 13, point 6): a truncated cache "healed"
itself. So: ``-wal`` present means someone still holds the cache open. (Commit on write and
``LLMPlanSource.close()`` by themselves are tested in tests/test_llm_source.py.)
"""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import main
from fake_llm import FakeLLMServer
from planners.llm.cache import AnswerCache
from planners.llm.source import LLMPlanSource
from planners.minigrid.family import MiniGridFamily
from planners.planner import Planner
from planners.teacher import PlanTeacher

SENTENCE = "Agent sees <key>, holds <nothing>."
COMMON = ["--task", "SimpleDoorKey", "--llm_samples", "2"]
TRAIN = ["--num_envs", "2", "--num_steps", "16", "--n_itr", "1", "--eval_interval", "0", "--final_eval_episodes", "2"]


class StubClient:
    """What LLMPlanSource needs from an HTTP client, without HTTP; remembers whether it was closed."""

    model, temperature = "stub", 0.7

    def __init__(self):
        self.closed = False

    def complete(self, messages, n):
        return ["Action: {go to <key>, pick up <key>}"] * n

    def close(self):
        self.closed = True


def rows_in_file_alone(cache_path: Path, tmp: Path) -> int:
    """Answers readable from the cache file by itself (a copy without its -wal/-shm side files)."""
    copy = tmp / "copy" / cache_path.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(cache_path, copy)
    db = sqlite3.connect(copy)
    try:
        return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    finally:
        db.close()


def wal(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name + "-wal")


def test_closing_the_teacher_closes_its_source_cache_and_client(tmp_path):
    path = tmp_path / "cache.sqlite"
    client = StubClient()
    source = LLMPlanSource(client, AnswerCache(path), "prompt", n_samples=2, task="simpledoorkey")
    family = MiniGridFamily()
    teacher = PlanTeacher(Planner(source, family.parse), family, num_envs=1)
    source.plan_distribution(SENTENCE)
    assert wal(path).exists() and not client.closed, "while the cache is open its log sits beside it"
    teacher.close()
    assert client.closed, "the HTTP client is closed"
    assert not wal(path).exists() and rows_in_file_alone(path, tmp_path) == 1, "the cache is closed"


@pytest.mark.parametrize("lag", ["0", "1"])  # with lag 1 the teacher lives (and is closed) in the rollout worker
def test_train_and_eval_with_a_live_llm_leave_the_cache_closed(tmp_path, capsys, lag):
    cache = tmp_path / "llm_cache.sqlite"
    with FakeLLMServer() as server:
        llm = ["--planner", "llm", "--llm_url", server.url, "--logdir", str(tmp_path)]
        assert main.main(["train", "--savedir", "a", "--policy_lag", lag] + llm + COMMON + TRAIN) == 0
        assert cache.exists() and not wal(cache).exists(), "train closed the teacher's answer cache"
        assert rows_in_file_alone(cache, tmp_path) > 0, "and left every answer in the file itself"
        assert main.main(["eval", "--eval_teacher", "--num_eval", "2", "--num_videos", "0"] + llm + COMMON) == 0
        assert not wal(cache).exists(), "eval --eval_teacher closed the teacher's answer cache"
    capsys.readouterr()
