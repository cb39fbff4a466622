"""Experiment sweep: tasks x methods x seeds under an env-step budget, run in parallel.

    python main.py sweep --config configs/sweeps/final.yaml --workers 2      # the fixed plan of a sweep
    python main.py sweep --tasks SimpleDoorKey TwoDoor --methods ppo hard soft oracle --seeds 0 1 2 \\
        --total_steps 100000 --name paper --workers 2

Each run trains exactly as ``main.py train`` does (``sb3_ppo``: Stable-Baselines3, see
:mod:`bench.sb3_ppo`), into ``<logdir>/ppo/<task>/<name>/<method>/seed<k>/`` (checkpoint, config.json,
TensorBoard events, ``eval_curve.csv`` with env steps, success rate and return, ``summary.json`` with the
held-out final evaluation). The sweep also measures each teacher alone, per seed, on the same held-out
layouts (``teacher_heldout.csv``, with the commit it ran at) and keeps an index of all runs
(``<logdir>/sweeps/<name>/runs.csv``) that ``main.py report`` reads. Runs already finished are skipped, and
runs interrupted with a checkpoint resume from it, so an interrupted sweep continues where it stopped; a
finished run whose settings differ from what the sweep now asks is refused rather than mixed in.

A sweep file (``--config``) fixes the budget rule (a budget per task for the teacher-guided methods, the
baselines get a multiple of it), one evaluation interval in env steps for every run, the methods and the
seeds, before anything runs (see ``configs/sweeps/final.yaml``).

Runs go to local processes by default (``--workers``, one torch thread each). With ``--ray_address``
(``auto`` or ``host:port``) they run as Ray tasks on a cluster instead; each task trains in a scratch
folder on its node and sends the run folder back, so no shared file system is needed. Ray is optional:
``pip install -r requirements-ray.txt``.

This module is the command and the index; :mod:`bench.sweep_plan` says what runs, :mod:`bench.sweep_runs`
how a run executes.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from bench.sweep_plan import (BASELINES, METHODS, RunSpec, SweepPlan, load_plan_file, make_specs, method_settings,
                              parse_settings, run_values, sweep_dir, task_name, task_root)
from bench.sweep_runs import run_local, run_ray
from utils.process import sigterm_as_ctrl_c

RUN_FIELDS = ("task", "method", "seed", "run_dir", "status", "env_steps", "final_success_rate",
              "steps_to_threshold", "env_steps_per_second", "seconds", "commit")
TEACHER_FIELDS = ("task", "method", "seed", "teacher", "planner", "skills", "hard_sampling", "episodes", "successes",
                  "success_rate", "interval", "low", "high", "mean_return", "mean_length", "env_seeds", "commit")


def teacher_methods(methods) -> list[str]:
    """The methods of ``methods`` that have a teacher to measure alone."""
    return [m for m in methods if m not in BASELINES]


def measure_teachers(plan: SweepPlan, logdir: str, name: str, llm_url: str | None) -> Path:
    """Each teacher alone on the held-out layouts, per task, teacher method and seed (as the plan-sampling
    seed): ``plan.teacher_episodes`` episodes on env seeds 1,000,000 + k, the layouts of the students' final
    evaluation. Rows already in ``teacher_heldout.csv`` are kept, missing ones appended."""
    from algos.evaluate import TeacherPolicy, heldout_evaluation
    from planners.factory import build_teacher
    from utils.config import build_config
    path = sweep_dir(logdir, name) / "teacher_heldout.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if path.exists():
        rows = list(csv.DictReader(path.open()))
        if rows and tuple(rows[0]) != TEACHER_FIELDS:
            raise ValueError(f"{path} has other columns than this version writes: move it away and rerun")
        done = {(r["task"], r["method"], int(r["seed"]), int(r["episodes"])) for r in rows}
    commit = git_commit()
    new_file = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, TEACHER_FIELDS)
        if new_file:
            writer.writeheader()
        for task, method, seeds, _ in plan.groups():
            if method in BASELINES:
                continue
            config = build_config(task, run_values(plan, method, llm_url))
            for seed in seeds:
                if (task, method, seed, plan.teacher_episodes) in done:
                    continue
                teacher = build_teacher(config, plan.teacher_episodes, seed)
                policy = TeacherPolicy(teacher, config.eval.eval_deterministic, seed)
                try:
                    summary = heldout_evaluation(task, policy, plan.teacher_episodes,
                                                 deterministic=config.eval.eval_deterministic)
                finally:
                    teacher.close()
                interval = summary["interval"]
                writer.writerow({"task": task, "method": method, "seed": seed, "teacher": teacher.mode,
                                 "planner": config.teacher.planner, "skills": config.teacher.skills,
                                 "hard_sampling": config.teacher.hard_sampling if teacher.mode == "hard" else "",
                                 "episodes": summary["episodes"], "successes": summary["successes"],
                                 "success_rate": f"{summary['success_rate']:.4f}", "interval": interval["kind"],
                                 "low": f"{interval['low']:.4f}", "high": f"{interval['high']:.4f}",
                                 "mean_return": f"{summary['mean_return']:.4f}",
                                 "mean_length": f"{summary['mean_length']:.2f}", "env_seeds": summary["env_seeds"],
                                 "commit": commit})
                handle.flush()
    return path


def git_commit() -> str:
    """The project's git commit (``-dirty`` when files differ from it), or ``unknown`` outside git."""
    import subprocess
    project = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=project, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="sweep file fixing tasks, budgets (teacher-guided budget per task, baselines x a "
                             "factor), evaluation interval, methods and seeds, e.g. configs/sweeps/final.yaml; "
                             "--tasks/--methods/--seeds then select a part of it")
    parser.add_argument("--tasks", nargs="+", default=None, help="tasks to run (default: SimpleDoorKey)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"methods (default: ppo hard soft oracle): {', '.join(METHODS)} (llm, gemma_hard and "
                             f"gemma_soft need --llm_url; sb3_ppo needs requirements-sb3.txt); with --config, a "
                             f"method of the file's cells keeps its cells")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="training seeds (default: 0 1 2)")
    parser.add_argument("--total_steps", type=int, default=None,
                        help="env-step budget of every run (default 100000; not with --config)")
    parser.add_argument("--name", default=None, help="sweep name: folders <logdir>/ppo/<task>/<name>/... "
                                                     "(default: the sweep file's name, else 'sweep')")
    parser.add_argument("--logdir", default="log", help="root of all run folders")
    parser.add_argument("--workers", type=int, default=2, help="local processes running at once")
    parser.add_argument("--ray_address", default=None,
                        help="run on Ray instead: 'auto' (a running cluster), 'host:port', or 'local'")
    parser.add_argument("--teacher_episodes", type=int, default=None,
                        help="episodes on the held-out layouts to measure each teacher alone, per seed "
                             "(default 200; 0 = skip)")
    parser.add_argument("--teachers_only", action="store_true",
                        help="only measure the teachers alone (teacher_heldout.csv), train nothing")
    parser.add_argument("--llm_url", default=None,
                        help="server for the live-LLM methods (llm, gemma_hard, gemma_soft)")
    parser.add_argument("--dry_run", action="store_true",
                        help="print every run the sweep would start, with its budget (those the index lists "
                             "as done marked so), what is left and a rough time for it, and stop: nothing is "
                             "trained or written")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra settings for every run, e.g. --set eval_interval=2 num_eval=64")


