"""Tests for planners.llm.chatglm_proxy: the OpenAI-format proxy in front of a fake loopback Zhipu API."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # import the project without installing it

from planners.llm.client import ChatCompletionsClient  # noqa: E402
from planners.llm.chatglm_proxy import create_app, main, make_zhipu_client_factory  # noqa: E402

UPSTREAM_PATH = "/api/paas/v4/chat/completions"  # where the zhipuai SDK posts
KEY = "zhipu-test-key.0123456789secret"
ANSWER = "Action: {go to <key>, pick up <key>}"
MESSAGES = [{"role": "system", "content": "teacher"}, {"role": "user", "content": "Agent sees <key>."}]


def zhipu_reply(content=ANSWER, model="glm-4-flash"):
    """A chat-completions reply shaped like the Zhipu API's."""
    body = {
        "id": "8311262462422449542", "request_id": "8311262462422449542", "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
    return Response(json.dumps(body), content_type="application/json")


def zhipu_error(status, code, message):
    return Response(json.dumps({"error": {"code": code, "message": message}}), status=status,
                    content_type="application/json")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(app):
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "proxy did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@pytest.fixture
def upstream(server):
    """The fake GLM service (conftest's loopback server, cleared for each test)."""
    return server


@pytest.fixture(scope="module")
def proxy(shared_server):
    factory = make_zhipu_client_factory(KEY, base_url=f"http://127.0.0.1:{shared_server.port}/api/paas/v4",
                                        timeout=5.0, max_retries=0)
    with serve(create_app(factory, default_model="glm-4-flash", max_parallel=3)) as url:
        yield url


def upstream_bodies(server):
    return [json.loads(request.get_data()) for request, _ in server.log]


def test_forwards_one_request_and_answers_in_openai_shape(proxy, upstream):
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_handler(lambda request: zhipu_reply())
    reply = httpx.post(f"{proxy}/v1/chat/completions",
                       json={"model": "glm-4-flash", "messages": MESSAGES, "temperature": 0.5, "max_tokens": 64})
    assert reply.status_code == 200
    body = reply.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"] == "glm-4-flash"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                                "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}

    (sent,) = upstream_bodies(upstream)
    assert sent["model"] == "glm-4-flash" and sent["messages"] == MESSAGES
    assert sent["temperature"] == 0.5 and sent["max_tokens"] == 64
    request, _ = upstream.log[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_n_answers_come_from_n_upstream_calls(proxy, upstream):
    counter, lock = [0], threading.Lock()

    def handler(request: Request):
        with lock:
            counter[0] += 1
            number = counter[0]
        return zhipu_reply(f"Action: {{answer {number}}}")

    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_handler(handler)
    body = httpx.post(f"{proxy}/v1/chat/completions", json={"messages": MESSAGES, "n": 4}).json()
    assert len(upstream.log) == 4
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2, 3]
    assert sorted(choice["message"]["content"] for choice in body["choices"]) == [
        f"Action: {{answer {i}}}" for i in range(1, 5)]
    assert body["usage"]["total_tokens"] == 4 * 18
    assert body["model"] == "glm-4-flash"  # the default model fills in when the request names none


def test_llm4teach_client_works_through_the_proxy(proxy, upstream):
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_handler(lambda request: zhipu_reply())
    client = ChatCompletionsClient(f"{proxy}/v1", model="glm-4-flash", timeout=5, max_retries=0)
    assert client.complete(MESSAGES, 3) == [ANSWER] * 3
    assert client.requests_made == 1 and client.server_honours_n is True
    assert len(upstream.log) == 3


