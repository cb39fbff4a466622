"""Training and evaluating against a live (loopback) LLM server; the answer cache makes reruns HTTP-free."""
import json

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