def plan_from_args(args: argparse.Namespace) -> tuple[str, SweepPlan]:
    """The sweep's name and plan: the sweep file if given, narrowed or completed by the flags."""
    extra = parse_settings(args.set)
    if args.config:
        if args.total_steps is not None:
            raise ValueError("--total_steps cannot be combined with --config: the file fixes the budgets")
        name, plan = load_plan_file(args.config)
        if args.tasks:
            args.tasks = [task_name(t) for t in args.tasks]
            missing = [t for t in args.tasks if t not in plan.budgets]
            if missing:
                raise ValueError(f"task(s) {', '.join(missing)} have no budget in {args.config}")
        plan.narrow(args.tasks or None, args.methods or None, args.seeds)
        plan.settings.update(extra)
    else:
        name = None
        total = 100_000 if args.total_steps is None else args.total_steps
        tasks = [task_name(t) for t in args.tasks or ["SimpleDoorKey"]]
        plan = SweepPlan(tasks=list(tasks), methods=list(args.methods or ["ppo", "hard", "soft", "oracle"]),
                         seeds=list(args.seeds if args.seeds is not None else [0, 1, 2]),
                         budgets={t: total for t in tasks}, settings=extra)
    if args.teacher_episodes is not None:
        plan.teacher_episodes = args.teacher_episodes
    if min(plan.budgets.values()) <= 0 or args.workers <= 0 or plan.teacher_episodes < 0:
        raise ValueError("budgets (--total_steps) and --workers must be positive, --teacher_episodes >= 0")
    for _, method, _, _ in plan.groups():
        method_settings(method)  # unknown methods fail here
    return args.name or name or "sweep", plan


