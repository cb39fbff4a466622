"""Rewrite the README's flag tables (between the ``flags:start``/``flags:end`` markers) from the parser.

Run after adding or changing a setting: ``python -m bench.readme_flags``.
"""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    from main import build_parser
    from utils.cli import flags_markdown
    tables = flags_markdown(build_parser()).strip()
    text = README.read_text()
    new = re.sub(r"(<!-- flags:start -->\n).*(<!-- flags:end -->)", lambda m: m.group(1) + tables + "\n" + m.group(2),
                 text, flags=re.S)
    README.write_text(new)
    print("README flag tables " + ("updated" if new != text else "already up to date"))


if __name__ == "__main__":
    main()
