"""Deployment latency: what one decision costs the student (batch 1, CPU) and what it costs the teacher.

    python main.py bench --latency --task SimpleDoorKey --decisions 2000 --llm_latency 0.5

One decision = one observation (numpy, as the env gives it) in, action probabilities out; each is timed on
its own and the table shows the median and the 99th percentile. Rows:

* the student in torch (``inference_mode``) with 1 thread and with torch's default thread count, and the
  same network exported to ONNX and run by onnxruntime with 1 thread and with its default;
* the teacher with recorded plans: an observation it has met before (its cache answers), a new observation
  (one pass over distinct observations: plans known from earlier sentences are reused), and a fresh teacher
  (nothing cached: the sentence's plans are parsed and every plan's skill is evaluated);
* the teacher with a live LLM: a loopback stand-in server (``bench/llm_standin.py``, no model: it answers
  with the oracle's plan after ``--llm_latency`` seconds) asked about a new sentence, and the same answer
  read back from the on-disk answer cache by a fresh teacher;
* with ``--llm_url``, a real LLM server measured (e.g. Gemma-3-270M from ``main.py serve``, with
  ``--llm_model gemma-3-270m --llm_api completions``): the teacher asking it about a new sentence
  (``llm_samples`` answers, as in training) and the answer read back from the cache; the table's note adds
  the server's generation speed in tokens/s (``usage.completion_tokens`` of a few plain requests);
* a real 33B model, not measured: ``--answer_tokens`` divided by a published generation speed (see
  ``VICUNA_33B_SOURCE``); prompt processing and queueing are left out, so it is a lower bound.

The student's network is the task's default (``--set`` changes it, e.g. ``--set recurrent=true``) with
untrained weights: the cost of a forward pass does not depend on the weights. ``--smoke`` runs every row
with few decisions and a fast fake LLM to check the tooling; its numbers are not measurements.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# Vicuna-33B generating at batch size 1 without speculative decoding: about 18 tokens/s, read off the
# bar chart "Speedup on different model sizes" of the Medusa report (A100 GPU).
VICUNA_33B_TOKENS_PER_S = 18.0
VICUNA_33B_SOURCE = ("Cai et al. 2024, Medusa, arXiv:2401.10774 (https://arxiv.org/abs/2401.10774), figure "
                     "'Speedup on different model sizes': Vicuna-33B without Medusa ~18 tokens/s, batch size 1")
SMOKE = {"decisions": 20, "llm_calls": 2, "llm_latency": 0.02}


@dataclass
class Row:
    """One line of the table: per-decision seconds of one decision maker (or a stated figure)."""

    name: str
    seconds: np.ndarray
    stated: bool = False

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.seconds, 99))


def _timed(decide, inputs) -> np.ndarray:
    """Seconds of ``decide(x)`` for each ``x``, measured one call at a time."""
    spent = np.empty(len(inputs))
    for i, x in enumerate(inputs):
        start = time.perf_counter()
        decide(x)
        spent[i] = time.perf_counter() - start
    return spent


@contextlib.contextmanager
def _torch_threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def collect_observations(config, count: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct observations of episodes the teacher plays (frame-stacked like the student's)."""
    import envs
    from envs.vector import EnvBatch
    from planners.factory import build_teacher
    batch = EnvBatch([envs.make_env(config.run.task)], seed=seed, frame_stack=config.env.frame_stack)
    teacher = build_teacher(config, 1, seed)
    rng = np.random.default_rng(seed)
    seen, observations = set(), []
    for _ in range(50 * count):  # bounded: a task whose episodes repeat few states ends with fewer
        if len(observations) == count:
            break
        obs = batch.obs.copy()
        if obs.tobytes() not in seen:
            seen.add(obs.tobytes())
            observations.append(obs[0])
        probs = teacher.action_probs(batch.frames.latest(obs)).astype(np.float64)[0]
        _, _, _, finished = batch.step(np.array([rng.choice(len(probs), p=probs / probs.sum())]))
        if finished:
            teacher.reset(0)
    teacher.close()
    batch.close()
    return np.stack(observations)


def student_rows(config, observations: np.ndarray, num_actions: int, warmup: int = 20) -> list[Row]:
    """The untrained default student in onnxruntime and in torch, 1 thread and default threads each."""
    from algos.export import OnnxPolicy, TorchPolicy, export_onnx
    from algos.student import build_student
    model = build_student(config.student, observations.shape[1:], num_actions).eval()
    inputs = [obs[None] for obs in observations]
    onnx_rows, torch_rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, observations, Path(folder) / "student.onnx")
        for threads, label in ((1, "1 thread"), (0, "default threads")):
            policy = OnnxPolicy(path, threads)
            policy.reset(1)
            _timed(policy.probs, inputs[:warmup])
            onnx_rows.append(Row(f"student, onnxruntime, {label}", _timed(policy.probs, inputs)))
    default = torch.get_num_threads()
    for threads, label in ((1, "1 thread"), (default, f"default threads ({default})")):
        with _torch_threads(threads):
            policy = TorchPolicy(model)
            policy.reset(1)
            _timed(policy.probs, inputs[:warmup])
            torch_rows.append(Row(f"student, torch inference_mode, {label}", _timed(policy.probs, inputs)))
    return onnx_rows + torch_rows


