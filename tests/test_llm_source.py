"""Tests for planners.llm.source: soft plan distributions from a live (loopback) LLM server."""

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import the project without installing it
sys.path.insert(0, str(Path(__file__).resolve().parent))

from planners.llm.cache import AnswerCache  # noqa: E402
from planners.llm.client import ChatCompletionsClient, LLMConfigError, LLMTransientError  # noqa: E402
from planners.llm.source import (LLMGarbageError, LLMOfflineMissError, LLMOutageError,  # noqa: E402
                                 LLMPlanSource, TemporaryAnswer)

PATH = "/v1/chat/completions"
PROMPT = "You teach an agent in a grid world. Answer with Action: {...}."
SENTENCE = "Agent sees <key>, holds <nothing>."
PLAN_A = "go to <key>, pick up <key>"
PLAN_B = "explore"
ANSWER_A = "The key is visible.\n**Action:** {Go to <key>, pick up <key>}"
ANSWER_B = "动作如下。\nAction: {explore}"
GARBAGE = "I am not sure what the agent should do."


def chat_reply(contents):
    body = {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
                    for i, c in enumerate(contents)],
    }
    return Response(json.dumps(body), content_type="application/json")


def make_source(server, cache, **overrides):
    client = ChatCompletionsClient(f"http://127.0.0.1:{server.port}/v1", model="fake-model", temperature=0.7,
                                   timeout=5.0, max_retries=1, backoff_base=0.01, max_backoff=0.05,
                                   max_concurrency=4)
    overrides.setdefault("task", "simpledoorkey")
    return LLMPlanSource(client, cache, PROMPT, **overrides)


def sent_n(server):
    return [json.loads(request.get_data())["n"] for request, _ in server.log]


def test_soft_distribution_from_n_answers(server, tmp_path):
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([ANSWER_A] * 7 + [ANSWER_B] * 3))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache)
        distribution = source.plan_distribution(SENTENCE)

    assert distribution == [(PLAN_A, 0.7), (PLAN_B, 0.3)]
    assert sum(p for _, p in distribution) == pytest.approx(1.0)
    assert source.llm_calls == 1 and len(server.log) == 1
    assert (source.cache_misses, source.cache_hits, source.fallbacks) == (1, 0, 0)
    assert source.teacher_seconds > 0
    body = json.loads(server.log[0][0].get_data())
    assert body["messages"] == [{"role": "system", "content": PROMPT}, {"role": "user", "content": SENTENCE}]
    assert body["n"] == 10 and body["model"] == "fake-model"


def test_second_run_is_served_from_the_cache_without_http(server, tmp_path):
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([ANSWER_A] * 7 + [ANSWER_B] * 3))
    path = tmp_path / "c.sqlite"
    with AnswerCache(path) as cache:
        first = make_source(server, cache).plan_distribution(SENTENCE)
    requests_after_first_run = len(server.log)
    assert requests_after_first_run == 1

    with AnswerCache(path) as cache:  # a new run: new client, new source, same cache file
        source = make_source(server, cache)
        second = source.plan_distribution(SENTENCE)
        third = source.plan_distribution(SENTENCE)

    assert second == third == first
    assert len(server.log) == requests_after_first_run, "a cache hit must not touch the server"
    assert (source.llm_calls, source.cache_hits, source.cache_misses) == (0, 2, 0)
    assert source.client.requests_made == 0


def test_server_ignoring_n_still_gives_the_soft_distribution(server, tmp_path):
    served, lock = [0], threading.Lock()

    def handler(request: Request):
        with lock:
            served[0] += 1
            answer = ANSWER_A if served[0] <= 7 else ANSWER_B
        return chat_reply([answer])  # one choice, whatever n says

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache)
        distribution = source.plan_distribution(SENTENCE)

    assert distribution == [(PLAN_A, 0.7), (PLAN_B, 0.3)]
    assert len(server.log) == 10 and source.llm_calls == 10
    assert sent_n(server) == [10] + [1] * 9


def test_unparseable_answers_are_reasked_then_fall_back_to_explore(server, tmp_path):
    rounds = {10: [ANSWER_A] * 6 + [GARBAGE] * 4, 4: [ANSWER_A] * 2 + [GARBAGE] * 2, 2: [GARBAGE, "Action: {}"]}
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply(rounds[request.json["n"]]))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, max_reasks=2)
        distribution = source.plan_distribution(SENTENCE)
        stored = cache.get(source.key_for(SENTENCE))

    assert sent_n(server) == [10, 4, 2], "failed answers are re-asked together, max_reasks times"
    assert distribution == [(PLAN_A, 0.8), ("explore", 0.2)]
    assert source.fallbacks == 2 and source.llm_calls == 3
    assert stored.parsed_plans.count(None) == 2 and stored.parsed_plans.count(PLAN_A) == 8
    assert GARBAGE in stored.raw_answers and len(stored.raw_answers) == 10
    assert stored.task == "simpledoorkey"


