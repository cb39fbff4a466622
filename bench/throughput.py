"""Throughput benchmark: env steps per second of each part of training, and of the whole loop.

    python main.py bench --task SimpleDoorKey --num_envs 16 --iterations 10 --repeats 3

Measured in one process, each part ``--repeats`` times; the table shows medians (wall-clock numbers on a
shared machine are noisy) and each part's ratio to raw env stepping and to env + teacher (the most the loop
could reach if the student and PPO cost nothing):

1. ``env``: the batched environments stepped with random actions;
2. ``teacher alone``: the teacher's own time labelling observations (sentence -> plan -> action), on the
   states of episodes the teacher itself plays;
3. ``env + teacher``: the same episodes, envs and teacher together;
4. ``collection``: the trainer's rollouts without updates: envs + teacher + batched student forward;
5. ``update``: PPO epochs alone, per env step of the rollout they learn from;
6. ``train, teacher on, policy_lag 0 / 1``: the full loop while distilling, collection then update (lag 0)
   and collection in a worker process overlapping the update (lag 1), whatever ``--set`` says;
7. ``train, teacher off``: the full loop after distillation is switched off, at the ``policy_lag`` in force.
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import statistics
import tempfile
import time

import numpy as np

import envs as task_envs
from envs.vector import EnvBatch


def env_steps_per_second(task: str, num_envs: int, steps: int, seed: int = 0) -> float:
    """Random actions through :class:`EnvBatch`."""
    batch = EnvBatch([task_envs.make_env(task) for _ in range(num_envs)], seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, batch.num_actions, size=(steps, num_envs))
    start = time.perf_counter()
    for t in range(steps):
        batch.step(actions[t])
    return steps * num_envs / (time.perf_counter() - start)


def teacher_steps_per_second(config, num_envs: int, steps: int, seed: int = 0) -> tuple[float, float]:
    """(teacher alone, env + teacher) observations per second, on episodes the teacher plays itself."""
    from planners.factory import build_teacher
    batch = EnvBatch([task_envs.make_env(config.run.task) for _ in range(num_envs)], seed=seed)
    teacher = build_teacher(config, num_envs, seed)
    rng = np.random.default_rng(seed)
    obs, spent = batch.obs.copy(), 0.0
    begin = time.perf_counter()
    try:
        for _ in range(steps):
            start = time.perf_counter()
            probs = teacher.action_probs(obs)
            spent += time.perf_counter() - start
            cumulative = probs.cumsum(1)
            draws = rng.random((num_envs, 1)) * cumulative[:, -1:]
            actions = (draws > cumulative).sum(1).clip(max=probs.shape[1] - 1)
            obs, _, _, finished = batch.step(actions)
            for episode in finished:
                teacher.reset(episode.env_index)
    finally:
        teacher.close()
        batch.close()
    return steps * num_envs / spent, steps * num_envs / (time.perf_counter() - begin)


def parts_steps_per_second(config, iterations: int, seed: int = 0) -> tuple[float, float]:
    """(collection, update) env steps per second: the trainer's rollouts and PPO epochs timed apart."""
    from algos.ppo import ppo_update
    from algos.trainer import Trainer
    from planners.factory import training_teacher_factory
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, seed, folder, teacher_factory=training_teacher_factory(config, seed),
                          stream=io.StringIO())
        collect, update = [], []
        try:
            for iteration in range(iterations + 1):  # the first iteration pays torch's first-call costs
                start = time.perf_counter()
                buffer, _ = trainer.feed.get(iteration)
                middle = time.perf_counter()
                ppo_update(trainer.model, trainer.optimizer, buffer, config.ppo, trainer.schedule.coef(iteration),
                           trainer.update_generator)
                collect.append(middle - start)
                update.append(time.perf_counter() - middle)
        finally:
            trainer.close()
    steps = iterations * config.env.num_envs * config.ppo.num_steps
    return steps / sum(collect[1:]), steps / sum(update[1:])


