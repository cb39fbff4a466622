"""Report of a sweep: learning curves, per-task tables, an aggregate across tasks, and the paper's claims.

    python main.py report --name final --out docs/results

Reads ``<logdir>/sweeps/<name>/runs.csv`` (written by ``main.py sweep``), every run's ``eval_curve.csv`` and
``summary.json``, and ``teacher_heldout.csv``; writes into ``--out``:

* ``<task>.png``: evaluation success rate against env steps, per method the mean over seeds with a band
  (min-max over seeds, or a 95% percentile bootstrap of the mean with at least 10 seeds; the legend says
  which), and each teacher alone on the held-out layouts as a dashed line;
* ``curves.csv``: every evaluation point of every run;
* ``runs.csv``: per run, env steps to 0.9 (or its budget when never reached), the held-out final success with
  its 95% Wilson interval, the training-time final success and the commit that trained it;
* ``teacher_heldout.csv``: each teacher alone on the held-out layouts, per seed (as the sweep measured it);
* ``sweep.json``: the sweep's plan, machine and commits, and every way its sweep file was run (the report
  lists deviations from the file as first run); an archived run's settings are rebuilt from it;
* ``summary.csv`` and ``results.md``: per task and method, the per-seed values, their median and min-max
  (a bootstrap only with enough seeds, see :data:`bench.stats.MIN_BOOTSTRAP_SEEDS`), the teacher alone; the
  IQM of held-out success across tasks with a stratified bootstrap interval (rliable's style) where every
  task has enough runs for one; the budget rule checked against the runs; the claims tables of
  :mod:`bench.claims` (the paper's, then the other baselines' and the live LLM teacher's where the sweep
  has them, each its own Holm family) and the wrong-teacher control.

With ``--archive DIR`` (a folder this report wrote earlier, e.g. ``docs/results/final``) the runs and
teacher rows of DIR that the sweep's own index lacks are added (:mod:`bench.report_archive`): a sweep whose
run folders were lost with a machine is reported whole from what was committed. With ``--pool DIR`` every run
of DIR (another sweep's report, e.g. the final sweep's seeds 0-4 beside a confirmation sweep's 5-9) is pooled
with the sweep's own, and a (task, method, seed) in both is refused. ``--label`` names what the claims are
(exploratory, confirmatory, pooled) in the title and the claims heading, with the seeds they rest on.
``--beside DIR`` adds every claims table beside the same table computed from DIR's runs, and whether the two
agree (:mod:`bench.beside`): a confirmation beside the exploratory sweep it repeats.

    python main.py report --name final --archive docs/results/final --out docs/results/final --label exploratory
    python main.py report --name confirm --out docs/results/confirm --label confirmatory
    python main.py report --name confirm --archive docs/results/confirm --pool docs/results/final \
        --out docs/results/pooled --label "pooled, not confirmatory"
    python main.py report --name confirm --out docs/results/confirm --label confirmatory \
        --beside docs/results/gemma --beside_label "exploratory, seeds 0-4"

A run that never reaches 0.9 is counted, not dropped: its steps-to-threshold is its budget (a lower bound),
shown with ``>=`` wherever it can change the statistic.
"""
from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench import stats
from bench.beside import ClaimTable, beside_markdown
from bench.claims import (LIVE_LLM, OTHER_BASELINES, PAPER, STEP_METHODS, THRESHOLD, claims_markdown,
                          control_claims, paper_claims, pooled_claims, pooled_markdown, steps_to_threshold)
from bench.report_archive import merge, read_archive, read_archive_settings, read_teacher_rows
from bench.sweep_plan import BASELINES, METHOD_NOTES, spec_of_run, sweep_dir

METHOD_ORDER = ("ppo", "ppo_task", "ppo_long", "sb3_ppo", "hard", "soft", "hard_commit", "hard_safe",
                "hard_safe_step", "soft_safe", "oracle", "adversarial", "llm", "gemma_hard", "gemma_soft")
BASELINE_FACTOR_RULE = 5  # the budget rule: baselines get >= 5x the teacher-guided median steps-to-0.9

__all__ = ["read_runs", "steps_to_threshold", "summarise", "write_report"]