def teacher_rows(config, observations: np.ndarray, seed: int = 0) -> list[Row]:
    """The teacher with the configured planner: seen observation, new observation, fresh teacher."""
    from planners.factory import build_teacher
    frames = config.env.frame_stack
    channels = observations.shape[1] // frames
    inputs = [obs[None, -channels:] for obs in observations]
    teacher = build_teacher(config, 1, seed)
    first = _timed(teacher.action_probs, inputs)
    again = _timed(teacher.action_probs, inputs)
    teacher.close()
    fresh = []
    for x in inputs:
        teacher = build_teacher(config, 1, seed)
        fresh.append(_timed(teacher.action_probs, [x])[0])
        teacher.close()
    what = f"teacher ({config.teacher.mode}, {config.teacher.planner} plans)"
    return [Row(f"{what}, observation met before", again), Row(f"{what}, new observation", first),
            Row(f"{what}, fresh teacher (nothing cached)", np.array(fresh))]


def llm_rows(config, observations: np.ndarray, latency: float, calls: int, seed: int = 0) -> list[Row]:
    """The teacher asking the loopback stand-in LLM about a new sentence, and reading the answer from disk."""
    from bench.llm_standin import StandInLLM
    from planners.factory import build_teacher
    from utils.config import RunConfig
    channels = observations.shape[1] // config.env.frame_stack
    inputs = [obs[None, -channels:] for obs in observations[:calls]]
    asked, replayed = [], []
    with tempfile.TemporaryDirectory() as folder, StandInLLM(delay=latency) as server:
        for i, x in enumerate(inputs):  # a new cache per sentence: every first teacher has to ask
            llm_config = RunConfig.from_flat({**config.flat(), "planner": "llm", "llm_url": server.url,
                                              "llm_api": "chat",
                                              "logdir": folder,
                                              "llm_cache": os.path.join(folder, f"answers{i}.sqlite")})
            for times in (asked, replayed):  # the first teacher asks, the second finds the answer on disk
                teacher = build_teacher(llm_config, 1, seed)
                times.append(_timed(teacher.action_probs, [x])[0])
                teacher.close()
        requests = server.requests
    if requests != len(inputs):
        raise RuntimeError(f"expected {len(inputs)} requests to the stand-in LLM, it received {requests}")
    what = f"teacher, live LLM (loopback fake, {latency:g} s per request)"
    return [Row(f"{what}, new sentence: one request", np.array(asked)),
            Row(f"{what}, answer in the on-disk cache", np.array(replayed))]


def real_llm_rows(config, observations: np.ndarray, calls: int, seed: int = 0) -> list[Row]:
    """The teacher asking the real server of ``config.llm`` about new sentences, and reading them from disk.

    Each new sentence gets a fresh cache, so its first teacher asks the server (``llm_samples`` answers);
    observations whose sentence was already timed are skipped.
    """
    from planners.factory import build_family, build_teacher
    from utils.config import RunConfig
    channels = observations.shape[1] // config.env.frame_stack
    family = build_family(config)
    inputs, sentences = [], set()
    for obs in observations:
        sentence = family.describe(obs[-channels:]).sentence
        if sentence not in sentences and len(inputs) < calls:
            sentences.add(sentence)
            inputs.append(obs[None, -channels:])
    asked, replayed = [], []
    with tempfile.TemporaryDirectory() as folder:
        for i, x in enumerate(inputs):
            llm_config = RunConfig.from_flat({**config.flat(), "planner": "llm", "logdir": folder,
                                              "llm_cache": os.path.join(folder, f"answers{i}.sqlite")})
            for times in (asked, replayed):
                teacher = build_teacher(llm_config, 1, seed)
                times.append(_timed(teacher.action_probs, [x])[0])
                teacher.close()
    what = f"teacher, live {config.llm.model} ({config.llm.api} API at {config.llm.url})"
    return [Row(f"{what}, new sentence: {config.llm.samples} answers ({len(inputs)} sentences)", np.array(asked)),
            Row(f"{what}, answer in the on-disk cache", np.array(replayed))]


def generation_speed(config, requests: int = 3, tokens: int = 64) -> str:
    """The real server's tokens/s over ``requests`` plain completions of up to ``tokens`` tokens (no stop)."""
    import json
    import urllib.request
    from planners.factory import llm_prompt
    prompt = llm_prompt(config).request("Agent sees <key>, holds <nothing>.")
    body = {"model": config.llm.model, "max_tokens": tokens, "temperature": config.llm.temperature}
    path = "/v1/completions" if config.llm.api == "completions" else "/v1/chat/completions"
    body.update({"prompt": prompt} if config.llm.api == "completions" else {"messages": prompt})
    rates = []
    for _ in range(requests):
        request = urllib.request.Request(config.llm.url.rstrip("/") + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=config.llm.timeout) as reply:
            generated = json.loads(reply.read(1 << 20))["usage"]["completion_tokens"]
        rates.append(generated / (time.perf_counter() - start))
    return (f"{config.llm.model} generates {np.median(rates):.1f} tokens/s here (median of {requests} requests of up "
            f"to {tokens} tokens after the task's prompt, prompt processing included)")


