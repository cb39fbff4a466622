"""Experiment sweep: tasks x methods x seeds under an env-step budget, run in parallel.

    python main.py sweep --tasks SimpleDoorKey TwoDoor --methods ppo hard soft oracle --seeds 0 1 2 \\
        --total_steps 100000 --name paper --workers 2

Each run trains exactly as ``main.py train`` does, into ``<logdir>/ppo/<task>/<name>/<method>/seed<k>/``
(checkpoint, config.json, TensorBoard events, ``eval_curve.csv`` with env steps, success rate and return).
The sweep also measures each task's teacher alone (``teacher.csv``) and keeps an index of all runs
(``<logdir>/sweeps/<name>/runs.csv``) that ``main.py report`` reads. Runs already finished are skipped, so an
interrupted sweep continues where it stopped.

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
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

METHODS = {  # method -> (teacher, planner)
    "ppo": ("none", "recorded"),
    "hard": ("hard", "recorded"),
    "soft": ("soft", "recorded"),
    "oracle": ("hard", "oracle"),
    "llm": ("soft", "llm"),
}
RUN_FIELDS = ("task", "method", "seed", "run_dir", "status", "env_steps", "final_success_rate",
              "steps_to_threshold", "env_steps_per_second", "seconds")


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


def make_specs(tasks, methods, seeds, total_steps: int, extra: dict, llm_url: str | None) -> list[RunSpec]:
    """All runs of the sweep, with the settings each needs (an unknown task is an UnknownTaskError)."""
    from envs import get_task
    specs = []
    for task in (get_task(name).name for name in tasks):
        for method in methods:
            if method not in METHODS:
                raise ValueError(f"unknown method '{method}'; choose from {', '.join(METHODS)}")
            if method == "llm" and not llm_url:
                raise ValueError("method 'llm' needs --llm_url")
            teacher, planner = METHODS[method]
            values = {"teacher": teacher, "planner": planner, "total_steps": total_steps, **extra}
            if method == "llm":
                values["llm_url"] = llm_url
            for seed in seeds:
                specs.append(RunSpec(task, method, seed, tuple(sorted(values.items()))))
    return specs


def train_one(spec: RunSpec, run_dir: str, torch_threads: int = 1, root: str | None = None) -> dict:
    """Train one run into ``run_dir`` (resuming it if a checkpoint is there); returns its index row.

    The run folder is locked while training (see utils.run_folder); ``root`` is the task folder above it.
    """
    import torch
    torch.set_num_threads(torch_threads)
    from algos.trainer import CHECKPOINT_NAME, train_run
    from planners.factory import build_training_teacher
    from utils.config import build_config
    from utils.run_folder import RunFolders
    config = build_config(spec.task, {**dict(spec.overrides), "torch_threads": torch_threads})
    start = time.perf_counter()
    run_dir = Path(run_dir)
    with RunFolders(Path(root) if root else run_dir.parent, [run_dir], CHECKPOINT_NAME) as folders:
        (action,) = folders.plan("auto")
        with folders.start(run_dir, action) as replacement, open(os.devnull, "w") as quiet:
            result = train_run(config, spec.seed, run_dir, build_training_teacher(config, spec.seed), stream=quiet,
                               resume=action == "resume", on_start=replacement.begin, on_save=replacement.saved)
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


def run_local(specs: list[RunSpec], logdir: str, name: str, workers: int, on_done) -> None:
    """Run ``specs`` in ``workers`` local processes (spawned: no state shared with this one)."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(train_one, spec, str(run_dir_for(logdir, name, spec)), 1,
                               str(task_root(logdir, spec.task))): spec for spec in specs}
        for future in as_completed(futures):
            on_done(futures[future], future)


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


