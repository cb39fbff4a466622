"""What a live LLM teacher costs a training run: HTTP calls, cache hits and time spent waiting.

    python -m bench.llm_cost --task SimpleDoorKey --latency 1.0

Starts a loopback stand-in for an OpenAI-compatible server (``bench/llm_standin.py``: it answers every
sentence with the scripted oracle plan after ``--latency`` seconds, honouring ``n``), trains once with
``--planner llm`` and a fresh answer cache, then trains again with the same cache, and prints for both runs
the requests the server received, the planner's cache hits, the seconds spent in LLM requests (summed;
requests for several envs' new sentences run concurrently, so training waited at most this long), that
time per env step, and each run's wall time. No model is involved: the numbers measure this project's
calling pattern, not an LLM.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def measure(task: str, latency: float, iterations: int | None, seed: int = 0) -> list[dict]:
    """Two runs against one stand-in server sharing one cache; a row of counters per run."""
    from algos.trainer import train_run
    from bench.llm_standin import StandInLLM
    from planners.factory import training_teacher_factory
    from utils.config import build_config

    rows = []
    with tempfile.TemporaryDirectory() as logdir, StandInLLM(delay=latency) as server:
        overrides = {"planner": "llm", "llm_url": server.url, "logdir": logdir,
                     "llm_cache": os.path.join(logdir, "answers.sqlite")}
        if iterations:
            overrides["n_itr"] = iterations
        config = build_config(task, overrides)
        for run in ("first run", "same cache"):
            before = server.requests
            start = time.perf_counter()
            with open(os.devnull, "w") as quiet:
                result = train_run(config, seed, Path(logdir) / run.replace(" ", "_"),
                                   training_teacher_factory(config, seed), stream=quiet)
            wall = time.perf_counter() - start
            waited = result.llm.get("llm_seconds", 0.0)
            rows.append({"run": run, "env_steps": result.env_steps, "http_requests": server.requests - before,
                         "cache_hits": result.llm.get("cache_hits", 0), "llm_seconds": waited,
                         "us_per_step": 1e6 * waited / max(result.env_steps, 1), "wall_seconds": wall,
                         "final_success": result.final_success_rate})
    return rows


def format_rows(task: str, latency: float, rows: list[dict]) -> str:
    lines = [f"{task}, fake LLM with {latency:g} s per request",
             "| run | env steps | HTTP requests | cache hits | s in LLM requests | us per env step | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['run']} | {r['env_steps']:,} | {r['http_requests']} | {r['cache_hits']} | "
              f"{r['llm_seconds']:.2f} | {r['us_per_step']:.1f} | {r['wall_seconds']:.1f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="SimpleDoorKey", help="task to train")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds the fake server takes per request")
    parser.add_argument("--n_itr", type=int, default=None, help="training iterations (default: the task's)")
    args = parser.parse_args(argv)
    if args.latency < 0:
        parser.error("--latency must be >= 0")
    print(format_rows(args.task, args.latency, measure(args.task, args.latency, args.n_itr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