def saved_plan(args: argparse.Namespace, plan: SweepPlan) -> SweepPlan:
    """The plan sweep.json keeps: with --config the whole sweep file (with this invocation's --set and
    --teacher_episodes), not the part that --tasks/--methods/--seeds ran, so the file describes the sweep
    whichever part ran last; without --config the plan itself."""
    if not args.config:
        return plan
    _, whole = load_plan_file(args.config)
    whole.settings = dict(plan.settings)  # the file's settings and this invocation's --set
    whole.teacher_episodes = plan.teacher_episodes
    return whole


def plan_record(args: argparse.Namespace, plan: SweepPlan, commit: str) -> dict:
    """What this invocation ran the sweep file with, for the report's deviations: the file's sha256, the
    settings added with --set, a --teacher_episodes override, and methods the file does not name."""
    import hashlib
    if not args.config:
        return {}
    _, registered = load_plan_file(args.config)
    named = set(registered.methods) | {c.method for c in registered.cells}
    return {"config_file": args.config, "config_sha256": hashlib.sha256(Path(args.config).read_bytes()).hexdigest(),
            "set": list(args.set), "teacher_episodes": args.teacher_episodes,
            "extra_methods": sorted({m for _, m, _, _ in plan.groups()} - named), "commit": commit}


def finished_runs(index: Path) -> dict:
    """(task, method, seed) -> run folder of the runs the index lists as done."""
    return {(r["task"], r["method"], int(r["seed"])): Path(r["run_dir"]) for r in index_rows(index)}


def index_rows(index: Path) -> list[dict]:
    """The rows of a sweep's runs.csv (the finished runs), [] when there is none."""
    return list(csv.DictReader(index.open())) if index.exists() else []


def hours_left(todo: list[RunSpec], rows: list[dict], workers: int) -> float | None:
    """A rough time for the runs ``todo`` at the speeds of the finished runs ``rows``, ``workers`` at a time.

    Each run is priced at the median env steps per second of the finished runs of its task and method, else
    of its method, else of its task, else of all; None when nothing has finished. The speeds were measured
    with the sweep's own concurrency, so the total is divided by the workers, not by the cores.
    """
    from statistics import median
    speeds: dict[tuple, list[float]] = {}
    for row in rows:
        try:
            speed = float(row["env_steps_per_second"])
        except (KeyError, TypeError, ValueError):
            continue
        if speed > 0:
            for key in ((row["task"], row["method"]), ("method", row["method"]), ("task", row["task"]), ()):
                speeds.setdefault(key, []).append(speed)
    if not speeds:
        return None
    seconds = 0.0
    for spec in todo:
        key = next(k for k in ((spec.task, spec.method), ("method", spec.method), ("task", spec.task), ())
                   if k in speeds)
        seconds += dict(spec.overrides)["total_steps"] / median(speeds[key])
    return seconds / max(workers, 1) / 3600


def print_dry_run(name: str, specs: list[RunSpec], index: Path, workers: int) -> None:
    """--dry_run: every run with its budget, those the index lists as done marked so, and what is left."""
    rows = index_rows(index)
    done = {(r["task"], r["method"], int(r["seed"])) for r in rows}
    print(f"sweep '{name}' would run {len(specs)} runs (nothing is trained or written):")
    for spec in specs:
        mark = " (done)" if (spec.task, spec.method, spec.seed) in done else ""
        print(f"  {spec.label}: {dict(spec.overrides)['total_steps']:,} env steps{mark}")
    if not rows:
        return
    todo = [s for s in specs if (s.task, s.method, s.seed) not in done]
    steps = sum(dict(s.overrides)["total_steps"] for s in todo)
    hours = hours_left(todo, rows, workers)
    took = f"{hours:.1f} h" if hours and hours >= 1 else f"{(hours or 0) * 60:.0f} min"
    left = f"; at the finished runs' speeds, {workers} at a time, about {took}" if todo and hours else ""
    cut = ("a run cut mid-way resumes from its checkpoint, so somewhat less; an sb3_ppo run starts over"
           if any(s.method == "sb3_ppo" for s in todo) else
           "a run cut mid-way resumes from its checkpoint, so somewhat less")
    print(f"left: {len(todo)} of {len(specs)} runs, {steps:,} env steps{left} ({cut})")