@pytest.mark.parametrize(
    "status, code, want_status, want_type",
    [
        (500, "500", 502, "upstream_error"),
        (503, "1305", 502, "upstream_error"),
        (401, "1002", 401, "authentication_error"),
        (403, "1220", 403, "authentication_error"),
        (429, "1302", 429, "rate_limit_error"),
        (400, "1211", 400, "invalid_request_error"),
    ],
)
def test_upstream_errors_become_openai_error_json(proxy, upstream, status, code, want_status, want_type):
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_handler(
        lambda request: zhipu_error(status, code, f"upstream says {status}"))
    reply = httpx.post(f"{proxy}/v1/chat/completions", json={"messages": MESSAGES})
    assert reply.status_code == want_status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == want_type and f"{status}" in error["message"]
    assert KEY not in reply.text
    assert len(upstream.log) == 1, "the proxy leaves retrying to its caller"


def test_upstream_500_reaches_the_client_as_502_naming_the_proxy(proxy, upstream):
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_data("boom", status=500)
    client = ChatCompletionsClient(proxy, model="glm-4-flash", timeout=5, max_retries=1, backoff_base=0.01)
    with pytest.raises(RuntimeError) as info:
        client.complete(MESSAGES, 1)
    assert "HTTP 502 after 1 retries" in str(info.value) and proxy in str(info.value)