def read_runs(logdir: str, name: str, need_index: bool = True) -> tuple[list[dict], dict, dict]:
    """(runs with their curves and held-out results, teacher-alone rows by (task, method), sweep settings).
    Without ``need_index`` a sweep that has no index yet has no runs, instead of being an error."""
    folder = sweep_dir(logdir, name)
    index = folder / "runs.csv"
    if not index.exists() and need_index:
        raise ValueError(f"no sweep index at {index}: run `main.py sweep --name {name}` first")
    runs = []
    for row in (csv.DictReader(index.open()) if index.exists() else []):
        run_dir = Path(row["run_dir"])
        curve_path = run_dir / "eval_curve.csv"
        if not curve_path.exists():
            raise ValueError(f"{curve_path} is missing (was the run folder moved?)")
        curve = list(csv.DictReader(curve_path.open()))
        if not curve:
            raise ValueError(f"{curve_path} has no evaluation: rerun with evaluations on (eval_interval > 0)")
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
        steps = np.array([float(r["env_steps"]) for r in curve])
        success = np.array([float(r["success_rate"]) for r in curve])
        budget = float(row["env_steps"]) if row.get("env_steps") else float(steps.max())
        value, reached = steps_to_threshold(steps, success, budget)
        final = summary.get("final_eval") or None
        # Everything the evaluations recorded except their wall-clock time: equal across commits iff the runs are.
        record = [tuple(v for k, v in r.items() if k != "wall_seconds") for r in curve]
        runs.append({**row, "seed": int(row["seed"]), "steps": steps, "success": success, "budget": budget,
                     "steps_to": value, "reached": reached, "final_eval": final, "record": record,
                     "heldout": final["success_rate"] if final else None})
    settings = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").exists() else {}
    return runs, read_teacher_rows(folder / "teacher_heldout.csv"), settings


def teacher_rates(teachers: dict) -> dict:
    """(task, method) -> per-seed held-out success of the teacher alone."""
    return {key: [float(r["success_rate"]) for r in rows] for key, rows in teachers.items()}


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def summarise(runs: list[dict], teachers: dict | None = None) -> list[dict]:
    """One row per (task, method): per-seed values and what summarises them (each interval with its kind)."""
    rates = teacher_rates(teachers or {})
    groups = defaultdict(list)
    for run in runs:
        groups[(run["task"], run["method"])].append(run)
    rows = []
    for (task, method), group in sorted(groups.items(), key=lambda kv: (kv[0][0], _method_rank(kv[0][1]))):
        group = sorted(group, key=lambda r: r["seed"])
        values = np.array([r["steps_to"] for r in group])
        reached = sum(r["reached"] for r in group)
        never = [not r["reached"] for r in group]
        marks = stats.censoring_marks(lambda v: [np.median(v), *stats.ends(stats.seed_interval(v, np.median))],
                                      values, never)
        heldout = np.array([r["heldout"] for r in group if r["heldout"] is not None])
        teacher = rates.get((task, method), [])
        rows.append({
            "task": task, "method": method, "runs": len(group), "seeds": [r["seed"] for r in group],
            "reached": reached, "budget": max(r["budget"] for r in group), "steps": values.tolist(),
            "reached_flags": [r["reached"] for r in group],
            "median_steps": float(np.median(values)), "median_censored": bool(marks[0]), "steps_marks": marks,
            "steps_interval": stats.seed_interval(values, np.median), "censored": reached < len(group),
            "heldout": heldout.tolist(),
            "heldout_mean": float(heldout.mean()) if len(heldout) else None,
            "heldout_interval": stats.seed_interval(heldout) if len(heldout) else None,
            "train_final": float(np.mean([r["success"][-1] for r in group])),
            "teacher": teacher, "teacher_mean": float(np.mean(teacher)) if teacher else None,
        })
    return rows


def _steps(value: float, censored: bool | str = False) -> str:
    """Env steps in thousands; ``censored`` True gives ``>=``, a string is the mark itself."""
    mark = censored if isinstance(censored, str) else ">=" if censored else ""
    return f"{mark}{value / 1000:,.1f}k"


def markdown_table(rows: list[dict], task: str) -> str:
    lines = ["| method | runs reaching 0.9 | env steps to 0.9: median [min-max or bootstrap] | per seed | "
             "held-out success: mean [min-max or bootstrap] | per seed | teacher alone, held-out (per seed) |",
             "|---|---|---|---|---|---|---|"]
    kinds = set()
    for r in (r for r in rows if r["task"] == task):
        interval = r["steps_interval"]
        kinds.add(interval.kind)
        per_seed = ", ".join(_steps(v, not ok) for v, ok in zip(r["steps"], r["reached_flags"]))
        median_mark, low_mark, high_mark = r["steps_marks"]
        steps = f"{_steps(r['median_steps'], median_mark)} [{_steps(interval.low, low_mark)}, " \
                f"{_steps(interval.high, high_mark)}]"
        if r["heldout_mean"] is not None:
            kinds.add(r["heldout_interval"].kind)
            heldout = f"{r['heldout_mean']:.3f} {r['heldout_interval'].format(3)}"
            heldout_seeds = ", ".join(f"{v:.3f}" for v in r["heldout"])
        else:
            heldout, heldout_seeds = "-", "-"
        teacher = (f"{r['teacher_mean']:.3f} ({', '.join(f'{v:.3f}' for v in r['teacher'])})"
                   if r["teacher"] else "-")
        lines.append(f"| {r['method']} | {r['reached']}/{r['runs']} | {steps} | {per_seed} | {heldout} | "
                     f"{heldout_seeds} | {teacher} |")
    lines += ["", "Intervals: " + "; ".join(sorted(kinds)) + f" (a percentile bootstrap needs >= "
              f"{stats.MIN_BOOTSTRAP_SEEDS} seeds). `>=`: a run that never reached 0.9 counts as its budget, which "
              "makes each number it enters a lower bound."]
    return "\n".join(lines)


