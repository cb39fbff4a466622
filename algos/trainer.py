"""Training one run: collect with the student, label with the teacher, PPO + distillation, evaluate, log, save."""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import envs as task_envs
from algos.buffer import RolloutBuffer
from algos.evaluate import EvalResult, StudentPolicy, evaluation_seeds, run_episodes
from algos.model import ActorCritic
from algos.ppo import PPOSettings, ppo_update
from algos.rollout import RolloutCollector
from algos.schedule import DistillationSchedule
from envs.vector import EnvBatch
from planners.factory import build_teacher
from utils.checkpoint import save_checkpoint
from utils.config import RunConfig
from utils.logger import RunLogger

SUCCESS_THRESHOLD = 0.9
CURVE_FIELDS = ("iteration", "env_steps", "success_rate", "mean_return", "mean_length", "wall_seconds")


@dataclass
class TrainResult:
    """Summary of a finished run (also written to ``summary.json``)."""

    run_dir: str
    env_steps: int
    iterations: int
    final_success_rate: float | None
    steps_to_threshold: int | None  # first eval with success >= 0.9
    env_steps_per_second: float
    teacher_fallbacks: int
    llm: dict  # LLM call and cache counters (empty without a live LLM)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def resolve_device(name: str | None) -> torch.device:
    """The requested torch device, or cuda when available, else cpu."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def distillation_schedule(config: RunConfig) -> DistillationSchedule:
    """The config's schedule; plain PPO (teacher none) never distils."""
    if config.teacher == "none":
        return DistillationSchedule(0.0, 0.0, 0.0, 0)
    return DistillationSchedule(config.distill_initial, config.distill_decay, config.distill_floor,
                                config.distill_off_after)


def ppo_settings(config: RunConfig) -> PPOSettings:
    return PPOSettings(lr=config.lr, gamma=config.gamma, gae_lambda=config.gae_lambda, clip_coef=config.clip_coef,
                       ent_coef=config.ent_coef, vf_coef=config.vf_coef, max_grad_norm=config.max_grad_norm,
                       update_epochs=config.update_epochs, num_minibatches=config.num_minibatches)


