"""Shared test helpers: small observations built by hand, rollouts, quiet torch."""
from __future__ import annotations

import os

# One torch thread per test process, and (inherited) in every run a test starts with subprocess: the suite
# runs two workers on two cores, and torch's default of one thread per core makes the thread pools of the
# processes spin against each other (a first training iteration measured 13 s instead of 0.3 s on this
# machine, with two other processes busy). Must be set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX  # noqa: E402

torch.set_num_threads(1)

KEY, DOOR, WALL, EMPTY, LAVA = (OBJECT_TO_IDX[n] for n in ("key", "door", "wall", "empty", "lava"))


def room_obs(width: int = 7, height: int = 7, agent=(2, 2), direction: int = 0, carrying=None,
             objects=(), unseen=()) -> np.ndarray:
    """A fully seen walled room (4, W, H) with objects ``[(kind, colour, (x, y), state)]`` and unseen cells."""
    obs = np.zeros((4, width, height), dtype=np.uint8)
    obs[0] = EMPTY
    obs[0, 0, :] = obs[0, -1, :] = obs[0, :, 0] = obs[0, :, -1] = WALL
    obs[1, obs[0] == WALL] = COLOR_TO_IDX["grey"]
    for kind, color, (x, y), state in objects:
        obs[:3, x, y] = (kind, COLOR_TO_IDX[color], state)
    for x, y in unseen:
        obs[:3, x, y] = 0
    ax, ay = agent
    obs[:3, ax, ay] = (carrying[0], COLOR_TO_IDX[carrying[1]], 0) if carrying else (EMPTY, 0, 0)
    obs[3, ax, ay] = direction + 1
    return obs


@pytest.fixture
def make_room():
    return room_obs


@pytest.fixture(scope="module")
def shared_server():
    """One threaded loopback HTTP server per test module (stopping one takes ~0.5 s)."""
    from pytest_httpserver import HTTPServer
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(shared_server):
    """The module's server with no expectations left from the previous test."""
    shared_server.clear()
    yield shared_server
    shared_server.clear()


@pytest.fixture
def inline_sweep(monkeypatch):
    """``main.py sweep`` trains its runs in this process (no worker start-up): for tests of the sweep's logic."""
    from concurrent.futures import Future

    import bench.sweep as sweep
    from bench.sweep_plan import run_dir_for
    from bench.sweep_runs import train_one

    def run_inline(specs, logdir, name, workers, on_done):
        for spec in specs:
            future = Future()
            try:
                future.set_result(train_one(spec, str(run_dir_for(logdir, name, spec))))
            except Exception as err:  # reported by the sweep like a failed worker
                future.set_exception(err)
            on_done(spec, future)

    monkeypatch.setattr(sweep, "run_local", run_inline)
    return run_inline


def pytest_collection_modifyitems(config, items):
    """``LLM4TEACH_TEST_ORDER``: run the collected tests in this order instead (test ids separated by
    spaces; an id may repeat, so one process can run A, B, A), or ``reverse``. Used by tests/test_order.py."""
    import os
    order = os.environ.get("LLM4TEACH_TEST_ORDER", "").split()
    if order == ["reverse"]:
        items.reverse()
    elif order:
        by_id = {item.nodeid: item for item in items}
        missing = [node for node in order if node not in by_id]
        if missing:
            raise pytest.UsageError(f"LLM4TEACH_TEST_ORDER names tests that were not collected: {missing}")
        items[:] = [by_id[node] for node in order]