def aggregate_table(runs: list[dict]) -> str:
    """IQM of held-out success across tasks per method, with a stratified bootstrap interval."""
    tasks = sorted({r["task"] for r in runs})
    lines = ["| method | tasks | runs | IQM of held-out success | interval |", "|---|---|---|---|---|"]
    for method in sorted({r["method"] for r in runs}, key=_method_rank):
        by_task = {t: [r["heldout"] for r in runs if r["task"] == t and r["method"] == method
                       and r["heldout"] is not None] for t in tasks}
        if not all(by_task.values()):
            continue  # the aggregate needs every task
        point, interval = stats.stratified_bootstrap(by_task)
        fewest = min(map(len, by_task.values()))
        text = (f"{interval.format(3)} ({interval.kind})" if interval else
                f"none: a stratified bootstrap needs >= {stats.MIN_BOOTSTRAP_SEEDS} runs in every task "
                f"(fewest: {fewest})")
        lines.append(f"| {method} | {len(tasks)} | {sum(map(len, by_task.values()))} | {point:.3f} | {text} |")
    return "\n".join(lines) if len(lines) > 2 else "No method has held-out results on every task."


def budget_rule_lines(rows: list[dict]) -> list[str]:
    """Checks the budget rule: every baseline budget >= 5x the teacher-guided median steps-to-0.9."""
    lines = []
    for task in sorted({r["task"] for r in rows}):
        guided = [r for r in rows if r["task"] == task and r["method"] in STEP_METHODS]
        baselines = [r for r in rows if r["task"] == task and r["method"] in BASELINES]
        if not guided or not baselines:
            continue
        worst = max(guided, key=lambda r: r["median_steps"])
        needed = BASELINE_FACTOR_RULE * worst["median_steps"]
        for base in baselines:
            verdict = "holds" if base["budget"] >= needed and not worst["median_censored"] else "VIOLATED"
            if worst["median_censored"]:
                verdict = f"cannot be checked ({worst['method']} median not reached)"
            lines.append(f"* {task}: {base['method']} budget {_steps(base['budget'])} vs {BASELINE_FACTOR_RULE} x "
                         f"{worst['method']} median {_steps(worst['median_steps'])} = {_steps(needed)}: {verdict}")
    return lines


