"""A published report read back as runs: what ``main.py report --archive DIR`` adds to a sweep's own runs.

Run folders live under ``log/``, which git ignores and a new machine does not have; a report folder committed
under ``docs/`` keeps what the report needs of every run: ``runs.csv`` (budget, held-out counts, commit),
``curves.csv`` (every training-time evaluation), ``teacher_heldout.csv`` (each teacher alone) and
``sweep.json`` (the sweep's plan and machine, which rebuild an archived run's settings). Reading them
back lets a sweep that spans machines be reported whole: the runs of the archive that the sweep's index lacks
are taken from it, as if their folders were still there. The same reading pools another sweep's runs with a
sweep's own (``main.py report --pool DIR``), where a run in both is refused instead of replaced.

This module reads; :mod:`bench.report` writes (and imports it, never the other way round).
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.claims import steps_to_threshold

RUN_COLUMNS = ("task", "method", "seed", "budget", "env_steps_to_0.9", "heldout_episodes", "heldout_successes",
               "commit")
CURVE_COLUMNS = ("task", "method", "seed", "env_steps", "success_rate")


def _rows(path: Path, columns: tuple) -> list[dict]:
    if not path.exists():
        raise ValueError(f"archive file {path} is missing (an archive is a folder written by `main.py report`)")
    rows = list(csv.DictReader(path.open()))
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}: was it written by an older report? "
                         "Add them or rerun the report from the run folders")
    return rows


def _final_eval(row: dict) -> dict | None:
    """The held-out result as a run's summary.json holds it (its Wilson interval recomputed from the counts)."""
    if row["heldout_episodes"] in ("", None):
        return None
    from utils.intervals import wilson_interval
    episodes, successes = int(row["heldout_episodes"]), int(row["heldout_successes"])
    return {"episodes": episodes, "successes": successes, "success_rate": successes / episodes,
            "interval": wilson_interval(successes, episodes).to_json()}


def read_archive(folder: Path) -> tuple[list[dict], dict]:
    """(runs, teacher-alone rows by (task, method)) of the report written into ``folder``.

    Each run has the fields :func:`bench.report.read_runs` gives a run, with an empty ``run_dir``; its steps
    to 0.9 are recomputed from its curve and must equal the archived value, so a hand-edited or truncated
    archive is refused instead of reported.
    """
    folder = Path(folder)
    curves = defaultdict(list)
    for row in _rows(folder / "curves.csv", CURVE_COLUMNS):
        curves[(row["task"], row["method"], int(row["seed"]))].append(
            (float(row["env_steps"]), float(row["success_rate"])))
    runs = []
    for row in _rows(folder / "runs.csv", RUN_COLUMNS):
        key = (row["task"], row["method"], int(row["seed"]))
        if not curves.get(key):
            raise ValueError(f"{folder / 'curves.csv'} has no evaluation of {'/'.join(map(str, key))}")
        steps, success = (np.array(column) for column in zip(*sorted(curves[key])))
        budget = float(row["budget"])
        value, reached = steps_to_threshold(steps, success, budget)
        if int(value) != int(row["env_steps_to_0.9"]):
            raise ValueError(f"{folder}: {'/'.join(map(str, key))} reaches 0.9 at {int(value)} env steps by its "
                             f"curve but at {row['env_steps_to_0.9']} by runs.csv: the archive is inconsistent")
        final = _final_eval(row)
        runs.append({"task": key[0], "method": key[1], "seed": key[2], "run_dir": "", "commit": row["commit"],
                     "status": "done", "steps": steps, "success": success, "budget": budget, "steps_to": value,
                     "reached": reached, "final_eval": final, "record": list(zip(steps, success)),
                     "heldout": final["success_rate"] if final else None})
    return runs, read_teacher_rows(folder / "teacher_heldout.csv")


def read_archive_settings(folder: Path) -> dict:
    """The sweep's settings (its sweep.json: plan, machine, commits) as the report copied them into ``folder``;
    empty for a folder written before reports kept them."""
    path = Path(folder) / "sweep.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_teacher_rows(path: Path) -> dict:
    """(task, method) -> the rows of each teacher alone in a teacher_heldout.csv (none when it is absent)."""
    teachers = defaultdict(list)
    if path.exists():
        for r in csv.DictReader(path.open()):
            teachers[(r["task"], r["method"])].append(r)
    return dict(teachers)


def merge(runs: list[dict], teachers: dict, archived_runs: list[dict], archived_teachers: dict,
          refuse_overlap: str | None = None) -> tuple[list[dict], dict]:
    """The sweep's own runs and teacher rows, plus those of the archive that it does not have (by task,
    method and seed): a run or teacher measured again here wins over its archived copy. With
    ``refuse_overlap`` (the archive's name) a run or teacher row in both is an error instead: pooled sweeps
    must have disjoint seeds, or one seed would count twice."""
    have = {(r["task"], r["method"], r["seed"]) for r in runs}
    have_teachers = {(task, method, int(r["seed"])) for (task, method), rows in teachers.items() for r in rows}
    if refuse_overlap:
        both = sorted({(r["task"], r["method"], r["seed"]) for r in archived_runs} & have)
        both += sorted({(task, method, int(r["seed"])) for (task, method), rows in archived_teachers.items()
                        for r in rows} & have_teachers)
        if both:
            shown = ", ".join("/".join(map(str, key)) for key in both[:5]) + (" ..." if len(both) > 5 else "")
            raise ValueError(f"{refuse_overlap} and the sweep both have {shown}: pooled sweeps need disjoint seeds")
    merged_runs = runs + [r for r in archived_runs if (r["task"], r["method"], r["seed"]) not in have]
    merged_teachers = {key: list(rows) for key, rows in teachers.items()}
    for (task, method), rows in archived_teachers.items():
        merged_teachers.setdefault((task, method), []).extend(
            r for r in rows if (task, method, int(r["seed"])) not in have_teachers)
    return merged_runs, merged_teachers
