"""LLM4Teach command line: ``python main.py train|eval [flags]`` (``--help`` on each lists every flag)."""
from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from utils.cli import build_parser, cli_values
from utils.config import ConfigError, RunConfig, build_config

USAGE_ERROR = 2
LLM_OUTAGE = 3  # the LLM server failed mid-run and --llm_on_outage stop said to stop


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


def task_dir(config: RunConfig) -> Path:
    return Path(config.logdir) / "ppo" / config.task.lower()


def train_command(config: RunConfig, argv: list[str]) -> int:
    from algos.rollout import StopFlag, TrainingInterrupted
    from algos.trainer import CHECKPOINT_NAME, train_run
    from planners.factory import build_training_teacher
    if not config.savedir:
        raise UsageError(f"train needs --savedir NAME (the run is written to {task_dir(config)}/NAME)")
    if config.resume and config.overwrite:
        raise UsageError("--resume continues a run and --overwrite starts it over: pass only one")
    base = task_dir(config) / config.savedir
    seeds = config.seed_list
    run_dirs = [base] if len(seeds) == 1 else [base / f"seed{s}" for s in seeds]
    for run_dir in run_dirs:
        if config.resume and not (run_dir / CHECKPOINT_NAME).exists():
            raise UsageError(f"nothing to resume: no {CHECKPOINT_NAME} in {run_dir}")
        if not config.resume and not config.overwrite and (run_dir / "config.json").exists():
            raise UsageError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to start "
                             f"over, or choose another --savedir")
    if config.overwrite:
        for run_dir in run_dirs:  # start over: the old run's curves would otherwise mix with the new ones
            for old in [*run_dir.glob("events.out.tfevents.*"), run_dir / "summary.json", run_dir / CHECKPOINT_NAME]:
                old.unlink(missing_ok=True)
    stop = StopFlag()
    results = []
    with _stop_on_signals(stop):
        for seed, run_dir in zip(seeds, run_dirs):
            try:
                teacher = build_training_teacher(config, seed)
                results.append(train_run(config, seed, run_dir, teacher, resume=config.resume and run_dir.exists(),
                                         stop=stop))
            except TrainingInterrupted:
                print(f"stopped by {stop.signal_name}: saved {run_dir / CHECKPOINT_NAME}; resume with: "
                      f"{_resume_command(argv)}", file=sys.stderr)
                return 143 if stop.signal_name == "SIGTERM" else 130
            except _llm_stops() as err:
                return _llm_stopped(err, run_dir / CHECKPOINT_NAME, argv)
    for result in results:
        reached = f"{result.steps_to_threshold:,}" if result.steps_to_threshold else "not reached"
        final = f"{result.final_success_rate:.2f}" if result.final_success_rate is not None else "n/a"
        answers = result.llm
        llm = (f" | teacher answers: {answers['answers_from_llm']} from the LLM, {answers['answers_from_cache']} "
               f"from the cache, {answers['answers_from_fallback']} from the fallback" if answers else "")
        print(f"done: {result.run_dir} | {result.env_steps:,} env steps at {result.env_steps_per_second:,.0f}/s"
              f" | final eval success {final} | env steps to success >= 0.9: {reached}{llm}")
    return 0


def _resume_command(argv: list[str]) -> str:
    return " ".join(["python main.py"] + [a for a in argv if a != "--overwrite"] +
                    ([] if "--resume" in argv else ["--resume"]))


def _llm_stops() -> tuple:
    """The LLM failures that end a training run (configuration, outage with --llm_on_outage stop, garbage)."""
    from planners.llm.client import LLMServerError
    from planners.llm.source import LLMGarbageError, LLMOutageError
    return LLMServerError, LLMOutageError, LLMGarbageError


def _llm_stopped(err: Exception, checkpoint: Path, argv: list[str]) -> int:
    """One line for an LLM failure that ended training; exit 3 for an outage, 2 for a setting to fix."""
    from planners.llm.source import LLMOutageError
    kept = (f" | the last checkpoint {checkpoint} is kept; once that is fixed, resume with: {_resume_command(argv)}"
            if checkpoint.exists() else "")
    print(f"error: {err}{kept}", file=sys.stderr)
    return LLM_OUTAGE if isinstance(err, LLMOutageError) else USAGE_ERROR


