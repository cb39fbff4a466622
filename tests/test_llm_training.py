"""Training and evaluating against a live (loopback) LLM server; the answer cache makes reruns HTTP-free."""
import json
import time

import pytest
import torch

import main
from fake_llm import FakeLLMServer
from planners.llm.cache import AnswerCache

SMALL = ["--num_envs", "4", "--num_steps", "32", "--n_itr", "2", "--eval_interval", "0", "--log_interval", "1",
         "--llm_samples", "3", "--final_eval_episodes", "2"]


def test_train_with_a_live_llm_then_rerun_from_the_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LLM4TEACH_API_KEY", "sk-very-secret-key")
    logdir = str(tmp_path)
    with FakeLLMServer() as server:
        args = ["train", "--task", "SimpleDoorKey", "--planner", "llm", "--llm_url", server.url,
                "--logdir", logdir] + SMALL
        assert main.main(args + ["--savedir", "first"]) == 0
        first_calls = server.requests
        out = capsys.readouterr().out
        assert first_calls > 0 and f"LLM teacher: {first_calls} HTTP calls" in out
        assert main.main(args + ["--savedir", "second"]) == 0
        out = capsys.readouterr().out
        assert server.requests == first_calls, "the second run is answered by the cache alone"
        assert "LLM teacher: 0 HTTP calls" in out

        code = main.main(["eval", "--eval_teacher", "--task", "SimpleDoorKey", "--planner", "llm", "--llm_url",
                          server.url, "--logdir", logdir, "--num_eval", "3", "--num_videos", "0"])
        assert code == 0 and "Success rate:" in capsys.readouterr().out

    for run in ("first", "second"):
        run_dir = tmp_path / "ppo" / "simpledoorkey" / run
        config_text = (run_dir / "config.json").read_text()
        assert "sk-very-secret-key" not in config_text
        assert json.loads(config_text)["llm"]["api_key_env"] == "LLM4TEACH_API_KEY"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["llm"]["llm_calls"] == (first_calls if run == "first" else 0)
    with AnswerCache(tmp_path / "llm_cache.sqlite") as cache:
        assert len(cache) >= 2, "every distinct sentence met was asked once and stored"
    assert all(s.startswith("Agent sees <") for s in server.sentences)


def test_unreachable_llm_fails_fast_with_a_one_line_error(tmp_path, capsys):
    server = FakeLLMServer()
    url = server.url
    server.stop()  # nothing listens on this port any more
    code = main.main(["train", "--task", "SimpleDoorKey", "--planner", "llm", "--llm_url", url, "--savedir", "x",
                      "--logdir", str(tmp_path)] + SMALL)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: LLM server at") and url in err and len(err.strip().splitlines()) == 1


def test_cache_export_gives_the_recorded_format_and_replays_offline(tmp_path, capsys):
    with FakeLLMServer() as server:
        assert main.main(["train", "--task", "SimpleDoorKey", "--planner", "llm", "--llm_url", server.url,
                          "--savedir", "live", "--logdir", str(tmp_path)] + SMALL) == 0
    exported = tmp_path / "plans.json"
    assert main.main(["cache", "export", "--task", "SimpleDoorKey", "--cache", str(tmp_path / "llm_cache.sqlite"),
                      "--json", str(exported), "--llm_samples", "3"]) == 0
    table = json.loads(exported.read_text())["simpledoorkey"]
    assert table and all(abs(sum(p["probability"] for p in e["plans"]) - 1) < 1e-9 for e in table)
    capsys.readouterr()
    code = main.main(["train", "--task", "SimpleDoorKey", "--planner", "recorded", "--recorded_plans",
                      str(exported), "--savedir", "replay", "--logdir", str(tmp_path)] + SMALL)
    assert code == 0
    summary = json.loads((tmp_path / "ppo" / "simpledoorkey" / "replay" / "summary.json").read_text())
    assert summary["teacher_fallbacks"] <= 2, "the replayed table answers (almost) everything the run met"


# --- LLM failures: configuration errors, outages, offline replay ------------------------------------------

PROXY_401 = "GLM API refused the key (HTTP 401): invalid api key; check ZHIPUAI_API_KEY"


def train_args(url, tmp_path, savedir="x", *extra):
    return (["train", "--task", "SimpleDoorKey", "--planner", "llm", "--llm_url", url, "--savedir", savedir,
             "--logdir", str(tmp_path)] + SMALL + list(extra))


def run_dir_of(tmp_path, savedir="x"):
    return tmp_path / "ppo" / "simpledoorkey" / savedir


@pytest.mark.parametrize("status, message, hint", [
    (400, "Only vicuna-33b-v1.3 allowed now, your model is vicuna-33b-v1.3", "--llm_model"),
    (401, PROXY_401, "fix ZHIPUAI_API_KEY"),
    (404, "The model `vicuna-33b-v1.3` does not exist.", "--llm_url points at the server root"),
])
@pytest.mark.parametrize("lag", ["0", "1"])
def test_configuration_error_at_start_exits_2_and_writes_nothing(tmp_path, capsys, status, message, hint, lag):
    with FakeLLMServer(fail=lambda sentence: (status, message)) as server:
        code = main.main(train_args(server.url, tmp_path, "x", "--policy_lag", lag))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"HTTP {status}" in err and hint in err
    assert not (tmp_path / "ppo").exists() and not (tmp_path / "llm_cache.sqlite").exists()


