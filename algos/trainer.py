"""Training one run: collect with the student, label with the teacher, PPO + distillation, evaluate, log, save.

A run can be interrupted (Ctrl-C / SIGTERM: the current iteration is abandoned, the last completed one is
saved) and resumed from its checkpoint with ``--resume``: model, optimizer, iteration and env-step counters
(hence the distillation schedule), random generators, the evaluation curve and the TensorBoard step axis
continue where they stopped. Episodes that were in progress restart from fresh layouts.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import envs as task_envs
from algos.collector import CollectionSpec
from algos.evaluate import (EvalResult, StudentPolicy, final_student_evaluation, heldout_line, run_episodes,
                            training_eval_seeds)
from algos.pipeline import build_feed
from algos.ppo import ppo_update
from algos.rollout import StopFlag, TrainingInterrupted
from algos.student import check_compatible, read_checkpoint
from utils.checkpoint import CheckpointError, load_weights, save_checkpoint
from utils.config import NO_DISTILLATION, RunConfig
from utils.logger import RunLogger

SUCCESS_THRESHOLD = 0.9
CURVE_FIELDS = ("iteration", "env_steps", "success_rate", "mean_return", "mean_length", "wall_seconds")
CHECKPOINT_NAME = "acmodel.pt"
DEFAULT_TORCH_THREADS = torch.get_num_threads()  # torch's own choice, before any run changed it


@dataclass
class TrainResult:
    """Summary of a finished run (also written to ``summary.json``)."""

    run_dir: str
    env_steps: int
    iterations: int
    final_success_rate: float | None
    steps_to_threshold: int | None  # first eval with success >= 0.9
    env_steps_per_second: float
    teacher_fallbacks: int  # meetings of sentences the plan source had no answer for (TeacherStats.fallbacks)
    llm: dict  # LLM call and cache counters (llm_summary; empty without a live LLM)
    final_eval: dict | None = None  # held-out final evaluation (algos.evaluate.heldout_summary)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def resolve_device(name: str | None) -> torch.device:
    """The requested torch device, or cuda when available, else cpu."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def llm_summary(stats) -> dict:
    """``summary.json``'s ``llm``: the LLM counters of a teacher's stats (``TeacherStats``) when its planner
    asks a live LLM, and where its answers (one per new sentence) came from; {} otherwise."""
    if stats is None or stats.llm is None:
        return {}
    llm = asdict(stats.llm)
    return {**llm, "answers_from_llm": llm["live_answers"], "answers_from_cache": llm["cache_hits"],
            "answers_from_fallback": llm["outage_answers"]}