def measure_teachers(tasks, methods, logdir: str, name: str, episodes: int, llm_url: str | None) -> Path:
    """Teacher-alone success per task and teacher method, appended to ``teacher.csv``."""
    import numpy as np

    from algos.evaluate import TeacherPolicy, run_episodes
    from planners.factory import build_teacher
    from utils.config import build_config
    path = sweep_dir(logdir, name) / "teacher.csv"
    done = set()
    if path.exists():
        done = {(r["task"], r["method"]) for r in csv.DictReader(path.open())}
    new_file = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["task", "method", "episodes", "success_rate", "mean_return", "mean_length"])
        for task in tasks:
            for method in methods:
                if method == "ppo" or (task, method) in done:
                    continue
                teacher_mode, planner = METHODS[method]
                config = build_config(task, {"teacher": teacher_mode, "planner": planner,
                                             **({"llm_url": llm_url} if method == "llm" else {})})
                seeds = list(range(10_000, 10_000 + episodes))  # layouts the training evals do not use
                policy = TeacherPolicy(build_teacher(config, len(seeds), 0), seed=0)
                try:
                    result = run_episodes(task, seeds, policy)
                finally:
                    policy.close()
                writer.writerow([task, method, episodes, f"{result.success_rate:.4f}",
                                 f"{result.mean_return:.4f}", f"{np.mean(result.lengths):.2f}"])
                handle.flush()
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", nargs="+", default=["SimpleDoorKey"], help="tasks to run")
    parser.add_argument("--methods", nargs="+", default=["ppo", "hard", "soft", "oracle"],
                        help=f"methods: {', '.join(METHODS)} (llm needs --llm_url)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    parser.add_argument("--total_steps", type=int, default=100_000, help="env-step budget of every run")
    parser.add_argument("--name", default="sweep", help="sweep name: folders <logdir>/ppo/<task>/<name>/...")
    parser.add_argument("--logdir", default="log", help="root of all run folders")
    parser.add_argument("--workers", type=int, default=2, help="local processes running at once")
    parser.add_argument("--ray_address", default=None,
                        help="run on Ray instead: 'auto' (a running cluster), 'host:port', or 'local'")
    parser.add_argument("--teacher_episodes", type=int, default=200,
                        help="episodes to measure each teacher alone (0 = skip)")
    parser.add_argument("--llm_url", default=None, help="server for method llm")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra settings for every run, e.g. --set eval_interval=2 num_eval=64")


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


def main(args: argparse.Namespace) -> int:
    from utils.config import build_config
    from utils.run_folder import check_writable, inside
    if args.total_steps <= 0 or args.workers <= 0 or args.teacher_episodes < 0:
        raise ValueError("--total_steps and --workers must be positive, --teacher_episodes >= 0")
    extra = parse_settings(args.set)
    specs = make_specs(args.tasks, args.methods, args.seeds, args.total_steps, extra, args.llm_url)
    for spec in specs:  # refuse bad settings and folders outside <logdir>/ppo/<task>/ before starting anything
        build_config(spec.task, dict(spec.overrides))
        inside(task_root(args.logdir, spec.task), f"{args.name}/{spec.method}/seed{spec.seed}", "--name")
    check_writable(Path(args.logdir), "--logdir")
    index_dir = sweep_dir(args.logdir, args.name)
    index_dir.mkdir(parents=True, exist_ok=True)
    (index_dir / "sweep.json").write_text(json.dumps(
        {"tasks": args.tasks, "methods": args.methods, "seeds": args.seeds, "total_steps": args.total_steps,
         "settings": extra, "ray_address": args.ray_address, "machine": _machine()}, indent=2))
    index = index_dir / "runs.csv"
    finished = {(r["task"], r["method"], int(r["seed"])) for r in csv.DictReader(index.open())} if index.exists() else set()
    todo = [s for s in specs if (s.task, s.method, s.seed) not in finished]
    print(f"sweep '{args.name}': {len(specs)} runs, {len(specs) - len(todo)} already done, index {index}")
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
        with index.open("a", newline="") as handle:
            csv.DictWriter(handle, RUN_FIELDS).writerow(row)
        print(f"  done {spec.label}: final success {row['final_success_rate']}, "
              f"steps to 0.9 {row['steps_to_threshold']}, {row['env_steps_per_second']} steps/s")

    if args.ray_address:
        run_ray(todo, args.logdir, args.name, args.ray_address, on_done)
    else:
        run_local(todo, args.logdir, args.name, args.workers, on_done)
    if args.teacher_episodes:
        print(f"teacher alone: {measure_teachers(args.tasks, args.methods, args.logdir, args.name, args.teacher_episodes, args.llm_url)}")
    if failures:
        print(f"{len(failures)} runs failed: {', '.join(failures)}")
        return 1
    return 0


def _machine() -> dict:
    import platform
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