def test_no_reasks_when_disabled(server, tmp_path):
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([ANSWER_A] * 5 + [GARBAGE] * 5))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, max_reasks=0)
        assert source.plan_distribution(SENTENCE) == [(PLAN_A, 0.5), ("explore", 0.5)]
    assert sent_n(server) == [10] and source.fallbacks == 5


OTHER = "Agent sees <door>, holds <nothing>."
THIRD = "Agent sees <nothing>, holds <nothing>."


def answer_then_fail(status=503):
    """A handler answering the first question and failing every later one with ``status``."""
    calls = []

    def handler(request: Request):
        calls.append(1)
        if len(calls) == 1:
            return chat_reply([ANSWER_A] * request.json["n"])
        return Response("down", status=status)
    return handler


def test_outage_answers_with_explore_caches_nothing_and_pauses_the_llm(server, tmp_path, caplog):
    server.expect_request(PATH, method="POST").respond_with_handler(answer_then_fail(503))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, outage_cooldown=60.0)
        assert source.plan_distribution(SENTENCE) == [(PLAN_A, 1.0)]
        answer = source.plan_distribution(OTHER)
        again = source.plan_distribution(THIRD)
        assert len(cache) == 1
    assert answer == [("explore", 1.0)] and isinstance(answer, TemporaryAnswer)
    assert isinstance(again, TemporaryAnswer), "during the cooldown the LLM is not asked"
    assert source.llm_calls == 3 and len(server.log) == 3  # the answer, then first try + one retry
    assert source.outage_answers == 2 and source.live_answers == 1
    assert any(f"127.0.0.1:{server.port}" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_outage_answers_from_the_fallback_source_then_asks_again_when_back(server, tmp_path):
    class Recorded:
        def plan_distribution(self, sentence):
            return [(PLAN_A, 1.0)] if sentence == SENTENCE else None

    server.expect_ordered_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([ANSWER_A] * request.json["n"]))
    server.expect_ordered_request(PATH, method="POST").respond_with_data("down", status=503)
    server.expect_ordered_request(PATH, method="POST").respond_with_data("down", status=503)
    server.expect_ordered_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([ANSWER_B] * request.json["n"]))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, fallback=Recorded(), outage_cooldown=0.0)
        source.plan_distribution(OTHER)
        assert source.plan_distribution(SENTENCE) == [(PLAN_A, 1.0)]
        assert source.plan_distribution(SENTENCE) == [(PLAN_B, 1.0)], "asked again once the server is back"
        assert len(cache) == 2


def test_a_server_that_never_answered_stops_the_run_instead_of_falling_back(server, tmp_path):
    """A wrong --llm_url must not silently turn into a run on the recorded plans."""
    server.expect_request(PATH, method="POST").respond_with_data("down", status=503)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, fallback=None)
        with pytest.raises(LLMTransientError, match="HTTP 503 after 1 retries"):
            source.plan_distribution(SENTENCE)
    assert source.outage_answers == 0


@pytest.mark.parametrize("status", [400, 401, 404])
def test_configuration_errors_stop_even_after_good_answers(server, tmp_path, status):
    server.expect_request(PATH, method="POST").respond_with_handler(answer_then_fail(status))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, n_samples=1)
        source.plan_distribution(SENTENCE)
        with pytest.raises(LLMConfigError, match=f"HTTP {status}"):
            source.plan_distribution(OTHER)
    assert source.outage_answers == 0


def test_outage_with_stop_policy_raises(server, tmp_path):
    server.expect_request(PATH, method="POST").respond_with_handler(answer_then_fail(503))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, on_outage="stop")
        source.plan_distribution(SENTENCE)
        with pytest.raises(LLMOutageError, match="HTTP 503 after 1 retries.*--llm_on_outage is stop"):
            source.plan_distribution(OTHER)
    assert source.outage_answers == 0