def band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-step band over seeds: bootstrap of the mean with enough seeds, else min-max; and its name."""
    if len(curves) >= stats.MIN_BOOTSTRAP_SEEDS:
        rng = np.random.default_rng(0)
        means = curves[rng.integers(0, len(curves), size=(stats.N_RESAMPLES, len(curves)))].mean(axis=1)
        low, high = np.quantile(means, [0.025, 0.975], axis=0)
        return low, high, "95% bootstrap"
    return curves.min(0), curves.max(0), "min-max"


def plot_task(runs: list[dict], teachers: dict, task: str, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rates = teacher_rates(teachers)
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    methods = sorted({r["method"] for r in runs if r["task"] == task}, key=_method_rank)
    for index, method in enumerate(methods):
        group = [r for r in runs if r["task"] == task and r["method"] == method]
        grid = np.unique(np.concatenate([r["steps"] for r in group]))
        curves = np.stack([np.interp(grid, r["steps"], r["success"], right=r["success"][-1]) for r in group])
        low, high, kind = band(curves)
        color = f"C{index % 10}"
        axes.plot(grid, curves.mean(0), color=color, label=f"{method} ({len(group)} seeds, {kind})")
        axes.fill_between(grid, low, high, color=color, alpha=0.15, linewidth=0)
        if rates.get((task, method)):
            axes.axhline(float(np.mean(rates[(task, method)])), color=color, linestyle="--", linewidth=1)
    axes.axhline(THRESHOLD, color="grey", linestyle=":", linewidth=1)
    axes.set(title=f"{task}: evaluation success (dashed: teacher alone, held-out)", xlabel="env steps",
             ylabel="success rate", ylim=(-0.02, 1.02))
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def _run_config(run: dict, settings: dict) -> dict:
    """A run's flat config: its config.json, or for an archived run (no folder) the config the sweep's plan
    (sweep.json) gives that task, method and seed."""
    from utils.config import RunConfig, build_config
    path = Path(run["run_dir"]) / "config.json" if run.get("run_dir") else None
    if path is not None and path.exists():
        return RunConfig.from_json(json.loads(path.read_text())).flat()
    if not settings.get("budgets"):
        raise ValueError(f"{run['task']}/{run['method']}/seed{run['seed']} has no run folder and the sweep has no "
                         "sweep.json to rebuild its settings from: run `main.py sweep` for it first")
    spec = spec_of_run(settings, run["task"], run["method"], run["seed"])
    return build_config(spec.task, dict(spec.overrides)).flat()


def _run_settings(runs: list[dict], task: str, settings: dict) -> str:
    """The settings that shape the curves, from one teacher-guided run's config."""
    own_folder_first = sorted((r for r in runs if r["task"] == task), key=lambda r: not r.get("run_dir"))
    run = next((r for r in own_folder_first if r["method"] not in BASELINES), None)
    config = _run_config(run or own_folder_first[0], settings)
    return (f"{config['num_envs']} envs x {config['num_steps']} steps per iteration, evaluation every "
            f"{config['eval_interval']} iterations on {config['num_eval']} training-time layouts "
            f"({'most likely' if config['eval_deterministic'] else 'sampled'} actions), final evaluation on "
            f"{config['final_eval_episodes']} held-out layouts; distillation {config['distill_initial']} - "
            f"{config['distill_decay']}/update to {config['distill_floor']}, off after "
            f"{config['distill_off_after']} updates")


def write_runs_csv(runs: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "seed", "budget", "reached_0.9", "env_steps_to_0.9", "heldout_episodes",
                         "heldout_successes", "heldout_success", "wilson_low", "wilson_high", "train_final_success",
                         "commit"])
        for run in sorted(runs, key=lambda r: (r["task"], _method_rank(r["method"]), r["seed"])):
            final = run["final_eval"] or {}
            interval = final.get("interval", {})
            writer.writerow([run["task"], run["method"], run["seed"], int(run["budget"]), run["reached"],
                             int(run["steps_to"]), final.get("episodes", ""), final.get("successes", ""),
                             final.get("success_rate", ""), interval.get("low", ""), interval.get("high", ""),
                             f"{run['success'][-1]:.4f}", run.get("commit") or ""])


def seeds_text(seeds) -> str:
    """``[0, 1, 2, 3, 5]`` -> ``seeds 0-3, 5``; one seed -> ``seed 4``."""
    seeds = sorted(set(seeds))
    spans, start = [], None
    for index, seed in enumerate(seeds):
        start = seed if start is None else start
        if index + 1 == len(seeds) or seeds[index + 1] != seed + 1:
            spans.append(f"{start}" if start == seed else f"{start}-{seed}")
            start = None
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(spans)}"


def _run_commits(runs: list[dict], settings: dict) -> str:
    """Which commit trained which runs, from the index (the sweep's settings when the index lacks them): per
    commit its tasks, or a task's methods when not all of them ran there, with the seeds of a method whose
    seeds ran at several commits."""
    if not any(run.get("commit") for run in runs):
        return ", ".join(settings.get("commits") or [settings.get("commit", "unknown")])
    seeds_of = defaultdict(lambda: defaultdict(set))  # (task, method) -> commit -> seeds
    for run in runs:
        seeds_of[(run["task"], run["method"])][run.get("commit") or "unknown"].add(run["seed"])
    methods_of_task = defaultdict(set)
    for task, method in seeds_of:
        methods_of_task[task].add(method)
    parts = []
    for commit in sorted({c for by_commit in seeds_of.values() for c in by_commit}):
        described = []
        for task in sorted(methods_of_task):
            whole = [m for m in methods_of_task[task] if set(seeds_of[(task, m)]) == {commit}]
            split = [m for m in methods_of_task[task] if commit in seeds_of[(task, m)] and m not in whole]
            if set(whole) == methods_of_task[task]:
                described.append(task)
                continue
            pieces = ["/".join(sorted(whole, key=_method_rank))] if whole else []
            pieces += [f"{m} {seeds_text(seeds_of[(task, m)][commit])}" for m in sorted(split, key=_method_rank)]
            if pieces:
                described.append(f"{task} {' + '.join(pieces)}")
        parts.append(f"{commit} ({', '.join(described)})")
    return "; ".join(parts)


