"""Run settings: one typed tree of dataclasses, the only place where a default is written.

``RunConfig`` has one section per part of the system (run, env, student, ppo, schedule, teacher, llm, eval).
Each field declares its default, help text and bounds; the command-line flags, ``config.json``, ``sweep --set``
and the checks below are all generated from these declarations. ``configs/<task>.yaml`` holds per-task
overrides (with the reasons in comments); flags override both.

Flags and YAML keys use flat names: a field's name, prefixed for the ``schedule`` (``distill_``) and ``llm``
(``llm_``) sections, so ``config.ppo.lr`` is ``--lr`` and ``config.llm.url`` is ``--llm_url``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_DIR / "configs"
MAX_SEED = 2**32 - 1  # numpy's seed range


def project_path(path: str) -> Path:
    """``path`` as given if absolute or present from the working folder, else relative to the project."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() or candidate.exists() else PROJECT_DIR / candidate


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range (a usage error: exit code 2)."""


def setting(default, help: str, *, choices: tuple | None = None, min: float | None = None,
            max: float | None = None, above: float | None = None, flag: str | None = None, cli: bool = True,
            nargs: str = "+"):
    """Declare one setting: its default, help text and allowed values.

    ``min``/``max`` are inclusive bounds, ``above`` an exclusive lower bound; they apply to every element of a
    list. ``flag`` overrides the generated flag name; ``cli=False`` keeps a setting out of the command line
    (YAML only); ``nargs`` is the flag's argument count for list settings.
    """
    meta = {"help": help, "choices": choices, "min": min, "max": max, "above": above, "flag": flag, "cli": cli,
            "nargs": nargs}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunSettings:
    """What to run and where its files go."""

    task: str = setting("SimpleDoorKey", "task name, case-insensitive")
    savedir: str | None = setting(None, "output folder inside <logdir>/ppo/<task>/ (train: required; eval: "
                                        "default 'eval'); locked while a training run writes it")
    loaddir: str | None = setting(None, "folder under <logdir>/ppo/<task>/ holding the student to load")
    loadmodel: str = setting("acmodel.pt", "checkpoint file name in --loaddir")
    logdir: str = setting("log", "root of all run folders")
    seed_list: list[int] = setting([0], "training seeds; several seeds = several runs, each in <savedir>/seed<k>",
                                   min=0, max=MAX_SEED)
    env_seed_list: list[int] = setting([0], "evaluation layouts: one value s = seeds s..s+num_eval-1; several = "
                                            "exactly these; none (empty) = random", min=0, max=MAX_SEED,
                                       nargs="*")
    device: str | None = setting(None, "torch device; default cuda if available, else cpu")
    torch_threads: int = setting(0, "torch CPU threads of the learner (0 = torch's default; with "
                                      "--policy_lag 1, 1 thread, the rollout worker having the other core)",
                              min=0, max=1024)
    overwrite: bool = setting(False, "train: start over in an existing --savedir (the old run is moved aside, "
                                     "deleted after the new run's first checkpoint, and put back if the new run "
                                     "fails before it)")
    resume: bool = setting(False, "train: continue the run in --savedir from its last checkpoint (pass a larger "
                                  "--n_itr to extend a finished run)")


@dataclass
class EnvSettings:
    """The batch of environments the student acts in."""

    num_envs: int = setting(16, "environments stepped together; one batched student forward per step",
                            min=1, max=4096)
    frame_stack: int = setting(1, "consecutive observations stacked as the student's input (the map already "
                                  "remembers what was seen)", min=1, max=64)


@dataclass
class StudentSettings:
    """The student network (saved in each checkpoint's meta)."""

    recurrent: bool = setting(False, "give the student an LSTM")
    hidden_size: int = setting(128, "feature and LSTM width", min=1, max=4096)
    ego_size: int = setting(11, "side of the agent-centred, agent-facing-up view the student's CNN sees "
                                "(odd; 0 = the whole map as it is)", min=0, max=255)


@dataclass
class PPOSettings:
    """PPO's budget and hyperparameters."""

    n_itr: int = setting(60, "PPO iterations (updates); each collects num_envs * num_steps env steps",
                         min=1, max=10**7)
    total_steps: int | None = setting(None, "env-step budget; if set, overrides --n_itr "
                                            "(n_itr = ceil(total_steps / (num_envs * num_steps)))", min=1)
    num_steps: int = setting(64, "rollout length per env per iteration", min=1, max=100_000)
    lr: float = setting(1e-3, "Adam learning rate", above=0, max=1)
    gamma: float = setting(0.99, "discount factor", above=0, max=1)
    gae_lambda: float = setting(0.95, "GAE lambda", min=0, max=1)
    clip_coef: float = setting(0.2, "PPO clip range (policy ratio and value change)", above=0, max=10)
    ent_coef: float = setting(0.001, "entropy bonus coefficient (the paper's value)", min=0, max=100)
    vf_coef: float = setting(0.5, "value loss coefficient", min=0, max=100)
    max_grad_norm: float = setting(0.5, "gradient norm clip", above=0)
    update_epochs: int = setting(4, "passes over each rollout", min=1, max=1000)
    num_minibatches: int = setting(8, "minibatches per pass (more, smaller steps imitate the teacher faster)",
                                   min=1, max=100_000)
    norm_adv: bool = setting(True, "normalise advantages per minibatch (with sparse rewards and no success yet "
                                   "this turns value noise into unit-size policy gradients)")
    policy_lag: int = setting(0, "1 = collect the next rollout in a worker process (envs, teacher and a copy of "
                                 "the student), with the weights from before the current update, while the "
                                 "update runs (PPO's ratio corrects for the lag); 0 = collect, then update, in "
                                 "one process", min=0, max=1)


@dataclass
class ScheduleSettings:
    """The distillation coefficient: ``max(floor, initial - decay * update)`` until ``off_after``, then 0."""

    initial: float = setting(1.0, "distillation coefficient at the first update", min=0, max=1e6)
    decay: float = setting(0.02, "coefficient decrease per update", min=0, max=1e6)
    floor: float = setting(0.05, "lowest coefficient before it is switched off", min=0, max=1e6)
    off_after: int = setting(50, "update from which distillation is off and the teacher is no longer asked",
                             min=0)

    def coef(self, update: int) -> float:
        """The coefficient of update ``update`` (0-based); 0 from ``off_after`` on."""
        if update >= self.off_after:
            return 0.0
        return max(self.floor, self.initial - self.decay * update)


NO_DISTILLATION = ScheduleSettings(0.0, 0.0, 0.0, 0)


@dataclass
class TeacherSettings:
    """Which teacher labels the student's states, and how plans become actions."""

    mode: str = setting("hard", "none = plain PPO; hard = one sampled plan per decision; soft = mixture of all "
                                "plans by probability", choices=("none", "hard", "soft"), flag="teacher")
    planner: str = setting("recorded", "where plans come from: recorded Vicuna-33B answers, scripted correct plans "
                                       "(oracle), scripted wrong plans (adversarial, a control), or a live LLM",
                           choices=("recorded", "oracle", "adversarial", "llm"))
    skills: str = setting("paper", "how plans become actions: paper = behaves like the published skills (go-to "
                                   "walks through lava, greedy explore, unrunnable options emit 'done'); safe = "
                                   "shortest paths around lava, frontier exploration", choices=("paper", "safe"))
    hard_sampling: str = setting("step", "hard teacher: step = draw a plan at every step (the published code); "
                                         "commit = keep a plan until the sentence changes or the plan stalls or "
                                         "cannot run", choices=("step", "commit"))
    stall_limit: int = setting(8, "--hard_sampling commit: steps without a new observation before a plan is "
                                  "given up", min=1, max=10**6)
    naming: str = setting("plain", "object naming in sentences (set by the task config)",
                          choices=("plain", "colored", "numbered"))
    recorded_plans: str = setting("planners/data/recorded_vicuna33b_plans.json",
                                  "recorded-plans JSON file (relative paths are taken from the project folder); "
                                  "a live LLM's cache can be exported to this format")
    recorded_table: str | None = setting(None, "table of the recorded-plans file used by --planner recorded "
                                               "(set by the task config)")


@dataclass
class LLMSettings:
    """The live LLM teacher (``--planner llm``); the API key is read from the variable named here."""

    url: str = setting("http://localhost:8000", "--planner llm: server root speaking the OpenAI chat-completions "
                                                "format (FastChat, vLLM, Ollama, llama.cpp, utils.chatglm_api)")
    model: str = setting("vicuna-33b-v1.3", "--planner llm: model name sent to the server")
    api: str = setting("chat", "--planner llm: chat = /v1/chat/completions with the task prompt as the system "
                               "message (chat models, as in the paper); completions = /v1/completions with a "
                               "few-shot text prompt continued after 'Action: {' (base models)",
                       choices=("chat", "completions"))
    max_tokens: int = setting(0, "--planner llm: longest answer the server may generate, in tokens (0 = the API's "
                                 "default: 256 for chat, 48 for completions, whose answer is one plan)",
                              min=0, max=100000)
    temperature: float = setting(0.7, "--planner llm: sampling temperature", min=0, max=10)
    seed: int | None = setting(None, "--planner llm: sampling seed sent with every request (answer i of a new "
                                     "sentence gets seed + i), so a server that honours seeds (llama.cpp, vLLM) "
                                     "gives the same answers again; unset = the server's own randomness",
                               min=0, max=2**31 - 1)
    samples: int = setting(10, "--planner llm: answers asked per new sentence (the paper asks 10); their plan "
                               "frequencies are the plan probabilities", min=1, max=1000)
    timeout: float = setting(60.0, "--planner llm: deadline in seconds for one question to the server: connecting, "
                                   "every read, retries and their waits", above=0, max=3600)
    max_retries: int = setting(3, "--planner llm: retries on timeouts, dropped connections, 408, 429 and 5xx "
                                  "(within --llm_timeout)", min=0, max=100)
    on_outage: str = setting("fallback", "--planner llm: when a server that has answered fails mid-run: fallback = "
                                         "answer from the recorded plans and ask again later; stop = save the "
                                         "checkpoint and exit (code 3)", choices=("fallback", "stop"))
    outage_budget: float = setting(60.0, "--planner llm: most seconds spent waiting on a failing server per outage; "
                                         "once spent, the rest of the run answers from the recorded plans "
                                         "(--llm_on_outage fallback)", above=0, max=86400)
    offline: bool = setting(False, "--planner llm: replay the answer cache without a server; sentences not in it "
                                   "follow --llm_on_outage (fallback answers them from the recorded plans, stop is "
                                   "an error)")
    max_answer_chars: int = setting(4000, "--planner llm: longest answer accepted, in characters; longer answers "
                                          "count as unparseable and are never cached", min=1, max=10**6)
    max_concurrency: int = setting(4, "--planner llm: most requests in flight at once", min=1, max=256)
    max_reasks: int = setting(2, "--planner llm: rounds of re-asking unparseable answers", min=0, max=100)
    cache: str | None = setting(None, "--planner llm: answer cache (SQLite); default <logdir>/llm_cache.sqlite, "
                                      "shared by all runs under that logdir")
    api_key_env: str = setting("LLM4TEACH_API_KEY", "--planner llm: NAME of the environment variable holding "
                                                    "the API key (the key itself is never logged or saved)")
    prompt: dict | None = setting(None, "the task's prompt: description and example (set by the task config)",
                                  flag="prompt", cli=False)


@dataclass
class EvalSettings:
    """Evaluation, progress output and checkpoints."""

    num_eval: int = setting(32, "evaluation episodes (during training and in `eval`)", min=1, max=10**6)
    eval_interval: int = setting(5, "evaluate every this many iterations (0 = never)", min=0)
    eval_deterministic: bool = setting(False, "evaluate with the most likely action instead of sampling")
    final_eval_episodes: int = setting(200, "train: episodes of the held-out final evaluation at the end of a run, "
                                            "on env seeds 1,000,000 + k that no training-time evaluation uses, "
                                            "with a Wilson interval in summary.json (0 = skip); eval --heldout: "
                                            "episodes on the same layouts", min=0, max=10**6)
    heldout: bool = setting(False, "eval: use the held-out layouts of the final evaluation (env seeds 1,000,000 "
                                   "+ k, k < --final_eval_episodes) instead of --env_seed_list/--num_eval")
    eval_teacher: bool = setting(False, "eval: evaluate the teacher alone (no student needed)")
    save_interval: int = setting(10, "save acmodel.pt every this many iterations (and at the end)", min=0)
    log_interval: int = setting(5, "print a progress line every this many iterations", min=0)
    num_videos: int = setting(3, "episodes recorded to a GIF by eval", min=0, max=1000)


@dataclass
class RunConfig:
    """All settings of a train or eval run, by section."""

    run: RunSettings = field(default_factory=RunSettings)
    env: EnvSettings = field(default_factory=EnvSettings)
    student: StudentSettings = field(default_factory=StudentSettings)
    ppo: PPOSettings = field(default_factory=PPOSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def to_json(self) -> dict:
        """All settings as a nested JSON-able dict (no secrets are ever stored in a RunConfig)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def flat(self) -> dict:
        """All settings by flag name (the form of the YAML files and ``sweep --set``)."""
        return {s.flag: getattr(getattr(self, s.section), s.name) for s in SETTINGS.values()}

    @classmethod
    def from_json(cls, document: dict) -> RunConfig:
        """Read back :meth:`to_json`'s nested form (e.g. a run's ``config.json``); unknown keys are ignored.

        The flat ``config.json`` of runs made before the settings had sections is read too.
        """
        values = {}
        for spec in SETTINGS.values():
            section = document.get(spec.section)
            if isinstance(section, dict) and spec.name in section:
                values[spec.flag] = section[spec.name]
            elif spec.flag in document and not isinstance(document[spec.flag], dict) or spec.flag == "prompt":
                values[spec.flag] = document.get(spec.flag)
        return cls.from_flat(values)

    @classmethod
    def from_flat(cls, values: dict) -> RunConfig:
        """Build from ``{flag name: value}``; unknown names are a ConfigError."""
        unknown = sorted(set(values) - set(SETTINGS))
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(unknown)}")
        sections: dict[str, dict] = {}
        for name, value in values.items():
            spec = SETTINGS[name]
            sections.setdefault(spec.section, {})[spec.name] = value
        hints = typing.get_type_hints(cls)
        return cls(**{name: hints[name](**sections.get(name, {})) for name in hints})


@dataclass(frozen=True)
class Setting:
    """One setting of the tree: where it lives, its flag name, Python type and declaration."""

    section: str
    name: str
    flag: str
    type: type
    is_list: bool
    optional: bool
    default: object
    meta: dict

    @property
    def help(self) -> str:
        return self.meta["help"]


FLAG_PREFIX = {"schedule": "distill_", "llm": "llm_"}


def _index_settings() -> dict[str, Setting]:
    index = {}
    for section, section_type in typing.get_type_hints(RunConfig).items():
        hints = typing.get_type_hints(section_type)
        for f in dataclasses.fields(section_type):
            hint = hints[f.name]
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            is_list = typing.get_origin(hint) is list or any(typing.get_origin(a) is list for a in args)
            if is_list:
                scalar = int
            else:
                scalar = hint if isinstance(hint, type) else args[0]
            flag = f.metadata["flag"] or FLAG_PREFIX.get(section, "") + f.name
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            index[flag] = Setting(section, f.name, flag, scalar, is_list, type(None) in typing.get_args(hint),
                                  default, dict(f.metadata))
    return index


SETTINGS: dict[str, Setting] = _index_settings()


def parse_value(name: str, text: str):
    """Convert the text of one setting (``sweep --set name=value``) to its declared type."""
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting '{name}'")
    spec = SETTINGS[name]
    if spec.optional and text.lower() in ("none", "null"):
        return None
    try:
        if spec.is_list:
            return [int(part) for part in text.replace(",", " ").split()]
        if spec.type is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if spec.type is dict:
            raise ValueError("set it in the task's YAML file")
        return spec.type(text)
    except ValueError:
        raise ConfigError(f"--{name}: cannot read '{text}' as {spec.type.__name__}") from None


def read_yaml(path: Path) -> dict:
    """Read one YAML mapping of setting: value; a malformed file or an unknown key is a clear ConfigError."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of setting: value")
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"config {path} has unknown settings: {', '.join(unknown)}")
    return data


