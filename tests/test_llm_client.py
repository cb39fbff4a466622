"""Tests for planners.llm.client against real HTTP servers on 127.0.0.1."""

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # import the project without installing it
sys.path.insert(0, str(Path(__file__).resolve().parent))

from planners.llm.client import (ChatCompletionsClient, CompletionsClient, DroppedAnswer,  # noqa: E402
                                 LLMConfigError, LLMServerError, LLMTransientError, build_client)
from fake_llm import RawServer, chat_json, hang, trickle  # noqa: E402

PATH = "/v1/chat/completions"
PLAN_A = "Action: {go to <key>, pick up <key>}"
PLAN_B = "Action: {explore}"
MESSAGES = [{"role": "system", "content": "You are a teacher."}, {"role": "user", "content": "Agent sees <key>."}]
SECRET = "sk-test-0123456789-very-secret"


def chat_reply(contents, status=200, headers=None):
    """An OpenAI chat-completions response carrying ``contents`` as choices."""
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
            for i, c in enumerate(contents)
        ],
    }
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


@pytest.fixture
def own_server():
    """A private server, for tests whose slow handlers outlive the test."""
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


def make_client(server_or_url, **overrides):
    base = server_or_url if isinstance(server_or_url, str) else f"http://127.0.0.1:{server_or_url.port}"
    settings = dict(model="fake-model", temperature=0.5, timeout=5.0, max_retries=2,
                    backoff_base=0.01, max_backoff=0.05, max_concurrency=4)
    settings.update(overrides)
    return ChatCompletionsClient(base, **settings)


def bodies(server):
    return [json.loads(request.get_data()) for request, _ in server.log]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_n_honoured_makes_one_request_with_openai_body(server):
    def handler(request: Request):
        n = request.json["n"]
        return chat_reply([PLAN_A] * 7 + [PLAN_B] * (n - 7))

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    client = make_client(server)
    answers = client.complete(MESSAGES, 10)

    assert answers.count(PLAN_A) == 7 and answers.count(PLAN_B) == 3
    assert client.requests_made == 1 and len(server.log) == 1
    assert client.server_honours_n is True
    (body,) = bodies(server)
    assert body == {"model": "fake-model", "messages": MESSAGES, "temperature": 0.5, "n": 10, "max_tokens": 256}


def test_server_ignoring_n_is_filled_with_concurrent_single_requests(server):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def handler(request: Request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return chat_reply([PLAN_A])  # always one choice, whatever n says

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    client = make_client(server, max_concurrency=4)

    answers = client.complete(MESSAGES, 10)
    assert answers == [PLAN_A] * 10
    assert client.server_honours_n is False
    assert [b["n"] for b in bodies(server)] == [10] + [1] * 9
    assert 1 < peak[0] <= 4, "fill-up requests should run concurrently, bounded by max_concurrency"

    # Now the client knows: the next call goes straight to single requests.
    server.clear_log()
    assert client.complete(MESSAGES, 3) == [PLAN_A] * 3
    assert [b["n"] for b in bodies(server)] == [1, 1, 1]
    assert client.requests_made == 13


def test_partial_choices_are_topped_up(server):
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([PLAN_B] * min(request.json["n"], 4)))
    client = make_client(server)
    assert client.complete(MESSAGES, 6) == [PLAN_B] * 6
    assert [b["n"] for b in bodies(server)] == [6, 1, 1]


def test_server_rejecting_n_falls_back_to_single_requests(server):
    def handler(request: Request):
        if request.json["n"] > 1:
            return Response('{"error": {"message": "n must be 1"}}', status=400)
        return chat_reply([PLAN_A])

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    client = make_client(server)
    assert client.complete(MESSAGES, 3) == [PLAN_A] * 3
    assert client.server_honours_n is False
    assert len(server.log) == 4


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(server, suffix):
    server.expect_request(PATH, method="POST").respond_with_handler(lambda request: chat_reply([PLAN_A]))
    client = make_client(f"http://127.0.0.1:{server.port}{suffix}")
    assert client.url == f"http://127.0.0.1:{server.port}{PATH}"
    assert client.complete(MESSAGES, 1) == [PLAN_A]


