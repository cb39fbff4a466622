"""Benchmarks through the real entry point: a tiny sweep, its report, the throughput table, Ray."""
import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

import main
from bench.report import steps_to_threshold, summarise

TINY = ["--tasks", "SimpleDoorKey", "--methods", "ppo", "hard", "--seeds", "0", "1", "--total_steps", "256",
        "--workers", "2", "--teacher_episodes", "4", "--set", "num_envs=4", "num_steps=32", "eval_interval=1",
        "num_eval=2", "final_eval_episodes=2"]


def test_tiny_sweep_then_report(tmp_path, capsys):
    logdir = str(tmp_path)
    assert main.main(["sweep", "--name", "tiny", "--logdir", logdir] + TINY) == 0
    index = list(csv.DictReader((tmp_path / "sweeps" / "tiny" / "runs.csv").open()))
    assert sorted((r["method"], r["seed"]) for r in index) == [("hard", "0"), ("hard", "1"), ("ppo", "0"), ("ppo", "1")]
    for row in index:
        curve = list(csv.DictReader(open(f"{row['run_dir']}/eval_curve.csv")))
        assert [int(r["env_steps"]) for r in curve] == [128, 256]
        assert row["status"] == "done" and int(row["env_steps"]) == 256
        final = json.loads(open(f"{row['run_dir']}/summary.json").read())["final_eval"]
        assert final["episodes"] == 2 and final["env_seeds"] == "1000000..1000001"
    teacher = list(csv.DictReader((tmp_path / "sweeps" / "tiny" / "teacher_heldout.csv").open()))
    assert [(r["task"], r["method"], r["seed"]) for r in teacher] == [("SimpleDoorKey", "hard", "0"),
                                                                     ("SimpleDoorKey", "hard", "1")]
    assert all(r["env_seeds"] == "1000000..1000003" and r["interval"] == "95% Wilson score" for r in teacher)
    assert all(r["skills"] == "paper" and r["hard_sampling"] == "step" and r["commit"] for r in teacher)
    commit = json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())["commit"]
    assert commit and json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())["commits"] == [commit]

    capsys.readouterr()
    assert main.main(["sweep", "--name", "tiny", "--logdir", logdir] + TINY) == 0
    assert "4 already done" in capsys.readouterr().out, "a rerun continues instead of redoing"
    assert json.loads((tmp_path / "sweeps" / "tiny" / "sweep.json").read_text())["commits"] == [commit]

    out = tmp_path / "report"
    assert main.main(["report", "--name", "tiny", "--logdir", logdir, "--out", str(out)]) == 0
    assert (out / "simpledoorkey.png").stat().st_size > 1000
    assert len(list(csv.DictReader((out / "curves.csv").open()))) == 4 * 2, "two eval points of four runs"
    table = (out / "results.md").read_text()
    task_table = table.split("## Across tasks")[0]
    rows = [line for line in task_table.splitlines() if re.match(r"\| (ppo|hard) \|", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["ppo", "hard"]
    assert all("/2 |" in row for row in rows), "each row counts its two seeds"
    assert "min-max of 2 seeds" in table and "percentile bootstrap needs >= 10 seeds" in table
    assert "| SimpleDoorKey | (a) fewer env steps than PPO | ppo / hard |" in table
    assert "| SimpleDoorKey | (b) student beats its teacher | hard student - hard teacher |" in table
    assert f"Runs trained at commit(s) {commit} (SimpleDoorKey)" in table
    assert "Fisher's combination of 1 per-task p-values" in table.split("Over all tasks:")[1]
    per_run = list(csv.DictReader((out / "runs.csv").open()))
    assert len(per_run) == 4 and all(r["heldout_episodes"] == "2" for r in per_run)
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert len(summary) == 2 and summary[1]["teacher_heldout_mean"] not in ("", "None")
    assert {r["commit"] for r in per_run} == {commit}
    assert len(list(csv.DictReader((out / "teacher_heldout.csv").open()))) == 2
    _report_survives_lost_run_folders(tmp_path, out, capsys)


def _report_survives_lost_run_folders(logdir: Path, archive: Path, capsys) -> None:
    """The hard runs' folders and index rows are gone (a new machine), and so are the teachers' rows: with
    ``--archive`` the report is the same, its settings line rebuilt from sweep.json; a bad archive is refused."""
    import shutil
    index = logdir / "sweeps" / "tiny" / "runs.csv"
    rows = list(csv.DictReader(index.open()))
    with index.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["method"] != "hard")
    for row in rows:
        if row["method"] == "hard":
            shutil.rmtree(row["run_dir"])
    (logdir / "sweeps" / "tiny" / "teacher_heldout.csv").unlink()
    again = logdir / "again"
    args = ["report", "--name", "tiny", "--logdir", str(logdir), "--out", str(again), "--archive", str(archive)]
    assert main.main(args) == 0
    for name in ("results.md", "runs.csv", "curves.csv", "summary.csv", "teacher_heldout.csv"):
        assert (again / name).read_text() == (archive / name).read_text(), name
    runs_csv = (archive / "runs.csv").read_text().splitlines()
    hard = next(k for k, line in enumerate(runs_csv) if line.startswith("SimpleDoorKey,hard,0,"))
    fields = runs_csv[hard].split(",")
    fields[5] = str(int(fields[5]) + 1)  # env steps to 0.9 no longer what the curve says
    runs_csv[hard] = ",".join(fields)
    (archive / "runs.csv").write_text("\n".join(runs_csv) + "\n")
    capsys.readouterr()
    assert main.main(args) == 2
    assert "the archive is inconsistent" in capsys.readouterr().err


def test_sweep_resumes_only_unfinished_runs_and_refuses_changed_settings(tmp_path, capsys, inline_sweep):
    logdir = str(tmp_path)
    args = ["sweep", "--name", "r", "--logdir", logdir, "--teacher_episodes", "0"] + TINY[:TINY.index("--workers")]
    small = ["--set", "num_envs=4", "num_steps=32", "eval_interval=1", "num_eval=2", "final_eval_episodes=2"]
    assert main.main(args + small) == 0
    index_path = tmp_path / "sweeps" / "r" / "runs.csv"
    rows = list(csv.DictReader(index_path.open()))
    summaries = {(r["method"], r["seed"]): Path(r["run_dir"]) / "summary.json" for r in rows}
    stamps = {key: path.stat().st_mtime_ns for key, path in summaries.items()}
    # A run killed before it was indexed: its row is missing, its checkpoint is there.
    with index_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if (r["method"], r["seed"]) != ("hard", "1"))
    capsys.readouterr()
    assert main.main(args + small) == 0
    assert "3 already done" in capsys.readouterr().out
    again = list(csv.DictReader(index_path.open()))
    assert sorted((r["method"], r["seed"]) for r in again) == sorted(summaries), "one row per run, none twice"
    for key, path in summaries.items():
        changed = path.stat().st_mtime_ns != stamps[key]
        assert changed == (key == ("hard", "1")), f"only the unindexed run is redone, not {key}"
    assert main.main(args + small[:-1] + ["final_eval_episodes=3"]) == 2
    assert "was trained with final_eval_episodes=2" in capsys.readouterr().err