def test_models_endpoint(proxy):
    body = httpx.get(f"{proxy}/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["glm-4-flash"]


def test_invalid_request_gets_openai_error_shape(proxy, upstream):
    reply = httpx.post(f"{proxy}/v1/chat/completions", json={"model": "glm-4-flash", "messages": []})
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert len(upstream.log) == 0


def test_body_that_is_not_a_json_object_says_what_to_send(proxy, upstream):
    reply = httpx.post(f"{proxy}/v1/chat/completions", content=b'{"messages": []}')  # no content type
    assert reply.status_code == 400 and "Content-Type: application/json" in reply.json()["error"]["message"]
    assert len(upstream.log) == 0


def test_unreachable_upstream_is_502():
    factory = make_zhipu_client_factory(KEY, base_url=f"http://127.0.0.1:{free_port()}/api/paas/v4",
                                        timeout=2.0, max_retries=0)
    with serve(create_app(factory)) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", json={"messages": MESSAGES})
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "upstream_unavailable"


def test_upstream_timeout_is_504():
    slow = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    slow.expect_request(UPSTREAM_PATH, method="POST").respond_with_handler(
        lambda request: (time.sleep(0.6), zhipu_reply())[1])
    slow.start()
    try:
        factory = make_zhipu_client_factory(KEY, base_url=f"http://127.0.0.1:{slow.port}/api/paas/v4",
                                            timeout=0.2, max_retries=0)
        with serve(create_app(factory)) as url:
            reply = httpx.post(f"{url}/v1/chat/completions", json={"messages": MESSAGES}, timeout=5)
    finally:
        slow.stop()
    assert reply.status_code == 504
    assert reply.json()["error"]["type"] == "upstream_timeout"


def test_missing_key_is_a_clear_startup_error(monkeypatch, capsys):
    monkeypatch.delenv("ZHIPUAI_API_KEY", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["--port", str(free_port())])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "ZHIPUAI_API_KEY" in err and err.count("\n") == 1


def test_unusable_sdk_is_a_clear_startup_error(monkeypatch, capsys):
    import planners.llm.chatglm_proxy as proxy_module

    def broken_factory(*args, **kwargs):
        def factory():
            raise ImportError(f"No module named 'sniffio' (while using {KEY})")
        return factory

    monkeypatch.setenv("ZHIPUAI_API_KEY", KEY)
    monkeypatch.setattr(proxy_module, "make_zhipu_client_factory", broken_factory)
    with pytest.raises(SystemExit) as info:
        main(["--port", str(free_port())])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "sniffio" in err and KEY not in err and err.count("\n") == 1


def _run_module(args, env_key):
    env = {k: v for k, v in os.environ.items() if k not in ("ZHIPUAI_API_KEY", "ZHIPUAI_BASE_URL")}
    if env_key:
        env["ZHIPUAI_API_KEY"] = env_key
    return subprocess.Popen([sys.executable, "-m", "utils.chatglm_api", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_module_without_key_exits_with_code_2():
    process = _run_module(["--port", str(free_port())], env_key=None)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.strip().count("\n") == 0 and "ZHIPUAI_API_KEY" in err


def test_module_serves_over_http(upstream):
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_handler(lambda request: zhipu_reply())
    port = free_port()
    process = _run_module(["--host", "127.0.0.1", "--port", str(port), "--log_level", "warning",
                           "--upstream_base_url", f"http://127.0.0.1:{upstream.port}/api/paas/v4"], env_key=KEY)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                   json={"messages": MESSAGES, "n": 2}, timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.05)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert reply.status_code == 200
    assert [c["message"]["content"] for c in reply.json()["choices"]] == [ANSWER, ANSWER]
    assert KEY not in err and "loopback" not in err


# --- issue 12: streaming, pass-through, list content, n cap, client token, loopback warning, masking ---

import codecs  # noqa: E402
import logging  # noqa: E402
import urllib.parse  # noqa: E402
import warnings  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import openai  # noqa: E402

from planners.llm.chatglm_proxy import MaskingFormatter, is_loopback  # noqa: E402
from planners.llm.redact import clip, redact  # noqa: E402

PIECES = ["Action: {", "go to <key>, ", "pick up <key>", "}"]


def glm_chunk(content=None, finish=None, usage=None, role=None):
    """An object shaped like zhipuai's ChatCompletionChunk."""
    delta = SimpleNamespace(content=content, role=role)
    usage = SimpleNamespace(**usage) if usage else None
    return SimpleNamespace(choices=[SimpleNamespace(index=0, delta=delta, finish_reason=finish)], usage=usage)


def chunks_of(text_pieces, usage=None):
    usage = usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    return ([glm_chunk(piece, role="assistant" if i == 0 else None) for i, piece in enumerate(text_pieces)]
            + [glm_chunk("", finish="stop", usage=usage)])


class FakeGLM:
    """Stands in for ``zhipuai.ZhipuAI``: records each ``create`` call and answers with ``self.answer``."""

    api_key = KEY

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()
        self.answer = lambda kwargs, number: iter(chunks_of(PIECES))
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    def create(self, **kwargs):
        with self.lock:
            self.calls.append(kwargs)
            number = len(self.calls) - 1
        return self.answer(kwargs, number)


@pytest.fixture(scope="module")
def fake_glm_proxy():
    """A proxy in front of a FakeGLM (no HTTP upstream): yields (base URL, fake)."""
    holder = {}
    # The app keeps the client it first gets, so hand it one that forwards to each test's fake.
    dispatcher = SimpleNamespace(api_key=KEY, chat=SimpleNamespace(completions=SimpleNamespace(
        create=lambda **kwargs: holder["fake"].create(**kwargs))))

    def factory():
        return dispatcher

    with serve(create_app(factory, default_model="glm-4-flash", max_parallel=3, max_n=4,
                          stream_timeout=1.0)) as url:
        holder["url"] = url
        yield holder


@pytest.fixture
def glm(fake_glm_proxy):
    fake_glm_proxy["fake"] = FakeGLM()
    return fake_glm_proxy["fake"]


@pytest.fixture
def sdk(fake_glm_proxy):
    return openai.OpenAI(base_url=f"{fake_glm_proxy['url']}/v1", api_key="unused", max_retries=0, timeout=5)


def test_openai_sdk_streams_one_choice(sdk, glm):
    stream = sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert len(chunks) == len(PIECES) + 1
    assert {chunk.id for chunk in chunks} == {chunks[0].id} and chunks[0].id.startswith("chatcmpl-")
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == "glm-4-flash" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(PIECES)
    assert [c.choices[0].finish_reason for c in chunks] == [None] * len(PIECES) + ["stop"]
    (call,) = glm.calls
    assert call["stream"] is True and call["messages"] == MESSAGES


def test_openai_sdk_streams_n_choices_with_usage(sdk, glm):
    glm.answer = lambda kwargs, number: iter(chunks_of([f"answer {number}", " done"]))
    stream = sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True, n=3,
                                         stream_options={"include_usage": True})
    texts, finished, usage = {}, {}, None
    for chunk in stream:
        if not chunk.choices:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            finished[choice.index] = choice.finish_reason or finished.get(choice.index)
    assert sorted(texts.values()) == [f"answer {i} done" for i in range(3)]
    assert finished == {0: "stop", 1: "stop", 2: "stop"}
    assert usage is not None and usage.total_tokens == 3 * 18 and usage.prompt_tokens == 3 * 11
    assert len(glm.calls) == 3 and all(call["stream"] is True for call in glm.calls)


def test_stream_refused_upstream_is_an_http_error_not_an_empty_stream(sdk, glm, upstream):
    def refuse(kwargs, number):
        raise translate_error_from(401, f'{{"error": {{"code": "1002", "message": "bad key {KEY}"}}}}')

    glm.answer = refuse
    with pytest.raises(openai.AuthenticationError) as info:
        list(sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True))
    assert "GLM API refused the key" in str(info.value) and KEY not in str(info.value)


