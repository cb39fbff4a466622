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
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

PAPER_TEACHER = {"planner": "recorded", "skills": "paper"}  # the published teacher's skills
SAFE_TEACHER = {"planner": "recorded", "skills": "safe"}
METHODS = {  # method -> the settings that define it (everything else comes from the configs and --set)
    "ppo": {"teacher": "none"},
    "sb3_ppo": {},  # Stable-Baselines3 PPO with RL-Zoo's MiniGrid settings (bench/sb3_ppo.py)
    "hard": {"teacher": "hard", **PAPER_TEACHER, "hard_sampling": "step"},
    "soft": {"teacher": "soft", **PAPER_TEACHER},
    "hard_commit": {"teacher": "hard", **PAPER_TEACHER, "hard_sampling": "commit"},
    "hard_safe": {"teacher": "hard", **SAFE_TEACHER, "hard_sampling": "commit"},
    "hard_safe_step": {"teacher": "hard", **SAFE_TEACHER, "hard_sampling": "step"},
    "soft_safe": {"teacher": "soft", **SAFE_TEACHER},
    "oracle": {"teacher": "hard", "planner": "oracle", "skills": "safe", "hard_sampling": "step"},
    "adversarial": {"teacher": "hard", "planner": "adversarial", "skills": "safe", "hard_sampling": "step"},
    "llm": {"teacher": "soft", "planner": "llm", "skills": "paper"},
}
METHOD_NOTES = {
    "ppo": "our PPO, no teacher",
    "sb3_ppo": "Stable-Baselines3 PPO, RL-Zoo MiniGrid settings, no teacher",
    "hard": "paper teacher (recorded Vicuna plans, paper skills), hard, a plan drawn every step",
    "soft": "paper teacher, soft (plans mixed by probability)",
    "hard_commit": "paper teacher, hard, a plan kept until the sentence changes or it stalls",
    "hard_safe": "safe teacher (recorded plans, safe skills), hard, commit",
    "hard_safe_step": "safe teacher, hard, a plan drawn every step",
    "soft_safe": "safe teacher, soft",
    "oracle": "scripted correct plans, safe skills (a control)",
    "adversarial": "scripted wrong plans, safe skills (a control)",
    "llm": "live LLM plans (needs --llm_url), paper skills, soft",
}
BASELINES = ("ppo", "sb3_ppo")  # methods without a teacher: their budget is the baseline budget
RUN_FIELDS = ("task", "method", "seed", "run_dir", "status", "env_steps", "final_success_rate",
              "steps_to_threshold", "env_steps_per_second", "seconds", "commit")
TEACHER_FIELDS = ("task", "method", "seed", "teacher", "planner", "skills", "hard_sampling", "episodes", "successes",
                  "success_rate", "interval", "low", "high", "mean_return", "mean_length", "env_seeds", "commit")