def test_unreached_runs_are_counted_at_the_budget():
    assert steps_to_threshold(np.array([10, 20, 30]), np.array([0.2, 0.95, 1.0]), 30) == (20.0, True)
    assert steps_to_threshold(np.array([10, 20]), np.array([0.2, 0.5]), 99) == (99.0, False)
    runs = [{"task": "T", "method": "ppo", "seed": k, "steps": np.array([50.0, 100.0]), "success": np.array([s, s]),
             "budget": 100.0, "steps_to": 50.0 if s else 100.0, "reached": bool(s), "heldout": None}
            for k, s in enumerate((0.0, 0.0, 1.0))]
    row = summarise(runs)[0]
    assert row["reached"] == 1 and row["runs"] == 3 and row["censored"] and row["median_censored"]
    assert row["median_steps"] == 100.0, "two of three never reached: the median is the budget"
    assert row["steps_interval"].kind == "min-max of 3 seeds"


def test_sweep_rejects_bad_settings_before_running(tmp_path, capsys):
    assert main.main(["sweep", "--name", "bad", "--logdir", str(tmp_path), "--methods", "magic"]) == 2
    assert "unknown method 'magic'" in capsys.readouterr().err
    assert main.main(["sweep", "--name", "bad", "--logdir", str(tmp_path), "--set", "num_envs=0"]) == 2
    assert not (tmp_path / "sweeps").exists()