def write_teachers_csv(teachers: dict, path: Path) -> None:
    """The teachers' rows (as :func:`read_teacher_rows` gives them) in teacher_heldout.csv's columns."""
    from bench.sweep import TEACHER_FIELDS
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, TEACHER_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for key in sorted(teachers, key=lambda k: (k[0], _method_rank(k[1]))):
            writer.writerows(sorted(teachers[key], key=lambda r: int(r["seed"])))


EXTRA_FAMILIES = (  # (section title, what it compares, family) of the claims tables beside the paper's
    ("Claim (a) against the other baselines", "Our PPO run only in some cells (see Methods): `ppo_task` with the "
     "task config's own lr and entropy instead of the sweep's PPO settings, `ppo_long` with the sweep's PPO "
     "settings and a longer budget. A ratio without `>=` is measured: that baseline's median run reached 0.9 "
     "within its budget. A family of its own (the paper's table above keeps its rows and its Holm).",
     OTHER_BASELINES),
    ("The paper's claims for the live LLM teacher", "The live Gemma-3-270M teacher (`gemma_hard`, `gemma_soft`): "
     "(a) against the baselines, (b) its students against it alone, (c) soft against hard. A family of its own.",
     LIVE_LLM),
)


def _plan_lines(settings: dict) -> list[str]:
    """The sweep file the runs came from and every deviation from it as first run (sweep.json's history)."""
    history = settings.get("plan_history") or []
    if not history:
        return []
    first = history[0]
    deviations = []
    for entry in history:
        at = f" (first at {entry.get('commit', '?')})"
        if entry["config_file"] != first["config_file"] or entry["config_sha256"] != first["config_sha256"]:
            deviations.append(f"the sweep file as {entry['config_file']}, sha256 {entry['config_sha256'][:12]}{at}")
        if entry.get("set"):
            deviations.append(f"--set {' '.join(entry['set'])}{at}")
        if entry.get("teacher_episodes") is not None:
            deviations.append(f"--teacher_episodes {entry['teacher_episodes']}{at}")
        if entry.get("extra_methods"):
            deviations.append(f"methods the file does not name: {', '.join(entry['extra_methods'])}{at}")
    registered = (f"Sweep file: {first['config_file']} (sha256 {first['config_sha256'][:12]} when its first part "
                  f"ran, at {first.get('commit', '?')}).")
    return [registered + (" Deviations from it: " + "; ".join(deviations) + "." if deviations else
                          " No deviation: every part ran it unchanged, with no setting added."), ""]


# The teacher ladder: from scripted correct plans down to no teacher, with the LLM teachers between.
LADDER = (("oracle", "oracle: scripted correct plans (safe skills)"),
          ("hard", "Vicuna-33B, recorded answers, hard"), ("soft", "Vicuna-33B, recorded answers, soft"),
          ("gemma_hard", "Gemma-3-270M, live, hard"), ("gemma_soft", "Gemma-3-270M, live, soft"),
          ("adversarial", "adversarial: scripted wrong plans (safe skills)"), ("ppo", "no teacher (our PPO)"))


def _mean_and_range(mean: float | None, values) -> str:
    """``mean [min, max]`` of per-seed values, or ``-`` when there are none."""
    return f"{mean:.3f} [{min(values):.3f}, {max(values):.3f}]" if len(values) else "-"


def ladder_table(rows: list[dict], task: str) -> str | None:
    """The teacher ladder of ``task``: each teacher alone, its students' env steps to 0.9 and held-out success
    (None when the runs hold fewer than two of its rungs)."""
    by_method = {r["method"]: r for r in rows if r["task"] == task}
    rungs = [(method, name) for method, name in LADDER if method in by_method]
    if len(rungs) < 2:
        return None
    lines = ["| teacher | teacher alone, held-out | students reaching 0.9 | median env steps to 0.9 | "
             "student held-out success: mean [min-max] |", "|---|---|---|---|---|"]
    for method, name in rungs:
        r = by_method[method]
        lines.append(f"| {name} (`{method}`) | {_mean_and_range(r['teacher_mean'], r['teacher'])} | "
                     f"{r['reached']}/{r['runs']} | {_steps(r['median_steps'], r['steps_marks'][0])} | "
                     f"{_mean_and_range(r['heldout_mean'], r['heldout'])} |")
    return "\n".join(lines)


def claim_tables(runs: list[dict], teachers: dict) -> list[ClaimTable]:
    """Every claims table of a report, each its own Holm family: the paper's claims, those of
    :data:`EXTRA_FAMILIES`, then the wrong-teacher control (per task only)."""
    tables = []
    for title, family in [("The paper's claims", PAPER)] + [(title, family) for title, _, family in EXTRA_FAMILIES]:
        claims = paper_claims(runs, teachers, family)
        tables.append(ClaimTable(title, claims, pooled_claims(claims) if claims else []))
    return tables + [ClaimTable("The wrong-teacher control", control_claims(runs), [])]