def test_http_500_is_retried_then_names_the_url(server):
    server.expect_request(PATH, method="POST").respond_with_data("model crashed", status=500)
    client = make_client(server, max_retries=2)
    with pytest.raises(LLMServerError) as info:
        client.complete(MESSAGES, 1)
    message = str(info.value)
    assert len(server.log) == 3 and client.requests_made == 3
    assert client.url in message and "HTTP 500 after 2 retries" in message
    assert "server is running" in message and "--llm_url" in message and "fake-model" in message
    assert "\n" not in message


def test_transient_500_recovers(server):
    calls = []

    def handler(request: Request):
        calls.append(1)
        return chat_reply([PLAN_A]) if len(calls) > 2 else Response("busy", status=503)

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    assert make_client(server, max_retries=3).complete(MESSAGES, 1) == [PLAN_A]
    assert len(calls) == 3


def test_429_honours_retry_after(server):
    calls = []

    def handler(request: Request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "0.3"})
        return chat_reply([PLAN_A])

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    client = make_client(server, backoff_base=0.001, max_backoff=5.0)
    assert client.complete(MESSAGES, 1) == [PLAN_A]
    assert calls[1] - calls[0] >= 0.25, "the client should wait as long as Retry-After says"


def test_429_retry_after_is_capped_and_then_fails_clearly(server):
    server.expect_request(PATH, method="POST").respond_with_data(
        "rate limited", status=429, headers={"Retry-After": "120"})
    client = make_client(server, max_retries=2, max_backoff=0.05)
    start = time.monotonic()
    with pytest.raises(LLMServerError) as info:
        client.complete(MESSAGES, 1)
    assert time.monotonic() - start < 2.0, "Retry-After must be capped by max_backoff"
    assert "HTTP 429 after 2 retries" in str(info.value) and client.url in str(info.value)
    assert len(server.log) == 3


def test_connection_refused_fails_fast_and_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    client = make_client(url, max_retries=5, backoff_base=0.05, max_backoff=1.0)
    start = time.monotonic()
    with pytest.raises(LLMServerError) as info:
        client.complete(MESSAGES, 4)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < 2.0, f"refused connection took {elapsed:.2f}s"
    assert f"{url}/v1/chat/completions" in message and "connection refused" in message
    assert "server is running" in message and "\n" not in message
    assert client.requests_made == 3  # first try plus at most two short retries


@pytest.mark.parametrize("status, hint", [
    (400, "--llm_model 'fake-model'"), (401, "LLM4TEACH_API_KEY"), (403, "LLM4TEACH_API_KEY"),
    (404, "--llm_url points at the server root"), (422, "--llm_model 'fake-model'")])
def test_configuration_errors_are_not_retried_and_name_the_setting(server, status, hint):
    server.expect_request(PATH, method="POST").respond_with_data("nope", status=status)
    client = make_client(server, max_retries=3)
    with pytest.raises(LLMConfigError) as info:
        client.complete(MESSAGES, 1)
    assert len(server.log) == 1
    assert f"HTTP {status}" in str(info.value) and hint in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_then_reported_as_transient(server, status):
    server.expect_request(PATH, method="POST").respond_with_data("busy", status=status)
    client = make_client(server, max_retries=2)
    with pytest.raises(LLMTransientError, match=f"HTTP {status} after 2 retries"):
        client.complete(MESSAGES, 1)
    assert len(server.log) == 3


def test_401_from_the_chatglm_proxy_names_the_upstream_key(server, monkeypatch):
    """Through utils.chatglm_api a 401 means ZHIPUAI_API_KEY (the proxy's) is wrong, not the client's key."""
    monkeypatch.setenv("LLM4TEACH_API_KEY", SECRET)
    proxy_error = {"error": {"message": "GLM API refused the key (HTTP 401): invalid api key; check ZHIPUAI_API_KEY",
                             "type": "authentication_error", "code": "invalid_api_key"}}
    server.expect_request(PATH, method="POST").respond_with_json(proxy_error, status=401)
    with pytest.raises(LLMConfigError) as info:
        make_client(server).complete(MESSAGES, 1)
    message = str(info.value)
    assert "fix ZHIPUAI_API_KEY" in message and "LLM4TEACH_API_KEY" not in message and SECRET not in message


