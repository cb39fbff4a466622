"""main.py report on small synthetic sweeps: an exploratory and a confirmatory sweep labelled as such, their
runs pooled (disjoint seeds only), the long baselines' measured ratio, the commits per seed, and the sweep
file's deviations."""
import csv
import json
import re
from pathlib import Path

import main
from bench.report import _plan_lines, _run_commits, seeds_text
from bench.sweep import TEACHER_FIELDS
from bench.sweep_plan import Cell, SweepPlan
from utils.intervals import wilson_interval

TASK, GUIDED = "SimpleDoorKey", 10_240


def fake_sweep(logdir: Path, name: str, cells: dict, plan: SweepPlan, commit: str = "c1") -> None:
    """A sweep index whose runs' curves jump from 0 to 1.0 at ``reached_at`` (None: never within the budget);
    ``cells``: method -> {seed: (reached_at, held-out successes of 200)}; teachers alone at 100/200."""
    folder = logdir / "sweeps" / name
    folder.mkdir(parents=True)
    factors = {c.method: c.budget_factor for c in plan.cells}
    with (folder / "runs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "seed", "run_dir", "status", "env_steps", "commit"])
        for method, seeds in cells.items():
            budget = plan.budget(TASK, method, factors.get(method))
            for seed, (at, wins) in seeds.items():
                run = logdir / "runs" / name / method / f"seed{seed}"
                run.mkdir(parents=True)
                (run / "eval_curve.csv").write_text("env_steps,success_rate\n" + "".join(
                    f"{x},{1.0 if at is not None and x >= at else 0.0}\n" for x in range(2048, budget + 1, 2048)))
                (run / "summary.json").write_text(json.dumps({"final_eval": {
                    "episodes": 200, "successes": wins, "success_rate": wins / 200,
                    "interval": wilson_interval(wins, 200).to_json()}}))
                writer.writerow([TASK, method, seed, str(run), "done", budget, commit])
    with (folder / "teacher_heldout.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, TEACHER_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for seed in cells.get("hard", {}):
            writer.writerow({"task": TASK, "method": "hard", "seed": seed, "episodes": 200, "successes": 100,
                             "success_rate": "0.5000", "high": "0.5700", "commit": commit})
    (folder / "sweep.json").write_text(json.dumps({**plan.to_json(), "machine": {"cpus": 2}}))


def plan(seeds: list, cells: tuple = ()) -> SweepPlan:
    return SweepPlan(tasks=[TASK], methods=["ppo", "hard"], seeds=seeds, budgets={TASK: GUIDED}, baseline_factor=5,
                     eval_every_steps=2048, cells=list(cells))


def report(logdir: Path, *args: str) -> int:
    return main.main(["report", "--logdir", str(logdir), *args])


def test_exploratory_confirmatory_and_pooled_views(tmp_path, capsys):
    fake_sweep(tmp_path, "final", {"ppo": {s: (None, 1) for s in range(5)},
                                   "hard": {s: (4096 + 2048 * (s % 2), 198) for s in range(5)}}, plan([0, 1, 2, 3, 4]))
    long = Cell("ppo_long", (TASK,), (5, 6, 7), 20.0)
    fake_sweep(tmp_path, "confirm", {"ppo": {s: (None, 2) for s in range(5, 10)},
                                     "hard": {s: (6144, 199) for s in range(5, 10)},
                                     "ppo_long": {5: (122_880, 190), 6: (143_360, 195), 7: (None, 3)}},
               plan([5, 6, 7, 8, 9], (long,)), commit="c2")
    exploratory, confirmatory, pooled = (tmp_path / name for name in ("final_out", "confirm_out", "pooled_out"))
    assert report(tmp_path, "--name", "final", "--out", str(exploratory), "--label", "exploratory") == 0
    text = (exploratory / "results.md").read_text()
    assert text.startswith("# Sweep 'final': exploratory\n")
    assert "## The paper's claims: exploratory, seeds 0-4\n" in text
    assert "Claim (a) against the other baselines" not in text, "no ppo_task or ppo_long here"
    assert json.loads((exploratory / "sweep.json").read_text())["seeds"] == [0, 1, 2, 3, 4], "the plan is kept"

    assert report(tmp_path, "--name", "confirm", "--out", str(confirmatory), "--label", "confirmatory") == 0
    text = (confirmatory / "results.md").read_text()
    assert "## The paper's claims: confirmatory, seeds 5-9\n" in text
    paper = text.split("## The paper's claims")[1].split("## Claim (a) against the other baselines")[0]
    assert "ppo_long" not in paper, "the paper's table keeps the exploratory sweep's rows"
    other = text.split("## Claim (a) against the other baselines")[1]
    (row,) = [line for line in other.splitlines() if line.startswith(f"| {TASK} | (a) fewer env steps than PPO | "
                                                                    "ppo_long / hard |")]
    assert "| 23.33x |" in row, "143.4k / 6.1k: the long baseline's median reached 0.9, a measured ratio"
    assert "| 3 vs 5 |" in row
    assert re.search(r"\| ppo_long \| 2/3 \| 143\.4k ", text), "its own row in the task table"

    assert report(tmp_path, "--name", "confirm", "--pool", str(exploratory), "--out", str(pooled),
                  "--label", "pooled, not confirmatory") == 0
    text = (pooled / "results.md").read_text()
    assert f"Pooled: the sweep's own runs (seeds 5-9) with every run of {exploratory} (seeds 0-4)" in text
    assert "## The paper's claims: pooled, not confirmatory, seeds 0-9\n" in text
    assert re.search(r"\| hard \| 10/10 \|", text) and "| 10 vs 10 |" in text
    assert "c1 (SimpleDoorKey hard/ppo)" not in text and "c2 (SimpleDoorKey" in text
    aggregate = text.split("## Across tasks")[1].split("##")[0]
    assert re.search(r"\| hard \| 1 \| 10 \| .* \(95% stratified bootstrap \(1 tasks, 10 runs\)\) \|", aggregate), \
        "10 runs per task: the bootstrap minimum is met"
    assert "| ppo_long | 1 | 3 | " in aggregate and "none: a stratified bootstrap needs >= 10 runs" in aggregate

    capsys.readouterr()
    assert report(tmp_path, "--name", "final", "--pool", str(exploratory), "--out", str(tmp_path / "x")) == 2
    assert "pooled sweeps need disjoint seeds" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_commit_line_names_the_seeds_of_a_cell_split_over_commits():
    runs = [{"task": "A", "method": m, "seed": s, "commit": "new" if (m, s) == ("ppo", 4) else "old"}
            for m in ("ppo", "hard") for s in range(5)]
    runs += [{"task": "B", "method": "hard", "seed": s, "commit": "old"} for s in range(5)]
    assert _run_commits(runs, {}) == "new (A ppo seed 4); old (A hard + ppo seeds 0-3, B)"
    assert seeds_text([0, 1, 2, 3, 5, 7, 8]) == "seeds 0-3, 5, 7-8" and seeds_text([4]) == "seed 4"


def test_deviations_from_the_sweep_file_are_listed(tmp_path):
    first = {"config_file": "c.yaml", "config_sha256": "a" * 64, "set": [], "teacher_episodes": None,
             "extra_methods": [], "commit": "c1"}
    (line, _) = _plan_lines({"plan_history": [first]})
    assert "sha256 aaaaaaaaaaaa" in line and "No deviation" in line
    later = {**first, "config_sha256": "b" * 64, "set": ["lr=0.001"], "commit": "c2"}
    (line, _) = _plan_lines({"plan_history": [first, later]})
    assert "Deviations from it: the sweep file as c.yaml, sha256 bbbbbbbbbbbb (first at c2); --set lr=0.001" in line
    assert _plan_lines({}) == []


def test_the_sweep_records_each_way_its_file_was_run(tmp_path):
    """--teachers_only with 0 teacher episodes trains and measures nothing, but records the plan: a --set
    and a changed file are deviations that sweep.json keeps for the report."""
    path = tmp_path / "plan.yaml"
    text = f"name: p\ntasks: {{{TASK}: {{budget: 2048}}}}\nmethods: [hard]\nseeds: [0]\n"
    path.write_text(text)
    base = ["sweep", "--config", str(path), "--logdir", str(tmp_path), "--teachers_only", "--teacher_episodes", "0"]
    assert main.main(base) == 0 and main.main(base) == 0
    history = json.loads((tmp_path / "sweeps" / "p" / "sweep.json").read_text())["plan_history"]
    assert len(history) == 1 and history[0]["teacher_episodes"] == 0, "the same way twice is one entry"
    assert main.main(base + ["--set", "num_eval=2"]) == 0
    path.write_text(text + "eval_every_steps: 2048\n")
    assert main.main(base) == 0
    history = json.loads((tmp_path / "sweeps" / "p" / "sweep.json").read_text())["plan_history"]
    assert [h["set"] for h in history] == [[], ["num_eval=2"], []]
    assert len({h["config_sha256"] for h in history}) == 2
    assert "Deviations from it:" in _plan_lines({"plan_history": history})[0]


def test_sweep_json_keeps_the_whole_sweep_file_whichever_part_ran_last(tmp_path):
    """A part run with --tasks/--methods/--seeds narrows what runs, not the plan sweep.json keeps (the report
    rebuilds an archived run's settings from it); --set still shows there."""
    path = tmp_path / "plan.yaml"
    path.write_text(f"name: p\ntasks: {{{TASK}: {{budget: 2048}}}}\nmethods: [hard, oracle]\nseeds: [0, 1]\n"
                    f"cells: [{{method: ppo_long, tasks: [{TASK}], seeds: [1], budget_factor: 20}}]\n")
    part = ["sweep", "--config", str(path), "--logdir", str(tmp_path), "--teachers_only", "--teacher_episodes", "0",
            "--methods", "hard", "--seeds", "0", "--set", "num_eval=2"]
    assert main.main(part) == 0
    saved = json.loads((tmp_path / "sweeps" / "p" / "sweep.json").read_text())
    assert saved["methods"] == ["hard", "oracle"] and saved["seeds"] == [0, 1]
    assert [c["method"] for c in saved["cells"]] == ["ppo_long"] and saved["settings"]["num_eval"] == 2


def test_cells_run_beside_the_grid_and_narrow_with_the_flags(tmp_path, capsys):
    path = tmp_path / "plan.yaml"
    path.write_text(f"tasks: {{{TASK}: {{budget: 2048}}, LavaDoorKey: {{budget: 4096}}}}\nbaseline_factor: 5\n"
                    "methods: [ppo, hard]\nseeds: [0, 1]\nmethod_settings: {ppo: &p {lr: 0.0003}, ppo_long: *p}\n"
                    f"cells: [{{method: ppo_long, tasks: [{TASK}], seeds: [1, 2], budget_factor: 20}}]\n")
    args = ["sweep", "--config", str(path), "--logdir", str(tmp_path), "--dry_run"]
    assert main.main(args) == 0
    out = capsys.readouterr().out
    assert "would run 10 runs" in out and f"{TASK}/ppo_long/seed2: 40,960 env steps" in out
    assert f"{TASK}/ppo/seed0: 10,240 env steps" in out and "LavaDoorKey/ppo_long" not in out
    assert main.main(args + ["--methods", "ppo_long", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "would run 1 runs" in out and f"{TASK}/ppo_long/seed1" in out
    assert main.main(args + ["--tasks", "LavaDoorKey", "--methods", "hard", "ppo_long"]) == 0
    assert "would run 2 runs" in capsys.readouterr().out, "ppo_long's task is not kept"
    assert not (tmp_path / "sweeps").exists(), "a dry run writes nothing"


def test_a_dry_run_marks_the_finished_runs_and_prices_the_rest_at_their_speeds(tmp_path, capsys):
    from bench.sweep import RUN_FIELDS
    path = tmp_path / "plan.yaml"
    path.write_text(f"name: p\ntasks: {{{TASK}: {{budget: 2048}}, LavaDoorKey: {{budget: 4096}}}}\n"
                    "baseline_factor: 5\nmethods: [ppo, hard]\nseeds: [0, 1]\n")
    index = tmp_path / "sweeps" / "p" / "runs.csv"
    index.parent.mkdir(parents=True)
    with index.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, RUN_FIELDS)
        writer.writeheader()
        writer.writerow({"task": TASK, "method": "ppo", "seed": 0, "run_dir": "x", "status": "done",
                         "env_steps": 10240, "env_steps_per_second": 1024.0})
        writer.writerow({"task": TASK, "method": "hard", "seed": 0, "run_dir": "y", "status": "done",
                         "env_steps": 2048, "env_steps_per_second": 256.0})
    before = index.read_text()
    assert main.main(["sweep", "--config", str(path), "--logdir", str(tmp_path), "--dry_run", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{TASK}/ppo/seed0: 10,240 env steps (done)" in out and f"{TASK}/ppo/seed1: 10,240 env steps\n" in out
    # left: ppo seed 1 here at its own cell's speed (10 s), hard seed 1 here (8 s), and on LavaDoorKey, where
    # nothing finished, each method at its speed elsewhere: 2 x 20,480 / 1024 + 2 x 4096 / 256 = 72 s; 90 s in all
    assert "left: 6 of 8 runs, 61,440 env steps; at the finished runs' speeds, 1 at a time, about 2 min" in out
    assert index.read_text() == before, "a dry run writes nothing"
    from bench.sweep import hours_left, index_rows
    from bench.sweep_plan import load_plan_file, make_specs
    specs = [s for s in make_specs(load_plan_file(str(path))[1], None) if s.seed == 1 or s.task != TASK]
    assert hours_left(specs, index_rows(index), workers=1) * 3600 == 90.0
    assert hours_left(specs, index_rows(index), workers=2) * 3600 == 45.0
    assert hours_left(specs, [], workers=1) is None


def test_a_dry_run_says_that_a_cut_sb3_run_starts_over(tmp_path, capsys):
    from bench.sweep import RUN_FIELDS, print_dry_run
    from bench.sweep_plan import make_specs
    index = tmp_path / "runs.csv"
    with index.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, RUN_FIELDS)
        writer.writeheader()
        writer.writerow({"task": TASK, "method": "ppo", "seed": 0, "run_dir": "x", "status": "done",
                         "env_steps": 2048, "env_steps_per_second": 1024.0})
    for methods, starts_over in ((["ppo"], False), (["ppo", "sb3_ppo"], True)):
        plan = SweepPlan(tasks=[TASK], methods=methods, seeds=[0, 1], budgets={TASK: 2048})
        print_dry_run("p", make_specs(plan, None), index, workers=1)
        last = capsys.readouterr().out.splitlines()[-1]
        assert "resumes from its checkpoint" in last and ("an sb3_ppo run starts over" in last) == starts_over, last


def test_a_report_folder_regenerates_itself_without_the_sweeps_folder(tmp_path):
    """The report keeps the sweep's sweep.json: with the log gone, --archive alone rebuilds the same report."""
    fake_sweep(tmp_path, "s", {"ppo": {s: (None, 1) for s in range(3)}, "hard": {s: (4096, 198) for s in range(3)}},
               plan([0, 1, 2]))
    first, again, empty = tmp_path / "first", tmp_path / "again", tmp_path / "empty"
    assert report(tmp_path, "--name", "s", "--out", str(first), "--label", "exploratory") == 0
    assert report(empty, "--name", "s", "--archive", str(first), "--out", str(again), "--label", "exploratory") == 0
    for name in ("results.md", "runs.csv", "curves.csv", "summary.csv", "teacher_heldout.csv", "sweep.json"):
        assert (again / name).read_text() == (first / name).read_text(), name


def test_the_teacher_ladder_orders_the_teachers_present_from_oracle_to_no_teacher(tmp_path):
    fake_sweep(tmp_path, "final", {"ppo": {s: (None, 1) for s in range(3)},
                                   "hard": {s: (4096, 198) for s in range(3)},
                                   "oracle": {s: (2048, 200) for s in range(3)}}, plan([0, 1, 2]))
    assert report(tmp_path, "--name", "final", "--out", str(tmp_path / "out")) == 0
    text = (tmp_path / "out" / "results.md").read_text()
    ladder = text.split("## The teacher ladder", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in ladder.splitlines() if line.startswith("| ") and "`" in line]
    assert [re.search(r"\(`(\w+)`\)", row).group(1) for row in rows] == ["oracle", "hard", "ppo"]
    hard = rows[1].split(" | ")
    assert hard[1] == "0.500 [0.500, 0.500]" and hard[2] == "3/3" and hard[3] == "4.1k"
    assert hard[4].startswith("0.990 [0.990, 0.990]")
    assert rows[2].split(" | ")[3] == f">={GUIDED * 5 / 1000:,.1f}k", "PPO never reached 0.9: its budget, marked"


def test_the_claims_beside_another_sweep_say_where_the_two_agree(tmp_path):
    """A confirmation beside its exploratory sweep: the step claim holds on both, the student-beats-teacher
    claim only on the exploratory seeds (its confirmation students end below their teacher), and the rest of
    the report is the same with or without --beside."""
    fake_sweep(tmp_path, "final", {"ppo": {s: (None, 1) for s in range(5)},
                                   "hard": {s: (4096, 190 + s) for s in range(5)}}, plan([0, 1, 2, 3, 4]))
    fake_sweep(tmp_path, "confirm", {"ppo": {s: (None, 2) for s in range(5, 10)},
                                     "hard": {s: (6144, 40 + s) for s in range(5, 10)}}, plan([5, 6, 7, 8, 9]))
    exploratory, alone, beside = (tmp_path / name for name in ("final_out", "alone", "beside"))
    assert report(tmp_path, "--name", "final", "--out", str(exploratory), "--label", "exploratory") == 0
    assert report(tmp_path, "--name", "confirm", "--out", str(alone), "--label", "confirmatory") == 0
    assert report(tmp_path, "--name", "confirm", "--out", str(beside), "--label", "confirmatory",
                  "--beside", str(exploratory), "--beside_label", "exploratory, seeds 0-4") == 0
    text = (beside / "results.md").read_text()
    own, section = text.split("## The claims beside exploratory, seeds 0-4\n")
    assert own == (alone / "results.md").read_text() + "\n", "--beside only adds its section"
    header = ("| task | claim | comparison | measure | confirmatory (seeds 5-9): measured | p (Holm) | "
              "exploratory, seeds 0-4: measured | p (Holm) | agreement |")
    assert header in section

    def row(task: str, comparison: str) -> list[str]:
        (line,) = [line for line in section.splitlines() if line.startswith(f"| {task} |")
                   and f"| {comparison} |" in line]
        return [cell.strip() for cell in line.strip("|").split("|")]

    steps = row(TASK, "ppo / hard")
    assert steps[4].startswith(">=") and steps[6].startswith(">="), "both ratios are floors: PPO never got there"
    assert steps[8] == "agree: holds on both"
    students = row(TASK, "hard student - hard teacher")
    assert students[4].startswith("-0.") and students[6].startswith("+0.")
    assert students[8] == "differ: holds on exploratory, seeds 0-4, not here"
    assert row("all tasks", "hard student - hard teacher")[8] == "differ: holds on exploratory, seeds 0-4, not here"
    assert "### The wrong-teacher control" not in section, "a table neither side has is left out"


def test_a_claim_holds_only_the_claimed_way_and_within_its_holm_alpha():
    from bench.beside import agreement, holds
    from bench.claims import Claim

    def claim(p_holm, favours, task=TASK):
        return Claim(task, "(a)", "ppo / hard", "m", "2x", "[1, 3]", "k", "t", p_holm, "5 vs 5", p_holm=p_holm,
                     favours=favours)
    assert holds(claim(0.01, True)) and not holds(claim(0.01, False)) and not holds(claim(0.051, True))
    assert holds(claim(0.05, None)), "rows over all tasks have no direction of their own"
    assert agreement(claim(0.2, True), claim(0.3, False), "x") == "agree: holds on neither"
    assert agreement(claim(0.01, True), claim(0.3, True), "x") == "differ: holds here, not on x"
    assert agreement(claim(0.01, True), claim(0.01, True, "A, B"), "x") == "agree: holds on both (tasks differ)"
    assert agreement(None, claim(0.01, True), "x") == "-"