def train_steps_per_second(config, iterations: int, seed: int = 0) -> float:
    """Env steps per second of ``iterations`` training iterations (no evaluation, no checkpoints)."""
    from algos.trainer import Trainer
    from planners.factory import training_teacher_factory
    with tempfile.TemporaryDirectory() as folder:
        with open(os.devnull, "w") as quiet:
            trainer = Trainer(config, seed, folder, teacher_factory=training_teacher_factory(config, seed), stream=quiet)
            trainer.run()
    timed = trainer.iteration_seconds[1:]  # the first iteration pays torch's first-call costs
    return len(timed) * config.env.num_envs * config.ppo.num_steps / sum(timed)


def run(task: str, num_envs: int, num_steps: int, iterations: int, repeats: int, planner: str,
        teacher: str, extra: dict | None = None) -> list[tuple[str, float]]:
    """Median env steps/s of each part; returns [(name, steps_per_second)]."""
    from utils.config import build_config
    # No evaluation of any kind: the held-out final evaluation (200 episodes) took over half the bench's time
    common = {**(extra or {}), "num_envs": num_envs, "num_steps": num_steps, "eval_interval": 0,
              "final_eval_episodes": 0, "save_interval": 0, "log_interval": 10**9, "planner": planner}
    on = build_config(task, {**common, "teacher": teacher, "n_itr": iterations + 1,
                             "distill_off_after": iterations + 1})
    off = build_config(task, {**common, "teacher": "none", "n_itr": iterations + 1})
    at_lag = {lag: copy.deepcopy(on) for lag in (0, 1)}  # the loop both ways; the parts are timed apart
    for lag, config in at_lag.items():
        config.ppo.policy_lag = lag
    serial = at_lag[0]
    steps = iterations * num_steps
    results: dict[str, list[float]] = {}
    for seed in range(repeats):
        teacher_alone, env_and_teacher = teacher_steps_per_second(on, num_envs, steps, seed)
        collection, update = parts_steps_per_second(serial, iterations, seed)
        measured = {"env (random actions)": env_steps_per_second(task, num_envs, steps, seed),
                    f"teacher alone ({teacher}, {planner})": teacher_alone,
                    "env + teacher": env_and_teacher,
                    "collection (env + teacher + student forward)": collection,
                    "update (PPO epochs, teacher on)": update,
                    **{f"train, teacher on, policy_lag {lag}": train_steps_per_second(at_lag[lag], iterations, seed)
                       for lag in (0, 1)},
                    f"train, teacher off, policy_lag {off.ppo.policy_lag}": train_steps_per_second(off, iterations,
                                                                                                 seed)}
        for name, value in measured.items():
            results.setdefault(name, []).append(value)
    return [(name, statistics.median(values)) for name, values in results.items()]


def format_table(task: str, num_envs: int, results: list[tuple[str, float]]) -> str:
    """Markdown table: each part's steps/s and its ratio to raw env stepping and to env + teacher."""
    by_name = dict(results)
    raw, ceiling = by_name["env (random actions)"], by_name["env + teacher"]
    from algos.trainer import DEFAULT_TORCH_THREADS
    lines = [f"{task}, {num_envs} envs, learner torch threads {DEFAULT_TORCH_THREADS} (1 with policy_lag 1, "
             f"whose rollout worker has 1), medians",
             "| part | env steps/s | ratio to env | ratio to env + teacher |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {sps:,.0f} | {sps / raw:.2f} | {sps / ceiling:.2f} |" for name, sps in results]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="SimpleDoorKey", help="task to measure")
    parser.add_argument("--num_envs", type=int, default=16, help="environments stepped together")
    parser.add_argument("--num_steps", type=int, default=64, help="rollout length per env per iteration")
    parser.add_argument("--iterations", type=int, default=10, help="training iterations measured per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per part; the median is reported")
    parser.add_argument("--planner", default="recorded", choices=("recorded", "oracle"), help="teacher's planner")
    parser.add_argument("--teacher", default="hard", choices=("hard", "soft"), help="teacher mode")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other training settings, e.g. --set num_minibatches=4")


def main(args: argparse.Namespace) -> int:
    for name in ("num_envs", "num_steps", "iterations", "repeats"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name} must be a positive number")
    from bench.sweep_plan import parse_settings
    results = run(args.task, args.num_envs, args.num_steps, args.iterations, args.repeats, args.planner,
                  args.teacher, parse_settings(args.set))
    print(format_table(args.task, args.num_envs, results))
    return 0
