"""Small loopback servers for tests: test doubles of an LLM server, not LLMs.

:class:`FakeLLMServer` is an OpenAI-compatible chat-completions server on 127.0.0.1. It answers every question
with the oracle's plan for the sentence (``Action: {...}``), honours ``n``, counts requests, and can be stopped
mid-run to simulate an outage; ``fail`` makes it answer chosen requests with an HTTP error instead.

:class:`RawServer` speaks raw TCP: for each connection it reads the request and hands the socket to a
behaviour (trickle bytes, hang, stream an endless body...), to play the servers HTTP libraries cannot.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from typing import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from planners.minigrid.scripted import OraclePlanSource



class QuietHTTPServer(ThreadingHTTPServer):
    """A threaded server that does not print a traceback when a client hangs up mid-answer.

    Clients under test cut requests at their deadline on purpose; the default handler would write the
    resulting BrokenPipe/ConnectionReset traceback to stderr, where it can land in another test's capture.
    """

    def handle_error(self, request, client_address) -> None:
        pass

class FakeLLMServer:
    """``with FakeLLMServer() as server: ... server.url, server.requests``."""

    def __init__(self, answer=None, delay: float = 0.0, fail: Callable[[str], tuple | None] | None = None):
        self.delay = delay  # seconds each request takes (to mimic a real model's latency)
        # fail(sentence) -> None to answer, or (status, message) to reply with an OpenAI-shaped error
        self.fail = fail
        self.requests = 0
        self.sentences: list[str] = []
        self._answer = answer or self._oracle_answer
        self._oracle = OraclePlanSource()
        self._httpd = QuietHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _oracle_answer(self, sentence: str) -> str:
        plans = self._oracle.plan_distribution(sentence) or [("explore", 1.0)]
        return f"The agent should act on what it sees.\nAction: {{{plans[0][0]}}}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                self._reply(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests += 1
                sentence = body["messages"][-1]["content"]
                server.sentences.append(sentence)
                if server.delay:
                    time.sleep(server.delay)
                failure = server.fail(sentence) if server.fail else None
                if failure is not None:
                    status, message = failure
                    self._reply(status, {"error": {"message": message, "type": "error", "code": None}})
                    return
                choices = [{"index": i, "message": {"role": "assistant", "content": server._answer(sentence)},
                            "finish_reason": "stop"} for i in range(int(body.get("n", 1)))]
                self._reply(200, {"id": "fake", "object": "chat.completion", "created": 0,
                                  "model": body.get("model"), "choices": choices})

            def _reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def start(self) -> "FakeLLMServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the port (connections are then refused)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request (headers and a Content-Length body) from ``conn``; returns the body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


class RawServer:
    """``with RawServer(behaviour) as server: ... server.url``; ``behaviour(conn, body, server)`` per request.

    ``server.stopping`` is set when the server stops, so hanging behaviours can end.
    """

    def __init__(self, behaviour: Callable[[socket.socket, bytes, "RawServer"], None]):
        self.behaviour = behaviour
        self.requests = 0
        self.stopping = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                body = read_request(conn)
                self.requests += 1
                self.behaviour(conn, body, self)
            except OSError:
                pass  # the client went away: that is what these servers are for

    def start(self) -> "RawServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=2)
        self._listener.close()

    def __enter__(self) -> "RawServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def chat_json(contents: list[str]) -> bytes:
    """A chat-completions reply body carrying ``contents`` as choices."""
    return json.dumps({"id": "raw", "object": "chat.completion", "created": 0, "model": "raw", "choices": [
        {"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
        for i, c in enumerate(contents)]}).encode()


def trickle(data: bytes, interval: float) -> Callable:
    """A behaviour sending ``data`` one byte every ``interval`` seconds."""
    def behaviour(conn, body, server):
        for byte in data:
            if server.stopping.wait(interval):
                return
            conn.sendall(bytes([byte]))
    return behaviour


def hang(conn, body, server) -> None:
    """A behaviour that reads the request and never answers (until the server stops)."""
    server.stopping.wait(30)