def test_401_names_the_variable_given_by_llm_api_key_env(server, monkeypatch):
    monkeypatch.delenv("MY_LLM_KEY", raising=False)
    server.expect_request(PATH, method="POST").respond_with_json({"error": {"message": "bad key"}}, status=401)
    with pytest.raises(LLMConfigError, match="no API key was sent: set the environment variable MY_LLM_KEY"):
        make_client(server, api_key_env="MY_LLM_KEY").complete(MESSAGES, 1)
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    with pytest.raises(LLMConfigError, match="check the API key in the environment variable MY_LLM_KEY"):
        make_client(server, api_key_env="MY_LLM_KEY").complete(MESSAGES, 1)


def test_unknown_model_refused_with_400_at_n_above_1_is_a_configuration_error(server):
    """FastChat answers 400 'Only vicuna-33b-v1.3 allowed': after the n=1 retry it is the model, not n."""
    server.expect_request(PATH, method="POST").respond_with_json(
        {"object": "error", "message": "Only vicuna-33b-v1.3 allowed now, your model glm-4", "code": 40301}, status=400)
    client = make_client(server, max_concurrency=1)
    with pytest.raises(LLMConfigError, match="Only vicuna-33b-v1.3 allowed.*check --llm_model 'fake-model'"):
        client.complete(MESSAGES, 3)


@pytest.mark.parametrize("url", ["htp://localhost:8000", "http://", "localhost:8000", "http://host:99999",
                                 "http://user:pw@localhost:8000"])
def test_malformed_url_is_a_configuration_error_at_construction(url):
    with pytest.raises(LLMConfigError, match="--llm_url"):
        make_client(url)


def test_reply_that_is_not_chat_completions_is_a_clear_error(server):
    server.expect_request(PATH, method="POST").respond_with_data("<html>proxy login</html>", status=200)
    with pytest.raises(LLMServerError, match="not in chat-completions format"):
        make_client(server).complete(MESSAGES, 1)


def test_replies_without_choices_are_a_clear_error(server):
    server.expect_request(PATH, method="POST").respond_with_handler(lambda request: chat_reply([]))
    client = make_client(server)
    with pytest.raises(LLMServerError, match="0 of 2 requested answers"):
        client.complete(MESSAGES, 2)
    assert len(server.log) == 3  # the n=2 request, then two single requests


def test_timeout_is_one_deadline_for_a_request_and_its_retries(own_server):
    server = own_server

    def handler(request: Request):
        time.sleep(0.6)
        return chat_reply([PLAN_A])

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    client = make_client(server, timeout=0.2, max_retries=3)
    start = time.monotonic()
    with pytest.raises(LLMTransientError, match=r"no complete answer within the 0\.2s deadline"):
        client.complete(MESSAGES, 1)
    assert time.monotonic() - start < 0.5, "retries must fit inside the deadline, not add to it"
    assert client.requests_made == 1


def test_api_key_is_sent_but_never_shown(server, monkeypatch, caplog):
    monkeypatch.setenv("LLM4TEACH_API_KEY", SECRET)
    seen = []

    def handler(request: Request):
        seen.append(request.headers.get("Authorization"))
        return Response("down", status=500)

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    client = make_client(server, max_retries=1)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(LLMServerError) as info:
            client.complete(MESSAGES, 1)

    assert seen == [f"Bearer {SECRET}"] * 2
    settings = client.settings()
    assert settings["api_key_env"] == "LLM4TEACH_API_KEY" and settings["api_key_set"] is True
    exposed = [json.dumps(settings), repr(client), str(client), str(info.value), repr(info.value),
               caplog.text, repr(vars(client))]
    for text in exposed:
        assert SECRET not in text


def test_no_authorization_header_without_key(server, monkeypatch):
    monkeypatch.delenv("LLM4TEACH_API_KEY", raising=False)
    seen = []

    def handler(request: Request):
        seen.append(request.headers.get("Authorization"))
        return chat_reply([PLAN_A])

    server.expect_request(PATH, method="POST").respond_with_handler(handler)
    client = make_client(server)
    client.complete(MESSAGES, 1)
    assert seen == [None] and client.settings()["api_key_set"] is False


def test_settings_are_json_able_and_complete(server):
    settings = make_client(server).settings()
    assert json.loads(json.dumps(settings)) == settings
    for name in ("url", "model", "temperature", "timeout", "max_retries", "backoff_base",
                 "max_concurrency", "api_key_env"):
        assert name in settings


# --- hostile servers: deadlines and size caps ---------------------------------------------------------------

