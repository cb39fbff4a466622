"""Command-line flags generated from the settings tree (:mod:`utils.config`), and the README's flag tables.

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
        groups[spec.section].add_argument(f"--{spec.flag}", **kwargs)
    if "teacher" in sections:
        for name, (help_text, _) in PAPER_ALIASES.items():
            groups["teacher"].add_argument(f"--{name}", action="store_true", help=help_text)


def cli_values(args: argparse.Namespace) -> dict:
    """The settings given on the command line, by flag name (None = not given); aliases expanded."""
    given = vars(args)
    values = {name: given[name] for name in SETTINGS if name in given}
    for alias, (_, meaning) in PAPER_ALIASES.items():
        if given.get(alias):
            values.update(meaning)
    return values


def flags_markdown(parser: argparse.ArgumentParser) -> str:
    """The README's flag reference: one table per subcommand of ``parser``."""
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
