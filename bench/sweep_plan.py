"""What a sweep runs: the methods, one run's spec, the plan (tasks x methods x seeds under a budget rule)
read from a sweep file or the flags, and where each run's folder goes. :mod:`bench.sweep` runs it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PAPER_TEACHER = {"planner": "recorded", "skills": "paper"}  # the published teacher's skills
SAFE_TEACHER = {"planner": "recorded", "skills": "safe"}
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
}
BASELINES = ("ppo", "sb3_ppo")  # methods without a teacher: their budget is the baseline budget
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


@dataclass
class SweepPlan:
    """What a sweep runs: tasks x methods x seeds, each run's budget, and settings shared by all runs.

    Budget rule: a run of a teacher-guided method gets its task's ``budgets`` entry; a baseline (no teacher:
    :data:`BASELINES`) gets ``baseline_factor`` times it. Evaluation rule: with ``eval_every_steps`` every
    run evaluates every that many env steps (it must be a multiple of each run's steps per iteration).
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

    def budget(self, task: str, method: str) -> int:
        base = self.budgets[task]
        return int(round(base * self.baseline_factor)) if method in BASELINES else int(base)


PLAN_KEYS = {"name", "tasks", "methods", "seeds", "baseline_factor", "eval_every_steps", "teacher_episodes",
             "settings", "method_settings"}


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
    return data.get("name"), plan


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
    for task in plan.tasks:
        for method in plan.methods:
            values = {**plan.settings, **method_settings(method), **plan.method_settings.get(method, {}),
                      "total_steps": plan.budget(task, method)}
            if method == "llm":
                if not llm_url:
                    raise ValueError("method 'llm' needs --llm_url")
                values["llm_url"] = llm_url
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
            for seed in plan.seeds:
                specs.append(RunSpec(task, method, seed, tuple(sorted(values.items()))))
    return specs


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
