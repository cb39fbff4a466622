"""Command-line parser, generated from :class:`utils.config.RunConfig` so that every setting is a flag."""
from __future__ import annotations

import argparse
import dataclasses
import typing

from utils.config import CONFIG_DIR, RunConfig, config_fields, read_yaml

GROUP_TITLES = {"run": "run and output", "task": "task", "training": "student and PPO",
                "teacher": "teacher (LLM4Teach)", "evaluation": "evaluation, logging, checkpoints"}
EVAL_GROUPS = ("run", "task", "teacher", "evaluation")


def _scalar_type(f: dataclasses.Field):
    hint = typing.get_type_hints(RunConfig)[f.name]
    for candidate in (bool, int, float, str):
        if candidate is hint or candidate in typing.get_args(hint):
            return candidate
    return str


def add_config_flags(parser: argparse.ArgumentParser, groups: tuple[str, ...]) -> None:
    """Add one flag per RunConfig field in ``groups``; unset flags stay None so config files decide."""
    defaults = read_yaml(CONFIG_DIR / "defaults.yaml")
    sections = {name: parser.add_argument_group(GROUP_TITLES[name]) for name in groups}
    for f in config_fields():
        meta = f.metadata
        if meta.get("group") not in groups or meta.get("cli") is False:
            continue
        help_text = meta.get("help", "")
        if f.name in defaults:
            help_text += f" (default: {defaults[f.name]})"
        elif f.default not in (None, dataclasses.MISSING) and not meta.get("flag"):
            help_text += f" (default: {f.default})"
        elif f.default_factory is not dataclasses.MISSING:
            help_text += f" (default: {' '.join(map(str, f.default_factory()))})"
        kwargs: dict = {"help": help_text, "default": None}
        if meta.get("flag"):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif "nargs" in meta:
            kwargs.update(nargs=meta["nargs"], type=meta["type"], metavar="N")
        else:
            kwargs["type"] = _scalar_type(f)
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
        sections[meta["group"]].add_argument(f"--{f.name}", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The ``main.py`` parser with its ``train`` and ``eval`` subcommands."""
    parser = argparse.ArgumentParser(
        prog="main.py", description="LLM4Teach: train a small RL student with an LLM teacher (Zhou et al., IJCAI 2024).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,cache,export,bench,sweep,report}")
    train = commands.add_parser("train", help="train a student (PPO + distillation from the teacher)",
                                description="Train a student; writes <logdir>/ppo/<task>/<savedir>/ with "
                                            "acmodel.pt, config.json, eval_curve.csv and TensorBoard events.")
    add_config_flags(train, tuple(GROUP_TITLES))
    evaluate = commands.add_parser("eval", help="evaluate a trained student, or the teacher alone",
                                   description="Evaluate a student (--loaddir) or the teacher alone "
                                               "(--eval_teacher); prints mean return, mean length and success "
                                               "rate and writes results JSON and a GIF into --savedir.")
    add_config_flags(evaluate, EVAL_GROUPS)
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
    from bench import throughput
    bench = commands.add_parser("bench", help="throughput: env, teacher and training loop steps/s",
                                description=throughput.__doc__.split("\n\n")[0])
    throughput.add_arguments(bench)
    from bench import latency
    latency.add_arguments(bench)
    from bench import sweep
    sweep_parser = commands.add_parser("sweep", help="tasks x methods x seeds under a step budget, in parallel",
                                       description=sweep.__doc__.split("\n\n")[0])
    sweep.add_arguments(sweep_parser)
    from bench import report
    report_parser = commands.add_parser("report", help="figures and tables from a sweep",
                                        description=report.__doc__.split("\n\n")[0])
    report.add_arguments(report_parser)
    return parser


def cli_values(args: argparse.Namespace) -> dict:
    """The config fields given on the command line (None = not given)."""
    names = {f.name for f in config_fields()}
    return {k: v for k, v in vars(args).items() if k in names}


def flags_markdown() -> str:
    """The README's flag reference: one table per subcommand, generated from the parser."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = []
    for name, sub in subparsers.choices.items():
        lines += [f"#### `main.py {name}`", "", "| flag | meaning |", "|---|---|"]
        for action in sub._actions:
            if not action.option_strings or "--help" in action.option_strings:
                continue
            flag = " / ".join(f"`{o}`" for o in action.option_strings if not o.startswith("--no-")) or action.dest
            if isinstance(action, argparse.BooleanOptionalAction):
                flag += f" (`--no-{action.dest}`)"
            elif action.choices:
                flag += " {" + ",".join(map(str, action.choices)) + "}"
            lines.append(f"| {flag} | {(action.help or '').replace('|', '/')} |")
        for action in sub._actions:
            if not action.option_strings and action.dest != "help":
                lines.append(f"| `{action.dest}` (positional) {{{','.join(action.choices)}}} | {action.help} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(flags_markdown())