def test_server_trickling_one_byte_every_2s_is_cut_at_the_deadline():
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n" + b" " * 100
    with RawServer(trickle(reply, 2.0)) as server:
        client = make_client(server.url, timeout=2.5, max_retries=3)
        start = time.monotonic()
        with pytest.raises(LLMTransientError, match="deadline"):
            client.complete(MESSAGES, 1)
        elapsed = time.monotonic() - start
    assert 2.5 <= elapsed < 2.5 + 1.0, f"cut after {elapsed:.2f}s; the deadline was 2.5s"


def test_fast_trickle_in_the_body_is_cut_at_the_deadline():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n"

    def behaviour(conn, body, server):
        conn.sendall(head)
        trickle(b"x" * 50000, 0.05)(conn, body, server)

    with RawServer(behaviour) as server:
        client = make_client(server.url, timeout=0.8, max_retries=3)
        start = time.monotonic()
        with pytest.raises(LLMTransientError, match="deadline"):
            client.complete(MESSAGES, 1)
        assert time.monotonic() - start < 0.8 + 0.5


def test_hung_server_costs_one_deadline_whatever_the_retries():
    with RawServer(hang) as server:
        client = make_client(server.url, timeout=0.5, max_retries=5, backoff_base=0.01)
        start = time.monotonic()
        with pytest.raises(LLMTransientError, match="within the 0.5s deadline"):
            client.complete(MESSAGES, 4)
        assert time.monotonic() - start < 0.5 + 0.5


def test_connection_dropped_mid_reply_is_retried_as_transient():
    def behaviour(conn, body, server):
        if server.requests < 3:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"choi")  # then close
            return
        data = chat_json([PLAN_A])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)

    with RawServer(behaviour) as server:
        assert make_client(server.url, max_retries=3).complete(MESSAGES, 1) == [PLAN_A]
        assert server.requests == 3


def test_answer_over_the_limit_is_dropped(server):
    long_answer = "I will think about it. " * 300 + PLAN_A  # ~6,900 characters
    server.expect_request(PATH, method="POST").respond_with_handler(
        lambda request: chat_reply([PLAN_A, long_answer, PLAN_B]))
    client = make_client(server, max_answer_chars=4000)
    answers = client.complete(MESSAGES, 3)
    assert answers[0] == PLAN_A and answers[2] == PLAN_B
    assert isinstance(answers[1], DroppedAnswer) and len(answers[1]) < 100 and "Action" not in answers[1]
    assert client.dropped_answers == 1


def test_a_10_mb_answer_never_reaches_memory_whole():
    # In a process of its own: tracemalloc counts all threads, and threads earlier tests leave in this worker
    # would count towards the client's peak (they once added 10 MB in CI).
    probe = Path(__file__).resolve().parent / "huge_answer_probe.py"
    done = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["answers"] == ["DroppedAnswer", "DroppedAnswer"]
    assert result["peak"] < 3 * 1024 * 1024, f"peak {result['peak'] / 1e6:.1f} MB while the server sent 10 MB"
    assert "exceeds the cap" in done.stderr, "the cut reply is logged"


def test_declared_oversized_body_is_refused_before_reading(server):
    server.expect_request(PATH, method="POST").respond_with_data(
        "x" * 200_000, status=200, content_type="application/json")
    answers = make_client(server, max_answer_chars=100).complete(MESSAGES, 1)
    assert len(answers) == 1 and isinstance(answers[0], DroppedAnswer)


# --- a server that answers one request at a time (llama.cpp's) ---------------------------------------------

def serial_handler(seconds):
    """A handler that serves one request at a time, ``seconds`` each, and returns one choice whatever ``n``."""
    lock = threading.Lock()

    def handler(request: Request):
        with lock:
            time.sleep(seconds)
            return chat_reply([PLAN_A])
    return handler


def test_the_deadline_is_per_request_so_a_serial_server_gives_more_samples_than_one_deadline_holds(own_server):
    own_server.expect_request(PATH, method="POST").respond_with_handler(serial_handler(0.15))
    client = make_client(own_server, timeout=0.7, max_concurrency=2)
    start = time.monotonic()
    assert client.complete(MESSAGES, 8) == [PLAN_A] * 8
    assert time.monotonic() - start > 0.7 + 0.3, "8 serial answers of 0.15 s take longer than one deadline"
    assert client.server_honours_n is False and client.requests_made == 8


