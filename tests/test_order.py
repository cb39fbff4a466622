"""The tests that share answer caches pass in either order (issue 13, point 6).

A leaked SQLite connection from one run used to write its log back into a cache file during a later run in
the same process, so tests/test_failures.py's truncated-cache test passed or failed depending on what ran
before it. tests/test_resources.py checks deterministically that every run closes its cache; this test runs
the pair named in the issue back to back in both orders (A, B, A) in a fresh process, with the order set by
``LLM4TEACH_TEST_ORDER`` (see conftest.py).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
TRUNCATED_CACHE = "tests/test_failures.py::test_truncated_llm_cache_gives_a_clear_error_and_stays_as_it_is"
TRAIN_THEN_EVAL = "tests/test_cli.py::test_train_then_eval_student_and_teacher"


def test_cache_tests_pass_in_both_orders():
    order = [TRUNCATED_CACHE, TRAIN_THEN_EVAL, TRUNCATED_CACHE]
    env = {**os.environ, "LLM4TEACH_TEST_ORDER": " ".join(order)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:randomly", "-p", "no:cacheprovider",
                             TRUNCATED_CACHE, TRAIN_THEN_EVAL], cwd=PROJECT, env=env, capture_output=True,
                            text=True, timeout=280)
    ran = re.findall(r"^(tests/\S+::\S+) (PASSED|FAILED|ERROR)", result.stdout, re.MULTILINE)
    assert [test for test, _ in ran] == order, f"not run in the requested order:\n{result.stdout[-3000:]}"
    assert result.returncode == 0 and all(outcome == "PASSED" for _, outcome in ran), result.stdout[-5000:]
