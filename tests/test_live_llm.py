"""The live LLM path against a real model: llama.cpp's server with Gemma-3-270M, both from requirements-llm.txt.

These tests need the real server and model (installed by the README's test command); without them they fail,
they do not skip. Each module worker starts its own server on a free loopback port and stops it at the end.
"""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import main
from utils.local_llm import MODEL_ALIAS, LocalLLMError, exit_reason, free_port, model_file, start_server

PROJECT = Path(__file__).resolve().parents[1]
SMALL = ["--num_envs", "4", "--num_steps", "32", "--n_itr", "2", "--eval_interval", "0", "--log_interval", "1",
         "--final_eval_episodes", "0"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The assembled model file, shared by the test processes of one run (assembly is atomic)."""
    return model_file(tmp_path_factory.getbasetemp().parent / "gemma_model")


@pytest.fixture(scope="module")
def gemma(model, tmp_path_factory):
    server = start_server(model, port=free_port(), ready_timeout=90,
                          log_path=tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    server.stop()


def _assert_alive(server, when):
    assert server.process.poll() is None, (f"the shared llama.cpp server {exit_reason(server.process.returncode)} "
                                           f"{when}; its log ends: {server.log_path.read_text(errors='replace')[-2000:]}")


@pytest.fixture(autouse=True)
def gemma_stays_up(request):
    """A test on the shared server starts with it up and leaves it up; if it died, the failure says how."""
    if "gemma" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("gemma")
    _assert_alive(server, "before this test")
    yield
    _assert_alive(server, "during this test")


def live(server, api="completions"):
    return ["--planner", "llm", "--llm_url", server.url, "--llm_model", MODEL_ALIAS, "--llm_api", api]


def test_the_teacher_alone_with_completions_gives_parseable_plans_and_successes(gemma, tmp_path, capsys):
    # Seeded answers: how good this teacher is depends on the plans its samples happen to draw (from 0 to 46
    # successes of 100 in the draws tried here), and a test must not depend on that draw.
    heldout = ["--eval_teacher", "--task", "SimpleDoorKey", "--logdir", str(tmp_path), "--heldout",
               "--final_eval_episodes", "100", "--num_videos", "0", "--llm_seed", "0"]
    assert main.main(["eval", *heldout, *live(gemma), "--savedir", "live"]) == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "ppo" / "simpledoorkey" / "live" / "teacher_results.json").read_text())
    with sqlite3.connect(tmp_path / "llm_cache.sqlite") as db:
        entries = db.execute("SELECT sentence, parsed_plans FROM answers").fetchall()
    plans = [plan for _, parsed in entries for plan in json.loads(parsed)]
    assert len(entries) >= 2 and all(sentence.startswith("Agent sees <") for sentence, _ in entries)
    assert sum(plan is not None for plan in plans) >= 0.8 * len(plans), "completions answers parse as plans"
    assert len({plan for plan in plans if plan}) >= 2, "samples at temperature 0.7 are not all one plan"
    assert sum(result["successes"]) >= 1, "an imperfect teacher, but one that opens some doors"

    # Its answers exported to the recorded-plans format replay the same teacher: the same episodes, step for step.
    plans = tmp_path / "gemma_plans.json"
    assert main.main(["cache", "export", "--task", "SimpleDoorKey", "--cache", str(tmp_path / "llm_cache.sqlite"),
                      "--json", str(plans), "--llm_model", MODEL_ALIAS, "--llm_api", "completions",
                      "--llm_seed", "0"]) == 0
    assert main.main(["eval", *heldout, "--planner", "recorded", "--recorded_plans", str(plans),
                      "--recorded_table", "simpledoorkey", "--savedir", "replay"]) == 0, capsys.readouterr().err
    replay = json.loads((tmp_path / "ppo" / "simpledoorkey" / "replay" / "teacher_results.json").read_text())
    for outcome in ("successes", "returns", "lengths"):
        assert replay[outcome] == result[outcome], f"the replayed teacher's {outcome} differ from the live one's"


def test_a_short_training_run_then_a_rerun_from_the_cache_makes_no_request(gemma, tmp_path, capsys):
    args = ["train", "--task", "SimpleDoorKey", *live(gemma), "--logdir", str(tmp_path), *SMALL]
    assert main.main(args + ["--savedir", "first"]) == 0, capsys.readouterr().err
    assert main.main(args + ["--savedir", "second"]) == 0, capsys.readouterr().err
    first, second = (json.loads((tmp_path / "ppo" / "simpledoorkey" / run / "summary.json").read_text())["llm"]
                     for run in ("first", "second"))
    assert first["llm_calls"] > 0 and first["answers_from_llm"] > 0
    assert second["llm_calls"] == 0 and second["answers_from_llm"] == 0 and second["answers_from_cache"] > 0
    assert "LLM teacher: 0 HTTP calls" in capsys.readouterr().out


def test_chat_with_this_base_model_ends_as_unusable_answers_in_one_line(gemma, tmp_path, capsys):
    # Greedy and short: the base model restates the prompt's reasoning and never reaches an 'Action: {...}'.
    start = time.monotonic()
    code = main.main(["train", "--task", "SimpleDoorKey", *live(gemma, api="chat"), "--savedir", "chat",
                      "--logdir", str(tmp_path), "--llm_temperature", "0", "--llm_max_tokens", "16",
                      "--llm_samples", "2", *SMALL])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "gave no parseable 'Action: {...}'" in err and "--llm_model" in err
    assert not (tmp_path / "ppo" / "simpledoorkey" / "chat").exists(), "a refused run leaves no folder"
    assert time.monotonic() - start < 60


def test_the_server_killed_mid_run_takes_the_outage_path_and_keeps_the_checkpoint(model, tmp_path):
    # The cache answers two sentences (the recorded plans for a key or a door seen alone); the rest are left to
    # the LLM: 'sees nothing, holds nothing', met at once, then 'sees key, door', met as soon as one
    # environment has seen both (or, should all four meet it before the first checkpoint, the two met once a
    # key is held).
    recorded = json.loads((PROJECT / "planners" / "data" / "recorded_vicuna33b_plans.json").read_text())
    prefilled = [e for e in recorded["simpledoorkey"] if e["observation"] in
                 ("Agent sees <key>, holds <nothing>.", "Agent sees <door>, holds <nothing>.")]
    (tmp_path / "some.json").write_text(json.dumps({"simpledoorkey": prefilled}))
    settings = ["--llm_model", MODEL_ALIAS, "--llm_api", "completions", "--llm_samples", "3"]
    assert main.main(["cache", "import", "--task", "SimpleDoorKey", "--cache", str(tmp_path / "llm_cache.sqlite"),
                      "--json", str(tmp_path / "some.json"), *settings]) == 0
    server = start_server(model, port=free_port(), ready_timeout=90, log_path=tmp_path / "server.log")
    run_dir = tmp_path / "ppo" / "simpledoorkey" / "outage"
    command = [sys.executable, str(PROJECT / "main.py"), "train", "--task", "SimpleDoorKey", *live(server),
               "--savedir", "outage", "--logdir", str(tmp_path), "--llm_on_outage", "stop", "--llm_samples", "3",
               "--num_envs", "4", "--num_steps", "8", "--n_itr", "1200", "--save_interval", "1",
               "--eval_interval", "0", "--final_eval_episodes", "0", "--log_interval", "0"]
    trainer = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "acmodel.pt").exists():  # the LLM has answered, one iteration is saved
            assert trainer.poll() is None and time.monotonic() < deadline, trainer.communicate()
            time.sleep(0.02)
        trainer.send_signal(signal.SIGSTOP)  # hold the run still while its server goes away
        server.stop()
        trainer.send_signal(signal.SIGCONT)
        _, err = trainer.communicate(timeout=180)
    finally:
        trainer.kill()
        server.stop()
    # The first sentence the cache lacks after that meets the dead server: the outage path, --llm_on_outage stop.
    assert trainer.returncode == 3, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: LLM server at") and "--llm_on_outage is stop" in line
    assert "is kept" in line and "--resume" in line and "Traceback" not in err
    assert (run_dir / "acmodel.pt").exists()


def test_serve_refuses_a_port_in_use_and_a_server_that_does_not_answer_in_one_line(gemma, model, capsys):
    port = gemma.url.rsplit(":", 1)[1]
    assert main.main(["serve", "--port", port, "--model_dir", str(model.parent)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"port {port} on 127.0.0.1 is in use" in err and "--port" in err
    assert main.main(["serve", "--port", str(free_port()), "--model_dir", str(model.parent),
                      "--ready_timeout", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did not answer within 0.5s" in err


def test_a_port_in_use_and_a_damaged_model_file_are_one_line_errors(gemma, tmp_path):
    port = int(gemma.url.rsplit(":", 1)[1])
    with pytest.raises(LocalLLMError, match=f"port {port} .* is in use"):
        start_server(Path("unused.gguf"), port=port)
    damaged = tmp_path / "gemma-3-270m-q4_k_m.gguf"
    damaged.write_bytes(b"GGUF not really a model")
    with pytest.raises(LocalLLMError, match="is not the model .* delete it"):
        model_file(tmp_path)
    assert damaged.read_bytes() == b"GGUF not really a model", "a file that is not the model is left as it is"


def test_the_latency_bench_times_the_real_server_and_its_generation_speed(gemma):
    from bench.latency import collect_observations, generation_speed, real_llm_rows
    from utils.config import build_config
    config = build_config("SimpleDoorKey", {"llm_url": gemma.url, "llm_model": MODEL_ALIAS, "llm_api": "completions"})
    asked, cached = real_llm_rows(config, collect_observations(config, 5), calls=1)
    assert "new sentence: 10 answers (1 sentences)" in asked.name and len(asked.seconds) == 1
    assert asked.median > 50 * cached.median, "asking the model costs far more than reading its answer back"
    speed = re.search(r"gemma-3-270m generates ([0-9.]+) tokens/s", generation_speed(config, requests=1, tokens=16))
    assert speed and float(speed.group(1)) > 0


FAKE_SERVER = """
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"data": [{"id": "gemma-3-270m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        print("generating", flush=True)
        os.kill(os.getpid(), signal.SIGILL)

HTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), Handler).serve_forever()
"""


def test_a_build_that_cannot_run_on_this_cpu_fails_at_start_in_one_line(tmp_path, monkeypatch):
    # A wheel compiled for other CPUs loads the model and lists it, then dies of SIGILL at its first token.
    # No such build can be made here in test time, so a stand-in llama_cpp.server does exactly that.
    package = tmp_path / "fake" / "llama_cpp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "server.py").write_text(FAKE_SERVER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fake"))
    with pytest.raises(LocalLLMError) as caught:
        start_server(tmp_path / "model.gguf", port=free_port(), ready_timeout=30, log_path=tmp_path / "server.log")
    message = str(caught.value)
    assert "at its first completion it was killed by SIGILL (illegal instruction" in message and "pip cache remove llama_cpp_python" in message
    assert "generating" in message and "\n" not in message


def test_exit_reasons_name_the_signal_of_a_real_process():
    crashed = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"])
    assert exit_reason(crashed.returncode).startswith("was killed by SIGILL (illegal instruction")
    assert exit_reason(subprocess.run([sys.executable, "-c", "raise SystemExit(3)"]).returncode) == "exited with code 3"
    assert exit_reason(-signal.SIGKILL) == "was killed by SIGKILL"