def method_settings(method: str) -> dict:
    """The run settings that define ``method``."""
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; choose from {', '.join(METHODS)}")
    if method == "sb3_ppo":
        from bench.sb3_ppo import RL_ZOO_SETTINGS
        return dict(RL_ZOO_SETTINGS)
    return dict(METHODS[method])


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep."""

    task: str
    method: str
    seed: int
    overrides: tuple  # ((key, value), ...) config values for this run

    @property
    def label(self) -> str:
        return f"{self.task}/{self.method}/seed{self.seed}"


def sweep_dir(logdir: str, name: str) -> Path:
    return Path(logdir) / "sweeps" / name


def task_root(logdir: str, task: str) -> Path:
    return Path(logdir) / "ppo" / task.lower()


def run_dir_for(logdir: str, name: str, spec: RunSpec) -> Path:
    return task_root(logdir, spec.task) / name / spec.method / f"seed{spec.seed}"


@dataclass
class SweepPlan:
    """What a sweep runs: tasks x methods x seeds, each run's budget, and settings shared by all runs.

    Budget rule: a run of a teacher-guided method gets its task's ``budgets`` entry; a baseline (no teacher:
    :data:`BASELINES`) gets ``baseline_factor`` times it. Evaluation rule: with ``eval_every_steps`` every
    run evaluates every that many env steps (it must be a multiple of each run's steps per iteration).
    """

    tasks: list
    methods: list
    seeds: list
    budgets: dict  # task -> env-step budget of the teacher-guided runs
    baseline_factor: float = 1.0
    eval_every_steps: int | None = None
    teacher_episodes: int = 200
    settings: dict = field(default_factory=dict)  # every run
    method_settings: dict = field(default_factory=dict)  # method -> settings of that method's runs

    def budget(self, task: str, method: str) -> int:
        base = self.budgets[task]
        return int(round(base * self.baseline_factor)) if method in BASELINES else int(base)


PLAN_KEYS = {"name", "tasks", "methods", "seeds", "baseline_factor", "eval_every_steps", "teacher_episodes",
             "settings", "method_settings"}


def load_plan_file(path: str) -> tuple[str | None, SweepPlan]:
    """(sweep name, plan) from a sweep YAML file (see ``configs/sweeps/final.yaml``)."""
    import yaml
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read sweep file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"sweep file {path} must be a mapping")
    unknown = sorted(set(data) - PLAN_KEYS)
    if unknown:
        raise ValueError(f"sweep file {path} has unknown keys: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(PLAN_KEYS))})")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks or \
            not all(isinstance(v, dict) and "budget" in v for v in tasks.values()):
        raise ValueError(f"sweep file {path}: 'tasks' must map each task to {{budget: ENV_STEPS}}")
    for key in ("methods", "seeds"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise ValueError(f"sweep file {path}: '{key}' must be a non-empty list")
    factor = data.get("baseline_factor", 1.0)
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0:
        raise ValueError(f"sweep file {path}: baseline_factor must be a positive number, got {factor!r}")
    for key in ("settings", "method_settings"):
        if not isinstance(data.get(key) or {}, dict):
            raise ValueError(f"sweep file {path}: '{key}' must be a mapping")
    every = data.get("eval_every_steps")
    plan = SweepPlan(tasks=[_task_name(t) for t in tasks], methods=list(data["methods"]),
                     seeds=[_whole(path, "a seed", seed, 0) for seed in data["seeds"]],
                     budgets={_task_name(t): _whole(path, f"the budget of {t}", v["budget"], 1)
                              for t, v in tasks.items()},
                     baseline_factor=float(factor),
                     eval_every_steps=None if every is None else _whole(path, "eval_every_steps", every, 1),
                     teacher_episodes=_whole(path, "teacher_episodes", data.get("teacher_episodes", 200), 0),
                     settings=dict(data.get("settings") or {}), method_settings=dict(data.get("method_settings") or {}))
    return data.get("name"), plan


def _task_name(name: str) -> str:
    """The registry's spelling of a task name (an unknown task is an UnknownTaskError)."""
    from envs import get_task
    return get_task(str(name)).name


def _whole(path: str, what: str, value, minimum: int) -> int:
    """``value`` if it is a whole number >= ``minimum``, else a one-line error naming the file."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"sweep file {path}: {what} must be a whole number >= {minimum}, got {value!r}")
    return value


def make_specs(plan: SweepPlan, llm_url: str | None) -> list[RunSpec]:
    """All runs of the sweep, with the settings each needs; bad settings are refused before any run starts."""
    from utils.config import build_config
    specs = []
    for task in plan.tasks:
        for method in plan.methods:
            values = {**plan.settings, **method_settings(method), **plan.method_settings.get(method, {}),
                      "total_steps": plan.budget(task, method)}
            if method == "llm":
                if not llm_url:
                    raise ValueError("method 'llm' needs --llm_url")
                values["llm_url"] = llm_url
            if method == "sb3_ppo":
                from bench.sb3_ppo import require
                require()
            if plan.eval_every_steps:
                config = build_config(task, values)
                per_iteration = config.env.num_envs * config.ppo.num_steps
                if plan.eval_every_steps % per_iteration:
                    raise ValueError(f"eval_every_steps {plan.eval_every_steps} is not a multiple of {task}/{method}'s "
                                     f"{per_iteration} env steps per iteration")
                values["eval_interval"] = plan.eval_every_steps // per_iteration
            for seed in plan.seeds:
                specs.append(RunSpec(task, method, seed, tuple(sorted(values.items()))))
    return specs


def train_one(spec: RunSpec, run_dir: str, torch_threads: int = 1, root: str | None = None) -> dict:
    """Train one run into ``run_dir`` (resuming it if a checkpoint is there); returns its index row.

    The run folder is locked while training (see utils.run_folder); ``root`` is the task folder above it.
    An ``sb3_ppo`` run cannot resume: an unfinished one starts over. Ctrl-C or SIGTERM stops the run after
    the current env step with a checkpoint saved, and the row's status is then ``interrupted``.
    """
    import torch
    torch.set_num_threads(torch_threads)
    from algos.rollout import StopFlag, TrainingInterrupted
    from algos.trainer import CHECKPOINT_NAME, train_run
    from planners.factory import training_teacher_factory
    from utils.config import build_config
    from utils.process import stop_on_signals
    from utils.run_folder import RunFolders
    config = build_config(spec.task, {**dict(spec.overrides), "torch_threads": torch_threads})
    start = time.perf_counter()
    run_dir = Path(run_dir)
    sb3 = spec.method == "sb3_ppo"
    if sb3:
        from bench.sb3_ppo import POLICY_NAME, train_sb3
    global _current_stop
    stop = _current_stop = StopFlag()
    interrupted = {"task": spec.task, "method": spec.method, "seed": spec.seed, "run_dir": str(run_dir),
                   "status": "interrupted"}
    if _sweep_cancelled is not None and _sweep_cancelled.is_set():  # queued before the sweep was stopped
        return {**interrupted, "status": "not started"}
    try:
        with stop_on_signals(stop), RunFolders(Path(root) if root else run_dir.parent, [run_dir],
                                               POLICY_NAME if sb3 else CHECKPOINT_NAME) as folders:
            (action,) = folders.plan("auto")
            with folders.start(run_dir, action) as replacement:
                if sb3:
                    result = train_sb3(config, spec.seed, run_dir, on_start=replacement.begin,
                                       on_save=replacement.saved, stop=stop)
                else:
                    with open(os.devnull, "w") as quiet:
                        result = train_run(config, spec.seed, run_dir, training_teacher_factory(config, spec.seed),
                                           stream=quiet, resume=action == "resume", stop=stop,
                                           on_start=replacement.begin, on_save=replacement.saved)
    except TrainingInterrupted:
        return interrupted
    return {"task": spec.task, "method": spec.method, "seed": spec.seed, "run_dir": str(run_dir), "status": "done",
            "env_steps": result.env_steps, "final_success_rate": result.final_success_rate,
            "steps_to_threshold": result.steps_to_threshold,
            "env_steps_per_second": round(result.env_steps_per_second, 1),
            "seconds": round(time.perf_counter() - start, 1)}


def _train_remote(spec: RunSpec) -> tuple[dict, bytes]:
    """Ray task body: train in a scratch folder on the worker, return the row and the folder as a tar."""
    with tempfile.TemporaryDirectory() as scratch:
        row = train_one(spec, scratch)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(scratch, arcname=".")
        return row, buffer.getvalue()


def _unpack(data: bytes, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(run_dir, filter="data")


_sweep_cancelled = None  # in a sweep process: the sweep's "stop now" event (set on Ctrl-C)
_current_stop = None  # in a sweep process: the StopFlag of the run in progress


def _init_worker(parent_pid: int, cancelled) -> None:
    """A sweep process: ends with the sweep, ignores Ctrl-C between runs (``train_one`` handles it during a
    run), and stops its run when the sweep sets ``cancelled`` (which covers a Ctrl-C sent to the sweep's
    process alone)."""
    global _sweep_cancelled
    from utils.process import die_with_parent
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _sweep_cancelled = cancelled

    def watch() -> None:
        cancelled.wait()
        if _current_stop is not None:
            _current_stop.request("SIGINT")

    threading.Thread(target=watch, daemon=True).start()


def run_local(specs: list[RunSpec], logdir: str, name: str, workers: int, on_done) -> None:
    """Run ``specs`` in ``workers`` local processes (spawned: no state shared with this one).

    On Ctrl-C no new run starts; the running ones stop after their current env step with a checkpoint saved
    (the next sweep resumes them), are reported through ``on_done``, and KeyboardInterrupt is raised again.
    """
    context = get_context("spawn")
    cancelled = context.Event()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(os.getpid(), cancelled))
    futures = {}
    try:
        futures = {pool.submit(train_one, spec, str(run_dir_for(logdir, name, spec)), 1,
                               str(task_root(logdir, spec.task))): spec for spec in specs}
        for future in as_completed(futures):
            on_done(futures.pop(future), future)
    except KeyboardInterrupt:
        cancelled.set()
        running = [f for f in futures if not f.cancel()]
        for future in as_completed(running):
            on_done(futures[future], future)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(specs: list[RunSpec], logdir: str, name: str, address: str, on_done) -> None:
    """Run ``specs`` as Ray tasks (one CPU each) and copy each run folder back under ``logdir``."""
    try:
        import ray
    except ImportError:
        raise ValueError("--ray_address needs Ray: pip install -r requirements-ray.txt") from None
    project = str(Path(__file__).resolve().parent.parent)
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address,
                 runtime_env={"working_dir": project, "excludes": ["log/", ".venv/", "*.pt", "*.sqlite"]},
                 **({"num_cpus": os.cpu_count()} if address == "local" else {}))
    remote = ray.remote(num_cpus=1)(_train_remote)
    pending = {remote.remote(spec): spec for spec in specs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(done[0])
        on_done(spec, _RayResult(ray, done[0], run_dir_for(logdir, name, spec)))


class _RayResult:
    """Adapter giving a Ray object ref the ``result()`` of a future (and syncing the folder back)."""

    def __init__(self, ray, ref, run_dir: Path):
        self.ray, self.ref, self.run_dir = ray, ref, run_dir

    def result(self) -> dict:
        row, data = self.ray.get(self.ref)
        _unpack(data, self.run_dir)
        return {**row, "run_dir": str(self.run_dir)}


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
        for task in plan.tasks:
            for method in teacher_methods(plan.methods):
                values = {**plan.settings, **method_settings(method), **plan.method_settings.get(method, {}),
                          **({"llm_url": llm_url} if method == "llm" else {})}
                config = build_config(task, values)
                for seed in plan.seeds:
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
                        help=f"methods (default: ppo hard soft oracle): {', '.join(METHODS)} (llm needs --llm_url; "
                             f"sb3_ppo needs requirements-sb3.txt)")
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
    parser.add_argument("--llm_url", default=None, help="server for method llm")
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
            args.tasks = [_task_name(t) for t in args.tasks]
            missing = [t for t in args.tasks if t not in plan.budgets]
            if missing:
                raise ValueError(f"task(s) {', '.join(missing)} have no budget in {args.config}")
            plan.tasks = list(args.tasks)
        plan.methods = list(args.methods or plan.methods)
        plan.seeds = list(args.seeds if args.seeds is not None else plan.seeds)
        plan.settings.update(extra)
    else:
        name = None
        total = 100_000 if args.total_steps is None else args.total_steps
        tasks = [_task_name(t) for t in args.tasks or ["SimpleDoorKey"]]
        plan = SweepPlan(tasks=list(tasks), methods=list(args.methods or ["ppo", "hard", "soft", "oracle"]),
                         seeds=list(args.seeds if args.seeds is not None else [0, 1, 2]),
                         budgets={t: total for t in tasks}, settings=extra)
    if args.teacher_episodes is not None:
        plan.teacher_episodes = args.teacher_episodes
    if min(plan.budgets.values()) <= 0 or args.workers <= 0 or plan.teacher_episodes < 0:
        raise ValueError("budgets (--total_steps) and --workers must be positive, --teacher_episodes >= 0")
    for method in plan.methods:
        method_settings(method)  # unknown methods fail here
    return args.name or name or "sweep", plan


def parse_settings(pairs: list[str]) -> dict:
    """``["eval_interval=2", "lr=0.002"]`` -> values typed by the settings' declarations."""
    from utils.config import parse_value
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got '{pair}'")
        values[key] = parse_value(key, text)
    return values


def finished_runs(index: Path) -> dict:
    """(task, method, seed) -> run folder of the runs the index lists as done."""
    if not index.exists():
        return {}
    return {(r["task"], r["method"], int(r["seed"])): Path(r["run_dir"]) for r in csv.DictReader(index.open())}


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
    earlier = json.loads((index_dir / "sweep.json").read_text()).get("commits", []) \
        if (index_dir / "sweep.json").exists() else []
    (index_dir / "sweep.json").write_text(json.dumps(
        {"tasks": plan.tasks, "methods": plan.methods, "seeds": plan.seeds, "budgets": plan.budgets,
         "baseline_factor": plan.baseline_factor, "eval_every_steps": plan.eval_every_steps,
         "teacher_episodes": plan.teacher_episodes, "settings": plan.settings,
         "method_settings": plan.method_settings, "config_file": args.config, "commit": commit,
         "commits": earlier + [commit] if commit not in earlier else earlier,  # every commit that ran a part
         "ray_address": args.ray_address, "machine": _machine()}, indent=2))
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
                print(f"  stopped {spec.label}: its checkpoint is saved in {row['run_dir']}")
            return
        row["commit"] = commit  # a sweep may span several sessions (and commits)
        with index.open("a", newline="") as handle:
            csv.DictWriter(handle, RUN_FIELDS, extrasaction="ignore").writerow(row)
        print(f"  done {spec.label}: final success {row['final_success_rate']}, "
              f"steps to 0.9 {row['steps_to_threshold']}, {row['env_steps_per_second']} steps/s")

    try:
        if todo and args.ray_address:
            run_ray(todo, args.logdir, name, args.ray_address, on_done)
        elif todo:
            run_local(todo, args.logdir, name, args.workers, on_done)
    except KeyboardInterrupt:
        print(f"sweep '{name}' interrupted: finished runs are in {index}; run the same command again to "
              "continue (interrupted runs resume from their checkpoints)", file=sys.stderr)
        return 130
    if plan.teacher_episodes and teacher_methods(plan.methods):
        print(f"teacher alone: {measure_teachers(plan, args.logdir, name, args.llm_url)}")
    if failures:
        print(f"{len(failures)} runs failed: {', '.join(failures)}")
        return 1
    return 0


def _machine() -> dict:
    import platform
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
