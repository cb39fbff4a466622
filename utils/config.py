"""Run configuration: ``configs/defaults.yaml`` <- ``configs/<task>.yaml`` <- command-line flags.

:class:`RunConfig` lists every setting with its help text; the command-line parser is generated from it, so
each setting is a documented flag. Hyperparameter defaults live only in the YAML files.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_DIR / "configs"


def project_path(path: str) -> Path:
    """``path`` as given if absolute or present from the working folder, else relative to the project."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() or candidate.exists() else PROJECT_DIR / candidate


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range (a usage error: exit code 2)."""


def _opt(help: str, group: str = "training", **extra):
    return field(default=None, metadata={"help": help, "group": group, **extra})


@dataclass
class RunConfig:
    """All settings of a train or eval run. ``None`` means "take it from the config files"."""

    # --- what and where -----------------------------------------------------------------------------
    task: str = field(default="SimpleDoorKey", metadata={"help": "task name, case-insensitive", "group": "run"})
    savedir: str | None = field(default=None, metadata={
        "help": "output folder under <logdir>/ppo/<task>/ (train: required; eval: default 'eval')", "group": "run"})
    loaddir: str | None = field(default=None, metadata={
        "help": "folder under <logdir>/ppo/<task>/ holding the student to load", "group": "run"})
    loadmodel: str = field(default="acmodel.pt", metadata={"help": "checkpoint file name in --loaddir",
                                                           "group": "run"})
    logdir: str = field(default="log", metadata={"help": "root of all run folders", "group": "run"})
    seed_list: list[int] = field(default_factory=lambda: [0], metadata={
        "help": "training seeds; several seeds = several runs, each in <savedir>/seed<k>", "group": "run",
        "nargs": "+", "type": int})
    env_seed_list: list[int] = field(default_factory=lambda: [0], metadata={
        "help": "evaluation layouts: one value s = seeds s..s+num_eval-1; several = exactly these; "
                "none (empty) = random", "group": "run", "nargs": "*", "type": int})
    device: str | None = field(default=None, metadata={"help": "torch device; default cuda if available, else cpu",
                                                       "group": "run"})
    torch_threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)",
                                                    "group": "run"})
    overwrite: bool = field(default=False, metadata={
        "help": "train: start over in an existing --savedir (its checkpoint, summary and TensorBoard events are "
                "deleted first)", "group": "run", "flag": True})
    resume: bool = field(default=False, metadata={
        "help": "train: continue the run in --savedir from its last checkpoint (pass a larger --n_itr to "
                "extend a finished run)", "group": "run", "flag": True})

    # --- task ---------------------------------------------------------------------------------------
    naming: str | None = _opt("object naming in sentences (set by the task config)", "task",
                              choices=("plain", "colored", "numbered"))
    recorded_table: str | None = _opt("table of the recorded-plans file used by --planner recorded", "task")
    recorded_plans: str | None = _opt("recorded-plans JSON file (relative paths are taken from the project "
                                      "folder); a live LLM's cache can be exported to this format", "teacher")
    prompt: dict | None = field(default=None, metadata={"group": "task", "cli": False})

    # --- environments and student -----------------------------------------------------------------
    num_envs: int | None = _opt("environments stepped together")
    frame_stack: int | None = _opt("consecutive observations stacked as the student's input")
    recurrent: bool | None = _opt("give the student an LSTM", flag=True)
    hidden_size: int | None = _opt("feature and LSTM width")
    ego_size: int | None = _opt("side of the agent-centred, agent-facing-up view the student's CNN sees "
                                "(odd; 0 = the whole map as it is)")

    # --- PPO ----------------------------------------------------------------------------------------
    n_itr: int | None = _opt("PPO iterations (updates)")
    total_steps: int | None = _opt("env-step budget; if set, overrides --n_itr "
                                   "(n_itr = ceil(total_steps / (num_envs * num_steps)))")
    num_steps: int | None = _opt("rollout length per env per iteration")
    lr: float | None = _opt("Adam learning rate")
    gamma: float | None = _opt("discount factor")
    gae_lambda: float | None = _opt("GAE lambda")
    clip_coef: float | None = _opt("PPO clip range (policy ratio and value change)")
    ent_coef: float | None = _opt("entropy bonus coefficient")
    vf_coef: float | None = _opt("value loss coefficient")
    max_grad_norm: float | None = _opt("gradient norm clip")
    update_epochs: int | None = _opt("passes over each rollout")
    num_minibatches: int | None = _opt("minibatches per pass")
    norm_adv: bool | None = _opt("normalise advantages per minibatch (with sparse rewards and no success yet "
                                 "this turns value noise into unit-size policy gradients)", flag=True)

    # --- teacher ------------------------------------------------------------------------------------
    teacher: str | None = _opt("none = plain PPO; hard = one sampled plan per decision; soft = mixture of "
                               "all plans by probability", "teacher", choices=("none", "hard", "soft"))
    planner: str | None = _opt("where plans come from: recorded Vicuna-33B answers, scripted correct plans "
                               "(oracle), scripted wrong plans (adversarial, a control), or a live LLM", "teacher",
                               choices=("recorded", "oracle", "adversarial", "llm"))
    skills: str | None = _opt("how plans become actions: paper = behaves like the published skills (go-to "
                              "walks through lava, greedy explore, unrunnable options emit 'done'); safe = "
                              "shortest paths around lava, frontier exploration", "teacher",
                              choices=("paper", "safe"))
    hard_sampling: str | None = _opt("hard teacher: step = draw a plan at every step (the published code); "
                                     "commit = keep a plan until the sentence changes or the plan stalls or "
                                     "cannot run", "teacher", choices=("step", "commit"))
    stall_limit: int | None = _opt("--hard_sampling commit: steps without a new observation before a plan is "
                                   "given up", "teacher")
    soft_planner: bool = field(default=False, metadata={"help": "same as --teacher soft (paper's flag)",
                                                        "group": "teacher", "flag": True})
    offline_planner: bool = field(default=False, metadata={
        "help": "same as --planner recorded (paper's flag; recorded is already the default)",
        "group": "teacher", "flag": True})
    llm_url: str | None = _opt("--planner llm: server root speaking the OpenAI chat-completions format "
                               "(FastChat, vLLM, Ollama, llama.cpp, utils.chatglm_api)", "teacher")
    llm_model: str | None = _opt("--planner llm: model name sent to the server", "teacher")
    llm_temperature: float | None = _opt("--planner llm: sampling temperature", "teacher")
    llm_samples: int | None = _opt("--planner llm: answers asked per new sentence; their plan frequencies "
                                   "are the plan probabilities", "teacher")
    llm_timeout: float | None = _opt("--planner llm: deadline in seconds for one question to the server: "
                                     "connecting, every read, retries and their waits", "teacher")
    llm_max_retries: int | None = _opt("--planner llm: retries on timeouts, dropped connections, 408, 429 and "
                                       "5xx (within --llm_timeout)", "teacher")
    llm_on_outage: str | None = _opt("--planner llm: when a server that has answered fails mid-run: fallback = "
                                     "answer from the recorded plans and ask again later; stop = save the "
                                     "checkpoint and exit (code 3)", "teacher", choices=("fallback", "stop"))
    llm_outage_budget: float | None = _opt("--planner llm: most seconds spent waiting on a failing server per "
                                           "outage; once spent, the rest of the run answers from the recorded "
                                           "plans (--llm_on_outage fallback)", "teacher")
    llm_offline: bool | None = _opt("--planner llm: replay the answer cache without a server; sentences not in "
                                    "it follow --llm_on_outage (fallback answers them from the recorded plans, "
                                    "stop is an error)", "teacher", flag=True)
    llm_max_answer_chars: int | None = _opt("--planner llm: longest answer accepted, in characters; longer "
                                            "answers count as unparseable and are never cached", "teacher")
    llm_max_concurrency: int | None = _opt("--planner llm: most requests in flight at once", "teacher")
    llm_max_reasks: int | None = _opt("--planner llm: rounds of re-asking unparseable answers", "teacher")
    llm_cache: str | None = _opt("--planner llm: answer cache (SQLite); default <logdir>/llm_cache.sqlite",
                                 "teacher")
    llm_api_key_env: str | None = _opt("--planner llm: NAME of the environment variable holding the API key "
                                       "(the key itself is never logged or saved)", "teacher")
    distill_initial: float | None = _opt("distillation coefficient at the first update", "teacher")
    distill_decay: float | None = _opt("coefficient decrease per update", "teacher")
    distill_floor: float | None = _opt("lowest coefficient before it is switched off", "teacher")
    distill_off_after: int | None = _opt("update from which distillation is off and the teacher is no "
                                         "longer asked", "teacher")

    # --- evaluation, logging, checkpoints --------------------------------------------------------
    num_eval: int | None = _opt("evaluation episodes", "evaluation")
    eval_interval: int | None = _opt("evaluate every this many iterations (0 = never)", "evaluation")
    eval_deterministic: bool | None = _opt("evaluate with the most likely action instead of sampling",
                                           "evaluation", flag=True)
    eval_teacher: bool = field(default=False, metadata={
        "help": "eval: evaluate the teacher alone (no student needed)", "group": "evaluation", "flag": True})
    save_interval: int | None = _opt("save acmodel.pt every this many iterations", "evaluation")
    log_interval: int | None = _opt("print a progress line every this many iterations", "evaluation")
    num_videos: int | None = _opt("episodes recorded to a GIF by eval", "evaluation")

    def to_json(self) -> dict:
        """All settings as a JSON-able dict (no secrets are ever stored in a RunConfig)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