@contextlib.contextmanager
def _stop_on_signals(stop):
    """Ctrl-C / SIGTERM ask the trainer to stop after the current env step; a second Ctrl-C aborts at once."""
    def handler(signum, _frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.request(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def eval_command(config: RunConfig) -> int:
    import numpy as np
    from algos.evaluate import evaluation_seeds, run_episodes
    from utils.video import save_gif
    if not config.eval_teacher and not config.loaddir:
        raise UsageError("eval needs --loaddir NAME (a trained run) or --eval_teacher (the teacher alone)")
    out_dir = task_dir(config) / (config.savedir or "eval")
    seeds = evaluation_seeds(config.env_seed_list, config.num_eval, np.random.default_rng())
    targets = [("teacher", None)] if config.eval_teacher else [(path.parent.name, path) for path in _checkpoints(config)]
    summaries = {}
    for name, checkpoint in targets:
        policy, frame_stack, what = _eval_policy(config, checkpoint, len(seeds))
        try:
            result = run_episodes(config.task, seeds, policy, frame_stack, num_videos=config.num_videos)
        finally:
            if getattr(policy, "teacher", None) is not None:
                policy.teacher.close()  # the LLM's answer cache and HTTP client
        label = "teacher" if checkpoint is None else ("student" if len(targets) == 1 else f"student_{name}")
        gif = save_gif(result.videos, out_dir / f"{label}.gif")
        summary = {**result.summary(), "evaluated": what, "task": config.task, "env_seeds": seeds,
                   "successes": result.successes, "returns": result.returns, "lengths": result.lengths,
                   "video": str(gif) if gif else None}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{label}_results.json").write_text(json.dumps(summary, indent=2))
        summaries[label] = summary
        print(f"{config.task} | {what} | {len(seeds)} episodes")
        print(f"Mean return: {result.mean_return:.4f}")
        print(f"Mean length: {result.mean_length:.2f}")
        print(f"Success rate: {result.success_rate:.4f}")
        if gif:
            print(f"Video: {gif}")
    if len(summaries) > 1:
        rates = [s["success_rate"] for s in summaries.values()]
        print(f"Mean success rate over {len(rates)} runs: {np.mean(rates):.4f}")
    return 0


def _checkpoints(config: RunConfig) -> list[Path]:
    """The checkpoint of --loaddir, or of each seed folder in it."""
    load_dir = task_dir(config) / config.loaddir
    if not load_dir.is_dir():
        raise UsageError(f"--loaddir {load_dir} does not exist (train with --savedir {config.loaddir} first?)")
    direct = load_dir / config.loadmodel
    if direct.exists():
        return [direct]
    per_seed = sorted(load_dir.glob(f"seed*/{config.loadmodel}"))
    if per_seed:
        return per_seed
    raise UsageError(f"no {config.loadmodel} in {load_dir} (nor in seed*/ subfolders)")


def _eval_policy(config: RunConfig, checkpoint: Path | None, num_envs: int):
    """(policy, frame_stack, description) for the teacher or the student saved in ``checkpoint``."""
    from algos.evaluate import StudentPolicy, TeacherPolicy
    seed = config.seed_list[0]
    if checkpoint is None:
        from planners.factory import build_teacher
        teacher = build_teacher(config, num_envs, seed)
        return (TeacherPolicy(teacher, config.eval_deterministic, seed), config.frame_stack,
                f"teacher alone ({teacher.mode}, {config.planner} planner)")
    import envs
    from algos.model import ActorCritic
    from algos.trainer import resolve_device
    from utils.checkpoint import check_compatible, load_checkpoint
    payload = load_checkpoint(checkpoint)
    meta = payload["meta"]
    model_config = meta.get("model_config", {})
    frame_stack = int(meta.get("frame_stack", 1))
    env = envs.make_env(config.task)
    frame_shape = env.observation_space.shape
    obs_shape = (frame_shape[0] * frame_stack,) + tuple(frame_shape[1:])
    check_compatible(meta, config.task, obs_shape, int(env.action_space.n), checkpoint)
    device = resolve_device(config.device)
    model = ActorCritic(tuple(model_config["obs_shape"]), model_config["num_actions"], model_config["hidden_size"],
                        model_config["recurrent"], model_config["ego_size"])
    model.load_state_dict(payload["model"])
    model.to(device).eval()
    return (StudentPolicy(model, device, config.eval_deterministic, seed), frame_stack,
            f"student {checkpoint} (iteration {meta.get('iteration')}, {meta.get('env_steps'):,} env steps)")


def cache_command(args) -> int:
    """Export an LLM answer cache to the recorded-plans JSON format, or import such a file into a cache."""
    from planners.llm.cache import AnswerCache, CacheKey
    from planners.llm.source import system_prompt
    config = build_config(args.task, {k: getattr(args, k) for k in ("llm_model", "llm_temperature", "llm_samples")
                                      if getattr(args, k, None) is not None})
    with AnswerCache(args.cache) as cache:
        template = CacheKey.build(config.llm_model, system_prompt(config.prompt), "", config.llm_temperature,
                                  config.llm_samples)
        task = config.task.lower()
        if args.action == "export":
            document = cache.export_json(args.json, task, None if args.all_settings else template)
            print(f"exported {len(document[task])} sentences of {config.task} from {args.cache} to {args.json}")
        else:
            if not Path(args.json).is_file():
                raise UsageError(f"no file {args.json} to import")
            table = args.table or config.recorded_table
            count = cache.import_json(args.json, table, template)
            print(f"imported {count} sentences of table '{table}' from {args.json} into {args.cache} "
                  f"(model {config.llm_model}, temperature {config.llm_temperature}, n {config.llm_samples})")
    return 0


def _bench_module(command: str):
    import importlib
    return importlib.import_module({"bench": "bench.throughput", "sweep": "bench.sweep",
                                    "report": "bench.report"}[command])


def main(argv: list[str] | None = None) -> int:
    from envs.registry import TaskUnavailableError, UnknownTaskError
    from planners.llm.cache import CacheCorruptError
    from planners.llm.client import LLMServerError
    from planners.llm.source import LLMGarbageError, LLMOutageError
    from utils.checkpoint import CheckpointError
    bad_input = (UsageError, ConfigError, UnknownTaskError, TaskUnavailableError, CheckpointError,
                 CacheCorruptError, LLMServerError, LLMGarbageError)
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "cache":
            return cache_command(args)
        if args.command in ("bench", "sweep", "report"):
            try:
                return _bench_module(args.command).main(args)
            except ValueError as err:  # bad sweep/report settings
                raise UsageError(str(err)) from None
        config = build_config(args.task or "SimpleDoorKey", cli_values(args))
        if args.command == "train":
            return train_command(config, argv)
        return eval_command(config)
    except bad_input as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except LLMOutageError as err:
        print(f"error: {err}", file=sys.stderr)
        return LLM_OUTAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
