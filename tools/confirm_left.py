"""The runs of a sweep file still to train, one ``task method seed`` line each, for tools/confirm_sweep.sh.

A run is done when the sweep's index in this checkout's log lists it, or when a committed report of the sweep
(``--archive``, e.g. docs/results/confirm) holds it: run folders go with the machine that trained them, and
``main.py report --archive`` reports such runs from the committed CSVs. The order is the confirmation's: the
teacher-guided methods task by task, then the baselines at 5x, then the long baselines (cells), so the paper's
claims table fills first.

    python -m tools.confirm_left --config configs/sweeps/confirm.yaml --logdir log --archive docs/results/confirm
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from bench.sweep_plan import BASELINES, load_plan_file, make_specs, sweep_dir


def _done(path: Path) -> set[tuple[str, str, int]]:
    """(task, method, seed) of every row of a runs.csv, empty when there is no such file."""
    if not path.exists():
        return set()
    return {(r["task"], r["method"], int(r["seed"])) for r in csv.DictReader(path.open())}


def left_runs(config: str, logdir: str, archives: list[str]) -> list[tuple[str, str, int]]:
    """The (task, method, seed) of ``config``'s runs that neither the log's index nor an archive holds."""
    name, plan = load_plan_file(config)
    done = _done(sweep_dir(logdir, name or "sweep") / "runs.csv")
    for folder in archives:
        done |= _done(Path(folder) / "runs.csv")
    long_methods = {c.method for c in plan.cells if c.budget_factor}  # cells with a budget of their own
    tasks = list(plan.tasks)

    def part(spec) -> tuple[int, int]:
        kind = 0 if spec.method not in BASELINES else 2 if spec.method in long_methods else 1
        return kind, tasks.index(spec.task)

    specs = sorted(make_specs(plan, "http://127.0.0.1:1"), key=part)  # stable: the plan's order within a part
    return [(s.task, s.method, s.seed) for s in specs if (s.task, s.method, s.seed) not in done]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the sweep file")
    parser.add_argument("--logdir", default="log", help="the log holding <logdir>/sweeps/<name>/runs.csv")
    parser.add_argument("--archive", nargs="*", default=[], metavar="DIR",
                        help="committed report folders whose runs.csv rows count as done")
    args = parser.parse_args(argv)
    try:
        for task, method, seed in left_runs(args.config, args.logdir, args.archive):
            print(task, method, seed)
    except (OSError, ValueError, KeyError) as err:
        print(f"confirm_left: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
