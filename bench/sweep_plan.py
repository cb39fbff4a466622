"""What a sweep runs: the methods, one run's spec, the plan (tasks x methods x seeds under a budget rule)
read from a sweep file or the flags, and where each run's folder goes. :mod:`bench.sweep` runs it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

PAPER_TEACHER = {"planner": "recorded", "skills": "paper"}  # the published teacher's skills
SAFE_TEACHER = {"planner": "recorded", "skills": "safe"}
# The live Gemma-3-270M teacher (python main.py serve): seeded answers, so its one draw of plans per sentence is
# the same for every run of a sweep and can be drawn again.
GEMMA_TEACHER = {"planner": "llm", "llm_api": "completions", "llm_model": "gemma-3-270m", "llm_seed": 0,
                 "skills": "paper"}
METHODS = {  # method -> the settings that define it (everything else comes from the configs and --set)
    "ppo": {"teacher": "none"},
    "sb3_ppo": {},  # Stable-Baselines3 PPO with RL-Zoo's MiniGrid settings (bench/sb3_ppo.py)
    "hard": {"teacher": "hard", **PAPER_TEACHER, "hard_sampling": "step"},
    "soft": {"teacher": "soft", **PAPER_TEACHER},
    "hard_commit": {"teacher": "hard", **PAPER_TEACHER, "hard_sampling": "commit"},
    "hard_safe": {"teacher": "hard", **SAFE_TEACHER, "hard_sampling": "commit"},
    "hard_safe_step": {"teacher": "hard", **SAFE_TEACHER, "hard_sampling": "step"},
    "soft_safe": {"teacher": "soft", **SAFE_TEACHER},
    "oracle": {"teacher": "hard", "planner": "oracle", "skills": "safe", "hard_sampling": "step"},
    "adversarial": {"teacher": "hard", "planner": "adversarial", "skills": "safe", "hard_sampling": "step"},
    "llm": {"teacher": "soft", "planner": "llm", "skills": "paper"},
    "gemma_hard": {"teacher": "hard", **GEMMA_TEACHER, "hard_sampling": "step"},
    "gemma_soft": {"teacher": "soft", **GEMMA_TEACHER},
    # Baselines of their own, for a sweep file's cells (a method or its settings differ from ppo's):
    "ppo_task": {"teacher": "none"},  # no method_settings entry: the task config's own lr and ent_coef
    "ppo_long": {"teacher": "none"},  # ppo's settings (the sweep file says so), a longer budget
}
METHOD_NOTES = {
    "ppo": "our PPO, no teacher",
    "sb3_ppo": "Stable-Baselines3 PPO, RL-Zoo MiniGrid settings, no teacher",
    "hard": "paper teacher (recorded Vicuna plans, paper skills), hard, a plan drawn every step",
    "soft": "paper teacher, soft (plans mixed by probability)",
    "hard_commit": "paper teacher, hard, a plan kept until the sentence changes or it stalls",
    "hard_safe": "safe teacher (recorded plans, safe skills), hard, commit",
    "hard_safe_step": "safe teacher, hard, a plan drawn every step",
    "soft_safe": "safe teacher, soft",
    "oracle": "scripted correct plans, safe skills (a control)",
    "adversarial": "scripted wrong plans, safe skills (a control)",
    "llm": "live LLM plans (needs --llm_url), paper skills, soft",
    "gemma_hard": "live Gemma-3-270M (llama.cpp server, completions API), paper skills, hard",
    "gemma_soft": "live Gemma-3-270M (llama.cpp server, completions API), paper skills, soft",
    "ppo_task": "our PPO, no teacher, with the task config's own lr and entropy (not the sweep's PPO settings)",
    "ppo_long": "our PPO, no teacher, the sweep's PPO settings, a longer budget (a long baseline)",
}
BASELINES = ("ppo", "sb3_ppo", "ppo_task", "ppo_long")  # no teacher: the baseline budget, nothing measured alone


def needs_llm(method: str) -> bool:
    """Whether ``method``'s teacher asks a live LLM server (the sweep's --llm_url)."""
    return METHODS.get(method, {}).get("planner") == "llm"


def method_settings(method: str) -> dict:
    """The run settings that define ``method``."""
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; choose from {', '.join(METHODS)}")
    if method == "sb3_ppo":
        from bench.sb3_ppo import RL_ZOO_SETTINGS
        return dict(RL_ZOO_SETTINGS)
    return dict(METHODS[method])


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep."""

    task: str
    method: str
    seed: int
    overrides: tuple  # ((key, value), ...) config values for this run

    @property
    def label(self) -> str:
        return f"{self.task}/{self.method}/seed{self.seed}"


def sweep_dir(logdir: str, name: str) -> Path:
    return Path(logdir) / "sweeps" / name


def task_root(logdir: str, task: str) -> Path:
    return Path(logdir) / "ppo" / task.lower()


def run_dir_for(logdir: str, name: str, spec: RunSpec) -> Path:
    return task_root(logdir, spec.task) / name / spec.method / f"seed{spec.seed}"