class Trainer:
    """One training run of one seed, writing into ``run_dir``.

    Everything that can fail on bad input (task, teacher, LLM server, checkpoint to resume) is built
    before anything is written, so a refused run leaves the folder as it was.
    """

    def __init__(self, config: RunConfig, seed: int, run_dir: Path, teacher_factory: Callable | None = None,
                 resume: bool = False, stream=None, stop: StopFlag | None = None, on_start=None, on_save=None):
        self.config, self.seed, self.run_dir = config, seed, Path(run_dir)
        # on_start(): called once all checks passed, before the first write; on_save(): after every checkpoint.
        self.on_start, self.on_save = on_start, on_save
        self.stop = stop or StopFlag()
        self.stream = stream
        np.random.seed(seed)
        torch.manual_seed(seed)
        # lag 1: the rollout worker has a core of its own. Set every time: a process may train several runs.
        torch.set_num_threads(config.run.torch_threads or (1 if config.ppo.policy_lag else DEFAULT_TORCH_THREADS))
        self.device = resolve_device(config.run.device)

        checkpoint = read_checkpoint(self.run_dir / CHECKPOINT_NAME) if resume else None
        start_iteration = checkpoint["meta"].get("iteration", 0) if checkpoint else 0
        # Fresh layouts after a resume: derive the env seed from (seed, iteration).
        spec = CollectionSpec(config.run.task, config.env.num_envs, config.ppo.num_steps, config.env.frame_stack,
                              env_seed=seed if not start_iteration else seed * 1_000_003 + start_iteration,
                              sampling_seed=seed, gamma=config.ppo.gamma, gae_lambda=config.ppo.gae_lambda,
                              student=config.student)
        self.observation_shape, num_actions, _ = spec.spaces
        if checkpoint:
            self._check_resumable(checkpoint, num_actions)
        self.model = spec.build_student().to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.ppo.lr, eps=1e-5, fused=True)
        self.schedule = config.schedule if config.teacher.mode != "none" else NO_DISTILLATION
        # The teacher (built by teacher_factory, here or in the rollout worker) is owned by the feed's collector.
        self.feed = build_feed(spec, self.model, teacher_factory, lambda it: self.schedule.coef(it) > 0,
                               self.stop, config.ppo.policy_lag, config.ppo.n_itr)
        self.collector = self.feed.collector
        try:
            if self.schedule.coef(start_iteration) > 0:
                # Ask about the first observations now: a teacher that cannot answer (LLM down, garbage) fails
                # here, before anything is written into the run folder.
                self.collector.check_teacher()
            self.update_generator = torch.Generator().manual_seed(seed)
            self.eval_seeds = training_eval_seeds(config.run.env_seed_list, config.eval.num_eval,
                                                  np.random.default_rng(seed + 1))
            self.eval_pool = ([task_envs.make_env(config.run.task) for _ in self.eval_seeds]
                              if config.eval.eval_interval else [])
            self.eval_policy = StudentPolicy(self.model, self.device, config.eval.eval_deterministic, seed)
            self.iteration, self.env_steps = 0, 0
            self.iteration_seconds: list[float] = []  # rollout + update wall time of each iteration of this process
            self.steps_to_threshold: int | None = None
            self.last_eval: EvalResult | None = None
            self.wall_offset = 0.0
            if checkpoint:
                self._restore(checkpoint)
        except BaseException:
            self.feed.close()
            raise

    # -- checkpoints --------------------------------------------------------------------------------------
    def _check_resumable(self, checkpoint: dict, num_actions: int) -> None:
        path = self.run_dir / CHECKPOINT_NAME
        check_compatible(checkpoint["meta"], self.config.run.task, self.observation_shape, num_actions, path,
                         self.config.student)
        if "trainer" not in checkpoint.get("extra", {}):
            raise CheckpointError(f"{path} holds no training state to resume from; start a new --savedir")

    def _restore(self, checkpoint: dict) -> None:
        load_weights(self.model, checkpoint["model"], self.run_dir / CHECKPOINT_NAME)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        state = checkpoint["extra"]["trainer"]
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.steps_to_threshold = state["steps_to_threshold"]
        self.wall_offset = state["wall_seconds"]
        self.update_generator.set_state(state["update_rng"])
        self.eval_policy.generator.set_state(state["eval_rng"])
        torch.set_rng_state(state["torch_rng"])
        # Checkpoints written before the collector had its own entry kept its two keys in the trainer's.
        self.collector.load_state_dict(checkpoint["extra"].get("collection", state))

    def save(self) -> None:
        """Write ``acmodel.pt`` atomically with everything needed to resume."""
        meta = {"task": self.config.run.task, "seed": self.seed, "iteration": self.iteration,
                "env_steps": self.env_steps, "model_config": self.model.config(), "teacher": self.config.teacher.mode,
                "planner": self.config.teacher.planner, "frame_stack": self.config.env.frame_stack,
                "settings": self.config.to_json()}
        trainer_state = {
            "iteration": self.iteration, "env_steps": self.env_steps, "steps_to_threshold": self.steps_to_threshold,
            "wall_seconds": self.wall_offset + time.perf_counter() - self.start_time,
            "update_rng": self.update_generator.get_state(),
            "eval_rng": self.eval_policy.generator.get_state(), "torch_rng": torch.get_rng_state(),
        }
        # The collection state as it was when the last rollout learnt from ended (a lag-1 worker may be
        # collecting the next one): saving never waits for it.
        save_checkpoint(self.run_dir / CHECKPOINT_NAME, self.model.state_dict(), self.optimizer.state_dict(), meta,
                        extra={"trainer": trainer_state, "collection": self.collector.state_dict()})
        if self.on_save is not None:
            self.on_save()

    # -- the loop -----------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        """Train until ``n_itr`` iterations; on a stop request save and raise TrainingInterrupted."""
        try:
            curve = self._open_run_folder()
        except BaseException:
            self.close()
            raise
        config = self.config
        steps_at_start = self.env_steps
        recent: list = []
        try:
            while self.iteration < config.ppo.n_itr:
                recent = self._iterate(recent, curve)
        except TrainingInterrupted:
            self.save()
            raise
        except BaseException:
            if self.iteration > 0:
                self.save()  # keep the completed iterations whatever went wrong
            raise
        else:
            self.save()
            return self._finish(steps_at_start, curve)
        finally:
            self.close()

    def _open_run_folder(self) -> Path:
        """Write config.json, open the logger and the evaluation curve; returns the curve's path."""
        config = self.config
        self.start_time = time.perf_counter()
        resumed = self.iteration > 0
        if self.on_start is not None:
            self.on_start()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps({**config.to_json(), "seed": self.seed}, indent=2))
        # purge_step drops events an interrupted run logged after its last checkpoint, so curves continue.
        self.logger = RunLogger(self.run_dir, f"{config.run.task} seed {self.seed}", self.stream,
                                purge_step=self.env_steps + 1 if resumed else None)
        curve = self.run_dir / "eval_curve.csv"
        if resumed:
            _truncate_curve(curve, self.env_steps)
        else:
            with curve.open("w", newline="") as handle:
                csv.writer(handle).writerow(CURVE_FIELDS)
        self.logger.line(("resuming at iteration %d (%s env steps); " % (self.iteration, f"{self.env_steps:,}")
                          if resumed else "") +
                         f"training {config.ppo.n_itr} iterations x {config.env.num_envs * config.ppo.num_steps} env steps, "
                         f"teacher={config.teacher.mode}, planner={config.teacher.planner}, device={self.device}, "
                         f"run dir {self.run_dir}")
        return curve

    def _finish(self, steps_at_start: int, curve: Path) -> TrainResult:
        teacher_stats = self.collector.teacher_stats()
        counters = llm_summary(teacher_stats)
        if counters:
            self.logger.line(f"LLM teacher: {counters['llm_calls']} HTTP calls, {counters['cache_hits']} sentences "
                             f"answered from the cache, {counters['answers_from_llm']} by the LLM, "
                             f"{counters['outage_answers']} by the fallback (outages, offline misses), "
                             f"{counters['llm_seconds']:.1f}s in LLM requests (concurrent ones each counted)")
        elapsed = time.perf_counter() - self.start_time
        if self.env_steps > steps_at_start:
            steps_per_second = (self.env_steps - steps_at_start) / max(elapsed, 1e-9)
        else:  # resumed after its last iteration: nothing trained here, give the run's own rate
            steps_per_second = self.env_steps / max(self.wall_offset, 1e-9)
        last_success = self.last_eval.success_rate if self.last_eval else _last_curve_success(curve)
        result = TrainResult(str(self.run_dir), self.env_steps, self.iteration, last_success, self.steps_to_threshold,
                             steps_per_second,
                             teacher_stats.fallbacks if teacher_stats else 0, counters,
                             final_student_evaluation(self.config, self.model, self.device, self.seed))
        if result.final_eval:
            self.logger.line(f"held-out final evaluation: {heldout_line(result.final_eval)}")
        (self.run_dir / "summary.json").write_text(json.dumps(result.to_json(), indent=2))
        return result

    def close(self) -> None:
        """Release the collector (its worker process, or its envs and teacher: the LLM cache and HTTP client)
        and the logger."""
        self.feed.close()
        if getattr(self, "logger", None) is not None:
            self.logger.close()

    def _iterate(self, recent: list, curve: Path) -> list:
        config = self.config
        coef = self.schedule.coef(self.iteration)
        start = time.perf_counter()
        buffer, stats = self.feed.get(self.iteration)
        losses = ppo_update(self.model, self.optimizer, buffer, config.ppo, coef, self.update_generator)
        seconds = time.perf_counter() - start
        self.iteration_seconds.append(seconds)
        self.iteration += 1
        self.env_steps += config.env.num_envs * config.ppo.num_steps
        sps = config.env.num_envs * config.ppo.num_steps / seconds
        recent = (recent + stats.episodes)[-100:]
        self._log_iteration(stats, losses, coef, sps, seconds)

        last = self.iteration == config.ppo.n_itr
        if config.eval.eval_interval and (self.iteration % config.eval.eval_interval == 0 or last):
            self._evaluate(curve)
        if last or (config.eval.save_interval and self.iteration % config.eval.save_interval == 0):
            self.save()
        if self.iteration % max(config.eval.log_interval, 1) == 0 or last:
            self.logger.line(_progress_line(self.iteration, config.ppo.n_itr, self.env_steps, sps, recent, coef, losses,
                                            self.last_eval))
        return recent

    def _log_iteration(self, stats, losses: dict, coef: float, sps: float, seconds: float) -> None:
        scalars = {f"losses/{name}": value for name, value in losses.items()}
        scalars.update({"teacher/coef": coef, "time/sps": sps, "time/teacher_fraction": stats.teacher_seconds / seconds})
        if stats.episodes:
            scalars.update({"charts/episodic_return": np.mean([e.episode_return for e in stats.episodes]),
                            "charts/episodic_length": np.mean([e.length for e in stats.episodes]),
                            "charts/success_rate": np.mean([e.success for e in stats.episodes])})
        if stats.teacher is not None:  # counters as the rollout ended (the next one may be running)
            scalars.update({f"teacher/{name}": value for name, value in stats.teacher.flat().items()})
            if stats.agreement is not None:
                scalars["teacher/agreement"] = stats.agreement
        self.logger.scalars(scalars, self.env_steps)

    def _evaluate(self, curve: Path) -> None:
        result = run_episodes(self.config.run.task, self.eval_seeds, self.eval_policy, self.config.env.frame_stack,
                              env_pool=self.eval_pool)
        self.last_eval = result
        self.logger.scalars({"eval/success_rate": result.success_rate, "eval/episodic_return": result.mean_return,
                             "eval/episodic_length": result.mean_length}, self.env_steps)
        wall = self.wall_offset + time.perf_counter() - self.start_time
        with curve.open("a", newline="") as handle:
            csv.writer(handle).writerow([self.iteration, self.env_steps, f"{result.success_rate:.4f}",
                                         f"{result.mean_return:.4f}", f"{result.mean_length:.2f}", f"{wall:.1f}"])
        if self.steps_to_threshold is None and result.success_rate >= SUCCESS_THRESHOLD:
            self.steps_to_threshold = self.env_steps