def translate_error_from(status, body):
    """A real zhipuai APIStatusError carrying ``body``."""
    import zhipuai
    response = httpx.Response(status, text=body, request=httpx.Request("POST", "http://glm.invalid/"))
    return zhipuai.APIStatusError(body, response=response)


def test_stream_with_no_chunks_is_a_502(sdk, glm):
    glm.answer = lambda kwargs, number: iter([])
    with pytest.raises(openai.InternalServerError) as info:
        list(sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True))
    assert info.value.status_code == 502 and "no chunks" in str(info.value)


def test_failure_mid_stream_raises_in_the_sdk_with_the_key_masked(sdk, glm, caplog):
    def break_after_first(kwargs, number):
        yield glm_chunk("Action: {", role="assistant")
        raise RuntimeError(f"connection reset while using key {KEY}")

    glm.answer = break_after_first
    received = []
    with caplog.at_level(logging.WARNING, logger="chatglm_api"):
        with pytest.raises(openai.APIError) as info:
            for chunk in sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True):
                received.append(chunk.choices[0].delta.content)
    assert received == ["Action: {"]
    assert "connection reset" in str(info.value) and not leaks(str(info.value), KEY)
    assert "connection reset" in caplog.text and not leaks(caplog.text, KEY)


def test_trickling_stream_is_cut_at_the_deadline(sdk, glm):
    def trickle(kwargs, number):
        yield glm_chunk("A", role="assistant")
        while True:
            time.sleep(0.05)
            yield glm_chunk(".")

    glm.answer = trickle
    start = time.monotonic()
    with pytest.raises(openai.APIError) as info:
        list(sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True))
    assert time.monotonic() - start < 2.0
    assert "did not finish within 1 s" in str(info.value)


def test_client_leaving_mid_stream_stops_the_upstream_reader(sdk, glm, fake_glm_proxy):
    closed, produced = threading.Event(), []

    def endless(kwargs, number):
        try:
            yield glm_chunk("A", role="assistant")
            while True:
                time.sleep(0.02)
                produced.append(1)
                yield glm_chunk(".")
        finally:
            closed.set()

    glm.answer = endless
    with httpx.stream("POST", f"{fake_glm_proxy['url']}/v1/chat/completions",
                      json={"messages": MESSAGES, "stream": True}, timeout=5) as reply:
        assert next(reply.iter_lines()).startswith("data: ")
    assert closed.wait(2.0), "the upstream stream is still being read after the client left"
    count = len(produced)
    time.sleep(0.1)
    assert len(produced) == count