@dataclass(frozen=True)
class Cell:
    """Runs of one method on some of the sweep's tasks and seeds, beside tasks x methods x seeds (a sweep
    file's ``cells``): e.g. a baseline run on one task only, or with a longer budget."""

    method: str
    tasks: tuple
    seeds: tuple
    budget_factor: float | None = None  # times the task's budget; None: the plan's rule for the method


@dataclass
class SweepPlan:
    """What a sweep runs: tasks x methods x seeds, then each of ``cells``; each run's budget, and settings
    shared by all runs.

    Budget rule: a run of a teacher-guided method gets its task's ``budgets`` entry; a baseline (no teacher:
    :data:`BASELINES`) gets ``baseline_factor`` times it; a cell with a ``budget_factor`` gets that many times
    it. Evaluation rule: with ``eval_every_steps`` every run evaluates every that many env steps (it must be
    a multiple of each run's steps per iteration).
    """

    tasks: list
    methods: list
    seeds: list
    budgets: dict  # task -> env-step budget of the teacher-guided runs
    baseline_factor: float = 1.0
    eval_every_steps: int | None = None
    teacher_episodes: int = 200
    settings: dict = field(default_factory=dict)  # every run
    method_settings: dict = field(default_factory=dict)  # method -> settings of that method's runs
    cells: list = field(default_factory=list)  # Cell: runs beside tasks x methods x seeds

    def budget(self, task: str, method: str, factor: float | None = None) -> int:
        if factor is None:
            factor = self.baseline_factor if method in BASELINES else 1.0
        return int(round(self.budgets[task] * factor))

    def groups(self) -> list[tuple[str, str, list, int]]:
        """(task, method, seeds, budget) of every cell it runs: tasks x methods, then ``cells`` (their tasks
        and seeds as far as the plan's tasks have budgets and the plan keeps them)."""
        groups = [(task, method, list(self.seeds), self.budget(task, method))
                  for task in self.tasks for method in self.methods]
        for cell in self.cells:
            groups += [(task, cell.method, list(cell.seeds), self.budget(task, cell.method, cell.budget_factor))
                       for task in self.tasks if task in cell.tasks and cell.seeds]
        return groups

    def narrow(self, tasks: list | None = None, methods: list | None = None, seeds: list | None = None) -> None:
        """Keep a part of the plan: these tasks, methods (a cell's method keeps that cell; a method the plan
        does not name is added to its methods) and seeds (a cell keeps those of its own)."""
        if tasks is not None:
            self.tasks = list(tasks)
        if methods is not None:
            cell_methods = {c.method for c in self.cells}
            self.methods = [m for m in methods if m not in cell_methods]
            self.cells = [c for c in self.cells if c.method in methods]
        if seeds is not None:
            self.seeds = list(seeds)
            self.cells = [Cell(c.method, c.tasks, tuple(s for s in c.seeds if s in seeds), c.budget_factor)
                          for c in self.cells]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SweepPlan":
        """The plan a sweep.json holds (as :meth:`to_json` wrote it; keys it lacks take their defaults)."""
        names = set(cls.__dataclass_fields__) - {"cells"}
        cells = [Cell(c["method"], tuple(c["tasks"]), tuple(c["seeds"]), c.get("budget_factor"))
                 for c in data.get("cells") or []]
        return cls(**{k: v for k, v in data.items() if k in names}, cells=cells)


PLAN_KEYS = {"name", "tasks", "methods", "seeds", "baseline_factor", "eval_every_steps", "teacher_episodes",
             "settings", "method_settings", "cells"}
CELL_KEYS = {"method", "tasks", "seeds", "budget_factor"}


