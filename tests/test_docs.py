"""The documentation says what the code does: the CLI reference is generated, every command shown parses, every
link resolves, and CI runs exactly the README's test command."""
import re
import shlex
from pathlib import Path

import pytest

from main import build_parser
from tools.cli_reference import REFERENCE, reference_text

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"
PAGES = [README, *sorted((PROJECT / "docs").glob("*.md"))]
CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(page: Path, language: str = "bash") -> list[str]:
    return [body for lang, body in CODE_BLOCK.findall(page.read_text()) if lang == language]


def shell_commands(block: str) -> list[list[str]]:
    """The simple commands of a shell block: continuations joined, comments dropped, split at && ; | &."""
    text = block.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in words + ["&&"]:
            if word in ("&&", ";", "|", "&", "||"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
    return commands


def main_py_arguments(command: list[str]) -> list[str] | None:
    """The arguments after ``main.py`` in ``command``, or None when it does not run main.py."""
    for i, word in enumerate(command):
        if word.endswith("main.py"):
            return command[i + 1:]
    return None


def readme_test_command() -> str:
    """The README's test command: the one line of its bash blocks that runs pytest."""
    lines = [line for block in code_blocks(README) for line in block.splitlines() if "pytest" in line]
    assert len(lines) == 1, f"the README should show one test command, found {lines}"
    return lines[0].strip()


def test_the_cli_reference_is_up_to_date():
    assert REFERENCE.read_text() == reference_text(), "run: python -m tools.cli_reference"


def test_the_cli_reference_lists_every_flag_once():
    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    text = REFERENCE.read_text()
    settings_part, _, own_part = text.partition("## Flags of one subcommand")
    rows = re.findall(r"^\| `(--[a-z_]+)`", settings_part, re.M)
    assert len(rows) == len(set(rows)), "a settings flag is listed twice"
    for name, sub in subparsers.items():
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            flag = next(o for o in action.option_strings if o.startswith("--") and not o.startswith("--no-"))
            if getattr(action, "setting_section", None):
                assert flag in rows, f"{flag} ({name}) is missing from the settings tables"
            else:
                section = own_part.split(f"### `main.py {name}`", 1)[1].split("### `main.py", 1)[0]
                assert f"`{flag}`" in section, f"{flag} of {name} is missing from its table"


def test_every_flag_has_help_text():
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and len(action.help) > 10, action.dest


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_main_py_command_shown_names_real_subcommands_and_flags(page):
    parser = build_parser()
    shown = [args for block in code_blocks(page) for command in shell_commands(block)
             if (args := main_py_arguments(command)) is not None]
    if page == README:
        assert len(shown) >= 5, "the README shows the train, eval, serve, sweep and report commands"
    for args in shown:
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{page.name}: `main.py {' '.join(args)}` does not parse with main.py's parser")


def test_a_command_with_an_unknown_flag_is_caught():
    """The check above can fail: a misspelt flag does not parse."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--task", "SimpleDoorKey", "--savedir", "x", "--totl_steps", "5"])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in heading_anchors(linked), f"{page.name} links to {target}: no such heading"


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``: lower case, punctuation dropped, spaces as dashes."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def test_ci_runs_exactly_the_readme_test_command():
    """.ci/run is the README's test command and nothing else: no extra install, no other test run."""
    ci = (PROJECT / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in ci if line.strip() and not line.lstrip().startswith("#")]
    plumbing = {"set -euo pipefail", 'cd "$(dirname "$0")/.."'}
    assert [c for c in commands if c not in plumbing] == [readme_test_command()]


def test_the_test_command_installs_everything_the_suite_imports():
    """What the suite needs beyond the runtime is in the files the test command installs."""
    command = readme_test_command()
    installed = set(re.findall(r"-r (\S+)", command))
    assert installed == {"requirements-dev.txt", "requirements-habitat-test.txt"}
    dev = (PROJECT / "requirements-dev.txt").read_text()
    for needed in ("requirements-sb3.txt", "requirements-ray.txt", "requirements-llm.txt"):
        assert f"-r {needed}" in dev, f"requirements-dev.txt must include {needed}"
    assert re.search(r"^attrs==", (PROJECT / "requirements-habitat-test.txt").read_text(), re.M)