def test_stream_through_the_real_zhipuai_sdk(proxy, upstream):
    events = "".join(
        "data: " + json.dumps({"id": "1", "created": 1700000000, "model": "glm-4-flash", "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": piece}}]}) + "\n\n" for piece in PIECES)
    events += "data: " + json.dumps({"id": "1", "created": 1700000000, "model": "glm-4-flash", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}) + "\n\ndata: [DONE]\n\n"
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_data(events, content_type="text/event-stream")
    sdk = openai.OpenAI(base_url=f"{proxy}/v1", api_key="unused", max_retries=0, timeout=5)
    chunks = list(sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(PIECES)
    assert chunks[-1].usage.total_tokens == 18
    (sent,) = upstream_bodies(upstream)
    assert sent["stream"] is True


def test_stop_seed_max_tokens_top_p_reach_the_upstream(proxy, upstream):
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_handler(lambda request: zhipu_reply())
    sdk = openai.OpenAI(base_url=f"{proxy}/v1", api_key="unused", max_retries=0, timeout=5)
    reply = sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stop="\n\n", seed=7,
                                        max_tokens=32, top_p=0.5, temperature=0.3, n=2)
    assert [c.message.content for c in reply.choices] == [ANSWER, ANSWER]
    sent = upstream_bodies(upstream)
    assert len(sent) == 2
    for body in sent:
        assert body["stop"] == ["\n\n"] and body["max_tokens"] == 32
        assert body["top_p"] == 0.5 and body["temperature"] == 0.3
    assert sorted(body["seed"] for body in sent) == [7, 8], "choice i gets seed + i"

    upstream.clear()
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_handler(lambda request: zhipu_reply())
    sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, max_completion_tokens=16, stop=["END"])
    (body,) = upstream_bodies(upstream)
    assert body["max_tokens"] == 16 and body["stop"] == ["END"] and "seed" not in body


@pytest.mark.parametrize("extra, param", [
    ({"stop": ["a", "b"]}, "stop"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"temperature": 1.5}, "temperature"),
    ({"max_tokens": 8, "max_completion_tokens": 9}, "max_completion_tokens"),
])
def test_parameters_that_cannot_be_forwarded_are_refused_by_name(sdk, glm, extra, param):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, extra_body=extra)
    assert info.value.param == param and param in str(info.value)
    assert glm.calls == []


def test_neutral_values_of_unsupported_parameters_are_accepted(sdk, glm):
    stream = sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True,
                                         presence_penalty=0, frequency_penalty=0, logprobs=False)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "".join(PIECES)
    assert "presence_penalty" not in glm.calls[0]


def test_list_of_text_parts_is_joined(sdk, glm):
    parts = [{"type": "text", "text": "Agent sees <key>."}, {"type": "text", "text": "What next?"}]
    list(sdk.chat.completions.create(model="glm-4-flash", stream=True, messages=[
        {"role": "system", "content": [{"type": "text", "text": "teacher"}]}, {"role": "user", "content": parts}]))
    assert glm.calls[0]["messages"] == [{"role": "system", "content": "teacher"},
                                        {"role": "user", "content": "Agent sees <key>.\nWhat next?"}]


def test_non_text_parts_are_refused(sdk, glm):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="glm-4-flash", messages=[
            MESSAGES[0], {"role": "user", "content": [{"type": "text", "text": "look"}, image]}])
    assert info.value.param == "messages[1].content[1]" and "image_url" in str(info.value)
    assert glm.calls == []


@pytest.mark.parametrize("stream", [False, True])
def test_n_above_the_cap_makes_no_upstream_call(sdk, glm, stream):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model="glm-4-flash", messages=MESSAGES, n=5, stream=stream)
    assert info.value.param == "n" and "--max_n" in str(info.value)
    assert glm.calls == []


def test_default_n_cap_is_ten(proxy, upstream):
    reply = httpx.post(f"{proxy}/v1/chat/completions", json={"messages": MESSAGES, "n": 64})
    assert reply.status_code == 400 and "limit of 10" in reply.json()["error"]["message"]
    assert len(upstream.log) == 0