def write_report(logdir: str, name: str, out: Path, archives: tuple = (), pools: tuple = (),
                 label: str | None = None, beside: str | None = None, beside_label: str | None = None) -> Path:
    """Figures, results.md, summary.csv, runs.csv, curves.csv and teacher_heldout.csv for sweep ``name`` (with
    the runs of each archive folder that the sweep lacks, and every run of each pool folder, whose
    (task, method, seed) must not be the sweep's too); ``label`` names what its claims are (e.g.
    confirmatory); ``beside``, a report folder of another sweep (e.g. the exploratory one), adds each claims
    table beside that sweep's, named ``beside_label`` (default: the folder and its seeds). Returns the markdown
    path."""
    runs, teachers, settings = read_runs(logdir, name, need_index=not (archives or pools))
    for folder in archives:  # read before anything is written: the archive may be ``out`` itself
        runs, teachers = merge(runs, teachers, *read_archive(Path(folder)))
        settings = settings or read_archive_settings(Path(folder))
    own_seeds = {r["seed"] for r in runs}
    pooled_from = []
    for folder in pools:
        pool_runs, pool_teachers = read_archive(Path(folder))
        runs, teachers = merge(runs, teachers, pool_runs, pool_teachers, refuse_overlap=str(folder))
        pooled_from.append(f"{folder} ({seeds_text(r['seed'] for r in pool_runs)})")
    if not runs:
        raise ValueError(f"sweep '{name}' has no finished runs yet")
    rows = summarise(runs, teachers)
    out.mkdir(parents=True, exist_ok=True)
    commits = sorted({r["commit"] for rows_ in teachers.values() for r in rows_})
    sections = [f"# Sweep '{name}'" + (f": {label}" if label else ""), ""]
    if pooled_from:
        sections += [f"Pooled: the sweep's own runs ({seeds_text(own_seeds) if own_seeds else 'none'}) with every "
                     f"run of {', '.join(pooled_from)}; no task, method and seed is in two of them.", ""]
    sections += [f"Runs trained at commit(s) {_run_commits(runs, settings)}"
                 + (f"; teachers alone measured at {', '.join(commits)}" if commits else "") + ".",
                 f"Machine: {json.dumps(settings.get('machine', {}))}.", "", *_plan_lines(settings), "Methods:", ""]
    for method in sorted({r["method"] for r in runs}, key=_method_rank):
        sections.append(f"* `{method}`: {METHOD_NOTES.get(method, 'not a named sweep method')}")
    sections.append("")
    for task in sorted({r["task"] for r in runs}):
        figure = plot_task(runs, teachers, task, out / f"{task.lower()}.png")
        budgets = ", ".join(f"{r['method']} {_steps(r['budget'])}" for r in rows if r["task"] == task)
        sections += [f"## {task}", "", f"Budgets: {budgets}. {_run_settings(runs, task, settings)}.", "",
                     f"![{task}]({figure.name})", "", markdown_table(rows, task), ""]
    ladders = [(task, ladder_table(rows, task)) for task in sorted({r["task"] for r in runs})]
    if any(table for _, table in ladders):
        sections += ["## The teacher ladder", ""]
        for task, table in ladders:
            if table:
                sections += [f"### {task}", "", table, ""]
        sections += ["Teacher alone and student held-out: success on the 200 held-out layouts, mean and min-max "
                     "over seeds. `>=`: the median run never reached 0.9 and counts at its budget (a baseline's "
                     "is the baseline budget).", ""]
    sections += ["## Across tasks", "", aggregate_table(runs), ""]
    rule = budget_rule_lines(rows)
    if rule:
        sections += ["## Budget rule", "", *rule, ""]
    tables = claim_tables(runs, teachers)
    paper, extras, control = tables[0], tables[1:-1], tables[-1]
    heading = f"## {paper.title}" + (f": {label}, {seeds_text(r['seed'] for r in runs)}" if label else "")
    sections += [heading, "", "Per task:", "", claims_markdown(paper.per_task), "",
                 "Over all tasks:", "", pooled_markdown(paper.over_tasks), ""]
    for (title, text, _), extra in zip(EXTRA_FAMILIES, extras):
        if extra.per_task:
            sections += [f"## {title}", "", text, "", "Per task:", "", claims_markdown(extra.per_task), "",
                         "Over all tasks:", "", pooled_markdown(extra.over_tasks), ""]
    if control.per_task:
        sections += [f"## {control.title}", "",
                     "The adversarial planner's students against plain PPO (env steps to 0.9 and held-out "
                     "success) and against the paper teacher's hard students (held-out success); held-out "
                     "success is measured at the end of each run, so PPO's has had its 5x budget.", "",
                     claims_markdown(control.per_task), ""]
    if beside:
        there_runs, there_teachers = read_archive(Path(beside))
        there_name = beside_label or f"{beside} ({seeds_text(r['seed'] for r in there_runs)})"
        here_name = f"{label or 'this sweep'} ({seeds_text(r['seed'] for r in runs)})"
        sections += [f"## The claims beside {there_name}", "",
                     f"Each claims table of this report ({here_name}) beside the same table computed from the runs "
                     f"of {beside} ({there_name}) by the same code.", "",
                     beside_markdown(tables, claim_tables(there_runs, there_teachers), here_name, there_name), ""]
    markdown = out / "results.md"
    markdown.write_text("\n".join(sections))
    if settings:  # the plan, machine and commits: what an archived run's settings are rebuilt from
        (out / "sweep.json").write_text(json.dumps(settings, indent=2) + "\n")
    with (out / "curves.csv").open("w", newline="") as handle:  # every evaluation point of every run
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "seed", "env_steps", "success_rate"])
        for run in sorted(runs, key=lambda r: (r["task"], _method_rank(r["method"]), r["seed"])):
            writer.writerows([run["task"], run["method"], run["seed"], int(x), f"{y:.4f}"]
                             for x, y in zip(run["steps"], run["success"]))
    write_runs_csv(runs, out / "runs.csv")
    write_teachers_csv(teachers, out / "teacher_heldout.csv")
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "method", "runs", "reached", "budget", "median_steps", "steps_low", "steps_high",
                         "steps_interval", "heldout_mean", "heldout_low", "heldout_high", "heldout_interval",
                         "train_final_success", "teacher_heldout_mean"])
        for r in rows:
            held = r["heldout_interval"]
            writer.writerow([r["task"], r["method"], r["runs"], r["reached"], int(r["budget"]), r["median_steps"],
                             r["steps_interval"].low, r["steps_interval"].high, r["steps_interval"].kind,
                             r["heldout_mean"] if r["heldout_mean"] is not None else "",
                             held.low if held else "", held.high if held else "", held.kind if held else "",
                             f"{r['train_final']:.4f}", r["teacher_mean"] if r["teacher_mean"] is not None else ""])
    return markdown