def test_a_hung_server_costs_one_deadline_per_question_however_many_single_requests(own_server):
    with RawServer(hang) as server:
        client = make_client(server.url, timeout=0.5, max_retries=5, max_concurrency=3)
        client.server_honours_n = False  # as learnt from an earlier question: answers come one per request
        start = time.monotonic()
        with pytest.raises(LLMTransientError, match="within the 0.5s deadline of one request"):
            client.complete(MESSAGES, 10)
        assert time.monotonic() - start < 0.5 + 0.5
    assert client.requests_made == 3, "requests not yet sent when the first one failed are skipped"


def test_a_cap_given_to_complete_bounds_the_whole_question(own_server):
    own_server.expect_request(PATH, method="POST").respond_with_handler(serial_handler(0.15))
    client = make_client(own_server, timeout=5.0, max_concurrency=1)
    start = time.monotonic()
    with pytest.raises(LLMTransientError, match="deadline"):
        client.complete(MESSAGES, 10, timeout=0.5)
    assert time.monotonic() - start < 0.5 + 0.3


def test_the_slow_server_message_names_the_settings_to_change(own_server):
    own_server.expect_request(PATH, method="POST").respond_with_handler(serial_handler(0.5))
    client = make_client(own_server, timeout=0.2, max_tokens=99)
    with pytest.raises(LLMTransientError) as caught:
        client.complete(MESSAGES, 1)
    message = str(caught.value)
    assert "--llm_timeout" in message and "--llm_max_concurrency" in message and "--llm_max_tokens, now 99" in message


# --- the completions API ----------------------------------------------------------------------------------

def completion_reply(texts):
    body = {"id": "cmpl-test", "object": "text_completion", "model": "fake",
            "choices": [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)]}
    return Response(json.dumps(body), content_type="application/json")


def test_completions_client_posts_prompt_and_stop_and_reads_text(server):
    server.expect_request("/v1/completions", method="POST").respond_with_handler(
        lambda request: completion_reply(["go to <key>, pick up <key>"] * request.json["n"]))
    client = CompletionsClient(f"http://127.0.0.1:{server.port}/v1", model="base", stop=("}", "\n"), timeout=5,
                               max_tokens=48)
    assert client.url.endswith("/v1/completions")
    assert client.complete("Observation: x\nAction: {", 3) == ["go to <key>, pick up <key>"] * 3
    body = bodies(server)[0]
    assert body["prompt"] == "Observation: x\nAction: {" and body["stop"] == ["}", "\n"]
    assert body["n"] == 3 and body["max_tokens"] == 48 and body["model"] == "base" and "messages" not in body


def test_a_chat_reply_to_a_completions_request_is_a_configuration_error_naming_the_api(server):
    server.expect_request("/v1/completions", method="POST").respond_with_data('{"detail": "Not Found"}', status=404)
    client = build_client("completions", f"http://127.0.0.1:{server.port}", "base", timeout=5)
    with pytest.raises(LLMConfigError, match="HTTP 404"):
        client.complete("prompt", 1)
    server.clear()
    server.expect_request("/v1/completions", method="POST").respond_with_handler(
        lambda request: chat_reply([PLAN_A]))
    with pytest.raises(LLMConfigError, match="--llm_api completions"):
        client.complete("prompt", 1)


def test_build_client_knows_both_apis_and_refuses_others():
    assert isinstance(build_client("chat", "http://127.0.0.1:1", "m"), ChatCompletionsClient)
    assert build_client("completions", "http://127.0.0.1:1/v1/completions", "m").url == \
        "http://127.0.0.1:1/v1/completions"
    with pytest.raises(ValueError, match="chat or completions"):
        build_client("edits", "http://127.0.0.1:1", "m")


def test_a_seed_goes_with_every_request_one_apart_per_answer(own_server):
    own_server.expect_request(PATH, method="POST").respond_with_handler(serial_handler(0.0))
    client = make_client(own_server, max_concurrency=2)
    assert client.complete(MESSAGES, 4, seed=100) == [PLAN_A] * 4
    assert sorted(body["seed"] for body in bodies(own_server)) == [100, 101, 102, 103]  # the n=4 request, then 3
    own_server.clear_log()
    client.complete(MESSAGES, 1)
    assert "seed" not in bodies(own_server)[0], "no seed unless one is set"
