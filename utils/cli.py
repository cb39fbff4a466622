"""Command-line flags generated from the settings tree (:mod:`utils.config`), and the command-line reference.

The subcommands themselves are assembled in ``main.py``; this module only knows settings and argparse.
"""
from __future__ import annotations

import argparse

from utils.config import SETTINGS

SECTION_TITLES = {"run": "run and output", "env": "environments", "student": "student network",
                  "ppo": "PPO", "schedule": "distillation schedule", "teacher": "teacher (LLM4Teach)",
                  "llm": "live LLM teacher (--planner llm)", "eval": "evaluation, logging, checkpoints"}
# The published code's flags, kept as aliases so its README's commands run unchanged.
PAPER_ALIASES = {"soft_planner": ("same as --teacher soft (the published code's flag)", {"teacher": "soft"}),
                 "offline_planner": ("same as --planner recorded (the published code's flag; recorded is "
                                     "already the default)", {"planner": "recorded"})}


def add_config_flags(parser: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    """One flag per setting of ``sections``; unset flags stay None so the task's config file decides."""
    groups = {name: parser.add_argument_group(SECTION_TITLES[name]) for name in sections}
    for spec in SETTINGS.values():
        if spec.section not in sections or not spec.meta["cli"]:
            continue
        default = " ".join(map(str, spec.default)) if spec.is_list else spec.default
        shown = default not in (None, False, "")
        help_text = spec.help + (f" (default: {default})" if shown else "")
        kwargs: dict = {"help": help_text, "default": None}
        if spec.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif spec.is_list:
            kwargs.update(nargs=spec.meta["nargs"], type=int, metavar="N")
        else:
            kwargs["type"] = spec.type
            if spec.meta["choices"]:
                kwargs["choices"] = spec.meta["choices"]
        action = groups[spec.section].add_argument(f"--{spec.flag}", **kwargs)
        action.setting_section = spec.section  # the command-line reference groups flags by section
    if "teacher" in sections:
        for name, (help_text, _) in PAPER_ALIASES.items():
            action = groups["teacher"].add_argument(f"--{name}", action="store_true", help=help_text)
            action.setting_section = "teacher"


def cli_values(args: argparse.Namespace) -> dict:
    """The settings given on the command line, by flag name (None = not given); aliases expanded."""
    given = vars(args)
    values = {name: given[name] for name in SETTINGS if name in given}
    for alias, (_, meaning) in PAPER_ALIASES.items():
        if given.get(alias):
            values.update(meaning)
    return values


def _flag_cell(action: argparse.Action) -> str:
    """How a flag is written in the reference: its names, its ``--no-`` form or its choices."""
    flag = " / ".join(f"`{o}`" for o in action.option_strings if not o.startswith("--no-")) or f"`{action.dest}`"
    if isinstance(action, argparse.BooleanOptionalAction):
        flag += f" (`--no-{action.dest}`)"
    elif action.choices:
        flag += " {" + ",".join(map(str, action.choices)) + "}"
    if not action.option_strings:
        flag += " (positional)"
    return flag


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "/")


def flags_markdown(parser: argparse.ArgumentParser) -> str:
    """The command-line reference (docs/cli.md): every flag once.

    The settings' flags come first, one table per settings section, each row naming the subcommands that
    take the flag (train and eval share most of them); then one table per subcommand of the flags that are
    its own (cache, export, bench, sweep, report).
    """
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    takers: dict[str, list[str]] = {}  # settings flag -> subcommands that take it
    own: dict[str, list[argparse.Action]] = {}
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest == "help":
                continue
            if getattr(action, "setting_section", None):
                takers.setdefault(action.dest, []).append(name)
            else:
                own.setdefault(name, []).append(action)
    first = {}  # one Action per settings flag (the first subcommand's), in declaration order
    for sub in subparsers.choices.values():
        for action in sub._actions:
            if getattr(action, "setting_section", None):
                first.setdefault(action.dest, action)
    lines = []
    for section, title in SECTION_TITLES.items():
        rows = [a for a in first.values() if a.setting_section == section]
        if not rows:
            continue
        lines += [f"### {title} (`{section}`)", "", "| flag | subcommands | meaning |", "|---|---|---|"]
        lines += [f"| {_flag_cell(a)} | {', '.join(takers[a.dest])} | {_cell(a.help)} |" for a in rows]
        lines.append("")
    for name, actions in own.items():
        lines += [f"### `main.py {name}`", "", "| flag | meaning |", "|---|---|"]
        lines += [f"| {_flag_cell(a)} | {_cell(a.help)} |" for a in actions]
        lines.append("")
    return "\n".join(lines)
