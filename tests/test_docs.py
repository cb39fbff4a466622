"""The README's flag reference matches the parser, and every flag is documented."""
import re
from pathlib import Path

from main import build_parser
from utils.cli import flags_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_flag_table_is_up_to_date():
    text = README.read_text()
    match = re.search(r"<!-- flags:start -->\n(.*)<!-- flags:end -->", text, re.S)
    assert match, "README lacks the flags markers"
    assert match.group(1).strip() == flags_markdown(build_parser()).strip(), "run: python -m bench.readme_flags"


def test_every_flag_has_help_text():
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and len(action.help) > 10, action.dest


def test_readme_quickstart_commands_exist():
    text = README.read_text()
    assert "pip install -r requirements.txt && .venv/bin/python main.py train --task SimpleDoorKey --savedir train" in text
    assert ("pip install -r requirements-dev.txt && .venv/bin/pip install --no-deps -r requirements-habitat-test.txt"
            " && .venv/bin/python -m pytest -q -n 2") in text


def test_ci_installs_what_the_readme_test_command_installs():
    """.ci/run's install lines name the README test command's requirement files, with the same --no-deps."""
    ci = (README.parent / ".ci" / "run").read_text()
    installs = [line.split("pip install", 1)[1].split() for line in ci.splitlines()
                if "pip install" in line and not line.lstrip().startswith("#")]
    files = {(args[i + 1], "--no-deps" in args) for args in installs for i, a in enumerate(args) if a == "-r"}
    assert ("requirements-dev.txt", False) in files and ("requirements-habitat-test.txt", True) in files