def stated_row(answer_tokens: int, tokens_per_s: float) -> Row:
    return Row(f"teacher, real Vicuna-33B, new sentence: {answer_tokens} tokens at {tokens_per_s:g} tokens/s "
               f"(stated, not measured)", np.array([answer_tokens / tokens_per_s]), stated=True)


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def format_table(task: str, rows: list[Row], reference: str, decisions: int, note: str = "") -> str:
    """The markdown ratio table: each row's median and p99 and its median over the reference row's."""
    base = next(r for r in rows if r.name == reference).median
    lines = [f"{task}, batch 1, CPU, {decisions} decisions per student/teacher row, torch default threads "
             f"{torch.get_num_threads()}{note}",
             f"| decision maker | median | p99 | decisions/s | x {reference} |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        p99 = "-" if row.stated else _duration(row.p99)
        lines.append(f"| {row.name} | {_duration(row.median)} | {p99} | {_number(1 / row.median)} | "
                     f"{_number(row.median / base)} |")
    lines.append(f"\nStated 33B figure: {VICUNA_33B_SOURCE}; times the assumed answer length, prompt "
                 f"processing and queueing left out.")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment latency (--latency)")
    group.add_argument("--latency", action="store_true",
                       help="instead of throughput: per-decision latency of the student (torch, onnxruntime) "
                            "next to the teacher's (recorded plans, live LLM), as one ratio table")
    group.add_argument("--decisions", type=int, default=2000,
                       help="--latency: decisions timed per student/teacher row (distinct observations)")
    group.add_argument("--llm_latency", type=float, default=0.5,
                       help="--latency: seconds the loopback fake LLM takes per request")
    group.add_argument("--llm_calls", type=int, default=10, help="--latency: new sentences asked of the fake LLM")
    group.add_argument("--answer_tokens", type=int, default=64,
                       help="--latency: assumed tokens of one LLM answer, for the stated 33B row (the worked example "
                            "answer in the SimpleDoorKey prompt is 28 words, roughly 35-40 tokens)")
    group.add_argument("--llm_tokens_per_s", type=float, default=VICUNA_33B_TOKENS_PER_S,
                       help="--latency: generation speed of the real 33B model for the stated row (default: the "
                            "Medusa report's Vicuna-33B figure)")
    group.add_argument("--llm_url", default=None,
                       help="--latency: also time a real LLM server at this URL (e.g. the one of main.py serve), "
                            "asked as in training (--llm_samples answers per new sentence)")
    group.add_argument("--llm_model", default=None, help="--latency --llm_url: model name sent to the server")
    group.add_argument("--llm_api", choices=("chat", "completions"), default=None,
                       help="--latency --llm_url: the API to ask it through")
    group.add_argument("--smoke", action="store_true",
                       help="--latency: a few decisions per row and a fast fake LLM, to check the tooling "
                            "(numbers are not measurements)")


def run(args: argparse.Namespace) -> str:
    """Measure every row and return the table."""
    from bench.sweep_plan import parse_settings
    from utils.config import build_config
    settings = parse_settings(args.set)  # unknown names and bad values are refused here
    decisions, calls, latency = args.decisions, args.llm_calls, args.llm_latency
    if args.smoke:
        decisions, calls, latency = SMOKE["decisions"], SMOKE["llm_calls"], SMOKE["llm_latency"]
    real = {name: value for name in ("llm_url", "llm_model", "llm_api") if (value := getattr(args, name, None))}
    config = build_config(args.task, {**settings, **real, "planner": args.planner, "teacher": args.teacher})
    import envs
    env = envs.make_env(config.run.task)
    num_actions = int(env.action_space.n)
    env.close()
    observations = collect_observations(config, decisions)
    rows = student_rows(config, observations, num_actions)
    rows += teacher_rows(config, observations)
    rows += llm_rows(config, observations, latency, min(calls, len(observations)))
    note = " | SMOKE RUN: not a measurement" if args.smoke else ""
    if args.llm_url:
        rows += real_llm_rows(config, observations, calls)
        note += " | " + generation_speed(config)
    rows.append(stated_row(args.answer_tokens, args.llm_tokens_per_s))
    return format_table(config.run.task, rows, "student, onnxruntime, 1 thread", len(observations), note)


def main(args: argparse.Namespace) -> int:
    for name in ("decisions", "llm_calls", "answer_tokens"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name} must be a positive number")
    if args.llm_latency < 0 or args.llm_tokens_per_s <= 0:
        raise ValueError("--llm_latency must be >= 0 and --llm_tokens_per_s positive")
    print(run(args))
    return 0
