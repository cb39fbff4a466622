"""A stand-in LLM server for the benches: OpenAI chat completions on 127.0.0.1, no model behind it.

Each request is answered after ``delay`` seconds with ``n`` copies of the scripted oracle's plan for the
question's sentence (``Action: {...}``), so a bench measures this project's calling pattern (requests,
cache hits, waiting) and not a model. ``requests`` counts what it received.

    with StandInLLM(delay=0.5) as server:
        ... --planner llm --llm_url server.url ...
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from planners.minigrid.scripted import OraclePlanSource


class StandInLLM:
    """A loopback chat-completions server answering with the oracle's plans; a context manager."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.requests = 0
        self._lock = threading.Lock()
        self._oracle = OraclePlanSource()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-llm", daemon=True)

    def answer(self, body: dict) -> dict:
        """The chat-completions reply to a request ``body``: ``n`` choices holding the oracle's plan."""
        with self._lock:
            self.requests += 1
        time.sleep(self.delay)
        sentence = body["messages"][-1]["content"]
        plans = self._oracle.plan_distribution(sentence) or [("explore", 1.0)]
        text = f"Action: {{{plans[0][0]}}}"
        choices = [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                   for i in range(int(body.get("n", 1)))]
        return {"object": "chat.completion", "model": body.get("model", "stand-in"), "choices": choices}

    def __enter__(self) -> "StandInLLM":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(server: StandInLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            payload = json.dumps(server.answer(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:  # a bench's output is its table
            pass

    return Handler
