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
    assert set(error) == {"message", "type", "code"}
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
    assert KEY not in err
