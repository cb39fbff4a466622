"""Run alone by test_llm_client: how much memory the client's peak takes while a server streams 10 MB at it.

A process of its own, because tracemalloc counts every thread's allocations: in a pytest worker, threads that
earlier tests left behind (servers, trainers) allocate too, and once added 10 MB to the client's peak in CI.
Prints one JSON line: {"peak": bytes, "answers": [type names]}.
"""
from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_llm import RawServer  # noqa: E402
from planners.llm.client import ChatCompletionsClient  # noqa: E402

TOTAL = 10 * 1024 * 1024
PIECE = b"a" * 65536


def stream_ten_megabytes(conn, body, server) -> None:
    """Chunked, so no Content-Length warns the client: it must stop reading by itself."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    prefix = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "'
    conn.sendall(b"%x\r\n%s\r\n" % (len(prefix), prefix))
    for _ in range(TOTAL // len(PIECE)):
        conn.sendall(b"%x\r\n%s\r\n" % (len(PIECE), PIECE))


def main() -> None:
    messages = [{"role": "user", "content": "Agent sees <key>."}]
    with RawServer(stream_ten_megabytes) as server:
        client = ChatCompletionsClient(server.url, model="fake-model", temperature=0.5, timeout=5.0,
                                       max_retries=2, backoff_base=0.01, max_backoff=0.05, max_answer_chars=4000)
        tracemalloc.start()
        try:
            answers = client.complete(messages, 2)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    print(json.dumps({"peak": peak, "answers": [type(answer).__name__ for answer in answers]}))


if __name__ == "__main__":
    main()