def task_overrides(task_name: str) -> dict:
    """The settings ``configs/<task>.yaml`` changes (empty if the task has no file)."""
    path = CONFIG_DIR / f"{task_name.lower()}.yaml"
    return read_yaml(path) if path.exists() else {}


def build_config(task: str, flag_values: dict) -> RunConfig:
    """Defaults <- the task's config file <- the given flag values (None = not given); then validate.

    ``task`` is used as given (callers pass the registry's spelling, ``envs.get_task(name).name``).
    """
    values = task_overrides(task)
    values.update({k: v for k, v in flag_values.items() if v is not None})
    values["task"] = task
    config = RunConfig.from_flat(values)
    validate(config)
    if config.ppo.total_steps:
        config.ppo.n_itr = -(-config.ppo.total_steps // (config.env.num_envs * config.ppo.num_steps))
    return config


def validate(config: RunConfig) -> None:
    """Reject values of the wrong type or out of their declared range with a one-line message."""
    for spec in SETTINGS.values():
        value = getattr(getattr(config, spec.section), spec.name)
        if value is None:
            if not spec.optional:
                raise ConfigError(f"setting '{spec.flag}' has no value: pass --{spec.flag}")
            continue
        for item in value if spec.is_list else [value]:
            _check_value(spec, item)
    if config.student.recurrent and config.env.num_envs < config.ppo.num_minibatches:
        raise ConfigError("a recurrent student needs --num_envs >= --num_minibatches (minibatches are env groups)")
    url = urllib.parse.urlsplit(config.llm.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"--llm_url must look like http://HOST:PORT, got '{config.llm.url}'")
    try:
        url.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"--llm_url has a malformed port: '{config.llm.url}'") from None


def _check_value(spec: Setting, value) -> None:
    name, meta = spec.flag, spec.meta
    expected = (int, float) if spec.type is float else spec.type
    if not isinstance(value, expected) or (spec.type is not bool and isinstance(value, bool)):
        raise ConfigError(f"--{name} must be {_article(spec.type.__name__)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"--{name} must be a finite number, got {value}")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"--{name} must be one of {', '.join(meta['choices'])}, got '{value}'")
    if meta["min"] is not None and value < meta["min"]:
        raise ConfigError(f"--{name} must be >= {meta['min']}, got {value}")
    if meta["above"] is not None and value <= meta["above"]:
        raise ConfigError(f"--{name} must be > {meta['above']}, got {value}")
    if meta["max"] is not None and value > meta["max"]:
        raise ConfigError(f"--{name} must be <= {meta['max']}, got {value}")


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word