def test_bearer_token_is_required_when_configured():
    fake = FakeGLM()
    token = "client-token-abcdef123456"
    app = create_app(lambda: fake, client_token=token, client_token_env="PROXY_TOKEN")
    with serve(app) as url:
        wrong = openai.OpenAI(base_url=f"{url}/v1", api_key="not-the-token", max_retries=0, timeout=5)
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.chat.completions.create(model="glm-4-flash", messages=MESSAGES)
        assert "$PROXY_TOKEN" in str(info.value) and token not in str(info.value)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        # refused before the body is even parsed
        bare = httpx.post(f"{url}/v1/chat/completions", content=b"not json")
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
        right = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=5)
        chunks = list(right.chat.completions.create(model="glm-4-flash", messages=MESSAGES, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(PIECES)
        assert [m.id for m in right.models.list()] == ["glm-4-flash"]
    assert len(fake.calls) == 1


@pytest.fixture
def started(monkeypatch):
    """Run ``main`` up to ``uvicorn.run`` (not serving); return the keyword arguments it would serve with."""
    import uvicorn as uvicorn_module

    seen = {}
    monkeypatch.setattr(uvicorn_module, "run", lambda app, **kwargs: seen.update(app=app, **kwargs))
    monkeypatch.setenv("ZHIPUAI_API_KEY", KEY)
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield seen
    root.handlers[:] = handlers  # main adds a handler to the root logger


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                          ("127.0.0.2", False), ("0.0.0.0", True), ("192.168.1.5", True),
                                          ("example.org", True)])
def test_binding_beyond_loopback_warns(started, capsys, host, warned):
    main(["--host", host, "--port", "1"])
    err = capsys.readouterr().err
    assert started["host"] == host
    assert ("not a loopback address" in err) is warned
    if warned:
        (line,) = [line for line in err.splitlines() if "loopback" in line]
        assert "--api_key_env" in line
    assert is_loopback(host) is not warned


def test_api_key_env_token_reaches_the_app(started, monkeypatch, capsys):
    monkeypatch.setenv("PROXY_TOKEN", "client-token-abcdef123456")
    main(["--host", "0.0.0.0", "--port", "1", "--api_key_env", "PROXY_TOKEN", "--max_n", "3"])
    err = capsys.readouterr().err
    assert "$PROXY_TOKEN" in err and "client-token-abcdef123456" not in err
    app = started["app"]
    assert any(m.cls.__name__ == "_BearerAuth" for m in app.user_middleware)


