"""Run folders: paths stay inside <logdir>/ppo/<task>/, one training run per folder, starting over loses nothing."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import main
from fake_llm import FakeLLMServer
from utils.checkpoint import CheckpointError, check_meta
from utils.run_folder import FolderLock, RunFolderError, aside_path, inside, lock_path

PROJECT = Path(__file__).resolve().parents[1]
# A run's 200-episode held-out evaluation is not what these tests check (it was over a third of the suite's time)
TINY = ["--n_itr", "1", "--num_envs", "2", "--num_steps", "8", "--eval_interval", "0", "--log_interval", "1",
        "--final_eval_episodes", "2"]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones included) with its content hash."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def train(tmp_path, savedir="run", *extra):
    return main.main(["train", "--savedir", savedir, "--logdir", str(tmp_path), *TINY, *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def task(tmp_path) -> Path:
    return tmp_path / "ppo" / "simpledoorkey"


# -- paths --------------------------------------------------------------------------------------------------
def test_names_leading_outside_the_task_folder_are_refused_and_nothing_is_written(tmp_path, capsys):
    logdir = tmp_path / "log"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (logdir / "ppo" / "simpledoorkey").mkdir(parents=True)
    (logdir / "ppo" / "simpledoorkey" / "link").symlink_to(outside)
    cases = [("train", "--savedir", "../../x"), ("train", "--savedir", str(outside / "abs")),
             ("train", "--savedir", "link"), ("train", "--savedir", "."), ("train", "--savedir", "a/.hidden"),
             ("eval", "--loaddir", "../../x"), ("eval", "--loaddir", str(outside)),
             ("eval", "--eval_teacher", "--savedir", "../../out")]
    for case in cases:
        assert main.main([*case, "--logdir", str(logdir), *(TINY if case[0] == "train" else [])]) == 2, case
        line = one_error_line(capsys)
        assert ("outside" in line or "reserved" in line or "itself" in line) and case[2] in line, line
    assert snapshot(tmp_path) == {}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["elsewhere", "link", "log", "ppo", "simpledoorkey"]


def test_inside_resolves_dotdot_that_stays_inside(tmp_path):
    assert inside(tmp_path, "a/../b", "--savedir") == (tmp_path / "b").resolve()
    with pytest.raises(RunFolderError):
        inside(tmp_path, "a/../../b", "--savedir")


def test_sweep_names_leading_outside_are_refused(tmp_path, capsys):
    code = main.main(["sweep", "--name", "../../../x", "--logdir", str(tmp_path), "--methods", "ppo", "--seeds", "0",
                      "--total_steps", "16", "--teacher_episodes", "0"])
    assert code == 2 and "outside" in capsys.readouterr().err
    assert snapshot(tmp_path) == {}


def test_unwritable_logdir_is_one_line_before_anything_runs(tmp_path):
    """A real permission problem. As root the command keeps its user (it must read the clone and its venv,
    which may sit in a folder only their owner can read) but loses the capabilities that let root write
    where the permission bits forbid it; as any other user it runs as is."""
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"llm4teach-ro-{os.getpid()}"
    base.mkdir()
    try:
        base.chmod(0o755)
        readonly = base / "readonly"
        readonly.mkdir()
        readonly.chmod(0o555)
        prefix = []
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv: cannot drop privileges")
            caps = "-dac_override,-dac_read_search,-fowner"
            prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
        command = [*prefix, sys.executable, str(PROJECT / "main.py"), "train", "--savedir", "run",
                   "--logdir", str(readonly / "log"), *TINY]
        result = subprocess.run(command, cwd=base, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert result.returncode == 2, result.stderr
        err = result.stderr.strip()
        assert len(err.splitlines()) == 1 and "not writable" in err and str(readonly) in err, err
        assert list(readonly.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_logdir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "log").write_text("not a folder")
    assert main.main(["train", "--savedir", "run", "--logdir", str(tmp_path / "log"), *TINY]) == 2
    assert "is a file, not a folder" in one_error_line(capsys)


def test_loaddir_naming_a_file_says_so(tmp_path, task, capsys):
    task.mkdir(parents=True)
    (task / "model.pt").write_bytes(b"x")
    assert main.main(["eval", "--loaddir", "model.pt", "--logdir", str(tmp_path), "--num_eval", "1"]) == 2
    line = one_error_line(capsys)
    assert "is a file, not a folder" in line and "--loadmodel" in line
    assert main.main(["eval", "--loaddir", "x", "--loadmodel", "../model.pt", "--logdir", str(tmp_path)]) == 2
    assert "give a file name inside --loaddir" in one_error_line(capsys)


# -- the lock -----------------------------------------------------------------------------------------------
def test_a_second_run_on_a_locked_folder_is_refused_with_or_without_resume(tmp_path, task, capsys):
    assert train(tmp_path) == 0
    before = snapshot(tmp_path)
    with FolderLock(task / "run"):
        for extra in ([], ["--resume"], ["--overwrite"]):
            assert train(tmp_path, "run", *extra) == 2
            line = one_error_line(capsys)
            assert "in use by another training run" in line and f"pid {os.getpid()}" in line
        assert train(tmp_path, "run/inner") == 2, "a run inside the locked folder is refused too"
        assert "lies inside the run folder" in one_error_line(capsys)
    assert snapshot(tmp_path) == before, "the refused runs changed nothing, and the lock file is gone"


def test_a_lock_held_by_another_live_process_refuses_then_is_taken_over_once_it_is_killed(tmp_path, task, capsys,
                                                                                          caplog):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from utils.run_folder import FolderLock; "
                               "lock = FolderLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(task / "run")],
        cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)}, stdout=subprocess.PIPE, text=True)
    try:
        task.mkdir(parents=True, exist_ok=True)
        assert holder.stdout.readline().strip() == "held"
        assert train(tmp_path) == 2
        assert f"pid {holder.pid}" in one_error_line(capsys)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    assert lock_path(task / "run").exists(), "kill -9 leaves the lock file behind"
    assert train(tmp_path) == 0
    assert f"taking over the stale lock of {task / 'run'}: its owner (pid {holder.pid} on host" in caplog.text
    assert not lock_path(task / "run").exists()


def test_a_stale_lock_file_naming_a_dead_pid_is_taken_over(tmp_path, task):
    dead = subprocess.Popen(["true"])
    dead.wait()
    task.mkdir(parents=True)
    import json
    import socket
    lock_path(task / "run").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": 0}))
    with FolderLock(task / "run") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not lock_path(task / "run").exists()


def test_lock_names_the_host_when_the_stale_owner_is_elsewhere(tmp_path):
    import json
    folder = tmp_path / "run"
    lock_path(folder).write_text(json.dumps({"pid": 1, "host": "some-other-machine", "started": 0}))
    with pytest.raises(RunFolderError, match=f"some-other-machine.*delete {lock_path(folder)}"):
        FolderLock(folder).acquire()


# -- starting over ------------------------------------------------------------------------------------------
def test_overwrite_refused_by_a_later_check_leaves_the_old_run_intact(tmp_path, task, capsys):
    assert train(tmp_path) == 0
    before = snapshot(tmp_path)
    server = FakeLLMServer()
    server.stop()  # unreachable
    code = train(tmp_path, "run", "--overwrite", "--planner", "llm", "--llm_url", server.url, "--llm_max_retries", "0")
    assert code == 2 and server.url in one_error_line(capsys)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in task.iterdir()) == ["run"]


def test_overwrite_failing_before_its_first_checkpoint_puts_the_old_run_back(tmp_path, task, monkeypatch):
    assert train(tmp_path) == 0
    before = snapshot(tmp_path)
    from algos.trainer import Trainer

    def broken(self, recent, curve):
        assert aside_path(task / "run").exists(), "the old run is moved aside only once the checks passed"
        raise RuntimeError("boom in the first iteration")

    monkeypatch.setattr(Trainer, "_iterate", broken)
    with pytest.raises(RuntimeError, match="boom"):
        train(tmp_path, "run", "--overwrite")
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in task.iterdir()) == ["run"]


def test_overwrite_deletes_the_old_run_right_after_the_first_checkpoint(tmp_path, task, monkeypatch):
    assert train(tmp_path) == 0
    (task / "run" / "marker").write_text("old")
    from algos.trainer import Trainer
    seen = []
    original = Trainer.save

    def save(self):
        original(self)
        seen.append((self.iteration, aside_path(task / "run").exists()))

    monkeypatch.setattr(Trainer, "save", save)
    assert train(tmp_path, "run", "--overwrite", "--n_itr", "3", "--save_interval", "1") == 0
    assert seen[0] == (1, False) and not any(aside for _, aside in seen)
    assert not (task / "run" / "marker").exists() and sorted(p.name for p in task.iterdir()) == ["run"]


def test_kill_9_before_the_first_checkpoint_then_a_plain_rerun_starts_over(tmp_path, task, caplog):
    args = [sys.executable, str(PROJECT / "main.py"), "train", "--savedir", "run", "--logdir", str(tmp_path),
            "--n_itr", "1000", "--num_envs", "2", "--num_steps", "8", "--eval_interval", "0",
            "--save_interval", "0", "--log_interval", "1", "--final_eval_episodes", "2"]
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not (task / "run" / "eval_curve.csv").exists():  # training has begun
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    run_dir = task / "run"
    assert (run_dir / "config.json").exists() and not (run_dir / "acmodel.pt").exists()
    (run_dir / "acmodel.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # what a save killed midway leaves
    assert train(tmp_path) == 0
    log = caplog.text
    assert "stopped before its first checkpoint: starting it over" in log
    assert "removed 1 unfinished checkpoint file" in log and "taking over the stale lock" in log
    assert sorted(p.name for p in task.iterdir()) == ["run"]
    assert not list(run_dir.glob("*.tmp")) and len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert torch.load(run_dir / "acmodel.pt", weights_only=True)["meta"]["iteration"] == 1


def test_resume_of_a_folder_without_checkpoint_starts_it_over(tmp_path, task, caplog):
    (task / "run").mkdir(parents=True)
    (task / "run" / "config.json").write_text("{}")
    assert train(tmp_path, "run", "--resume") == 0
    assert "starting it over" in caplog.text


def test_a_killed_overwrite_is_undone_at_the_next_start(tmp_path, task, capsys):
    assert train(tmp_path) == 0
    before = snapshot(tmp_path)
    os.rename(task / "run", aside_path(task / "run"))  # what a start-over killed before its first checkpoint leaves
    (task / "run").mkdir()
    (task / "run" / "config.json").write_text("{}")
    assert train(tmp_path) == 2
    assert "already holds a run" in one_error_line(capsys), "the earlier run is back and refused as usual"
    assert snapshot(tmp_path) == before


def test_a_killed_overwrite_that_had_saved_deletes_the_old_run_at_the_next_start(tmp_path, task, capsys):
    assert train(tmp_path) == 0
    shutil.copytree(task / "run", aside_path(task / "run"))
    assert train(tmp_path, "run", "--resume", "--n_itr", "2") == 0
    assert sorted(p.name for p in task.iterdir()) == ["run"]


def test_runs_in_subfolders_are_never_overwritten_along(tmp_path, task, capsys):
    assert main.main(["train", "--savedir", "multi", "--seed_list", "0", "1", "--logdir", str(tmp_path), *TINY]) == 0
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        assert train(tmp_path, "multi", *extra) == 2
        assert "holds other runs in its subfolders (seed0, seed1)" in one_error_line(capsys)
    assert snapshot(tmp_path) == before


# -- checkpoint metadata ------------------------------------------------------------------------------------
def test_insane_checkpoint_meta_is_refused_before_building_the_network(tmp_path, task, capsys):
    assert train(tmp_path) == 0
    path = task / "run" / "acmodel.pt"
    payload = torch.load(path, weights_only=True)
    payload["meta"]["model_config"]["hidden_size"] = 10_000_000
    torch.save(payload, path)
    before = snapshot(tmp_path)
    for args in (["eval", "--loaddir", "run", "--num_eval", "1", "--num_videos", "0"],
                 ["train", "--savedir", "run", "--resume", *TINY]):
        assert main.main([*args, "--logdir", str(tmp_path)]) == 2
        line = one_error_line(capsys)
        assert "unusable metadata (hidden_size = 10000000" in line and str(path) in line
    assert snapshot(tmp_path) == before


def test_weights_that_do_not_fit_the_meta_are_one_line(tmp_path, task, capsys):
    assert train(tmp_path) == 0
    path = task / "run" / "acmodel.pt"
    payload = torch.load(path, weights_only=True)
    payload["meta"]["model_config"]["hidden_size"] = 64
    torch.save(payload, path)
    assert main.main(["eval", "--loaddir", "run", "--num_eval", "1", "--logdir", str(tmp_path)]) == 2
    assert "do not fit the network" in one_error_line(capsys)


GOOD_META = {"task": "SimpleDoorKey", "iteration": 1, "env_steps": 16, "frame_stack": 1,
             "model_config": {"architecture": 2, "obs_shape": [4, 9, 9], "num_actions": 7, "hidden_size": 128,
                              "recurrent": False, "ego_size": 11}}


@pytest.mark.parametrize("change,what", [
    ({"iteration": -1}, "iteration"), ({"env_steps": "many"}, "env_steps"), ({"frame_stack": 1e9}, "frame_stack"),
    ({"task": None}, "task"), ({"model_config": []}, "model_config"),
    ({"model_config": {"hidden_size": 1e7}}, "hidden_size"), ({"model_config": {"hidden_size": True}}, "hidden_size"),
    ({"model_config": {"obs_shape": [4, 100000, 9]}}, "obs_shape"),
    ({"model_config": {"obs_shape": [4, 9]}}, "obs_shape"), ({"model_config": {"num_actions": 0}}, "num_actions"),
    ({"model_config": {"recurrent": "yes"}}, "recurrent"), ({"model_config": {"ego_size": -1}}, "ego_size"),
])
def test_check_meta_refuses_wrong_types_and_sizes(change, what):
    from algos.student import check_config  # what the student's own model_config may hold

    def check(meta):
        check_meta(meta, Path("x.pt"))
        check_config(meta["model_config"], Path("x.pt"))
    check(GOOD_META)
    meta = {**GOOD_META, **change}
    if isinstance(change.get("model_config"), dict):
        meta["model_config"] = {**GOOD_META["model_config"], **change["model_config"]}
    with pytest.raises(CheckpointError, match=what):
        check(meta)


# -- sweeps -------------------------------------------------------------------------------------------------
def test_sweep_runs_lock_their_folder_and_restart_one_killed_before_its_checkpoint(tmp_path, task, caplog):
    from bench.sweep_plan import RunSpec
    from bench.sweep_runs import train_one
    spec = RunSpec("SimpleDoorKey", "ppo", 0, (("teacher", "none"), ("planner", "recorded"), ("n_itr", 1),
                                               ("num_envs", 2), ("num_steps", 8), ("eval_interval", 0),
                                               ("final_eval_episodes", 2)))
    run_dir = task / "sw" / "ppo" / "seed0"
    run_dir.parent.mkdir(parents=True)
    with FolderLock(run_dir):
        with pytest.raises(RunFolderError, match="in use by another training run"):
            train_one(spec, str(run_dir), 1, str(task))
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")  # a run killed before its first checkpoint
    (run_dir / "events.out.tfevents.1.old").write_bytes(b"old events")
    row = train_one(spec, str(run_dir), 1, str(task))
    assert row["status"] == "done" and row["env_steps"] == 16 and "starting it over" in caplog.text
    assert not (run_dir / "events.out.tfevents.1.old").exists() and (run_dir / "acmodel.pt").exists()
    assert train_one(spec, str(run_dir), 1, str(task))["env_steps"] == 16, "a finished run is resumed, not redone"


def test_resume_of_several_seeds_continues_the_started_ones_and_starts_the_others(tmp_path, task, capsys):
    seeds = ["--seed_list", "0", "1", "--logdir", str(tmp_path)]
    assert main.main(["train", "--savedir", "multi", *seeds, *TINY]) == 0
    shutil.rmtree(task / "multi" / "seed1")  # as if interrupted while seed 0 trained
    capsys.readouterr()
    assert main.main(["train", "--savedir", "multi", "--resume", *seeds, *TINY, "--n_itr", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("resuming at iteration 1") == 1 and "[SimpleDoorKey seed 1] training 2 iterations" in out
    iterations = [torch.load(task / "multi" / f"seed{s}" / "acmodel.pt", weights_only=True)["meta"]["iteration"]
                  for s in (0, 1)]
    assert iterations == [2, 2]


RACER = """
import sys, time
from pathlib import Path
from utils.run_folder import FolderLock, RunFolderError
folder, go, done = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
try:
    lock = FolderLock(folder)
    lock.acquire()
except RunFolderError:
    print("refused", flush=True)
else:
    print("won", flush=True)
    while not done.exists():  # hold it until every racer has tried
        time.sleep(0.01)
    lock.release()
"""


@pytest.mark.parametrize("stale", [False, True])
def test_processes_racing_for_a_lock_let_exactly_one_win(tmp_path, stale):
    import json
    import socket
    folder, go, done = tmp_path / "run", tmp_path / "go", tmp_path / "done"
    if stale:  # a lock file left by a dead process: the racers must not both take it over
        dead = subprocess.Popen(["true"])
        dead.wait()
        lock_path(folder).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": 0}))
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(folder), str(go), str(done)], cwd=PROJECT,
                               text=True, env={**os.environ, "PYTHONPATH": str(PROJECT)}, stdout=subprocess.PIPE)
              for _ in range(6)]
    time.sleep(0.3)
    go.touch()
    try:
        outcomes = sorted(racer.stdout.readline().strip() for racer in racers)
    finally:
        done.touch()
        for racer in racers:
            racer.wait(timeout=60)
    assert outcomes == ["refused"] * 5 + ["won"]
    assert not lock_path(folder).exists()
