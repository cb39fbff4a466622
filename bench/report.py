"""Report of a sweep: learning curves with 95% bootstrap bands, and steps-to-threshold tables.

    python main.py report --name paper --out docs/results

Reads ``<logdir>/sweeps/<name>/runs.csv`` (written by ``main.py sweep``), every run's ``eval_curve.csv`` and
``teacher.csv``; writes into ``--out``:

* ``<task>.png``: evaluation success rate against env steps, per method the mean over seeds with a 95%
  percentile-bootstrap band (``scipy.stats.bootstrap``), and the teachers' own success as dashed lines;
* ``curves.csv``: every evaluation point of every run (task, method, seed, env steps, success rate);
* ``results.md`` and ``summary.csv``: per task and method, env steps to evaluation success >= 0.9 (median and
  interquartile mean over seeds, with 95% bootstrap intervals), final success, and teacher-alone success.

A run that never reaches the threshold is counted, not dropped: its steps-to-threshold is the budget (a
lower bound), and the table says how many runs reached it; a statistic that such runs can change is shown
with ``>=``.
"""
from __future__ import annotations

import argparse
import csv
import json
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

THRESHOLD = 0.9
METHOD_ORDER = ("ppo", "hard", "soft", "oracle", "llm")


def read_runs(logdir: str, name: str) -> tuple[list[dict], dict, dict]:
    """(runs with their curves, teacher-alone success {(task, method): rate}, sweep settings)."""
    from bench.sweep import sweep_dir
    folder = sweep_dir(logdir, name)
    index = folder / "runs.csv"
    if not index.exists():
        raise ValueError(f"no sweep index at {index}: run `main.py sweep --name {name}` first")
    runs = []
    for row in csv.DictReader(index.open()):
        curve_path = Path(row["run_dir"]) / "eval_curve.csv"
        if not curve_path.exists():
            raise ValueError(f"{curve_path} is missing (was the run folder moved?)")
        curve = list(csv.DictReader(curve_path.open()))
        runs.append({**row, "seed": int(row["seed"]),
                     "steps": np.array([float(r["env_steps"]) for r in curve]),
                     "success": np.array([float(r["success_rate"]) for r in curve])})
    teachers = {}
    if (folder / "teacher.csv").exists():
        teachers = {(r["task"], r["method"]): float(r["success_rate"]) for r in csv.DictReader((folder / "teacher.csv").open())}
    settings = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").exists() else {}
    return runs, teachers, settings