def train_run(config: RunConfig, seed: int, run_dir: Path, teacher_factory: Callable | None = None, stream=None,
              resume: bool = False, stop: StopFlag | None = None, on_start=None, on_save=None) -> TrainResult:
    """Train one student with ``seed`` into ``run_dir`` (resuming from its checkpoint if ``resume``).

    ``teacher_factory()`` builds the teacher that labels the visited states while the distillation
    coefficient is positive (picklable with ``--policy_lag 1``: it is called in the rollout worker); the
    run closes that teacher. ``on_start`` / ``on_save``: see :class:`Trainer` (utils.run_folder uses them
    to replace a run safely).
    """
    trainer = Trainer(config, seed, run_dir, teacher_factory=teacher_factory, resume=resume, stream=stream,
                      stop=stop, on_start=on_start, on_save=on_save)
    return trainer.run()


def _truncate_curve(path: Path, env_steps: int) -> None:
    """Drop evaluation rows logged after the checkpoint being resumed (they will be redone)."""
    if not path.exists():
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerow(CURVE_FIELDS)
        return
    rows = list(csv.reader(path.open()))
    kept = [rows[0]] + [row for row in rows[1:] if int(row[1]) <= env_steps]
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def _last_curve_success(path: Path) -> float | None:
    """The last training-time success rate in an evaluation curve (None without one)."""
    if not path.exists():
        return None
    rows = list(csv.DictReader(path.open()))
    return float(rows[-1]["success_rate"]) if rows else None


def _progress_line(iteration, total, env_steps, sps, episodes, coef, losses, last_eval) -> str:
    parts = [f"it {iteration}/{total}", f"steps {env_steps:,}", f"{sps:,.0f} steps/s"]
    if episodes:
        parts.append(f"train success {np.mean([e.success for e in episodes]):.2f} "
                     f"return {np.mean([e.episode_return for e in episodes]):.2f}")
    parts.append(f"coef {coef:.2f} distill {losses['distill']:.3f} entropy {losses['entropy']:.2f}")
    if last_eval is not None:
        parts.append(f"eval success {last_eval.success_rate:.2f}")
    return " | ".join(parts)