@pytest.mark.parametrize("args, env, message", [
    (["--api_key_env", "PROXY_TOKEN"], {}, "PROXY_TOKEN is not set"),
    (["--api_key_env", "ZHIPUAI_API_KEY"], {}, "other than ZHIPUAI_API_KEY"),
])
def test_bad_api_key_env_is_a_one_line_exit_2(started, monkeypatch, capsys, args, env, message):
    monkeypatch.delenv("PROXY_TOKEN", raising=False)
    with pytest.raises(SystemExit) as info:
        main([*args, "--port", "1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and KEY not in err
    assert "app" not in started


@pytest.mark.parametrize("flag", ["--max_n", "--max_parallel", "--upstream_timeout"])
def test_non_positive_limits_are_usage_errors(started, capsys, flag):
    with pytest.raises(SystemExit) as info:
        main([flag, "0", "--port", "1"])
    assert info.value.code == 2 and f"{flag} must be a positive" in capsys.readouterr().err


# Masking: the key must not leave the proxy whole, cut short or escaped.

def leaks(text, key, run=8):
    """True if any ``run``-character piece of ``key`` can be read in ``text`` after undoing escapes."""
    views = {text, text.replace("\\/", "/"), urllib.parse.unquote(text)}
    for view in list(views):
        for _ in range(2):  # undo up to two levels of JSON escaping
            try:
                with warnings.catch_warnings():  # stray backslashes are expected here
                    warnings.simplefilter("ignore", DeprecationWarning)
                    view = codecs.decode(view.replace("\\/", "/"), "unicode_escape")
            except UnicodeDecodeError:
                break
            views.add(view)
    return any(key[i:i + run] in view for view in views for i in range(len(key) - run + 1))


SLASH_KEY = "abcd1234efgh/5678ijkl.MNOPqrst+uvwx"


def unicode_escaped(text):
    return "".join(f"\\u{ord(c):04x}" for c in text)


@pytest.mark.parametrize("text", [
    f"invalid key {SLASH_KEY}",
    json.dumps({"error": {"message": f"key {SLASH_KEY}"}}).replace("/", "\\/"),
    json.dumps(json.dumps({"message": f"key {SLASH_KEY}"})),
    f'{{"message": "key {unicode_escaped(SLASH_KEY)}"}}',
    f'{{"message": "key {SLASH_KEY[:10]}{unicode_escaped(SLASH_KEY[10:20])}{SLASH_KEY[20:]}"}}',
    "key=" + urllib.parse.quote(SLASH_KEY, safe=""),
    "x" * 280 + SLASH_KEY,            # whole key straddles the 300-character cut
    "x" * 100 + SLASH_KEY[:9],        # the upstream already cut the key: a prefix at the very end
    SLASH_KEY[-9:] + " was the end of the key",
])
def test_masking_covers_truncation_and_escaping(text):
    assert leaks(text, SLASH_KEY), "the case must contain the key to be a test"
    assert not leaks(redact(text, [SLASH_KEY]), SLASH_KEY)
    assert not leaks(clip(text, [SLASH_KEY]), SLASH_KEY)
    assert len(clip(text, [SLASH_KEY])) <= 300


def test_masking_leaves_other_text_alone_and_stays_fast():
    text = 'upstream said: {"error": {"code": "1002", "message": "Authorization failed \\u4f60"}} 100%'
    assert redact(text, [SLASH_KEY]) == text
    assert redact(f"a {SLASH_KEY} b", [SLASH_KEY]) == "a *** b"
    start = time.monotonic()
    for hostile in ("\\" * 100_000, "\\u00" * 25_000, "%2" * 50_000, SLASH_KEY[:7] * 14_000):
        assert not leaks(clip(hostile + SLASH_KEY, [SLASH_KEY]), SLASH_KEY)
        redact(hostile, [SLASH_KEY])
    assert time.monotonic() - start < 3.0


def test_masking_formatter_covers_tracebacks():
    formatter = MaskingFormatter("%(levelname)s %(message)s", [SLASH_KEY, None])
    try:
        raise ValueError(json.dumps({"key": SLASH_KEY}).replace("/", "\\/"))
    except ValueError:
        record = logging.LogRecord("chatglm_api", logging.ERROR, __file__, 1, "failed with %s", (SLASH_KEY[:12],),
                                   sys.exc_info())
    line = formatter.format(record)
    assert "ValueError" in line and not leaks(line, SLASH_KEY)


@pytest.mark.parametrize("body", [
    "x" * 270 + KEY + "y" * 50,                                   # key across the 300-character cut
    json.dumps({"error": {"message": "bad key " + KEY}}).replace(".", "\\u002e"),
    json.dumps({"error": {"message": "x" * 260 + json.dumps(KEY)}}),
])
def test_upstream_error_echoing_the_key_is_masked_for_client_and_log(proxy, upstream, caplog, body):
    upstream.expect_request(UPSTREAM_PATH, method="POST").respond_with_data(body, status=500)
    with caplog.at_level(logging.WARNING, logger="chatglm_api"):
        reply = httpx.post(f"{proxy}/v1/chat/completions", json={"messages": MESSAGES})
    assert reply.status_code == 502
    assert not leaks(reply.text, KEY) and not leaks(reply.json()["error"]["message"], KEY)
    assert "HTTP 500" in caplog.text and not leaks(caplog.text, KEY)