def test_outage_budget_bounds_the_time_lost_to_a_hung_server(tmp_path):
    """Scaled-down defaults: deadline 0.5 s, budget 0.8 s, no cooldown. After the budget is spent the server
    is never asked again in this run, so a hung server costs the budget once, not a deadline per question."""
    from fake_llm import RawServer, chat_json

    def behaviour(conn, body, raw):
        if raw.requests == 1:
            data = chat_json([ANSWER_A] * 10)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        else:
            raw.stopping.wait(30)  # hang

    with RawServer(behaviour) as raw, AnswerCache(tmp_path / "c.sqlite") as cache:
        client = ChatCompletionsClient(raw.url, model="m", timeout=0.5, max_retries=3, backoff_base=0.01)
        source = LLMPlanSource(client, cache, PROMPT, outage_cooldown=0.0, outage_budget=0.8)
        source.plan_distribution(SENTENCE)
        start = time.monotonic()
        for sentence in [OTHER, THIRD, "Agent sees <key>, <door>, holds <nothing>.", "Agent sees <door>, holds <key>."]:
            assert isinstance(source.plan_distribution(sentence), TemporaryAnswer)
        elapsed = time.monotonic() - start
        asked = raw.requests
    assert 0.8 <= elapsed < 0.8 + 0.5, f"{elapsed:.2f}s lost; the budget was 0.8s"
    assert asked == 3, "one full deadline, one question with what was left of the budget, then no more"
    assert source.counters()["outage_seconds"] == pytest.approx(0.8, abs=0.1)
    assert source.outage_answers == 4


def test_offline_replay_needs_no_server(tmp_path):
    path = tmp_path / "c.sqlite"
    key_source = LLMPlanSource(None, AnswerCache(path), PROMPT, model_name="m", temperature=0.7)
    key_source.cache.put(key_source.key_for(SENTENCE), [ANSWER_A], [PLAN_A])
    key_source.close()

    class Recorded:
        def plan_distribution(self, sentence):
            return [(PLAN_B, 1.0)]

    with AnswerCache(path) as cache:
        source = LLMPlanSource(None, cache, PROMPT, model_name="m", temperature=0.7, fallback=Recorded())
        assert source.plan_distribution(SENTENCE) == [(PLAN_A, 1.0)]
        missing = source.plan_distribution(OTHER)
        assert missing == [(PLAN_B, 1.0)] and isinstance(missing, TemporaryAnswer)
        assert (source.cache_hits, source.outage_answers, source.llm_calls) == (1, 1, 0)
        strict = LLMPlanSource(None, cache, PROMPT, model_name="m", temperature=0.7, on_outage="stop")
        with pytest.raises(LLMOfflineMissError, match="--llm_offline.*no answer for 'Agent sees <door>"):
            strict.plan_distribution(OTHER)


def test_oversized_answers_are_reasked_counted_and_never_cached(server, tmp_path):
    huge = "Action: {go to <key>, pick up <key>} " + "blah " * 2000
    rounds = {3: [ANSWER_A, huge, huge], 2: [huge, ANSWER_A]}
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply(rounds[request.json["n"]]))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, n_samples=3, max_reasks=1)
        assert source.plan_distribution(SENTENCE) == [(PLAN_A, 2 / 3), ("explore", 1 / 3)]
        stored = cache.get(source.key_for(SENTENCE))
    assert source.oversized_answers == 1 and source.fallbacks == 1
    assert all(len(answer) < 200 for answer in stored.raw_answers), "the long text is not stored"


def test_an_llm_speaking_garbage_stops_the_run_with_a_clear_error(server, tmp_path):
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([GARBAGE] * request.json["n"]))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, max_reasks=1)
        with pytest.raises(LLMGarbageError, match="no parseable 'Action"):
            source.plan_distribution(SENTENCE)  # nothing readable from the very first question
        assert len(cache) == 0, "garbage is not written to the cache"
    assert not (tmp_path / "c.sqlite").exists(), "the cache file appears only with the first stored answer"


def test_garbage_after_good_answers_is_tolerated_up_to_the_limit(server, tmp_path):
    def handler(request):
        good = request.json["messages"][-1]["content"] == SENTENCE
        return chat_reply([ANSWER_A if good else GARBAGE] * request.json["n"])

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, max_reasks=0, garbage_limit=2)
        assert source.plan_distribution(SENTENCE) == [(PLAN_A, 1.0)]
        assert source.plan_distribution("Agent sees <door>, holds <nothing>.") == [("explore", 1.0)]
        with pytest.raises(LLMGarbageError, match="2 questions in a row"):
            source.plan_distribution("Agent sees <nothing>, holds <nothing>.")
        assert len(cache) == 1


def test_cache_key_uses_model_name_and_sample_count(server, tmp_path):
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([ANSWER_B] * request.json["n"]))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        named = make_source(server, cache, model_name="glm-4-flash", n_samples=4)
        assert named.plan_distribution(SENTENCE) == [(PLAN_B, 1.0)]
        assert named.key_for(SENTENCE).model == "glm-4-flash"
        # A different sample count is a different question: it goes to the server.
        other = make_source(server, cache, model_name="glm-4-flash", n_samples=5)
        other.plan_distribution(SENTENCE)
    assert sent_n(server) == [4, 5]