def steps_to_threshold(steps: np.ndarray, success: np.ndarray, budget: float) -> tuple[float, bool]:
    """First env-step count with success >= threshold; (budget, False) if never reached."""
    reached = np.flatnonzero(success >= THRESHOLD)
    return (float(steps[reached[0]]), True) if len(reached) else (float(budget), False)


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50%."""
    from scipy.stats import trim_mean
    return trim_mean(values, 0.25, axis=axis)


def bootstrap_interval(values: np.ndarray, statistic, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of ``statistic`` over ``values`` (degenerate samples: a point)."""
    from scipy.stats import bootstrap
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.ptp(values) == 0:
        point = float(statistic(values))
        return point, point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap((values,), statistic, confidence_level=0.95, n_resamples=2000, method="percentile",
                           random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_curve(runs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Common step grid, mean success over runs and its 95% bootstrap band."""
    grid = np.unique(np.concatenate([r["steps"] for r in runs]))
    curves = np.stack([np.interp(grid, r["steps"], r["success"]) for r in runs])
    mean = curves.mean(0)
    if len(runs) < 2:
        return grid, mean, mean, mean
    from scipy.stats import bootstrap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap((curves,), np.mean, axis=0, confidence_level=0.95, n_resamples=2000,
                           method="percentile", random_state=np.random.default_rng(0))
    low = np.where(np.isnan(result.confidence_interval.low), mean, result.confidence_interval.low)
    high = np.where(np.isnan(result.confidence_interval.high), mean, result.confidence_interval.high)
    return grid, mean, low, high


def summarise(runs: list[dict], teachers: dict, budget: float | None = None) -> list[dict]:
    """One row per (task, method) with the table's statistics.

    ``budget`` is the step count given to runs that never reach the threshold; by default the largest
    env-step count of the task's runs (sweeps of different tasks may have different budgets).
    """
    groups = defaultdict(list)
    for run in runs:
        groups[(run["task"], run["method"])].append(run)
    rows = []
    task_budget = {}
    for run in runs:
        task_budget[run["task"]] = max(task_budget.get(run["task"], 0.0), float(run["steps"].max()))
    for (task, method), group in sorted(groups.items(), key=lambda kv: (kv[0][0], _method_rank(kv[0][1]))):
        limit = budget if budget is not None else task_budget[task]
        hits = [steps_to_threshold(r["steps"], r["success"], limit) for r in group]
        values = np.array([v for v, _ in hits])
        reached = sum(ok for _, ok in hits)
        censored = reached < len(group)
        finals = np.array([r["success"][-1] for r in group])
        rows.append({
            "task": task, "method": method, "runs": len(group), "reached": reached, "budget": limit,
            "median_steps": float(np.median(values)), "median_ci": bootstrap_interval(values, np.median),
            "iqm_steps": float(iqm(values)), "iqm_ci": bootstrap_interval(values, iqm),
            "censored": censored, "final_success": float(finals.mean()),
            "final_ci": bootstrap_interval(finals, np.mean),
            "teacher_success": teachers.get((task, method)),
        })
    return rows


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _steps(value: float, censored: bool) -> str:
    return f"{'>=' if censored else ''}{value / 1000:,.1f}k"


def markdown_table(rows: list[dict], task: str) -> str:
    lines = ["| method | runs reaching 0.9 | env steps to 0.9: median [95% CI] | IQM [95% CI] | "
             "final success [95% CI] | teacher alone |", "|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["task"] == task):
        med_low, med_high = r["median_ci"]
        iqm_low, iqm_high = r["iqm_ci"]
        final_low, final_high = r["final_ci"]
        censored_median = r["reached"] <= r["runs"] // 2 and r["censored"]
        teacher = f"{r['teacher_success']:.2f}" if r["teacher_success"] is not None else "-"
        lines.append(
            f"| {r['method']} | {r['reached']}/{r['runs']} | {_steps(r['median_steps'], censored_median)} "
            f"[{_steps(med_low, False)}, {_steps(med_high, r['censored'])}] | {_steps(r['iqm_steps'], r['censored'])} "
            f"[{_steps(iqm_low, False)}, {_steps(iqm_high, r['censored'])}] | {r['final_success']:.2f} "
            f"[{final_low:.2f}, {final_high:.2f}] | {teacher} |")
    return "\n".join(lines)


def _run_settings(runs: list[dict], task: str) -> str:
    """The settings that shape the curves, read from one run's config.json."""
    run = next(r for r in runs if r["task"] == task and r["method"] != "ppo")
    from utils.config import RunConfig
    config = RunConfig.from_json(json.loads((Path(run["run_dir"]) / "config.json").read_text())).flat()
    return (f"{config['num_envs']} envs x {config['num_steps']} steps per iteration, evaluation every "
            f"{config['eval_interval']} iterations on {config['num_eval']} fixed layouts (sampled actions), "
            f"distillation {config['distill_initial']} - {config['distill_decay']}/update to "
            f"{config['distill_floor']}, off after {config['distill_off_after']} updates")


def plot_task(runs: list[dict], teachers: dict, task: str, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    methods = sorted({r["method"] for r in runs if r["task"] == task}, key=_method_rank)
    for index, method in enumerate(methods):
        group = [r for r in runs if r["task"] == task and r["method"] == method]
        grid, mean, low, high = mean_curve(group)
        color = f"C{index}"
        axes.plot(grid, mean, color=color, label=f"{method} ({len(group)} seeds)")
        axes.fill_between(grid, low, high, color=color, alpha=0.2, linewidth=0)
        if teachers.get((task, method)) is not None:
            axes.axhline(teachers[(task, method)], color=color, linestyle="--", linewidth=1)
    axes.axhline(THRESHOLD, color="grey", linestyle=":", linewidth=1)
    axes.set(title=f"{task}: evaluation success (dashed: teacher alone)", xlabel="env steps",
             ylabel="success rate", ylim=(-0.02, 1.02))
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_report(logdir: str, name: str, out: Path) -> Path:
    """Figures, results.md and summary.csv for sweep ``name``; returns the markdown path."""
    runs, teachers, settings = read_runs(logdir, name)
    if not runs:
        raise ValueError(f"sweep '{name}' has no finished runs yet")
    rows = summarise(runs, teachers)
    out.mkdir(parents=True, exist_ok=True)
    sections = [f"# Sweep '{name}'", "", f"Machine: {json.dumps(settings.get('machine', {}))}.", ""]
    for task in sorted({r["task"] for r in runs}):
        figure = plot_task(runs, teachers, task, out / f"{task.lower()}.png")
        budget = next(r["budget"] for r in rows if r["task"] == task)
        sections += [f"## {task}", "", f"Budget {budget:,.0f} env steps per run; {_run_settings(runs, task)}.", "",
                     f"![{task}]({figure.name})", "", markdown_table(rows, task), ""]
    markdown = out / "results.md"
    markdown.write_text("\n".join(sections))
    with (out / "curves.csv").open("w", newline="") as handle:  # every evaluation point of every run
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "seed", "env_steps", "success_rate"])
        for run in sorted(runs, key=lambda r: (r["task"], _method_rank(r["method"]), r["seed"])):
            writer.writerows([run["task"], run["method"], run["seed"], int(x), f"{y:.4f}"]
                             for x, y in zip(run["steps"], run["success"]))
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "runs", "reached", "median_steps", "median_low", "median_high",
                         "iqm_steps", "iqm_low", "iqm_high", "final_success", "final_low", "final_high",
                         "teacher_success"])
        for r in rows:
            writer.writerow([r["task"], r["method"], r["runs"], r["reached"], r["median_steps"], *r["median_ci"],
                             r["iqm_steps"], *r["iqm_ci"], f"{r['final_success']:.4f}", *r["final_ci"],
                             r["teacher_success"]])
    return markdown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="sweep", help="sweep to report on")
    parser.add_argument("--logdir", default="log", help="root of all run folders")
    parser.add_argument("--out", default=None, help="output folder (default: <logdir>/sweeps/<name>/report)")


def main(args: argparse.Namespace) -> int:
    from bench.sweep import sweep_dir
    out = Path(args.out) if args.out else sweep_dir(args.logdir, args.name) / "report"
    markdown = write_report(args.logdir, args.name, out)
    print(markdown.read_text())
    print(f"written: {markdown} and the figures beside it")
    return 0