POSITIVE_INTS = ("num_envs", "frame_stack", "hidden_size", "n_itr", "num_steps", "update_epochs", "num_minibatches",
                 "num_eval", "llm_samples", "llm_max_concurrency", "stall_limit", "llm_max_answer_chars")
NON_NEGATIVE = ("ego_size", "eval_interval", "save_interval", "log_interval", "num_videos", "distill_off_after",
                "distill_initial", "distill_decay", "distill_floor", "ent_coef", "vf_coef", "torch_threads",
                "llm_max_retries", "llm_max_reasks")


def config_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(RunConfig))


def read_yaml(path: Path) -> dict:
    """Read one YAML mapping; a malformed file is a clear ConfigError."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of setting: value")
    known = {f.name for f in config_fields()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config {path} has unknown settings: {', '.join(unknown)}")
    return data


def build_config(task: str, cli_values: dict) -> RunConfig:
    """Merge defaults, the task's config file and explicitly given command-line values, then validate."""
    from envs import get_task  # registers the tasks
    spec = get_task(task)
    values = read_yaml(CONFIG_DIR / "defaults.yaml")
    task_file = CONFIG_DIR / f"{spec.name.lower()}.yaml"
    if task_file.exists():
        values.update(read_yaml(task_file))
    values.update({k: v for k, v in cli_values.items() if v is not None})
    values["task"] = spec.name
    if values.pop("soft_planner", False):
        values["teacher"] = "soft"
    values["soft_planner"] = values.get("teacher") == "soft"
    if values.pop("offline_planner", False):
        values["planner"] = "recorded"
    values["offline_planner"] = values.get("planner") == "recorded"
    config = RunConfig(**values)
    validate(config)
    if config.total_steps:
        per_iteration = config.num_envs * config.num_steps
        config.n_itr = -(-config.total_steps // per_iteration)
    return config


def validate(config: RunConfig) -> None:
    """Reject missing or out-of-range settings with a one-line message."""
    for f in config_fields():
        if getattr(config, f.name) is None and f.metadata.get("group") not in ("run",) and f.name not in (
                "total_steps", "prompt", "naming", "recorded_table", "llm_cache"):
            raise ConfigError(f"setting '{f.name}' has no value: add it to configs/defaults.yaml or pass --{f.name}")
    for name in POSITIVE_INTS:
        if getattr(config, name) <= 0:
            raise ConfigError(f"--{name} must be a positive number, got {getattr(config, name)}")
    for name in NON_NEGATIVE:
        if getattr(config, name) < 0:
            raise ConfigError(f"--{name} must be >= 0, got {getattr(config, name)}")
    if config.total_steps is not None and config.total_steps <= 0:
        raise ConfigError(f"--total_steps must be a positive number, got {config.total_steps}")
    if not 0 < config.gamma <= 1 or not 0 <= config.gae_lambda <= 1:
        raise ConfigError("--gamma must be in (0, 1] and --gae_lambda in [0, 1]")
    for name in ("llm_timeout", "llm_outage_budget"):
        if not 0 < getattr(config, name) < float("inf"):
            raise ConfigError(f"--{name} must be a positive number of seconds, got {getattr(config, name)}")
    if config.lr <= 0:
        raise ConfigError(f"--lr must be positive, got {config.lr}")
    if config.recurrent and config.num_envs < config.num_minibatches:
        raise ConfigError("a recurrent student needs --num_envs >= --num_minibatches (minibatches are env groups)")