def test_throughput_table(capsys):
    assert main.main(["bench", "--task", "SimpleDoorKey", "--num_envs", "4", "--num_steps", "16",
                      "--iterations", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = {}
    for part in ("env (random actions)", "teacher alone", "env + teacher", "collection", "update",
                 "train, teacher on, policy_lag 0", "train, teacher on, policy_lag 1", "train, teacher off"):
        line = next(line for line in out.splitlines() if line.startswith(f"| {part}"))
        cells = [cell.strip().replace(",", "") for cell in line.split("|")[2:5]]
        rows[part] = [float(cell) for cell in cells]
        assert rows[part][0] > 0
        assert rows[part][1] == pytest.approx(rows[part][0] / rows["env (random actions)"][0], abs=0.01)
    assert rows["env + teacher"][2] == 1.0, "the ceiling's ratio to itself"
    assert rows["env + teacher"][0] < rows["teacher alone"][0], "env + teacher costs more than the teacher alone"


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install -r requirements-ray.txt to test the Ray path)")
def test_sweep_on_a_local_ray_cluster(tmp_path):
    import ray
    try:
        code = main.main(["sweep", "--name", "ray", "--logdir", str(tmp_path), "--ray_address", "local",
                          "--teacher_episodes", "0"] + TINY[:TINY.index("--workers")] + ["--set", "num_envs=4",
                                                                                             "num_steps=32",
                                                                                             "eval_interval=1",
                                                                                             "num_eval=2",
                                                                                             "final_eval_episodes=2"])
    finally:
        ray.shutdown()
    assert code == 0
    index = list(csv.DictReader((tmp_path / "sweeps" / "ray" / "runs.csv").open()))
    assert len(index) == 4
    for row in index:  # each run folder was sent back from its Ray worker
        assert row["run_dir"].startswith(str(tmp_path))
        files = {p.name for p in __import__("pathlib").Path(row["run_dir"]).iterdir()}
        assert {"acmodel.pt", "config.json", "eval_curve.csv", "summary.json"} <= files


def test_llm_cost_counts_calls_then_replays_from_the_cache():
    from bench.llm_cost import format_rows, measure
    first, second = measure("SimpleDoorKey", latency=0.0, iterations=1)
    assert first["http_requests"] > 0 and first["cache_hits"] == 0
    assert second["http_requests"] == 0 and second["cache_hits"] == first["http_requests"]
    assert second["llm_seconds"] == 0 and first["env_steps"] == second["env_steps"] > 0
    assert "| same cache |" in format_rows("SimpleDoorKey", 0.0, [first, second])


def test_the_final_sweep_file_fixes_budgets_and_one_evaluation_interval(tmp_path, capsys):
    from bench.sweep_plan import load_plan_file, make_specs
    name, plan = load_plan_file(str(Path(__file__).resolve().parents[1] / "configs" / "sweeps" / "final.yaml"))
    specs = {(s.task, s.method, s.seed): dict(s.overrides) for s in make_specs(plan, None)}
    assert name == "final" and len(plan.seeds) >= 5
    for task, budget in plan.budgets.items():
        for method in plan.methods:
            values = specs[(task, method, plan.seeds[0])]
            assert values["total_steps"] == (5 * budget if method in ("ppo", "sb3_ppo") else budget)
            steps_per_iteration = 8 * 128 if method == "sb3_ppo" else 16 * 64
            assert values["eval_interval"] * steps_per_iteration == plan.eval_every_steps == 2048
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: {SimpleDoorKey: {budget: 1000}}\nmethods: [hard]\nseeds: [0]\neval_every_steps: 1000\n")
    assert main.main(["sweep", "--config", str(bad), "--logdir", str(tmp_path)]) == 2
    assert "not a multiple of SimpleDoorKey/hard's 1024 env steps" in capsys.readouterr().err
    bad.write_text("tasks: {SimpleDoorKey: {budget: 1000}}\nmethods: [hard]\nseeds: [0]\nbudget_rule: 5\n")
    assert main.main(["sweep", "--config", str(bad), "--logdir", str(tmp_path)]) == 2
    assert "unknown keys: budget_rule" in capsys.readouterr().err
    assert main.main(["sweep", "--config", str(bad), "--total_steps", "5", "--logdir", str(tmp_path)]) == 2
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize("text, message", [
    ("tasks: {SimpleDoorKey: {budget: lots}}\nmethods: [hard]\nseeds: [0]\n", "the budget of SimpleDoorKey must be"),
    ("tasks: {SimpleDoorKey: {budget: 1024}}\nmethods: [hard]\nseeds: [-1]\n", "a seed must be a whole number >= 0"),
    ("tasks: {SimpleDoorKey: {budget: 1024}}\nmethods: [hard]\nseeds: [0]\nbaseline_factor: 0\n", "baseline_factor"),
    ("tasks: [SimpleDoorKey]\nmethods: [hard]\nseeds: [0]\n", "'tasks' must map each task"),
    ("tasks: {SimpleDoorKey: {budget: 1024}}\nmethods: [magic]\nseeds: [0]\n", "unknown method 'magic'"),
    *[(f"tasks: {{SimpleDoorKey: {{budget: 1024}}}}\nmethods: [hard]\nseeds: [0]\ncells: [{cell}]\n", message)
      for cell, message in [
          ("{method: hard, tasks: [SimpleDoorKey]}", "would be run twice"),
          ("{method: ppo_long, tasks: [TwoDoor]}", "names task(s) without a budget: TwoDoor"),
          ("{method: ppo_long, tasks: [SimpleDoorKey], budget: 5}", "a cell has unknown keys: budget"),
          ("{method: ppo_long, tasks: [SimpleDoorKey], budget_factor: 0}", "must be a positive number"),
          ("{method: magic, tasks: [SimpleDoorKey]}", "unknown method 'magic'")]],
])
def test_a_bad_sweep_file_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    assert main.main(["sweep", "--config", str(path), "--logdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("target", ["group", "sweep process only", "SIGTERM to the sweep process"])
def test_ctrl_c_stops_a_sweep_promptly_and_keeps_the_checkpoints(tmp_path, target):
    import os
    import signal
    import subprocess
    import sys
    import time
    import torch
    args = [sys.executable, str(Path(main.__file__)), "sweep", "--name", "c", "--logdir", str(tmp_path),
            "--tasks", "SimpleDoorKey", "--methods", "hard", "--seeds", "0", "1", "2", "--total_steps", "200000",
            "--workers", "2", "--teacher_episodes", "0", "--set", "num_envs=4", "num_steps=32", "eval_interval=1",
            "num_eval=2", "final_eval_episodes=2"]
    # A session of its own; SIGINT restored to its default (a test runner's children may inherit "ignore").
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs = tmp_path / "ppo" / "simpledoorkey" / "c" / "hard"
    curves = [runs / f"seed{k}" / "eval_curve.csv" for k in (0, 1)]
    try:
        def both_training():
            return all(p.exists() and len(p.read_text().splitlines()) > 2 for p in curves)

        deadline = time.time() + 240  # generous: a loaded machine starts spawned workers slowly
        while time.time() < deadline and not both_training():
            time.sleep(0.2)
        assert process.poll() is None, process.communicate()
        assert both_training(), "both runs should be past their first evaluations before Ctrl-C"
        if target == "group":
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        elif target == "sweep process only":
            os.kill(process.pid, signal.SIGINT)
        else:  # kill PID, or a batch scheduler's time limit; a background sweep ignores SIGINT
            os.kill(process.pid, signal.SIGTERM)
        stopped = time.time()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert time.time() - stopped < 30, "a sweep stops after the runs' current env step, not at their end"
    assert process.returncode == (143 if target.startswith("SIGTERM") else 130), err
    assert "interrupted" in err and "run the same command again" in err
    assert "stopped SimpleDoorKey/hard/seed0" in out and "stopped SimpleDoorKey/hard/seed1" in out, (out, err)
    assert not (runs / "seed2").exists(), "no run starts after Ctrl-C"
    assert len((tmp_path / "sweeps" / "c" / "runs.csv").read_text().splitlines()) == 1, "nothing indexed as done"
    for k in (0, 1):
        meta = torch.load(runs / f"seed{k}" / "acmodel.pt", weights_only=True)["meta"]
        assert 1 <= meta["iteration"] < 200000 // 128


def _fake_sweep(logdir: Path, name: str, method: str, reached_at: list, successes: list, budget: int = 1000) -> None:
    """A sweep index with runs whose curves reach 1.0 at ``reached_at`` (None: never) and held-out successes."""
    index = logdir / "sweeps" / name / "runs.csv"
    index.parent.mkdir(parents=True)
    with index.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "seed", "run_dir", "status", "env_steps", "commit"])
        for seed, (at, wins) in enumerate(zip(reached_at, successes)):
            run = logdir / name / f"seed{seed}"
            run.mkdir(parents=True)
            steps = range(100, budget + 1, 100)
            (run / "eval_curve.csv").write_text("env_steps,success_rate\n" + "".join(
                f"{x},{1.0 if at is not None and x >= at else 0.0}\n" for x in steps))
            (run / "summary.json").write_text(json.dumps({"final_eval": {
                "episodes": 200, "successes": wins, "success_rate": wins / 200}}))
            writer.writerow(["T", method, seed, str(run), "done", budget, f"c{name}"])


def test_report_compares_sweeps_run_by_run(tmp_path, capsys):
    _fake_sweep(tmp_path, "base", "hard", [200, 200, 300, 200, 200], [199, 200, 198, 200, 199])
    _fake_sweep(tmp_path, "variant", "hard", [500, 600, None, 500, 700], [150, 160, 0, 170, 180])
    out = tmp_path / "cmp"
    assert main.main(["report", "--logdir", str(tmp_path), "--compare", "base", "variant", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [(r["sweep"], r["commits"], r["reached"]) for r in rows] == [("base", "cbase", "5"), ("variant", "cvariant", "4")]
    assert rows[1]["steps_to_0.9"] == "0.5k 0.6k >=1.0k 0.5k 0.7k", "the run that never reached counts as its budget"
    assert rows[1]["heldout_successes"] == "150 160 0 170 180"
    assert rows[0]["steps_p_vs_first"] == "" and float(rows[1]["steps_p_vs_first"]) < 0.05
    assert float(rows[1]["heldout_p_vs_first"]) < 0.05
    assert "| T | hard | variant (cvariant) | 4/5 |" in (out / "compare.md").read_text()
    assert rows[1]["identical_to_first"] == "0/5"
    _fake_sweep(tmp_path, "rerun", "hard", [200, 200, 300, 200, 200], [199, 200, 198, 200, 198])
    assert main.main(["report", "--logdir", str(tmp_path), "--compare", "base", "rerun", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert rows[1]["identical_to_first"] == "4/5", "the same curves; one held-out result differs"
    assert main.main(["report", "--logdir", str(tmp_path), "--compare", "base", "missing"]) == 2
    assert "no sweep index" in capsys.readouterr().err