def test_teacher_seconds_measures_waiting(server, tmp_path):
    def handler(request: Request):
        time.sleep(0.1)
        return chat_reply([ANSWER_A] * request.json["n"])

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache)
        source.plan_distribution(SENTENCE)
        waited = source.teacher_seconds
        source.plan_distribution(SENTENCE)  # cache hit: no extra waiting
    assert 0.1 <= waited < 2.0
    assert source.teacher_seconds == waited
    assert source.counters()["cache_hits"] == 1


def test_cache_commits_on_write_and_close_releases_cache_and_client(tmp_path):
    import sqlite3

    class Client:
        model, temperature, closed = "m", 0.7, False

        def complete(self, messages, n):
            return [ANSWER_A] * n

        def close(self):
            self.closed = True

    path = tmp_path / "c.sqlite"
    client = Client()
    source = LLMPlanSource(client, AnswerCache(path), PROMPT, n_samples=2)
    source.plan_distribution(SENTENCE)
    with sqlite3.connect(path) as other:  # another connection sees the answer before anything is closed
        assert other.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 1
    source.close()
    assert client.closed and source.cache._db is None


def test_a_sentence_another_run_stored_first_is_answered_with_the_stored_answers(server, tmp_path):
    """Two runs of a sweep miss the same sentence at once: both ask, the first answers stored win for both."""
    path = tmp_path / "c.sqlite"

    def handler(request: Request):
        with AnswerCache(path) as other_run:  # meanwhile another process stores its answers for the sentence
            other_run.put(make_source(server, other_run).key_for(SENTENCE), [ANSWER_B] * 10, [PLAN_B] * 10)
        return chat_reply([ANSWER_A] * 10)

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    with AnswerCache(path) as cache:
        source = make_source(server, cache)
        assert source.plan_distribution(SENTENCE) == [(PLAN_B, 1.0)]
        assert cache.get(source.key_for(SENTENCE)).parsed_plans == [PLAN_B] * 10
    assert source.live_answers == 1 and source.llm_calls == 1


def test_the_completions_prompt_asks_with_examples_and_reads_the_continuation_as_a_plan(server, tmp_path):
    from planners.llm.client import CompletionsClient
    from planners.llm.prompts import FewShotPrompt
    prompt = FewShotPrompt("Open the door.", [("Agent sees <nothing>, holds <nothing>.", "explore")])
    server.expect_request("/v1/completions", method="POST").respond_with_handler(lambda request: Response(
        json.dumps({"choices": [{"text": " go to <key>, pick up <key>"}] * request.json["n"]}),
        content_type="application/json"))
    client = CompletionsClient(f"http://127.0.0.1:{server.port}", model="base", stop=prompt.stop, timeout=5.0)
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = LLMPlanSource(client, cache, prompt, n_samples=4, task="simpledoorkey")
        assert source.plan_distribution(SENTENCE) == [(PLAN_A, 1.0)]
        stored = cache.get(source.key_for(SENTENCE))
        chat_key = LLMPlanSource(None, cache, "Open the door.", model_name="base", temperature=0.7,
                                 n_samples=4).key_for(SENTENCE)
    body = json.loads(server.log[0][0].get_data())
    assert body["prompt"] == ("Open the door.\n\nObservation: Agent sees <nothing>, holds <nothing>.\n"
                              "Action: {explore}\n\nObservation: " + SENTENCE + "\nAction: {")
    assert body["stop"] == ["}", "\n"]
    assert stored.raw_answers == ["Action: {go to <key>, pick up <key>}"] * 4
    assert chat_key.prompt_sha256 != source.key_for(SENTENCE).prompt_sha256, "the two prompts never share answers"


def test_a_seeded_source_seeds_its_reasks_after_the_first_answers_and_keys_the_cache_by_the_seed(server, tmp_path):
    rounds = {10: [ANSWER_A] * 8 + [GARBAGE] * 2, 2: [ANSWER_B] * 2}
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply(rounds[request.json["n"]]))
    with AnswerCache(tmp_path / "c.sqlite") as cache:
        source = make_source(server, cache, seed=7)
        assert source.plan_distribution(SENTENCE) == [(PLAN_A, 0.8), (PLAN_B, 0.2)]
        unseeded = make_source(server, cache).key_for(SENTENCE)
    assert [json.loads(r.get_data())["seed"] for r, _ in server.log] == [7, 17], "the re-ask goes on from 7 + 10"
    assert json.loads(source.key_for(SENTENCE).sampling)["seed"] == 7 and "seed" not in unseeded.sampling