def train_run(config: RunConfig, seed: int, run_dir: Path, stream=None) -> TrainResult:
    """Train one student with ``seed`` and write everything into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    device = resolve_device(config.device)

    envs = EnvBatch([task_envs.make_env(config.task) for _ in range(config.num_envs)], seed=seed,
                    frame_stack=config.frame_stack)
    model = ActorCritic(envs.observation_shape, envs.num_actions, config.hidden_size, config.recurrent,
                         config.ego_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, eps=1e-5)
    schedule = distillation_schedule(config)
    teacher = build_teacher(config, config.num_envs, seed) if config.teacher != "none" else None
    obs_dtype = torch.from_numpy(envs.obs[:1]).dtype
    buffer = RolloutBuffer(config.num_steps, config.num_envs, envs.observation_shape, envs.num_actions, obs_dtype)
    collector = RolloutCollector(envs, model, device, seed)
    settings = ppo_settings(config)
    update_generator = torch.Generator().manual_seed(seed)

    eval_seeds = evaluation_seeds(config.env_seed_list, config.num_eval, np.random.default_rng(seed + 1))
    eval_pool = [task_envs.make_env(config.task) for _ in eval_seeds] if config.eval_interval else []
    eval_policy = StudentPolicy(model, device, config.eval_deterministic, seed)

    (run_dir / "config.json").write_text(json.dumps({**config.to_json(), "seed": seed}, indent=2))
    logger = RunLogger(run_dir, f"{config.task} seed {seed}", stream)
    logger.line(f"training {config.n_itr} iterations x {config.num_envs * config.num_steps} env steps, "
                f"teacher={config.teacher}, planner={config.planner}, device={device}, run dir {run_dir}")
    curve_path = run_dir / "eval_curve.csv"
    with curve_path.open("w", newline="") as handle:
        csv.writer(handle).writerow(CURVE_FIELDS)

    env_steps, start_time = 0, time.perf_counter()
    steps_to_threshold, last_eval, sps = None, None, 0.0
    recent_episodes: list = []
    for iteration in range(config.n_itr):
        coef = schedule.coef(iteration)
        stats = collector.collect(buffer, config.gamma, config.gae_lambda, teacher if coef > 0 else None)
        update_start = time.perf_counter()
        losses = ppo_update(model, optimizer, buffer, settings, coef, update_generator)
        update_seconds = time.perf_counter() - update_start
        env_steps += config.num_envs * config.num_steps
        sps = config.num_envs * config.num_steps / (stats.total_seconds + update_seconds)
        recent_episodes = (recent_episodes + stats.episodes)[-100:]

        scalars = {"losses/policy": losses["policy"], "losses/value": losses["value"],
                   "losses/entropy": losses["entropy"], "losses/distill": losses["distill"],
                   "losses/approx_kl": losses["approx_kl"], "losses/clipfrac": losses["clipfrac"],
                   "teacher/coef": coef, "time/sps": sps,
                   "time/teacher_fraction": stats.teacher_seconds / (stats.total_seconds + update_seconds)}
        if stats.episodes:
            scalars.update({"charts/episodic_return": np.mean([e.episode_return for e in stats.episodes]),
                            "charts/episodic_length": np.mean([e.length for e in stats.episodes]),
                            "charts/success_rate": np.mean([e.success for e in stats.episodes])})
        if teacher is not None:
            scalars["teacher/fallbacks"] = teacher.planner.fallback_count
            scalars.update({f"teacher/{k}": v for k, v in llm_counters(teacher).items()})
            if stats.agreement is not None:
                scalars["teacher/agreement"] = stats.agreement
        logger.scalars(scalars, env_steps)

        last_iteration = iteration == config.n_itr - 1
        if config.eval_interval and ((iteration + 1) % config.eval_interval == 0 or last_iteration):
            last_eval = run_episodes(config.task, eval_seeds, eval_policy, config.frame_stack, env_pool=eval_pool)
            logger.scalars({"eval/success_rate": last_eval.success_rate, "eval/episodic_return": last_eval.mean_return,
                            "eval/episodic_length": last_eval.mean_length}, env_steps)
            _append_curve(curve_path, iteration + 1, env_steps, last_eval, time.perf_counter() - start_time)
            if steps_to_threshold is None and last_eval.success_rate >= SUCCESS_THRESHOLD:
                steps_to_threshold = env_steps
        if config.save_interval and ((iteration + 1) % config.save_interval == 0) or last_iteration:
            _save(run_dir / "acmodel.pt", model, optimizer, config, seed, iteration + 1, env_steps)
        if (iteration + 1) % max(config.log_interval, 1) == 0 or last_iteration:
            logger.line(_progress_line(iteration + 1, config.n_itr, env_steps, sps, recent_episodes, coef,
                                       losses, last_eval))
    counters = llm_counters(teacher) if teacher is not None else {}
    if counters:
        logger.line(f"LLM teacher: {counters['llm_calls']} HTTP calls, {counters['cache_hits']} sentences answered "
                    f"from the cache, {counters['cache_misses']} asked live, {counters['outage_answers']} stand-in "
                    f"answers during outages, {counters['llm_seconds']:.1f}s waiting")
    logger.close()
    envs.close()
    result = TrainResult(str(run_dir), env_steps, config.n_itr, last_eval.success_rate if last_eval else None,
                         steps_to_threshold, env_steps / (time.perf_counter() - start_time),
                         teacher.planner.fallback_count if teacher else 0, counters)
    (run_dir / "summary.json").write_text(json.dumps(result.to_json(), indent=2))
    return result


def llm_counters(teacher) -> dict:
    """LLM call/cache counters of a teacher whose planner asks a live LLM; {} for other planners."""
    source = teacher.planner.source
    if not hasattr(source, "counters"):
        return {}
    counters = source.counters()
    return {"llm_calls": counters["llm_calls"], "cache_hits": counters["cache_hits"],
            "cache_misses": counters["cache_misses"], "outage_answers": counters["outage_answers"],
            "llm_seconds": counters["teacher_seconds"]}


def _save(path: Path, model, optimizer, config: RunConfig, seed: int, iteration: int, env_steps: int) -> None:
    meta = {"task": config.task, "seed": seed, "iteration": iteration, "env_steps": env_steps,
            "model_config": model.config(), "teacher": config.teacher, "planner": config.planner,
            "frame_stack": config.frame_stack}
    save_checkpoint(path, model.state_dict(), optimizer.state_dict(), meta)


def _append_curve(path: Path, iteration: int, env_steps: int, result: EvalResult, wall: float) -> None:
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerow([iteration, env_steps, f"{result.success_rate:.4f}", f"{result.mean_return:.4f}",
                                     f"{result.mean_length:.2f}", f"{wall:.1f}"])


def _progress_line(iteration, total, env_steps, sps, episodes, coef, losses, last_eval) -> str:
    parts = [f"it {iteration}/{total}", f"steps {env_steps:,}", f"{sps:,.0f} steps/s"]
    if episodes:
        parts.append(f"train success {np.mean([e.success for e in episodes]):.2f} "
                     f"return {np.mean([e.episode_return for e in episodes]):.2f}")
    parts.append(f"coef {coef:.2f} distill {losses['distill']:.3f} entropy {losses['entropy']:.2f}")
    if last_eval is not None:
        parts.append(f"eval success {last_eval.success_rate:.2f}")
    return " | ".join(parts)