def load_plan_file(path: str) -> tuple[str | None, SweepPlan]:
    """(sweep name, plan) from a sweep YAML file (see ``configs/sweeps/final.yaml``)."""
    import yaml
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read sweep file {path}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"sweep file {path} must be a mapping")
    unknown = sorted(set(data) - PLAN_KEYS)
    if unknown:
        raise ValueError(f"sweep file {path} has unknown keys: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(PLAN_KEYS))})")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks or \
            not all(isinstance(v, dict) and "budget" in v for v in tasks.values()):
        raise ValueError(f"sweep file {path}: 'tasks' must map each task to {{budget: ENV_STEPS}}")
    for key in ("methods", "seeds"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise ValueError(f"sweep file {path}: '{key}' must be a non-empty list")
    factor = data.get("baseline_factor", 1.0)
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0:
        raise ValueError(f"sweep file {path}: baseline_factor must be a positive number, got {factor!r}")
    for key in ("settings", "method_settings"):
        if not isinstance(data.get(key) or {}, dict):
            raise ValueError(f"sweep file {path}: '{key}' must be a mapping")
    every = data.get("eval_every_steps")
    plan = SweepPlan(tasks=[task_name(t) for t in tasks], methods=list(data["methods"]),
                     seeds=[_whole(path, "a seed", seed, 0) for seed in data["seeds"]],
                     budgets={task_name(t): _whole(path, f"the budget of {t}", v["budget"], 1)
                              for t, v in tasks.items()},
                     baseline_factor=float(factor),
                     eval_every_steps=None if every is None else _whole(path, "eval_every_steps", every, 1),
                     teacher_episodes=_whole(path, "teacher_episodes", data.get("teacher_episodes", 200), 0),
                     settings=dict(data.get("settings") or {}), method_settings=dict(data.get("method_settings") or {}))
    plan.cells = [_cell(path, entry, plan) for entry in data.get("cells") or []]
    for method in plan.methods + [c.method for c in plan.cells]:
        method_settings(method)  # an unknown method fails here
    runs = [(task, method, seed) for task, method, seeds, _ in plan.groups() for seed in seeds]
    twice = sorted({"/".join(map(str, run)) for run in runs if runs.count(run) > 1})
    if twice:
        raise ValueError(f"sweep file {path}: run(s) {', '.join(twice)} would be run twice (by 'methods' and "
                         "'cells', or by two cells)")
    return data.get("name"), plan


def _cell(path: str, entry, plan: SweepPlan) -> Cell:
    """One entry of a sweep file's ``cells``: {method, tasks, seeds (default: the sweep's), budget_factor}."""
    if not isinstance(entry, dict) or "method" not in entry or not isinstance(entry.get("tasks"), list):
        raise ValueError(f"sweep file {path}: each of 'cells' must be a mapping with a method and a list of tasks")
    unknown = sorted(set(entry) - CELL_KEYS)
    if unknown:
        raise ValueError(f"sweep file {path}: a cell has unknown keys: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(CELL_KEYS))})")
    tasks = tuple(task_name(t) for t in entry["tasks"])
    missing = [t for t in tasks if t not in plan.budgets]
    if missing:
        raise ValueError(f"sweep file {path}: cell {entry['method']} names task(s) without a budget: "
                         f"{', '.join(missing)}")
    seeds = entry.get("seeds", plan.seeds)
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"sweep file {path}: the seeds of cell {entry['method']} must be a non-empty list")
    factor = entry.get("budget_factor")
    if factor is not None and (not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0):
        raise ValueError(f"sweep file {path}: budget_factor of cell {entry['method']} must be a positive number, "
                         f"got {factor!r}")
    return Cell(str(entry["method"]), tasks, tuple(_whole(path, "a seed", s, 0) for s in seeds),
                None if factor is None else float(factor))


def task_name(name: str) -> str:
    """The registry's spelling of a task name (an unknown task is an UnknownTaskError)."""
    from envs import get_task
    return get_task(str(name)).name


def _whole(path: str, what: str, value, minimum: int) -> int:
    """``value`` if it is a whole number >= ``minimum``, else a one-line error naming the file."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"sweep file {path}: {what} must be a whole number >= {minimum}, got {value!r}")
    return value


def make_specs(plan: SweepPlan, llm_url: str | None) -> list[RunSpec]:
    """All runs of the sweep, with the settings each needs; bad settings are refused before any run starts."""
    from utils.config import build_config
    specs = []
    for task, method, seeds, budget in plan.groups():
        values = {**run_values(plan, method, llm_url), "total_steps": budget}
        if method == "sb3_ppo":
            from bench.sb3_ppo import require
            require()
        if plan.eval_every_steps:
            config = build_config(task, values)
            per_iteration = config.env.num_envs * config.ppo.num_steps
            if plan.eval_every_steps % per_iteration:
                raise ValueError(f"eval_every_steps {plan.eval_every_steps} is not a multiple of {task}/{method}'s "
                                 f"{per_iteration} env steps per iteration")
            values["eval_interval"] = plan.eval_every_steps // per_iteration
        for seed in seeds:
            specs.append(RunSpec(task, method, seed, tuple(sorted(values.items()))))
    return specs


def run_values(plan: SweepPlan, method: str, llm_url: str | None) -> dict:
    """The settings of ``method``'s runs (and of its teacher alone), before budget and evaluation interval:
    the plan's, the method's own, the plan's for that method, and the server of a live-LLM method."""
    values = {**plan.settings, **method_settings(method), **plan.method_settings.get(method, {})}
    if needs_llm(method):
        if not llm_url:
            raise ValueError(f"method '{method}' needs --llm_url")
        values["llm_url"] = llm_url
    return values


def spec_of_run(data: dict, task: str, method: str, seed: int) -> RunSpec:
    """The spec a sweep's plan (its sweep.json, ``data``) gives one run, for a run whose folder is gone.
    A method the saved plan runs only in a cell gets that cell's budget; a live-LLM method a placeholder
    server (the spec is for the run's settings, nothing is asked)."""
    plan = SweepPlan.from_json(data)
    cell = next((c for c in plan.cells if c.method == method and task in c.tasks), None)
    plan.tasks, plan.seeds, plan.methods = [task], [seed], [] if cell else [method]
    plan.cells = [Cell(method, (task,), (seed,), cell.budget_factor)] if cell else []
    (spec,) = make_specs(plan, "http://127.0.0.1:1" if needs_llm(method) else None)
    return spec


def parse_settings(pairs: list[str]) -> dict:
    """``["eval_interval=2", "lr=0.002"]`` -> values typed by the settings' declarations."""
    from utils.config import parse_value
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got '{pair}'")
        values[key] = parse_value(key, text)
    return values