def check_unchanged(spec: RunSpec, run_dir: Path) -> None:
    """Refuse to continue a sweep whose finished run ``spec`` was trained with other settings."""
    path = run_dir / "config.json"
    if not path.exists():
        return
    from utils.config import RunConfig
    saved = RunConfig.from_json(json.loads(path.read_text())).flat()
    for key, value in spec.overrides:
        if key in saved and saved[key] != value:
            raise ValueError(f"finished run {spec.label} was trained with {key}={saved[key]!r}, the sweep now asks "
                             f"{value!r}: choose another --name (or remove that run's row from runs.csv)")


def main(args: argparse.Namespace) -> int:
    from utils.config import build_config
    from utils.run_folder import check_writable, inside
    name, plan = plan_from_args(args)
    specs = [] if args.teachers_only else make_specs(plan, args.llm_url)
    if args.dry_run:
        print_dry_run(name, specs, sweep_dir(args.logdir, name) / "runs.csv", args.workers)
        return 0
    for spec in specs:  # refuse bad settings and folders outside <logdir>/ppo/<task>/ before starting anything
        build_config(spec.task, dict(spec.overrides))
        inside(task_root(args.logdir, spec.task), f"{name}/{spec.method}/seed{spec.seed}", "--name")
    check_writable(Path(args.logdir), "--logdir")
    index_dir = sweep_dir(args.logdir, name)
    index = index_dir / "runs.csv"
    finished = finished_runs(index)
    for spec in specs:
        if (spec.task, spec.method, spec.seed) in finished:
            check_unchanged(spec, finished[(spec.task, spec.method, spec.seed)])
    index_dir.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    saved = json.loads((index_dir / "sweep.json").read_text()) if (index_dir / "sweep.json").exists() else {}
    earlier, history = saved.get("commits", []), saved.get("plan_history", [])
    record = plan_record(args, plan, commit)
    if record and not any({**r, "commit": ""} == {**record, "commit": ""} for r in history):
        history = history + [record]  # each distinct way the sweep file was run, first seen at that commit
    (index_dir / "sweep.json").write_text(json.dumps(
        {**saved_plan(args, plan).to_json(), "config_file": args.config, "commit": commit,
         "commits": earlier + [commit] if commit not in earlier else earlier,  # every commit that ran a part
         "plan_history": history, "ray_address": args.ray_address, "machine": _machine()}, indent=2))
    todo = [s for s in specs if (s.task, s.method, s.seed) not in finished]
    print(f"sweep '{name}': {len(specs)} runs, {len(specs) - len(todo)} already done, index {index}")
    if not index.exists():
        with index.open("w", newline="") as handle:
            csv.writer(handle).writerow(RUN_FIELDS)
    failures = []

    def on_done(spec: RunSpec, future) -> None:
        try:
            row = future.result()
        except Exception as err:  # one failed run must not stop the others
            failures.append(spec.label)
            print(f"  failed {spec.label}: {type(err).__name__}: {err}")
            return
        except KeyboardInterrupt:  # raised in the run's process: a second Ctrl-C aborted it before it saved
            print(f"  aborted {spec.label}: it resumes from its last periodic checkpoint")
            return
        if row["status"] != "done":  # not indexed: the next sweep starts it, or resumes it from its checkpoint
            if row["status"] == "interrupted":
                kept = ("an sb3_ppo run cannot resume, the next sweep starts it over" if spec.method == "sb3_ppo"
                        else f"its checkpoint is saved in {row['run_dir']}")
                print(f"  stopped {spec.label}: {kept}")
            return
        row["commit"] = commit  # a sweep may span several sessions (and commits)
        with index.open("a", newline="") as handle:
            csv.DictWriter(handle, RUN_FIELDS, extrasaction="ignore").writerow(row)
        print(f"  done {spec.label}: final success {row['final_success_rate']}, "
              f"steps to 0.9 {row['steps_to_threshold']}, {row['env_steps_per_second']} steps/s")

    with sigterm_as_ctrl_c() as terminated:
        try:
            if todo and args.ray_address:
                run_ray(todo, args.logdir, name, args.ray_address, on_done)
            elif todo:
                run_local(todo, args.logdir, name, args.workers, on_done)
            if plan.teacher_episodes and teacher_methods(m for _, m, _, _ in plan.groups()):
                print(f"teacher alone: {measure_teachers(plan, args.logdir, name, args.llm_url)}")
        except KeyboardInterrupt:
            print(f"sweep '{name}' interrupted: finished runs are in {index}; run the same command again to "
                  "continue (interrupted runs resume from their checkpoints)", file=sys.stderr)
            return 143 if terminated else 130
    if failures:
        print(f"{len(failures)} runs failed: {', '.join(failures)}")
        return 1
    return 0


def _machine() -> dict:
    import platform
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