COMPARE_FIELDS = ("task", "method", "sweep", "commits", "runs", "reached", "steps_to_0.9", "heldout_successes",
                  "heldout_episodes", "steps_p_vs_first", "heldout_p_vs_first", "identical_to_first")


def compare_sweeps(logdir: str, names: list[str]) -> list[dict]:
    """Variants side by side: one row per (task, method, sweep) with the per-seed steps to 0.9 and held-out
    successes, and two-sided Mann-Whitney p-values against the first sweep's runs of the same task and method
    (a run that never reached 0.9 counts as its budget). ``identical_to_first`` counts the seeds whose every
    evaluation (all but its wall-clock time) and held-out result equal the first sweep's run of that seed:
    the check that two commits train the same runs."""
    groups = {}
    commits = {}
    for name in names:
        runs, _, settings = read_runs(logdir, name)
        commits[name] = sorted({r.get("commit") or "" for r in runs} - {""}) or settings.get("commits", [])
        for run in runs:
            groups.setdefault((run["task"], run["method"]), {}).setdefault(name, []).append(run)
    rows = []
    for (task, method), by_sweep in sorted(groups.items(), key=lambda kv: (kv[0][0], _method_rank(kv[0][1]))):
        first = by_sweep.get(names[0])
        for name in names:
            group = sorted(by_sweep.get(name, []), key=lambda r: r["seed"])
            if not group:
                continue
            finals = [r["final_eval"] or {} for r in group]
            row = {"task": task, "method": method, "sweep": name, "commits": " ".join(commits[name]),
                   "runs": len(group), "reached": sum(r["reached"] for r in group),
                   "steps_to_0.9": " ".join(_steps(r["steps_to"], not r["reached"]) for r in group),
                   "heldout_successes": " ".join(str(f.get("successes", "-")) for f in finals),
                   "heldout_episodes": " ".join(str(f.get("episodes", "-")) for f in finals),
                   "steps_p_vs_first": "", "heldout_p_vs_first": "", "identical_to_first": ""}
            if first and name != names[0]:
                by_seed = {r["seed"]: r for r in first}
                shared = [r for r in group if r["seed"] in by_seed]
                same = sum(r["record"] == by_seed[r["seed"]]["record"]
                           and r["final_eval"] == by_seed[r["seed"]]["final_eval"] for r in shared)
                row["identical_to_first"] = f"{same}/{len(shared)}"
                steps = stats.mann_whitney([r["steps_to"] for r in group], [r["steps_to"] for r in first], "two-sided")
                row["steps_p_vs_first"] = f"{steps.p_value:.4f}"
                held, base = ([r["heldout"] for r in side if r["heldout"] is not None] for side in (group, first))
                if held and base:
                    row["heldout_p_vs_first"] = f"{stats.mann_whitney(held, base, 'two-sided').p_value:.4f}"
            rows.append(row)
    return rows


