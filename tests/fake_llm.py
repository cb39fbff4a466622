"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

It answers every question with the oracle's plan for the sentence (``Action: {...}``), honours ``n``, counts
requests, and can be stopped mid-run to simulate an outage. It is a test double of an LLM server, not an LLM.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from planners.minigrid.scripted import OraclePlanSource


class FakeLLMServer:
    """``with FakeLLMServer() as server: ... server.url, server.requests``."""

    def __init__(self, answer=None, delay: float = 0.0):
        self.delay = delay  # seconds each request takes (to mimic a real model's latency)
        self.requests = 0
        self.sentences: list[str] = []
        self._answer = answer or self._oracle_answer
        self._oracle = OraclePlanSource()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
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