def fail_after_first_checkpoint(run_dir, status, message):
    """A ``fail`` hook: answer until the run has saved a checkpoint, then reply with ``status``."""
    return lambda sentence: (status, message) if (run_dir / "acmodel.pt").exists() else None


@pytest.mark.parametrize("lag", ["0", "1"])  # lag 1: the error is raised in the rollout worker, passed back
def test_configuration_error_mid_run_keeps_the_checkpoint_and_names_the_variable(tmp_path, capsys, lag):
    run_dir = run_dir_of(tmp_path)
    with FakeLLMServer(fail=fail_after_first_checkpoint(run_dir, 401, PROXY_401)) as server:
        code = main.main(train_args(server.url, tmp_path, "x", "--n_itr", "6", "--save_interval", "1",
                                    "--policy_lag", lag))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "fix ZHIPUAI_API_KEY" in err and "LLM4TEACH_API_KEY" not in err
    assert "is kept" in err and "--resume" in err
    checkpoint = torch.load(run_dir / "acmodel.pt", weights_only=True)
    assert 1 <= checkpoint["meta"]["iteration"] < 6
    assert not (run_dir / "summary.json").exists()


def test_outage_mid_run_with_stop_exits_3_and_keeps_the_checkpoint(tmp_path, capsys):
    run_dir = run_dir_of(tmp_path)
    with FakeLLMServer(fail=fail_after_first_checkpoint(run_dir, 503, "overloaded")) as server:
        code = main.main(train_args(server.url, tmp_path, "x", "--n_itr", "6", "--save_interval", "1",
                                    "--llm_on_outage", "stop", "--llm_max_retries", "0"))
    err = capsys.readouterr().err
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "HTTP 503" in err and "--llm_on_outage is stop" in err and "is kept" in err
    assert torch.load(run_dir / "acmodel.pt", weights_only=True)["meta"]["iteration"] >= 1
    assert json.loads((run_dir / "config.json").read_text())["llm"]["on_outage"] == "stop"


def test_hung_server_mid_run_costs_at_most_the_outage_budget_then_falls_back(tmp_path, capsys):
    run_dir = run_dir_of(tmp_path)
    server = FakeLLMServer()
    oracle = server._answer

    def answer(sentence):
        if (run_dir / "acmodel.pt").exists():
            time.sleep(10)  # hung: the client's deadline ends the wait
        return oracle(sentence)

    server._answer = answer
    with server:
        code = main.main(train_args(server.url, tmp_path, "x", "--n_itr", "6", "--save_interval", "1",
                                    "--llm_timeout", "1", "--llm_outage_budget", "1.5"))
    out = capsys.readouterr().out
    assert code == 0
    llm = json.loads((run_dir / "summary.json").read_text())["llm"]
    assert llm["answers_from_fallback"] >= 1 and llm["answers_from_llm"] >= 1
    assert 1.0 <= llm["outage_seconds"] < 1.5 + 0.3
    assert (f"teacher answers: {llm['answers_from_llm']} from the LLM, {llm['answers_from_cache']} from the cache, "
            f"{llm['answers_from_fallback']} from the fallback") in out


def test_offline_replay_with_the_server_down(tmp_path, capsys):
    with FakeLLMServer() as server:
        assert main.main(train_args(server.url, tmp_path, "live")) == 0
        url = server.url
    capsys.readouterr()
    # The server is gone. The cache covers every sentence this run meets: no server needed, even without a flag.
    assert main.main(train_args(url, tmp_path, "replay")) == 0
    assert "teacher answers: 0 from the LLM" in capsys.readouterr().out
    llm = json.loads((run_dir_of(tmp_path, "replay") / "summary.json").read_text())["llm"]
    assert llm["llm_calls"] == 0 and llm["answers_from_cache"] >= 2 and llm["answers_from_fallback"] == 0

    # --llm_samples 2 asks other questions than the cache holds: offline + stop is a one-line error, nothing written.
    code = main.main(train_args(url, tmp_path, "strict", "--llm_offline", "--llm_on_outage", "stop",
                                "--llm_samples", "2"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --llm_offline") and len(err.strip().splitlines()) == 1
    assert not run_dir_of(tmp_path, "strict").exists()
    # ... and offline + fallback answers them from the recorded plans, counted as such.
    assert main.main(train_args(url, tmp_path, "lenient", "--llm_offline", "--llm_samples", "2")) == 0
    llm = json.loads((run_dir_of(tmp_path, "lenient") / "summary.json").read_text())["llm"]
    assert llm["llm_calls"] == 0 and llm["answers_from_llm"] == 0 and llm["answers_from_fallback"] >= 1


def test_offline_without_a_cache_file_is_a_one_line_error(tmp_path, capsys):
    code = main.main(train_args("http://127.0.0.1:9", tmp_path, "x", "--llm_offline"))
    err = capsys.readouterr().err
    assert code == 2 and "no cache at" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ppo").exists()


@pytest.mark.parametrize("flags, expected", [
    (["--llm_url", "htp://localhost:8000"], "--llm_url must look like http://HOST:PORT, got 'htp://localhost:8000'"),
    (["--llm_timeout", "0"], "--llm_timeout must be > 0, got 0.0"),
    (["--llm_outage_budget", "nan"], "--llm_outage_budget must be a finite number, got nan"),
    (["--llm_max_answer_chars", "0"], "--llm_max_answer_chars must be >= 1, got 0"),
])
def test_bad_llm_settings_are_one_line_errors(tmp_path, capsys, flags, expected):
    code = main.main(train_args("http://127.0.0.1:9", tmp_path, "x", *flags))
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ppo").exists()