def write_comparison(logdir: str, names: list[str], out: Path) -> Path:
    """``compare.csv`` and ``compare.md`` of :func:`compare_sweeps` in ``out``; returns the markdown path."""
    rows = compare_sweeps(logdir, names)
    if not rows:
        raise ValueError(f"sweeps {', '.join(names)} have no finished runs yet")
    out.mkdir(parents=True, exist_ok=True)
    with (out / "compare.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COMPARE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    header = ("| task | method | sweep (commit) | runs reaching 0.9 | env steps to 0.9, per seed | held-out successes, "
              f"per seed | p, steps vs {names[0]} | p, held-out vs {names[0]} | seeds identical to {names[0]} |")
    lines = [f"# Sweeps compared: {', '.join(names)}", "",
             "p: two-sided Mann-Whitney U over seeds (bench/stats.py); `>=`: never reached 0.9, counted "
             f"as the budget; identical: every evaluation (but its wall time) and the held-out result equal "
             f"{names[0]}'s run of the same seed.", "", header, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        episodes = sorted(set(r["heldout_episodes"].split()) - {"-"})
        held = r["heldout_successes"] + (f" (of {episodes[0]})" if len(episodes) == 1 else "")
        cells = [r["task"], r["method"], f"{r['sweep']} ({r['commits'] or '?'})", f"{r['reached']}/{r['runs']}",
                 r["steps_to_0.9"], held, r["steps_p_vs_first"] or "-", r["heldout_p_vs_first"] or "-",
                 r["identical_to_first"] or "-"]
        lines.append(f"| {' | '.join(cells)} |")
    markdown = out / "compare.md"
    markdown.write_text("\n".join(lines) + "\n")
    return markdown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="sweep", help="sweep to report on")
    parser.add_argument("--compare", nargs="+", default=None, metavar="NAME",
                        help="instead: compare these sweeps (variants of one setup) run by run, with p-values "
                             "against the first; writes compare.md and compare.csv")
    parser.add_argument("--logdir", default="log", help="root of all run folders")
    parser.add_argument("--archive", nargs="+", default=(), metavar="DIR",
                        help="report folders written earlier (e.g. docs/results/final): their runs and teacher "
                             "rows that the sweep's index lacks are added, so a sweep whose run folders are gone "
                             "is reported whole")
    parser.add_argument("--pool", nargs="+", default=(), metavar="DIR",
                        help="report folders of other sweeps (e.g. docs/results/final) whose runs and teacher rows "
                             "are all pooled with this sweep's, e.g. seeds 0-4 with a confirmation's 5-9; a task, "
                             "method and seed in two of them is refused")
    parser.add_argument("--label", default=None,
                        help="what this report's claims are, shown in its title and claims heading with the seeds "
                             "they use, e.g. exploratory (the sweep its settings were chosen on), confirmatory (fresh "
                             "seeds, the plan fixed before), 'pooled, not confirmatory'")
    parser.add_argument("--beside", default=None, metavar="DIR",
                        help="a report folder of another sweep (e.g. docs/results/gemma, seeds 0-4 of every "
                             "method): each claims table is shown beside the same table computed from its runs, "
                             "with whether the two agree (a confirmation beside its exploratory sweep)")
    parser.add_argument("--beside_label", default=None,
                        help="--beside: the other sweep's name in that section, e.g. 'exploratory, seeds 0-4' "
                             "(default: the folder and its seeds)")
    parser.add_argument("--out", default=None, help="output folder (default: <logdir>/sweeps/<name>/report, or "
                                                    "<logdir>/sweeps/compare for --compare)")


def main(args: argparse.Namespace) -> int:
    if args.compare:
        out = Path(args.out) if args.out else sweep_dir(args.logdir, "compare")
        markdown = write_comparison(args.logdir, args.compare, out)
    else:
        out = Path(args.out) if args.out else sweep_dir(args.logdir, args.name) / "report"
        markdown = write_report(args.logdir, args.name, out, tuple(args.archive), tuple(args.pool), args.label,
                                args.beside, args.beside_label)
    print(markdown.read_text())
    print(f"written: {markdown} and the files beside it")
    return 0
