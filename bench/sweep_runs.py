"""How a sweep's runs execute: one run (:func:`train_one`, as ``main.py train`` trains), many in local
processes (:func:`run_local`, stopped cleanly by Ctrl-C), or as Ray tasks (:func:`run_ray`)."""
from __future__ import annotations

import io
import os
import signal
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from bench.sweep_plan import RunSpec, run_dir_for, task_root

_sweep_cancelled = None  # in a sweep process: the sweep's "stop now" event (set on Ctrl-C)
_current_stop = None  # in a sweep process: the StopFlag of the run in progress


def train_one(spec: RunSpec, run_dir: str, torch_threads: int = 1, root: str | None = None) -> dict:
    """Train one run into ``run_dir`` (resuming it if a checkpoint is there); returns its index row.

    The run folder is locked while training (see utils.run_folder); ``root`` is the task folder above it.
    An ``sb3_ppo`` run cannot resume: an unfinished one starts over. Ctrl-C or SIGTERM stops the run after
    the current env step with a checkpoint saved, and the row's status is then ``interrupted``.
    """
    import torch
    torch.set_num_threads(torch_threads)
    from algos.rollout import StopFlag, TrainingInterrupted
    from algos.trainer import CHECKPOINT_NAME, train_run
    from planners.factory import training_teacher_factory
    from utils.config import build_config
    from utils.process import stop_on_signals
    from utils.run_folder import RunFolders
    config = build_config(spec.task, {**dict(spec.overrides), "torch_threads": torch_threads})
    start = time.perf_counter()
    run_dir = Path(run_dir)
    sb3 = spec.method == "sb3_ppo"
    if sb3:
        from bench.sb3_ppo import POLICY_NAME, train_sb3
    global _current_stop
    stop = _current_stop = StopFlag()
    row = {"task": spec.task, "method": spec.method, "seed": spec.seed, "run_dir": str(run_dir)}
    if _sweep_cancelled is not None and _sweep_cancelled.is_set():  # queued before the sweep was stopped
        return {**row, "status": "not started"}
    try:
        with stop_on_signals(stop), RunFolders(Path(root) if root else run_dir.parent, [run_dir],
                                               POLICY_NAME if sb3 else CHECKPOINT_NAME) as folders:
            (action,) = folders.plan("auto")
            with folders.start(run_dir, action) as replacement:
                if sb3:
                    result = train_sb3(config, spec.seed, run_dir, on_start=replacement.begin,
                                       on_save=replacement.saved, stop=stop)
                else:
                    with open(os.devnull, "w") as quiet:
                        result = train_run(config, spec.seed, run_dir, training_teacher_factory(config, spec.seed),
                                           stream=quiet, resume=action == "resume", stop=stop,
                                           on_start=replacement.begin, on_save=replacement.saved)
    except TrainingInterrupted:
        return {**row, "status": "interrupted"}
    return {**row, "status": "done", "env_steps": result.env_steps, "final_success_rate": result.final_success_rate,
            "steps_to_threshold": result.steps_to_threshold,
            "env_steps_per_second": round(result.env_steps_per_second, 1),
            "seconds": round(time.perf_counter() - start, 1)}


def _train_remote(spec: RunSpec) -> tuple[dict, bytes]:
    """Ray task body: train in a scratch folder on the worker, return the row and the folder as a tar."""
    with tempfile.TemporaryDirectory() as scratch:
        row = train_one(spec, scratch)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(scratch, arcname=".")
        return row, buffer.getvalue()


def _unpack(data: bytes, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(run_dir, filter="data")


def _init_worker(parent_pid: int, cancelled) -> None:
    """A sweep process: ends with the sweep, ignores Ctrl-C between runs (``train_one`` handles it during a
    run), and stops its run when the sweep sets ``cancelled`` (which covers a Ctrl-C sent to the sweep's
    process alone)."""
    global _sweep_cancelled
    from utils.process import die_with_parent
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _sweep_cancelled = cancelled

    def watch() -> None:
        cancelled.wait()
        if _current_stop is not None:
            _current_stop.request("SIGINT")

    threading.Thread(target=watch, daemon=True).start()


def run_local(specs: list[RunSpec], logdir: str, name: str, workers: int, on_done) -> None:
    """Run ``specs`` in ``workers`` local processes (spawned: no state shared with this one).

    On Ctrl-C no new run starts; the running ones stop after their current env step with a checkpoint saved
    (the next sweep resumes them), are reported through ``on_done``, and KeyboardInterrupt is raised again.
    """
    context = get_context("spawn")
    cancelled = context.Event()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(os.getpid(), cancelled))
    futures = {}
    try:
        futures = {pool.submit(train_one, spec, str(run_dir_for(logdir, name, spec)), 1,
                               str(task_root(logdir, spec.task))): spec for spec in specs}
        for future in as_completed(futures):
            on_done(futures.pop(future), future)
    except KeyboardInterrupt:
        cancelled.set()
        running = [f for f in futures if not f.cancel()]
        for future in as_completed(running):
            on_done(futures[future], future)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(specs: list[RunSpec], logdir: str, name: str, address: str, on_done) -> None:
    """Run ``specs`` as Ray tasks (one CPU each) and copy each run folder back under ``logdir``."""
    try:
        import ray
    except ImportError:
        raise ValueError("--ray_address needs Ray: pip install -r requirements-ray.txt") from None
    project = str(Path(__file__).resolve().parent.parent)
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address,
                 runtime_env={"working_dir": project, "excludes": ["log/", ".venv/", "*.pt", "*.sqlite"]},
                 **({"num_cpus": os.cpu_count()} if address == "local" else {}))
    remote = ray.remote(num_cpus=1)(_train_remote)
    pending = {remote.remote(spec): spec for spec in specs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(done[0])
        on_done(spec, _RayResult(ray, done[0], run_dir_for(logdir, name, spec)))


class _RayResult:
    """Adapter giving a Ray object ref the ``result()`` of a future (and syncing the folder back)."""

    def __init__(self, ray, ref, run_dir: Path):
        self.ray, self.ref, self.run_dir = ray, ref, run_dir

    def result(self) -> dict:
        row, data = self.ray.get(self.ref)
        _unpack(data, self.run_dir)
        return {**row, "run_dir": str(self.run_dir)}
